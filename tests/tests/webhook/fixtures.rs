//! Objects and helpers the webhook tests share: the install namespace, nodes, agent
//! reports, a kubeconfig for the emulator, polling.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kube_encrypt_api::crd::{
    EncryptionState, FamilyStatus, NodeEncryption, NodeEncryptionSpec, NodeEncryptionStatus,
};
use serde_json::json;

use crate::support::{node, TestServer};

pub const NAMESPACE: &str = "kube-encrypt";

pub async fn create_namespace(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
}

pub async fn create_node(client: &Client, name: &str) {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    nodes.create(&PostParams::default(), &node(name)).await.unwrap();
}

/// What an agent reports: IPv4 in `v4`, IPv6 disabled, written just now.
pub fn report(v4: EncryptionState) -> NodeEncryptionStatus {
    let family = |state, port, interface: &str| FamilyStatus {
        state,
        listen_port: Some(port),
        interface: Some(interface.into()),
        mtu: Some(1440),
        message: format!("{state:?}"),
        ..Default::default()
    };
    NodeEncryptionStatus {
        ipv4: Some(family(v4, 51820, "wg-encrypt")),
        ipv6: Some(family(EncryptionState::Disabled, 51821, "wg-encrypt-v6")),
        last_update: Some(k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ..Default::default()
    }
}

/// Writes node `name`'s NodeEncryption status, creating the object first when needed.
pub async fn write_report(client: &Client, name: &str, status: &NodeEncryptionStatus) {
    let api: Api<NodeEncryption> = Api::all(client.clone());
    if api.get_opt(name).await.unwrap().is_none() {
        api.create(&PostParams::default(), &NodeEncryption::new(name, NodeEncryptionSpec {}))
            .await
            .unwrap();
    }
    let patch = Patch::Merge(json!({"status": status}));
    api.patch_status(name, &PatchParams::default(), &patch).await.unwrap();
}

/// A kubeconfig for the emulator, written into its state directory.
pub fn kubeconfig(server: &TestServer) -> PathBuf {
    let path = server.dir.path().join("webhook.kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {}\ncontexts:\n- name: emulator\n  context: {{cluster: emulator, user: webhook}}\ncurrent-context: emulator\nusers:\n- name: webhook\n  user: {{token: any}}\n",
        server.url()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Polls `probe` every 100 ms until it returns `Some`, failing with `what` after `limit`.
pub async fn eventually<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not reached within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
