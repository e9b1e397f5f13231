//! Dual stack: with pools of both families (natOutgoing) and IPv4 and IPv6 enabled, every node
//! encrypts both families, the whole flow matrix passes for both, and IPv6 pod traffic between
//! any two nodes crosses the underlay only inside WireGuard.

use std::time::Duration;

use kube_encrypt_api::crd::EncryptionState;
use kube_encrypt_api::net::Family;

use super::capture::{self, Capture};
use super::inspect;
use super::support::*;

const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

#[test]
fn dual_stack_encrypts_both_families_on_every_node_and_flows_pass() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&["--nodes", "3", "--ipv6", "--agent-bin", &agent]);
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    rt.block_on(async {
        enable_encryption_for(&client, true).await;
        let encrypted: Vec<_> = NODES
            .iter()
            .map(|n| (*n, EncryptionState::Encrypted))
            .collect();
        for family in Family::ALL {
            wait_family_states(&client, family, &encrypted, Duration::from_secs(60)).await;
        }
    });
    for node in NODES {
        for family in Family::ALL {
            let peers = inspect::wg_peers(&session, node, family);
            assert_eq!(peers.len(), 2, "{node} {family} peers: {peers:?}");
        }
    }

    let flows = session.run(&["flows"]);
    assert!(flows.status.success(), "dual stack:\n{}", text(&flows));
    let report = stdout(&flows);
    assert!(
        report.contains("IPv4 encryption on, IPv6 encryption on")
            && report.contains("14 flows, all as expected"),
        "both families, 7 flows each:\n{report}"
    );
    for dst in ["pod-2-1", "pod-3-1"] {
        let line = flow_line(&report, "IPv6", "pod-1-1", dst);
        assert!(
            line.contains("works yes") && line.contains("encrypted yes"),
            "{line}"
        );
    }
    let outside = flow_line(&report, "IPv6", "pod-1-1", "ke-ext");
    assert!(outside.contains("works yes"), "NAT outgoing: {outside}");

    // flows start every cross-node probe on node-1; the IPv6 mesh holds between the others too.
    let capture = Capture::start("node-2");
    let ping = capture::ping(
        &session,
        "pod-2-2",
        "2001:db8:1:3::3",
        &["-c", "3", "-i", "0.2", "-W", "2"],
    );
    let verdict = capture::verdict(&capture.finish());
    assert_eq!(
        capture::ping_counts(&stdout(&ping)),
        (3, 3),
        "pod-2-2 → pod-3-2 over IPv6:\n{}",
        text(&ping)
    );
    assert!(
        verdict.encrypted(),
        "pod-2-2 → pod-3-2 over IPv6 crossed in clear or not at all: {verdict:?}"
    );
}
