//! Create, get, list, update, delete, as the API server does them: server-set metadata
//! (uid, creationTimestamp, resourceVersion, generation, generateName), Status errors in
//! the server's wording (404 NotFound, 409 AlreadyExists / Conflict, 422 Invalid), the
//! namespace of a namespaced object must exist, dry runs persist nothing.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{
    api_error, bounded, install_crds, kube_encrypt_api, node, Backend, TestServer,
};

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

kube_encrypt_tests::on_both_servers!(create_get_list_delete_with_server_metadata);
async fn create_get_list_delete_with_server_metadata(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let nodes: Api<Node> = Api::all(s.client.clone());
        let created = nodes
            .create(&PostParams::default(), &node("n1"))
            .await
            .unwrap();
        assert!(created.uid().is_some_and(|u| u.len() == 36));
        assert!(created.creation_timestamp().is_some());
        let rv: u64 = created.resource_version().unwrap().parse().unwrap();
        assert!(rv > 0);

        let got = nodes.get("n1").await.unwrap();
        assert_eq!(got.uid(), created.uid());
        let list = nodes.list(&ListParams::default()).await.unwrap();
        assert_eq!(
            list.items.iter().map(|n| n.name_any()).collect::<Vec<_>>(),
            ["n1"]
        );
        assert!(
            list.metadata
                .resource_version
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= rv
        );

        nodes.delete("n1", &DeleteParams::default()).await.unwrap();
        assert_eq!(
            api_error(nodes.get("n1").await),
            (404, "NotFound".into(), "nodes \"n1\" not found".into())
        );
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(errors_use_the_servers_wording);
async fn errors_use_the_servers_wording(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        let configs = kube_encrypt_api(&s.client, "EncryptionConfig", "encryptionconfigs");
        let config = serde_json::from_value(json!({
            "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "EncryptionConfig",
            "metadata": {"name": "default"}, "spec": {}
        }))
        .unwrap();
        configs
            .create(&PostParams::default(), &config)
            .await
            .unwrap();
        let cases = [
            (
                api_error(configs.create(&PostParams::default(), &config).await),
                (
                    409,
                    "AlreadyExists",
                    "encryptionconfigs.kube-encrypt.dev \"default\" already exists",
                ),
            ),
            (
                api_error(configs.get("missing").await),
                (
                    404,
                    "NotFound",
                    "encryptionconfigs.kube-encrypt.dev \"missing\" not found",
                ),
            ),
            (
                api_error(
                    Api::<ConfigMap>::namespaced(s.client.clone(), "nope")
                        .create(&PostParams::default(), &configmap("c"))
                        .await,
                ),
                (404, "NotFound", "namespaces \"nope\" not found"),
            ),
        ];
        for (got, (code, reason, message)) in cases {
            assert_eq!(got, (code, reason.to_string(), message.to_string()));
        }
        let (code, reason, message) = api_error(
            Api::<Node>::all(s.client.clone())
                .create(&PostParams::default(), &node("Bad_Name"))
                .await,
        );
        assert_eq!((code, reason.as_str()), (422, "Invalid"));
        assert!(
            message.starts_with(
                "Node \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
            ),
            "{message}"
        );
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(generate_name_and_default_namespaces);
async fn generate_name_and_default_namespaces(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "kube-system");
        let mut cm = configmap("");
        cm.metadata.name = None;
        cm.metadata.generate_name = Some("gen-".into());
        let created = cms.create(&PostParams::default(), &cm).await.unwrap();
        let name = created.name_any();
        assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(s.client.clone());
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let got = namespaces.get(ns).await.unwrap();
            assert_eq!(got.labels()["kubernetes.io/metadata.name"], ns);
        }
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(dry_run_persists_nothing);
async fn dry_run_persists_nothing(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        let pp = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let created = cms.create(&pp, &configmap("dry")).await.unwrap();
        assert_eq!(created.name_any(), "dry");
        assert_eq!(api_error(cms.get("dry").await).0, 404);
        cms.create(&PostParams::default(), &configmap("wet"))
            .await
            .unwrap();
        cms.delete(
            "wet",
            &DeleteParams {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(cms.get("wet").await.is_ok());
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(resource_versions_conflicts_and_generation);
/// resourceVersion is one global counter; a stale one is a 409 Conflict; an update that
/// changes nothing keeps it; generation moves only on spec changes.
async fn resource_versions_conflicts_and_generation(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        let a = cms.create(&PostParams::default(), &configmap("a")).await.unwrap();
        let b = cms.create(&PostParams::default(), &configmap("b")).await.unwrap();
        let rv = |o: &ConfigMap| o.resource_version().unwrap().parse::<u64>().unwrap();
        assert!(rv(&b) > rv(&a));

        let mut changed = a.clone();
        changed.data = Some([("k".to_string(), "v2".to_string())].into());
        let updated = cms.replace("a", &PostParams::default(), &changed).await.unwrap();
        assert!(rv(&updated) > rv(&b));
        let (code, reason, message) = api_error(cms.replace("a", &PostParams::default(), &changed).await);
        assert_eq!((code, reason.as_str()), (409, "Conflict"));
        assert_eq!(
            message,
            "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let same = cms.replace("a", &PostParams::default(), &updated).await.unwrap();
        assert_eq!(same.resource_version(), updated.resource_version(), "a no-op update keeps the resourceVersion");

        let deployments: Api<Deployment> = Api::default_namespaced(s.client.clone());
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap();
        let d = deployments.create(&PostParams::default(), &d).await.unwrap();
        assert_eq!(d.metadata.generation, Some(1));
        let mut labelled = d.clone();
        labelled.labels_mut().insert("x".into(), "y".into());
        let labelled = deployments.replace("d", &PostParams::default(), &labelled).await.unwrap();
        assert_eq!(labelled.metadata.generation, Some(1), "metadata changes keep the generation");
        let mut scaled = labelled.clone();
        scaled.spec.replicas = Some(3);
        let scaled = deployments.replace("d", &PostParams::default(), &scaled).await.unwrap();
        assert_eq!(scaled.metadata.generation, Some(2));
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(delete_collection_with_a_selector);
async fn delete_collection_with_a_selector(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
            let mut cm = configmap(name);
            cm.labels_mut().insert("tier".into(), tier.into());
            cms.create(&PostParams::default(), &cm).await.unwrap();
        }
        let deleted = cms
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels("tier=x"),
            )
            .await
            .unwrap();
        let names: Vec<String> = deleted
            .left()
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let left: Vec<String> = cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        assert_eq!(left, ["c"]);
    })
    .await;
}
