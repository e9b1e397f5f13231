//! The lab on the real control plane: the control plane on a node, as in most clusters, with
//! host encryption; a node reimaged with a new key reconverges and no node loses the API
//! server (the bootstrap lockout of Calico issue 5125). And the emulator path, kept as the
//! fallback for machines without Go, still carries a whole encrypted mesh.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube_encrypt_api::crd::EncryptionConfigSpec;
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::PUBLIC_KEY_ANNOTATION;

use super::inspect;
use super::support::*;

const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

fn published_key(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    node: &str,
) -> Option<String> {
    let node = rt
        .block_on(Api::<Node>::all(client.clone()).get(node))
        .unwrap_or_else(|e| panic!("get Node {node}: {e}"));
    node.metadata
        .annotations?
        .get(PUBLIC_KEY_ANNOTATION)
        .cloned()
}

/// `/readyz` of the API server on node-1, asked from `node` (anonymous, as kubeadm allows).
fn api_ready_from(
    session: &kube_encrypt_tests::lab::testing::LabSession,
    node: &str,
) -> Result<(), String> {
    let out = inspect::exec(
        session,
        node,
        &[
            "curl",
            "-sk",
            "--max-time",
            "3",
            "https://192.0.2.11:6443/readyz",
        ],
    );
    let body = String::from_utf8_lossy(&out.stdout).to_string();
    (body.trim() == "ok")
        .then_some(())
        .ok_or_else(|| text(&out))
}

#[test]
fn a_reimaged_node_reconverges_with_the_api_server_on_a_host_encrypted_node() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&[
        "--nodes",
        "3",
        "--apiserver",
        "kube",
        "--control-plane-on",
        "node-1",
        "--agent-bin",
        &agent,
    ]);
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    rt.block_on(async {
        let mut spec = EncryptionConfigSpec::default();
        spec.ipv4.enabled = true;
        spec.host_encryption = true;
        enable_encryption_spec(&client, spec).await;
        wait_ipv4_encrypted(&client, &NODES).await;
    });
    let flows = session.run(&["flows"]);
    assert!(
        flows.status.success(),
        "before the reimage:\n{}",
        text(&flows)
    );
    let old_key = published_key(&rt, &client, "node-2").expect("node-2 publishes a key");

    let reimage = session.run(&["reimage", "node-2"]);
    assert!(reimage.status.success(), "{}", text(&reimage));
    let new_key = wait_until(
        "node-2 publishes its new key",
        Duration::from_secs(60),
        || match published_key(&rt, &client, "node-2") {
            Some(key) if key != old_key => Ok(key),
            other => Err(format!("{other:?}\n{}", agent_log_tail("node-2", 20))),
        },
    );
    assert_ne!(new_key, old_key);
    for node in NODES {
        wait_until(
            &format!("{node} reaches the API server"),
            Duration::from_secs(30),
            || api_ready_from(&session, node),
        );
    }
    rt.block_on(wait_ipv4_encrypted(&client, &NODES));
    let flows = wait_until(
        "every flow as expected after the reimage",
        Duration::from_secs(60),
        || {
            let out = session.run(&["flows"]);
            out.status
                .success()
                .then(|| stdout(&out))
                .ok_or_else(|| text(&out))
        },
    );
    assert!(flows.contains("all as expected"), "{flows}");
    for node in ["node-1", "node-3"] {
        let peers = inspect::wg_peers(&session, node, Family::V4);
        assert!(
            peers.iter().any(|p| p.contains(&new_key)),
            "{node} programs node-2's new key {new_key}: {peers:?}"
        );
        assert!(
            !peers.iter().any(|p| p.contains(&old_key)),
            "{node} dropped the old key: {peers:?}"
        );
    }
}

#[test]
fn the_emulator_still_carries_an_encrypted_mesh() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&[
        "--nodes",
        "2",
        "--apiserver",
        "emulator",
        "--agent-bin",
        &agent,
    ]);
    let status = session.run(&["status"]);
    assert!(
        stdout(&status).contains("API server: API emulator"),
        "{}",
        text(&status)
    );
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    rt.block_on(async {
        enable_encryption_for(&client, false).await;
        wait_ipv4_encrypted(&client, &["node-1", "node-2"]).await;
    });
    let flows = session.run(&["flows"]);
    assert!(flows.status.success(), "{}", text(&flows));
}
