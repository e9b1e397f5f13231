//! `flows` judges the lab against the live config: it fails when encryption is configured
//! but absent, and passes once real agents encrypt — also with an opted-out node and a node
//! without WireGuard, whose traffic must stay plaintext and keep working.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_encrypt_api::crd::{
    EncryptionConfig, EncryptionConfigSpec, EncryptionState, IPPool, IPPoolSpec, NodeEncryption,
};
use kube_encrypt_tests::lab::exit;
use serde_json::json;

use super::inspect;
use super::support::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(kubeconfig: &std::path::Path) -> Client {
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

/// IPPools with natOutgoing and an EncryptionConfig enabling both families.
async fn enable_encryption(client: &Client) {
    enable_encryption_with(client, false).await
}

async fn enable_encryption_with(client: &Client, host_encryption: bool) {
    let pools: Api<IPPool> = Api::all(client.clone());
    for (name, cidr) in [("v4", "198.18.0.0/16"), ("v6", "2001:db8:1::/48")] {
        let pool = IPPool::new(
            name,
            IPPoolSpec {
                cidr: cidr.into(),
                nat_outgoing: true,
                disabled: false,
            },
        );
        pools.create(&PostParams::default(), &pool).await.unwrap();
    }
    let mut spec = EncryptionConfigSpec::default();
    spec.ipv4.enabled = true;
    spec.ipv6.enabled = true;
    spec.host_encryption = host_encryption;
    Api::<EncryptionConfig>::all(client.clone())
        .create(
            &PostParams::default(),
            &EncryptionConfig::new("default", spec),
        )
        .await
        .unwrap();
}

/// Waits until every node's NodeEncryption shows `want(node)` for IPv4.
async fn wait_states(client: &Client, want: &[(&str, EncryptionState)], timeout: Duration) {
    let api: Api<NodeEncryption> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    loop {
        let list = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let state = |node: &str| {
            list.iter()
                .find(|ne| ne.metadata.name.as_deref() == Some(node))
                .and_then(|ne| ne.status.as_ref()?.ipv4.as_ref().map(|s| s.state))
        };
        if want.iter().all(|(node, s)| state(node) == Some(*s)) {
            return;
        }
        let seen: Vec<_> = want.iter().map(|(node, _)| (node, state(node))).collect();
        assert!(
            Instant::now() < deadline,
            "NodeEncryption states not reached in {timeout:?}: want {want:?}, have {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn flows_fail_when_encryption_is_configured_but_absent() {
    let session = session();
    let lab = session.up(&["--nodes", "2", "--ipv6", "--no-agents"]);
    runtime().block_on(async { enable_encryption(&client(&lab.kubeconfig()).await).await });
    let flows = session.run(&["flows"]);
    assert_eq!(
        flows.status.code(),
        Some(i32::from(exit::FLOWS_MISMATCH)),
        "{}",
        text(&flows)
    );
    let report = stdout(&flows);
    assert!(
        report.contains("IPv4 encryption on, IPv6 encryption on"),
        "{report}"
    );
    assert!(
        report.contains("encrypted no (want yes)"),
        "no agents, no encryption:\n{report}"
    );
    assert!(
        report.contains("works no (want yes)"),
        "no agents, no NAT outgoing:\n{report}"
    );
}

#[test]
fn agents_encrypt_and_flows_pass_with_an_opted_out_node_and_one_without_wireguard() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&[
        "--nodes",
        "3",
        "--ipv6",
        "--no-wireguard",
        "node-3",
        "--agent-bin",
        &agent,
    ]);
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    rt.block_on(async {
        enable_encryption(&client).await;
        let states = [
            ("node-1", EncryptionState::Encrypted),
            ("node-2", EncryptionState::Encrypted),
            ("node-3", EncryptionState::Unsupported),
        ];
        wait_states(&client, &states, Duration::from_secs(60)).await;
    });
    let flows = session.run(&["flows"]);
    assert!(
        flows.status.success(),
        "encryption on, node-3 without WireGuard:\n{}",
        text(&flows)
    );
    let report = stdout(&flows);
    for family in ["IPv4", "IPv6"] {
        let line = flow_line(&report, family, "pod-1-1", "pod-2-1");
        assert!(line.contains("encrypted yes"), "{line}");
        let line = flow_line(&report, family, "pod-1-1", "pod-3-1");
        assert!(
            line.contains("works yes") && line.contains("encrypted no"),
            "{line}"
        );
    }

    rt.block_on(async {
        let labels = json!({"metadata": {"labels": {"kube-encrypt.dev/encryption": "disabled"}}});
        Api::<Node>::all(client.clone())
            .patch("node-2", &PatchParams::default(), &Patch::Merge(&labels))
            .await
            .unwrap();
        wait_states(
            &client,
            &[
                ("node-1", EncryptionState::Encrypted),
                ("node-2", EncryptionState::Disabled),
            ],
            Duration::from_secs(60),
        )
        .await;
    });
    let flows = session.run(&["flows"]);
    assert!(
        flows.status.success(),
        "node-2 opted out:\n{}",
        text(&flows)
    );
    let report = stdout(&flows);
    assert!(report.contains("node-2: opted out"), "{report}");
    let line = flow_line(&report, "IPv4", "pod-1-1", "pod-2-1");
    assert!(
        line.contains("works yes") && line.contains("encrypted no"),
        "{line}"
    );
}

/// What the agent may leave in a node after disable: WireGuard links, policy rules, nftables.
fn node_residue(session: &kube_encrypt_tests::lab::testing::LabSession, node: &str) -> Vec<String> {
    let checks: [(&str, &[&str]); 4] = [
        ("links", &["ip", "-o", "link", "show"]),
        ("IPv4 rules", &["ip", "-4", "rule", "show"]),
        ("IPv6 rules", &["ip", "-6", "rule", "show"]),
        ("nftables", &["nft", "list", "ruleset"]),
    ];
    let mut residue = Vec::new();
    for (what, command) in checks {
        let mut args = vec!["exec", node, "--"];
        args.extend_from_slice(command);
        let out = stdout(&session.run(&args));
        let bad: Vec<&str> = out
            .lines()
            .filter(|l| {
                l.contains("wg-encrypt")
                    || l.contains("51820")
                    || (what == "nftables" && !l.trim().is_empty())
            })
            .collect();
        if !bad.is_empty() {
            residue.push(format!("{node} {what}: {bad:?}"));
        }
    }
    residue
}

/// The `kube-encrypt.dev/` annotations of `node` (keys and interface addresses).
fn agent_annotations(rt: &tokio::runtime::Runtime, client: &Client, node: &str) -> Vec<String> {
    let node = rt
        .block_on(Api::<Node>::all(client.clone()).get(node))
        .unwrap_or_else(|e| panic!("get Node {node}: {e}"));
    node.metadata
        .annotations
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with("kube-encrypt.dev/"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

#[test]
fn host_encryption_then_disable_leaves_plaintext_and_no_residue() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&["--nodes", "2", "--ipv6", "--agent-bin", &agent]);
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    rt.block_on(async {
        enable_encryption_with(&client, true).await;
        let states = [
            ("node-1", EncryptionState::Encrypted),
            ("node-2", EncryptionState::Encrypted),
        ];
        wait_states(&client, &states, Duration::from_secs(60)).await;
    });
    let flows = session.run(&["flows"]);
    assert!(
        flows.status.success(),
        "host encryption on:\n{}",
        text(&flows)
    );
    let report = stdout(&flows);
    for family in ["IPv4", "IPv6"] {
        let line = flow_line(&report, family, "node-1", "node-2");
        assert!(line.contains("encrypted yes"), "{line}");
    }

    let while_on = node_residue(&session, "node-1");
    assert!(
        while_on.len() >= 3,
        "the residue check sees links, rules and nftables: {while_on:?}"
    );
    let agent_state = inspect::dataplane_residue(&session, "node-1");
    for what in ["link", "rule", "table 51820", "nftables"] {
        assert!(
            agent_state.iter().any(|r| r.contains(what)),
            "the residue check sees the {what}: {agent_state:#?}"
        );
    }
    assert_eq!(
        agent_annotations(&rt, &client, "node-1").len(),
        4,
        "keys and interface addresses of both families are published"
    );
    rt.block_on(async {
        Api::<EncryptionConfig>::all(client.clone())
            .delete("default", &DeleteParams::default())
            .await
            .unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let residue: Vec<String> = ["node-1", "node-2"]
            .iter()
            .flat_map(|n| node_residue(&session, n))
            .collect();
        if residue.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after disable the nodes still hold: {residue:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for node in ["node-1", "node-2"] {
        let residue = inspect::dataplane_residue(&session, node);
        assert!(residue.is_empty(), "after disable: {residue:#?}");
        wait_until(
            &format!("{node}'s agent withdraws its annotations"),
            Duration::from_secs(30),
            || match agent_annotations(&rt, &client, node) {
                left if left.is_empty() => Ok(()),
                left => Err(format!("{left:?}")),
            },
        );
    }
    let flows = session.run(&["flows"]);
    assert!(flows.status.success(), "after disable:\n{}", text(&flows));
    let report = stdout(&flows);
    assert!(
        report.contains("IPv4 encryption off, IPv6 encryption off"),
        "{report}"
    );
    assert!(
        !report.contains("encrypted yes"),
        "nothing is encrypted after disable:\n{report}"
    );
}
