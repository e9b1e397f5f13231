//! State on disk like etcd: stopping and starting the server keeps every object, CRDs keep
//! serving their resources, and resourceVersions keep rising.

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::support::{bounded, install_crds, kube_encrypt_api, node, Backend, TestServer};

kube_encrypt_tests::on_both_servers!(stop_and_start_keeps_everything);
async fn stop_and_start_keeps_everything(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        let nodes: Api<Node> = Api::all(s.client.clone());
        for i in 0..20 {
            nodes.create(&PostParams::default(), &node(&format!("n{i}"))).await.unwrap();
        }
        nodes.delete("n3", &DeleteParams::default()).await.unwrap();
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        let cm = cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "v"}})).unwrap()).await.unwrap();
        let pools = kube_encrypt_api(&s.client, "IPPool", "ippools");
        let pool = serde_json::from_value(json!({"apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "198.18.0.0/16"}})).unwrap();
        pools.create(&PostParams::default(), &pool).await.unwrap();
        let last_rv: u64 = nodes.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap().parse().unwrap();

        let s = s.restart().await;
        let nodes: Api<Node> = Api::all(s.client.clone());
        let names = nodes.list(&ListParams::default()).await.unwrap().items.len();
        assert_eq!(names, 19);
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        let again = cms.get("c").await.unwrap();
        assert_eq!((again.uid(), again.resource_version()), (cm.uid(), cm.resource_version()));
        let pools = kube_encrypt_api(&s.client, "IPPool", "ippools");
        assert_eq!(pools.get("p").await.unwrap().data["spec"]["cidr"], "198.18.0.0/16");
        let next = nodes.create(&PostParams::default(), &node("after")).await.unwrap();
        assert!(next.resource_version().unwrap().parse::<u64>().unwrap() > last_rv);
    })
    .await;
}
