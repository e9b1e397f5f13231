//! Bad data in the cluster: Node objects (without a node behind them) publishing a malformed
//! key and a copy of another node's key. The malformed one is skipped; the copy is refused
//! while the node holding the key stays programmed (no downgrade by copying a key: its traffic
//! stays encrypted); the rest of the mesh stays encrypted, no agent crashes, and removing the
//! bad data leaves the mesh as it was.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_encrypt_api::crd::EncryptionState;
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::PUBLIC_KEY_ANNOTATION;
use kube_encrypt_tests::lab::testing::LabSession;
use serde_json::json;

use super::capture::{self, Capture};
use super::inspect;
use super::support::*;

const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

/// A Node with a key annotation, an InternalIP and a pod CIDR no lab node uses.
fn fake_node(name: &str, key: &str, index: u8) -> (Node, serde_json::Value) {
    let node = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {PUBLIC_KEY_ANNOTATION: key}},
        "spec": {"podCIDR": format!("198.18.{index}.0/24"), "podCIDRs": [format!("198.18.{index}.0/24")]},
    }))
    .expect("valid Node");
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": format!("192.0.2.{index}")}],
    }});
    (node, status)
}

/// Pings `dst` from pod-1-1 with a capture on node-1: whether every reply came, and whether
/// the traffic crossed only inside WireGuard.
fn ping_from_node_1(session: &LabSession, dst: &str) -> (bool, bool, String) {
    let capture = Capture::start("node-1");
    let ping = capture::ping(
        session,
        "pod-1-1",
        dst,
        &["-c", "3", "-i", "0.2", "-W", "2"],
    );
    let verdict = capture::verdict(&capture.finish());
    let (sent, received) = capture::ping_counts(&stdout(&ping));
    let all = sent == 3 && received == 3;
    (
        all,
        verdict.encrypted(),
        format!("{verdict:?}\n{}", text(&ping)),
    )
}

fn node_1_state(session: &LabSession) -> (Vec<String>, Vec<String>) {
    (
        inspect::wg_peers(session, "node-1", Family::V4),
        inspect::table_routes(session, "node-1", Family::V4),
    )
}

#[test]
fn a_malformed_key_is_skipped_and_a_copied_key_is_refused_without_downgrading_its_holder() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&["--nodes", "3", "--agent-bin", &agent]);
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    let all_encrypted: Vec<_> = NODES
        .iter()
        .map(|n| (*n, EncryptionState::Encrypted))
        .collect();
    rt.block_on(async {
        enable_encryption_for(&client, false).await;
        wait_family_states(&client, Family::V4, &all_encrypted, Duration::from_secs(60)).await;
    });
    let agents = agent_restarts(&NODES);
    let node2_key = inspect::wg_public_key(&session, "node-2", Family::V4);
    let node3_key = inspect::wg_public_key(&session, "node-3", Family::V4);

    let nodes: Api<Node> = Api::all(client.clone());
    let fakes = [
        fake_node("fake-malformed", "not-a-key", 91),
        fake_node("fake-twin", &node2_key, 92),
    ];
    rt.block_on(async {
        for (node, status) in &fakes {
            let name = node.metadata.name.clone().unwrap();
            nodes.create(&PostParams::default(), node).await.unwrap();
            nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .unwrap();
        }
    });
    let (peers, routes) = wait_until(
        "node-1 keeps programming node-2 and node-3, throwing both fakes",
        Duration::from_secs(30),
        || {
            let (peers, routes) = node_1_state(&session);
            let thrown = ["198.18.91.0/24", "198.18.92.0/24"]
                .iter()
                .all(|cidr| routes.iter().any(|r| inspect::is_throw(r, cidr)));
            let mut want = vec![node2_key.clone(), node3_key.clone()];
            want.sort();
            if peers == want && thrown {
                Ok((peers, routes))
            } else {
                Err(format!(
                    "peers {peers:?}\ntable {}: {routes:#?}",
                    inspect::TABLE
                ))
            }
        },
    );
    for cidr in ["198.18.2.0/24", "198.18.3.0/24"] {
        assert!(
            routes
                .iter()
                .any(|r| r.starts_with(&format!("{cidr} dev wg-encrypt"))),
            "{cidr} stays encrypted: peers {peers:?}, table {routes:#?}"
        );
    }
    rt.block_on(wait_family_states(
        &client,
        Family::V4,
        &all_encrypted,
        Duration::from_secs(30),
    ));
    let node3_peers = inspect::wg_peers(&session, "node-3", Family::V4);
    assert!(
        node3_peers.contains(&node2_key),
        "node-3 keeps programming node-2: {node3_peers:?}"
    );
    let (works, encrypted, seen) = ping_from_node_1(&session, "198.18.3.2");
    assert!(works && encrypted, "pod-1-1 → pod-3-1 encrypted: {seen}");
    let (works, encrypted, seen) = ping_from_node_1(&session, "198.18.2.2");
    assert!(
        works && encrypted,
        "pod-1-1 → pod-2-1 stays encrypted despite the copied key: {seen}"
    );
    assert_eq!(agents, agent_restarts(&NODES), "no agent crashed");

    rt.block_on(async {
        for name in ["fake-malformed", "fake-twin"] {
            nodes.delete(name, &DeleteParams::default()).await.unwrap();
        }
        wait_family_states(&client, Family::V4, &all_encrypted, Duration::from_secs(30)).await;
    });
    wait_until(
        "node-1 programs node-2 and node-3, the fakes' routes gone",
        Duration::from_secs(30),
        || {
            let (peers, routes) = node_1_state(&session);
            let mut want = vec![node2_key.clone(), node3_key.clone()];
            want.sort();
            let fakes_gone = !routes.iter().any(|r| r.contains("198.18.9"));
            if peers == want && fakes_gone {
                Ok(())
            } else {
                Err(format!("peers {peers:?}\ntable: {routes:#?}"))
            }
        },
    );
    let (works, encrypted, seen) = ping_from_node_1(&session, "198.18.2.2");
    assert!(
        works && encrypted,
        "pod-1-1 → pod-2-1 still encrypted: {seen}"
    );
    assert_eq!(agents, agent_restarts(&NODES), "no agent crashed");
}
