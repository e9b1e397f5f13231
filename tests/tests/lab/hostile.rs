//! Hostile Nodes: Node objects written by a buggy or hostile party, each trying to draw traffic
//! into its tunnel — every address (0.0.0.0/0 as a pod CIDR), a real node's pod CIDR, a range no
//! IPPool covers, a real pod or the cloud metadata address or the API server as its interface
//! address, the API server as its InternalIP with host encryption on. Every real node refuses
//! each one and reports why in its NodeEncryption; the real nodes' peers and routes do not
//! change; pod traffic stays encrypted between real nodes; every node still reaches the API
//! server directly.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_encrypt_api::crd::{EncryptionConfigSpec, NodeEncryption};
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::{INTERFACE_IPV4_ANNOTATION, PUBLIC_KEY_ANNOTATION};
use serde_json::json;

use super::capture::{self, Capture};
use super::inspect;
use super::support::*;

const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

/// One attack: a Node named `name` with `pod_cidr`, `internal_ip` and an optional interface
/// address annotation.
struct Attack {
    name: &'static str,
    pod_cidr: &'static str,
    internal_ip: &'static str,
    interface: Option<&'static str>,
}

const ATTACKS: [Attack; 6] = [
    Attack {
        name: "evil-everything",
        pod_cidr: "0.0.0.0/0",
        internal_ip: "192.0.2.61",
        interface: None,
    },
    Attack {
        name: "evil-steals-pods",
        pod_cidr: "198.18.2.0/24",
        internal_ip: "192.0.2.62",
        interface: None,
    },
    Attack {
        name: "evil-outside-pools",
        pod_cidr: "198.19.64.0/24",
        internal_ip: "192.0.2.63",
        interface: None,
    },
    Attack {
        name: "evil-claims-a-pod",
        pod_cidr: "198.18.64.0/24",
        internal_ip: "192.0.2.64",
        interface: Some("198.18.2.2"),
    },
    Attack {
        name: "evil-claims-metadata",
        pod_cidr: "198.18.65.0/24",
        internal_ip: "192.0.2.65",
        interface: Some("169.254.169.254"),
    },
    Attack {
        name: "evil-is-the-apiserver",
        pod_cidr: "198.18.66.0/24",
        internal_ip: "192.0.2.1",
        interface: Some("192.0.2.1"),
    },
];

fn key_for(index: usize) -> String {
    // Distinct valid keys: vary the first byte of the fake key.
    use base64::Engine;
    let mut bytes = [7u8; 32];
    bytes[0] = index as u8 + 1;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn create_attacks(client: &kube::Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    for (i, attack) in ATTACKS.iter().enumerate() {
        let mut annotations = json!({ PUBLIC_KEY_ANNOTATION: key_for(i) });
        if let Some(addr) = attack.interface {
            annotations[INTERFACE_IPV4_ANNOTATION] = json!(addr);
        }
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": attack.name, "annotations": annotations},
            "spec": {"podCIDR": attack.pod_cidr, "podCIDRs": [attack.pod_cidr]},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": attack.internal_ip}]}});
        nodes
            .patch_status(attack.name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    }
}

/// The names every real node lists as skipped for IPv4, with their reasons.
async fn skipped(client: &kube::Client, node: &str) -> Vec<(String, String)> {
    let api: Api<NodeEncryption> = Api::all(client.clone());
    let Ok(ne) = api.get(node).await else {
        return vec![];
    };
    ne.status
        .and_then(|s| s.ipv4)
        .map(|f| {
            f.skipped_peers
                .into_iter()
                .map(|p| (p.node, p.reason))
                .collect()
        })
        .unwrap_or_default()
}

fn state(
    session: &kube_encrypt_tests::lab::testing::LabSession,
    node: &str,
) -> (Vec<String>, Vec<String>) {
    let routes = inspect::table_routes(session, node, Family::V4)
        .into_iter()
        .filter(|r| !r.starts_with("throw"))
        .collect();
    (inspect::wg_peers(session, node, Family::V4), routes)
}

#[test]
fn hostile_nodes_draw_no_traffic_into_their_tunnels() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&["--nodes", "3", "--agent-bin", &agent]);
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    rt.block_on(async {
        let mut spec = EncryptionConfigSpec::default();
        spec.ipv4.enabled = true;
        spec.host_encryption = true;
        enable_encryption_spec(&client, spec).await;
        wait_ipv4_encrypted(&client, &NODES).await;
    });
    let before: Vec<_> = NODES.iter().map(|n| state(&session, n)).collect();

    rt.block_on(create_attacks(&client));
    for node in NODES {
        let listed = wait_until(
            &format!("{node} refuses every hostile node"),
            Duration::from_secs(60),
            || {
                let skipped = rt.block_on(skipped(&client, node));
                let missing: Vec<&str> = ATTACKS
                    .iter()
                    .map(|a| a.name)
                    .filter(|name| !skipped.iter().any(|(n, _)| n == name))
                    .collect();
                missing
                    .is_empty()
                    .then_some(skipped.clone())
                    .ok_or_else(|| format!("missing {missing:?} in {skipped:?}"))
            },
        );
        for (name, reason) in listed.iter().filter(|(n, _)| n.starts_with("evil-")) {
            assert!(!reason.is_empty(), "{node} says why {name} is left out");
        }
    }
    // Let a few rounds pass: nothing of the attackers may reach a device or a table.
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<_> = NODES.iter().map(|n| state(&session, n)).collect();
    assert_eq!(
        before, after,
        "the real nodes' peers and device routes did not move"
    );
    for node in NODES {
        let peers = inspect::wg_peers(&session, node, Family::V4);
        for i in 0..ATTACKS.len() {
            assert!(
                !peers.contains(&key_for(i)),
                "{node} programs attacker {i}: {peers:?}"
            );
        }
        let api = inspect::exec(
            &session,
            node,
            &[
                "curl",
                "-sk",
                "--max-time",
                "3",
                "https://192.0.2.1:6443/readyz",
            ],
        );
        assert_eq!(
            stdout(&api).trim(),
            "ok",
            "{node} reaches the API server: {}",
            text(&api)
        );
    }
    let capture = Capture::start("node-1");
    let ping = capture::ping(
        &session,
        "pod-1-1",
        "198.18.2.2",
        &["-c", "3", "-i", "0.2", "-W", "2"],
    );
    let verdict = capture::verdict(&capture.finish());
    let (sent, received) = capture::ping_counts(&stdout(&ping));
    assert_eq!(
        (sent, received),
        (3, 3),
        "pod-1-1 → pod-2-1: {}",
        text(&ping)
    );
    assert!(
        verdict.encrypted(),
        "pod-1-1 → pod-2-1 stays encrypted: {verdict:?}"
    );
    let flows = session.run(&["flows"]);
    assert!(flows.status.success(), "{}", text(&flows));
}
