//! PATCH media types: JSON merge patch (RFC 7386), JSON patch (RFC 6902, `test` failures
//! are 422), strategic merge patch for built-in kinds (lists merge by their key, e.g.
//! containers by name; refused with 415 for custom resources, as on a real server).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use crate::support::{api_error, bounded, install_crds, kube_encrypt_api, Backend, TestServer};

/// A Deployment: its pod template's containers are a list merged by name, and unlike a Pod's
/// they may change after creation.
fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}},
        "spec": {
            "selector": {"matchLabels": {"app": "p"}},
            "template": {
                "metadata": {"labels": {"app": "p"}},
                "spec": {"containers": [{"name": "c1", "image": "i1"}, {"name": "c2", "image": "i2"}]},
            },
        },
    }))
    .unwrap()
}

kube_encrypt_tests::on_both_servers!(merge_json_and_strategic_patches);
async fn merge_json_and_strategic_patches(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let pods: Api<Deployment> = Api::default_namespaced(s.client.clone());
        pods.create(&PostParams::default(), &deployment()).await.unwrap();
        let pp = PatchParams::default();

        let merged = pods
            .patch(
                "p",
                &pp,
                &Patch::Merge(json!({"metadata": {"labels": {"a": null, "c": "3"}}})),
            )
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&merged.metadata.labels).unwrap(),
            json!({"b": "2", "c": "3"})
        );

        let strategic =
            Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c2", "image": "new"}]}}}}));
        let patched = pods.patch("p", &pp, &strategic).await.unwrap();
        let images: Vec<_> = containers(patched)
            .iter()
            .map(|c| c.image.clone().unwrap())
            .collect();
        assert_eq!(images, ["i1", "new"], "containers merge by name");

        // The same list in a merge patch replaces it.
        let replaced = pods
            .patch(
                "p",
                &pp,
                &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c3", "image": "x"}]}}}})),
            )
            .await
            .unwrap();
        assert_eq!(containers(replaced).len(), 1);

        let ops: json_patch::Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}},
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "jp"}
        ]))
        .unwrap();
        let jp = pods.patch("p", &pp, &Patch::<()>::Json(ops)).await.unwrap();
        assert_eq!(jp.metadata.annotations.clone().unwrap()["x"], "y");
        assert_eq!(containers(jp)[0].image.as_deref(), Some("jp"));

        let failing: json_patch::Patch = serde_json::from_value(
            json!([{"op": "test", "path": "/metadata/name", "value": "other"}]),
        )
        .unwrap();
        assert_eq!(
            api_error(pods.patch("p", &pp, &Patch::<()>::Json(failing)).await).0,
            422
        );
    })
    .await;
}

fn containers(deployment: Deployment) -> Vec<k8s_openapi::api::core::v1::Container> {
    deployment
        .spec
        .template
        .spec
        .map(|s| s.containers)
        .unwrap_or_default()
}

kube_encrypt_tests::on_both_servers!(strategic_merge_is_refused_for_custom_resources);
async fn strategic_merge_is_refused_for_custom_resources(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        let pools = kube_encrypt_api(&s.client, "IPPool", "ippools");
        let pool = serde_json::from_value(json!({
            "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "198.18.0.0/16"}
        }))
        .unwrap();
        pools.create(&PostParams::default(), &pool).await.unwrap();
        let (code, reason, _) = api_error(pools.patch("p", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"natOutgoing": true}}))).await);
        assert_eq!((code, reason.as_str()), (415, "UnsupportedMediaType"));
        let merged = pools.patch("p", &PatchParams::default(), &Patch::Merge(json!({"spec": {"natOutgoing": true}}))).await.unwrap();
        assert_eq!(merged.data["spec"]["natOutgoing"], true);
    })
    .await;
}
