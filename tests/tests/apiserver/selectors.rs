//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field selectors
//! (`metadata.name`, `metadata.namespace`, `spec.nodeName`, `status.phase`, `!=`) on lists.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{api_error, bounded, Backend, TestServer};

async fn names<K>(api: &Api<K>, lp: ListParams) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut names: Vec<String> = api
        .list(&lp)
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    names.sort();
    names
}

kube_encrypt_tests::on_both_servers!(label_selectors);
async fn label_selectors(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        for (name, labels) in [
            ("a", json!({"app": "web", "tier": "front"})),
            ("b", json!({"app": "db"})),
            ("c", json!({})),
        ] {
            let cm = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                .unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
        }
        let cases: &[(&str, &[&str])] = &[
            ("app=web", &["a"]),
            ("app==db", &["b"]),
            ("app!=web", &["b", "c"]),
            ("app in (web,db)", &["a", "b"]),
            ("app notin (web)", &["b", "c"]),
            ("tier", &["a"]),
            ("!tier", &["b", "c"]),
            ("app,!tier", &["b"]),
        ];
        for (selector, want) in cases {
            assert_eq!(
                names(&cms, ListParams::default().labels(selector)).await,
                *want,
                "{selector}"
            );
        }
        let (code, _, message) =
            api_error(cms.list(&ListParams::default().labels("app in web")).await);
        assert_eq!(code, 400, "{message}");
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(field_selectors);
async fn field_selectors(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let pods: Api<Pod> = Api::default_namespaced(s.client.clone());
        for (name, node) in [("p1", "n1"), ("p2", "n2"), ("p3", "n1")] {
            let pod = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}
            }))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
        }
        let running = Patch::Merge(json!({"status": {"phase": "Running"}}));
        pods.patch_status("p3", &PatchParams::default(), &running)
            .await
            .unwrap();
        let cases: &[(&str, &[&str])] = &[
            ("metadata.name=p2", &["p2"]),
            ("spec.nodeName=n1", &["p1", "p3"]),
            ("spec.nodeName!=n1", &["p2"]),
            ("status.phase=Running", &["p3"]),
            ("status.phase!=Running,spec.nodeName=n1", &["p1"]),
            ("metadata.namespace=default", &["p1", "p2", "p3"]),
        ];
        for (selector, want) in cases {
            assert_eq!(
                names(&pods, ListParams::default().fields(selector)).await,
                *want,
                "{selector}"
            );
        }
        let everywhere: Api<Pod> = Api::all(s.client.clone());
        assert_eq!(
            names(
                &everywhere,
                ListParams::default().fields("metadata.namespace=other")
            )
            .await,
            Vec::<String>::new()
        );
    })
    .await;
}
