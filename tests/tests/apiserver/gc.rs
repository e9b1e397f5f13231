//! Garbage collection by ownerReferences: deleting an owner deletes its dependents
//! (background propagation, also across scopes and in chains); `propagationPolicy:
//! Orphan` keeps them and drops the reference; deleting a namespace deletes its objects.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{bounded, install_crds, kube_encrypt_api, node, Backend, TestServer};

fn owned_cm(name: &str, owner: &Node) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "v1", "kind": "Node", "name": owner.name_any(), "uid": owner.uid().unwrap()
        }]}
    }))
    .unwrap()
}

/// Waits (bounded) until `get` reports the object gone. kube-controller-manager's garbage
/// collector notices new custom resources by rediscovery every 30 s, so allow a minute; the
/// emulator collects at once.
async fn until_gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for _ in 0..600 {
        if api.get_opt(name).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} was not garbage collected within 60 s");
}

kube_encrypt_tests::on_both_servers!(deleting_an_owner_deletes_dependents);
async fn deleting_an_owner_deletes_dependents(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        let nodes: Api<Node> = Api::all(s.client.clone());
        let owner = nodes.create(&PostParams::default(), &node("n1")).await.unwrap();
        let encryptions = kube_encrypt_api(&s.client, "NodeEncryption", "nodeencryptions");
        let ne = serde_json::from_value(json!({
            "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "NodeEncryption",
            "metadata": {"name": "n1", "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": owner.uid().unwrap()}]},
            "spec": {}
        }))
        .unwrap();
        let ne = encryptions.create(&PostParams::default(), &ne).await.unwrap();
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        cms.create(&PostParams::default(), &owned_cm("dependent", &owner)).await.unwrap();
        // A chain: a ConfigMap owned by the NodeEncryption.
        let chained = serde_json::from_value(json!({"metadata": {"name": "chained", "ownerReferences": [{
            "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "NodeEncryption", "name": "n1", "uid": ne.uid().unwrap()
        }]}}))
        .unwrap();
        cms.create(&PostParams::default(), &chained).await.unwrap();

        nodes.delete("n1", &DeleteParams::default()).await.unwrap();
        until_gone(&encryptions, "n1").await;
        until_gone(&cms, "dependent").await;
        until_gone(&cms, "chained").await;
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(orphan_propagation_keeps_dependents);
async fn orphan_propagation_keeps_dependents(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let nodes: Api<Node> = Api::all(s.client.clone());
        let owner = nodes
            .create(&PostParams::default(), &node("n1"))
            .await
            .unwrap();
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        cms.create(&PostParams::default(), &owned_cm("kept", &owner))
            .await
            .unwrap();
        nodes.delete("n1", &DeleteParams::orphan()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let kept = cms.get("kept").await.unwrap();
        assert!(kept.owner_references().is_empty());
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(deleting_a_namespace_deletes_its_objects);
async fn deleting_a_namespace_deletes_its_objects(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let namespaces: Api<Namespace> = Api::all(s.client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "scratch"}})).unwrap(),
            )
            .await
            .unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "scratch");
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
        )
        .await
        .unwrap();
        namespaces
            .delete("scratch", &DeleteParams::default())
            .await
            .unwrap();
        until_gone(&cms, "x").await;
        until_gone(&namespaces, "scratch").await;
    })
    .await;
}
