//! Table tests of the aggregation: nodes and their reports in, counts and conditions out.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube_encrypt_api::crd::{
    EncryptionConfig, EncryptionConfigStatus, EncryptionState, FamilyStatus, NodeCounts,
    NodeEncryptionStatus,
};
use kube_encrypt_api::node::NodeView;
use serde_json::{json, Value};

use super::{aggregate, Inputs, DEGRADED, READY};
use EncryptionState::*;

const NOW: &str = "2030-01-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// A node with an IPv4 InternalIP (and IPv6 with `dual`).
fn node(name: &str) -> NodeView {
    NodeView::test(name).with_internal_ip("192.0.2.11")
}

fn dual(name: &str) -> NodeView {
    node(name).with_internal_ip("2001:db8::11")
}

fn labelled(node: NodeView, key: &str, value: &str) -> NodeView {
    node.with_label(key, value)
}

/// An agent's report, built per family.
#[derive(Clone)]
struct Report(NodeEncryptionStatus);

impl Report {
    /// Both families in the state the defaults produce: v4 and v6 Disabled, fresh.
    fn new() -> Self {
        Self(NodeEncryptionStatus {
            ipv4: Some(family(Disabled, 51820, "wg-encrypt")),
            ipv6: Some(family(Disabled, 51821, "wg-encrypt-v6")),
            last_update: Some("2030-01-01T11:59:00Z".into()),
            ..Default::default()
        })
    }

    fn v4(mut self, state: EncryptionState) -> Self {
        self.0.ipv4.as_mut().unwrap().state = state;
        self
    }

    fn v6(mut self, state: EncryptionState) -> Self {
        self.0.ipv6.as_mut().unwrap().state = state;
        self
    }

    fn v4_port(mut self, port: i64) -> Self {
        self.0.ipv4.as_mut().unwrap().listen_port = Some(port);
        self
    }

    fn v4_mtu(mut self, mtu: i64) -> Self {
        self.0.ipv4.as_mut().unwrap().mtu = Some(mtu);
        self
    }

    fn message(mut self, message: &str) -> Self {
        self.0.ipv4.as_mut().unwrap().message = message.into();
        self
    }

    fn agent_degraded(mut self) -> Self {
        self.0
            .conditions
            .push(condition(DEGRADED, "True", "2030-01-01T11:00:00Z"));
        self.0.conditions[0].message = "port-range: spec.ipv4.port: refused".into();
        self
    }

    fn last_update(mut self, at: &str) -> Self {
        self.0.last_update = Some(at.into());
        self
    }
}

fn family(state: EncryptionState, port: i64, interface: &str) -> FamilyStatus {
    FamilyStatus {
        state,
        listen_port: Some(port),
        interface: Some(interface.into()),
        mtu: Some(1440),
        ..Default::default()
    }
}

fn condition(type_: &str, status: &str, at: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: "Before".into(),
        message: String::new(),
        last_transition_time: Time(at.parse().unwrap()),
        observed_generation: None,
    }
}

fn config(spec: Value) -> EncryptionConfig {
    let mut config = EncryptionConfig::new("default", serde_json::from_value(spec).unwrap());
    config.metadata.generation = Some(4);
    config
}

fn v4_on() -> Value {
    json!({"ipv4": {"enabled": true}})
}

fn both_on() -> Value {
    json!({"ipv4": {"enabled": true}, "ipv6": {"enabled": true}})
}

fn enc4() -> Report {
    Report::new().v4(Encrypted)
}

struct Row {
    name: &'static str,
    spec: Value,
    nodes: Vec<NodeView>,
    reports: Vec<(&'static str, Report)>,
    /// total, encrypted, disabled, unsupported, error
    counts: [i64; 5],
    ready: (&'static str, &'static str),
    degraded: (&'static str, &'static str),
}

const HEALTHY: (&str, &str) = ("False", "Healthy");
const ENCRYPTED: (&str, &str) = ("True", "Encrypted");

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    let three = || vec![node("a"), node("b"), node("c")];
    vec![
        Row { name: "all encrypted", spec: v4_on(), nodes: three(), reports: vec![("a", enc4()), ("b", enc4()), ("c", enc4())], counts: [3, 3, 0, 0, 0], ready: ENCRYPTED, degraded: HEALTHY },
        Row { name: "one not reported yet", spec: v4_on(), nodes: three(), reports: vec![("a", enc4()), ("b", enc4())], counts: [3, 2, 0, 0, 0], ready: ("False", "NodesPending"), degraded: HEALTHY },
        Row { name: "one in error", spec: v4_on(), nodes: three(), reports: vec![("a", enc4()), ("b", enc4()), ("c", Report::new().v4(Error).message("applying failed: boom"))], counts: [3, 2, 0, 0, 1], ready: ("False", "NodeErrors"), degraded: ("True", "NodeErrors") },
        Row { name: "errors take precedence over pending", spec: v4_on(), nodes: three(), reports: vec![("a", Report::new().v4(Error))], counts: [3, 0, 0, 0, 1], ready: ("False", "NodeErrors"), degraded: ("True", "NodeErrors") },
        Row { name: "mixed cluster: a node without WireGuard", spec: v4_on(), nodes: three(), reports: vec![("a", enc4()), ("b", enc4()), ("c", Report::new().v4(Unsupported).v6(Unsupported))], counts: [3, 2, 0, 1, 0], ready: ENCRYPTED, degraded: HEALTHY },
        Row { name: "opted-out node without a report", spec: v4_on(), nodes: vec![node("a"), node("b"), labelled(node("c"), "kube-encrypt.dev/encryption", "disabled")], reports: vec![("a", enc4()), ("b", enc4())], counts: [3, 2, 1, 0, 0], ready: ENCRYPTED, degraded: HEALTHY },
        Row { name: "node not selected", spec: json!({"ipv4": {"enabled": true}, "nodeSelector": {"matchLabels": {"wg": "yes"}}}), nodes: vec![labelled(node("a"), "wg", "yes"), node("b")], reports: vec![("a", enc4()), ("b", Report::new())], counts: [2, 1, 1, 0, 0], ready: ENCRYPTED, degraded: HEALTHY },
        Row { name: "dual stack, a v4-only node", spec: both_on(), nodes: vec![dual("a"), node("b")], reports: vec![("a", enc4().v6(Encrypted)), ("b", enc4())], counts: [2, 2, 0, 0, 0], ready: ENCRYPTED, degraded: HEALTHY },
        Row { name: "v6 not encrypted yet on a dual-stack node", spec: both_on(), nodes: vec![dual("a"), dual("b")], reports: vec![("a", enc4().v6(Encrypted)), ("b", enc4())], counts: [2, 1, 1, 0, 0], ready: ("False", "NodesUpdating"), degraded: HEALTHY },
        Row { name: "port changed, agent still on the old one", spec: json!({"ipv4": {"enabled": true, "port": 51900}}), nodes: vec![node("a")], reports: vec![("a", enc4())], counts: [1, 1, 0, 0, 0], ready: ("False", "NodesUpdating"), degraded: HEALTHY },
        Row { name: "port changed and applied", spec: json!({"ipv4": {"enabled": true, "port": 51900}}), nodes: vec![node("a")], reports: vec![("a", enc4().v4_port(51900))], counts: [1, 1, 0, 0, 0], ready: ENCRYPTED, degraded: HEALTHY },
        Row { name: "explicit MTU not applied yet", spec: json!({"ipv4": {"enabled": true, "mtu": 1380}}), nodes: vec![node("a")], reports: vec![("a", enc4())], counts: [1, 1, 0, 0, 0], ready: ("False", "NodesUpdating"), degraded: HEALTHY },
        Row { name: "auto MTU accepts what the agent chose", spec: v4_on(), nodes: vec![node("a")], reports: vec![("a", enc4().v4_mtu(8940))], counts: [1, 1, 0, 0, 0], ready: ENCRYPTED, degraded: HEALTHY },
        Row { name: "disabled in spec, still encrypting", spec: json!({}), nodes: vec![node("a")], reports: vec![("a", enc4())], counts: [1, 0, 1, 0, 0], ready: ("False", "NodesUpdating"), degraded: HEALTHY },
        Row { name: "encryption off everywhere", spec: json!({}), nodes: vec![node("a"), node("b")], reports: vec![("a", Report::new()), ("b", Report::new())], counts: [2, 0, 2, 0, 0], ready: ("True", "EncryptionOff"), degraded: HEALTHY },
        Row { name: "agent refuses part of the config", spec: v4_on(), nodes: vec![node("a")], reports: vec![("a", enc4().agent_degraded())], counts: [1, 1, 0, 0, 0], ready: ENCRYPTED, degraded: ("True", "AgentsDegraded") },
        Row { name: "agent silent for 20 minutes", spec: v4_on(), nodes: vec![node("a"), node("b")], reports: vec![("a", enc4()), ("b", enc4().last_update("2030-01-01T11:40:00Z"))], counts: [2, 2, 0, 0, 0], ready: ENCRYPTED, degraded: ("True", "AgentsNotReporting") },
        Row { name: "invalid nodeSelector", spec: json!({"ipv4": {"enabled": true}, "nodeSelector": {"matchExpressions": [{"key": "x", "operator": "Near"}]}}), nodes: vec![node("a")], reports: vec![("a", enc4())], counts: [1, 0, 0, 0, 0], ready: ("False", "InvalidNodeSelector"), degraded: ("True", "InvalidNodeSelector") },
        Row { name: "no nodes at all", spec: v4_on(), nodes: vec![], reports: vec![], counts: [0, 0, 0, 0, 0], ready: ("True", "NoParticipatingNodes"), degraded: HEALTHY },
        Row { name: "report of a deleted node is ignored", spec: v4_on(), nodes: vec![node("a")], reports: vec![("a", enc4()), ("gone", Report::new().v4(Error))], counts: [1, 1, 0, 0, 0], ready: ENCRYPTED, degraded: HEALTHY },
    ]
}

fn reports(rows: &[(&'static str, Report)]) -> BTreeMap<String, NodeEncryptionStatus> {
    rows.iter()
        .map(|(n, r)| (n.to_string(), r.0.clone()))
        .collect()
}

fn get<'a>(status: &'a EncryptionConfigStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn aggregation_table() {
    for row in rows() {
        let config = config(row.spec.clone());
        let reports = reports(&row.reports);
        let status = aggregate(Inputs {
            config: &config,
            nodes: &row.nodes,
            reports: &reports,
            now: now(),
        });
        let [total, encrypted, disabled, unsupported, error] = row.counts;
        let want = NodeCounts {
            total,
            encrypted,
            disabled,
            unsupported,
            error,
        };
        let name = row.name;
        assert_eq!(status.nodes.as_ref(), Some(&want), "{name}");
        assert_eq!(status.observed_generation, Some(4), "{name}");
        let ready = get(&status, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            row.ready,
            "{name}: {}",
            ready.message
        );
        let degraded = get(&status, DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            row.degraded,
            "{name}: {}",
            degraded.message
        );
        assert!(
            !ready.message.is_empty() && !degraded.message.is_empty(),
            "{name}"
        );
    }
}

#[test]
fn messages_name_the_nodes_and_why() {
    let cases = [
        ("one in error", READY, "c (IPv4: applying failed: boom)"),
        (
            "one not reported yet",
            READY,
            "1 of 3 participating nodes have not reported yet (is the agent running there?): c",
        ),
        (
            "v6 not encrypted yet on a dual-stack node",
            READY,
            "b (IPv6 is not encrypted yet",
        ),
        (
            "port changed, agent still on the old one",
            READY,
            "IPv4 listens on port 51820 instead of 51900",
        ),
        (
            "mixed cluster: a node without WireGuard",
            READY,
            "1 without WireGuard stay unencrypted: c",
        ),
        (
            "agent silent for 20 minutes",
            DEGRADED,
            "b (last report 2030-01-01T11:40:00Z)",
        ),
        (
            "agent refuses part of the config",
            DEGRADED,
            "a (port-range: spec.ipv4.port: refused)",
        ),
        ("invalid nodeSelector", READY, "unknown operator \"Near\""),
    ];
    let rows = rows();
    for (row_name, type_, text) in cases {
        let row = rows.iter().find(|r| r.name == row_name).unwrap();
        let config = config(row.spec.clone());
        let reports = reports(&row.reports);
        let status = aggregate(Inputs {
            config: &config,
            nodes: &row.nodes,
            reports: &reports,
            now: now(),
        });
        let message = &get(&status, type_).message;
        assert!(
            message.contains(text),
            "{row_name}: {message:?} lacks {text:?}"
        );
    }
}

#[test]
fn long_lists_are_cut_after_five_names() {
    let nodes: Vec<NodeView> = (0..8).map(|i| node(&format!("n{i}"))).collect();
    let config = config(v4_on());
    let status = aggregate(Inputs {
        config: &config,
        nodes: &nodes,
        reports: &BTreeMap::new(),
        now: now(),
    });
    let message = &get(&status, READY).message;
    assert!(
        message.ends_with("n0, n1, n2, n3, n4 and 3 more"),
        "{message}"
    );
}

#[test]
fn transition_time_moves_only_when_the_status_does() {
    let nodes = vec![node("a")];
    let mut config = config(v4_on());
    config.status = Some(EncryptionConfigStatus {
        conditions: vec![
            condition(READY, "True", "2029-06-01T00:00:00Z"),
            condition(DEGRADED, "True", "2029-06-01T00:00:00Z"),
        ],
        ..Default::default()
    });
    let reports = reports(&[("a", enc4())]);
    let status = aggregate(Inputs {
        config: &config,
        nodes: &nodes,
        reports: &reports,
        now: now(),
    });
    let ready = get(&status, READY);
    assert_eq!(
        ready.last_transition_time.0.to_string(),
        "2029-06-01T00:00:00Z",
        "Ready stayed True"
    );
    assert_eq!(
        ready.reason, "Encrypted",
        "reason and message still follow the nodes"
    );
    let degraded = get(&status, DEGRADED);
    assert_eq!(degraded.status, "False");
    assert_eq!(
        degraded.last_transition_time.0.to_string(),
        NOW,
        "Degraded flipped now"
    );
}

#[test]
fn a_second_round_changes_nothing() {
    let nodes = vec![node("a"), node("b")];
    let mut config = config(v4_on());
    let reports = reports(&[("a", enc4())]);
    let first = aggregate(Inputs {
        config: &config,
        nodes: &nodes,
        reports: &reports,
        now: now(),
    });
    config.status = Some(first.clone());
    let later: Timestamp = "2030-01-01T12:05:00Z".parse().unwrap();
    let second = aggregate(Inputs {
        config: &config,
        nodes: &nodes,
        reports: &reports,
        now: later,
    });
    assert_eq!(first, second, "nothing to write");
}
