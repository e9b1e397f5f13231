//! Faults of the control plane: an agent killed with SIGKILL and restarted by the supervisor,
//! and the API server stopped and started again. The dataplane carries on encrypted through
//! both (the userspace WireGuard daemon outlives the agent; agents fail static), and the
//! agents take over and reconverge without duplicating or tearing down anything.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube_encrypt_api::crd::EncryptionState;
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::{PUBLIC_KEY_ANNOTATION, PUBLIC_KEY_V6_ANNOTATION};
use kube_encrypt_tests::lab::state::{Paths, DEFAULT_STATE_DIR};
use kube_encrypt_tests::lab::supervisor::AgentRecord;
use kube_encrypt_tests::lab::testing::LabSession;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

use super::capture::{self, Capture};
use super::inspect;
use super::support::*;

/// What a node's dataplane holds, per family: rules at the agent's priority, peers, routes.
#[derive(Debug, PartialEq, Eq)]
struct Dataplane {
    rules: Vec<String>,
    peers: Vec<String>,
    routes: Vec<String>,
}

fn dataplane(session: &LabSession, node: &str, families: &[Family]) -> BTreeMap<Family, Dataplane> {
    families
        .iter()
        .map(|&family| {
            let mut routes = inspect::table_routes(session, node, family);
            routes.sort();
            let state = Dataplane {
                rules: inspect::agent_rules(session, node, family),
                peers: inspect::wg_peers(session, node, family),
                routes,
            };
            (family, state)
        })
        .collect()
}

/// A ping of `count` packets every 250 ms from `from` to `dst`, in the background.
fn background_ping(session: &LabSession, from: &str, dst: &str, count: u32) -> Child {
    let count = count.to_string();
    let pattern = capture::marker_hex();
    session
        .command(&[
            "exec", from, "--", "timeout", "60", "ping", "-n", "-p", &pattern, "-c", &count, "-i",
            "0.25", "-W", "1", dst,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ping runs")
}

/// Waits for a background ping and checks that every packet got its reply.
fn assert_no_loss(ping: Child, what: &str) {
    let output = ping.wait_with_output().expect("ping ends");
    let (sent, received) = capture::ping_counts(&stdout(&output));
    assert!(
        sent > 0 && received == sent,
        "{what}: {received} of {sent} replies:\n{}",
        text(&output)
    );
}

fn node_annotations(
    client: &kube::Client,
    rt: &tokio::runtime::Runtime,
    node: &str,
) -> BTreeMap<String, String> {
    rt.block_on(Api::<Node>::all(client.clone()).get(node))
        .unwrap_or_else(|e| panic!("get Node {node}: {e}"))
        .metadata
        .annotations
        .unwrap_or_default()
}

#[test]
fn a_killed_agent_leaves_traffic_flowing_and_its_successor_takes_over_unchanged() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&["--nodes", "2", "--ipv6", "--agent-bin", &agent]);
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    rt.block_on(async {
        enable_encryption_for(&client, true).await;
        let encrypted = [
            ("node-1", EncryptionState::Encrypted),
            ("node-2", EncryptionState::Encrypted),
        ];
        for family in Family::ALL {
            wait_family_states(&client, family, &encrypted, Duration::from_secs(60)).await;
        }
    });
    let annotations_before = node_annotations(&client, &rt, "node-2");
    let before = dataplane(&session, "node-2", &Family::ALL);
    for (family, state) in &before {
        assert_eq!(state.rules.len(), 1, "{family}: {state:?}");
        assert_eq!(state.peers.len(), 1, "{family}: {state:?}");
    }

    let paths = Paths::new(DEFAULT_STATE_DIR);
    let old = AgentRecord::load(&paths, "node-2").expect("node-2's agent runs");
    let capture = Capture::start("node-1");
    let ping_v4 = background_ping(&session, "pod-1-1", "198.18.2.2", 32);
    let ping_v6 = background_ping(&session, "pod-1-1", "2001:db8:1:2::2", 32);
    std::thread::sleep(Duration::from_millis(500));
    kill(Pid::from_raw(old.process.pid as i32), Signal::SIGKILL).expect("kill node-2's agent");
    let new =
        wait_until(
            "a new agent on node-2",
            Duration::from_secs(20),
            || match AgentRecord::load(&paths, "node-2") {
                Some(r) if r.process.pid != old.process.pid && r.process.is_alive() => Ok(r),
                other => Err(format!("{other:?}")),
            },
        );
    assert_eq!(new.restarts, old.restarts + 1, "{old:?} → {new:?}");
    wait_until(
        "the new agent on node-2 is ready",
        Duration::from_secs(30),
        || inspect::agent_ready(&session, "node-2"),
    );
    assert_no_loss(ping_v4, "IPv4 pod-1-1 → pod-2-1 across the agent's restart");
    assert_no_loss(ping_v6, "IPv6 pod-1-1 → pod-2-1 across the agent's restart");
    let verdict = capture::verdict(&capture.finish());
    assert!(
        verdict.encrypted(),
        "the pings crossed in clear while the agent restarted: {verdict:?}"
    );

    let after = dataplane(&session, "node-2", &Family::ALL);
    assert_eq!(
        before, after,
        "node-2's dataplane after the agent's restart"
    );
    let annotations_after = node_annotations(&client, &rt, "node-2");
    for key in [PUBLIC_KEY_ANNOTATION, PUBLIC_KEY_V6_ANNOTATION] {
        assert!(
            annotations_before.contains_key(key),
            "{annotations_before:?}"
        );
        assert_eq!(
            annotations_before.get(key),
            annotations_after.get(key),
            "the restarted agent keeps its key"
        );
    }
    let flows = session.run(&["flows"]);
    assert!(
        flows.status.success(),
        "after node-2's agent restarted:\n{}",
        text(&flows)
    );
}

#[test]
fn agents_fail_static_while_the_api_server_is_down_and_reconverge_after() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&["--nodes", "3", "--agent-bin", &agent]);
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    let nodes = ["node-1", "node-2", "node-3"];
    rt.block_on(async {
        enable_encryption_for(&client, false).await;
        wait_ipv4_encrypted(&client, &nodes).await;
    });
    let agents = agent_restarts(&nodes);
    let before: Vec<_> = nodes
        .iter()
        .map(|n| dataplane(&session, n, &[Family::V4]))
        .collect();
    let node3_key = inspect::wg_public_key(&session, "node-3", Family::V4);

    let stop = session.run(&["apiserver", "stop"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let capture = Capture::start("node-1");
    let ping = background_ping(&session, "pod-1-1", "198.18.2.2", 44);
    let ping_far = background_ping(&session, "pod-1-2", "198.18.3.3", 44);
    assert_no_loss(ping, "pod-1-1 → pod-2-1 with the API server down (11 s)");
    assert_no_loss(
        ping_far,
        "pod-1-2 → pod-3-2 with the API server down (11 s)",
    );
    let verdict = capture::verdict(&capture.finish());
    assert!(
        verdict.encrypted(),
        "traffic crossed in clear with the API server down: {verdict:?}"
    );
    let during: Vec<_> = nodes
        .iter()
        .map(|n| dataplane(&session, n, &[Family::V4]))
        .collect();
    assert_eq!(
        before, during,
        "nothing is torn down while the API server is down"
    );
    assert_eq!(agents, agent_restarts(&nodes), "no agent died");

    let start = session.run(&["apiserver", "start"]);
    assert!(start.status.success(), "{}", text(&start));
    let opt_out = json!({"metadata": {"labels": {"kube-encrypt.dev/encryption": "disabled"}}});
    rt.block_on(Api::<Node>::all(client.clone()).patch(
        "node-3",
        &PatchParams::default(),
        &Patch::Merge(&opt_out),
    ))
    .expect("label node-3");
    wait_until(
        "node-1 drops node-3 as a peer and throws its pod CIDR",
        Duration::from_secs(60),
        || {
            let peers = inspect::wg_peers(&session, "node-1", Family::V4);
            let route = inspect::table_route(&session, "node-1", Family::V4, "198.18.3.0/24");
            let thrown = route
                .as_deref()
                .is_some_and(|r| inspect::is_throw(r, "198.18.3.0/24"));
            if !peers.contains(&node3_key) && thrown && peers.len() == 1 {
                Ok(())
            } else {
                Err(format!("peers {peers:?}, route to node-3's pods {route:?}"))
            }
        },
    );
    wait_until(
        "node-3 disables its own encryption",
        Duration::from_secs(30),
        || match inspect::dataplane_residue(&session, "node-3") {
            residue if residue.is_empty() => Ok(()),
            residue => Err(format!("{residue:#?}\n{}", agent_log_tail("node-3", 30))),
        },
    );
    assert_eq!(
        agents,
        agent_restarts(&nodes),
        "picked up without a restart"
    );
    let flows = session.run(&["flows"]);
    assert!(
        flows.status.success(),
        "node-3 opted out:\n{}",
        text(&flows)
    );
    let report = stdout(&flows);
    let line = flow_line(&report, "IPv4", "pod-1-1", "pod-3-1");
    assert!(
        line.contains("works yes") && line.contains("encrypted no"),
        "{line}"
    );
    let line = flow_line(&report, "IPv4", "pod-1-1", "pod-2-1");
    assert!(line.contains("encrypted yes"), "{line}");
}
