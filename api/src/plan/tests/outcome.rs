//! Per-family outcomes: state, backend, message, whether an interface exists, whether traffic
//! is steered into it, and what is published; plus the fail-static errors.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::crd::{Backend, BackendKind, EncryptionConfigSpec, EncryptionState};
use crate::fixtures::{key, test_pools};
use crate::net::Family::{self, V4, V6};
use crate::node::NodeView;
use crate::plan::family::PUBLISHING_MESSAGE;
use crate::plan::{plan, LocalFacts, PlanError, Snapshot};

use super::{facts, run, three_dual_nodes, three_nodes, OWN};

use BackendKind::{Kernel, Userspace};
use EncryptionState::{Disabled, Encrypted, Unsupported};

struct Row {
    name: &'static str,
    config: Option<EncryptionConfigSpec>,
    nodes: Vec<NodeView>,
    facts: LocalFacts,
    family: Family,
    state: EncryptionState,
    backend: Option<BackendKind>,
    message: &'static str,
    interface: bool,
    steering: bool,
    publish_key: bool,
    publish_addr: Option<&'static str>,
}

fn own_replaced(own: NodeView) -> Vec<NodeView> {
    let mut nodes = three_nodes();
    nodes[0] = own;
    nodes
}

fn v4() -> Option<EncryptionConfigSpec> {
    Some(EncryptionConfigSpec::test())
}

fn backend(wanted: Backend) -> Option<EncryptionConfigSpec> {
    Some(EncryptionConfigSpec::test().with_backend(wanted))
}

/// An encrypted IPv4 row with userspace and the standard address, to be adjusted.
fn encrypted(name: &'static str, config: Option<EncryptionConfigSpec>, facts: LocalFacts) -> Row {
    Row {
        name,
        config,
        nodes: three_nodes(),
        facts,
        family: V4,
        state: Encrypted,
        backend: Some(Userspace),
        message: "encrypting to 2 peers",
        interface: true,
        steering: true,
        publish_key: true,
        publish_addr: Some("198.18.1.0"),
    }
}

/// A row where nothing is planned for the family.
fn off(
    name: &'static str,
    config: Option<EncryptionConfigSpec>,
    nodes: Vec<NodeView>,
    family: Family,
    state: EncryptionState,
    message: &'static str,
) -> Row {
    Row {
        name,
        config,
        nodes,
        facts: facts(),
        family,
        state,
        backend: None,
        message,
        interface: false,
        steering: false,
        publish_key: false,
        publish_addr: None,
    }
}

/// A row where the interface exists and the key is published, but nothing is steered.
fn waiting(
    name: &'static str,
    nodes: Vec<NodeView>,
    facts: LocalFacts,
    state: EncryptionState,
    message: &'static str,
) -> Row {
    Row {
        state,
        message,
        steering: false,
        nodes,
        ..encrypted(name, v4(), facts)
    }
}

fn rows() -> Vec<Row> {
    let selector = EncryptionConfigSpec::test().selecting("zone", "a");
    let dual = EncryptionConfigSpec::test().with_ipv6();
    vec![
        off(
            "no config",
            None,
            three_nodes(),
            V4,
            Disabled,
            "no EncryptionConfig",
        ),
        off(
            "no config, IPv6",
            None,
            three_dual_nodes(),
            V6,
            Disabled,
            "no EncryptionConfig",
        ),
        off(
            "own node opted out",
            v4(),
            own_replaced(NodeView::test_v4(1).opted_out()),
            V4,
            Disabled,
            "this node is opted out by label kube-encrypt.dev/encryption=disabled",
        ),
        off(
            "own node not selected",
            Some(selector.clone()),
            three_nodes(),
            V4,
            Disabled,
            "this node is not selected by spec.nodeSelector",
        ),
        off(
            "family disabled in the config",
            v4(),
            three_dual_nodes(),
            V6,
            Disabled,
            "IPv6 encryption is off (spec.ipv6.enabled is false)",
        ),
        off(
            "own node without an IPv4 InternalIP",
            v4(),
            own_replaced(
                NodeView::test(OWN)
                    .with_pod_cidr("198.18.1.0/24")
                    .with_test_key(V4),
            ),
            V4,
            Disabled,
            "this node has no IPv4 InternalIP",
        ),
        Row {
            nodes: own_replaced(NodeView::test_v4(1).with_label("zone", "a")),
            message: "encrypting to 0 peers; 2 nodes left unencrypted",
            ..encrypted("own node selected, the others not", Some(selector), facts())
        },
        encrypted(
            "Auto picks userspace without the kernel module",
            v4(),
            facts(),
        ),
        Row {
            backend: Some(Kernel),
            ..encrypted(
                "Auto prefers the kernel",
                v4(),
                facts().with_wireguard(true, true),
            )
        },
        Row {
            backend: Some(Kernel),
            ..encrypted(
                "Kernel with the module",
                backend(Backend::Kernel),
                facts().with_wireguard(true, false),
            )
        },
        Row {
            backend: Some(Userspace),
            ..encrypted(
                "Userspace even with the module",
                backend(Backend::Userspace),
                facts().with_wireguard(true, true),
            )
        },
        Row {
            facts: facts().with_wireguard(false, false),
            ..off(
                "Auto without any WireGuard",
                v4(),
                three_nodes(),
                V4,
                Unsupported,
                "neither the kernel module nor a userspace",
            )
        },
        Row {
            facts: facts().with_wireguard(false, true),
            ..off(
                "Kernel without the module",
                backend(Backend::Kernel),
                three_nodes(),
                V4,
                Unsupported,
                "spec.backend is Kernel",
            )
        },
        Row {
            facts: facts().with_wireguard(true, false),
            ..off(
                "Userspace without wireguard-go",
                backend(Backend::Userspace),
                three_nodes(),
                V4,
                Unsupported,
                "spec.backend is Userspace",
            )
        },
        Row {
            message: "encrypting to 1 peer; 1 node left unencrypted",
            nodes: vec![
                NodeView::test_v4(1),
                NodeView::test_v4(2),
                NodeView::test_v4(3).opted_out(),
            ],
            ..encrypted("message counts peers and skipped nodes", v4(), facts())
        },
        waiting(
            "lockout: published key differs from the device key",
            three_nodes(),
            facts().with_own_key(V4, Some(key("rotated", V4))),
            Disabled,
            PUBLISHING_MESSAGE,
        ),
        waiting(
            "lockout: own key not published yet",
            own_replaced(
                NodeView::test("node-1")
                    .with_internal_ip("192.0.2.11")
                    .with_pod_cidr("198.18.1.0/24"),
            ),
            facts(),
            Disabled,
            PUBLISHING_MESSAGE,
        ),
        waiting(
            "lockout: no device key yet",
            three_nodes(),
            facts().with_own_key(V4, None),
            Disabled,
            PUBLISHING_MESSAGE,
        ),
        Row {
            message: "encrypting to 1 peer; 1 node left unencrypted",
            nodes: vec![
                NodeView::test_v4(1),
                NodeView::test_v4(2),
                NodeView::test_v4(3).with_key(V4, key(OWN, V4)),
            ],
            ..encrypted(
                "own device key copied by another node: the copy is refused, not this node",
                v4(),
                facts(),
            )
        },
        Row {
            publish_addr: None,
            nodes: own_replaced(
                NodeView::test(OWN)
                    .with_internal_ip("192.0.2.11")
                    .with_test_key(V4),
            ),
            ..encrypted(
                "own node without a pod CIDR has no interface address",
                v4(),
                facts(),
            )
        },
        Row {
            family: V6,
            nodes: three_dual_nodes(),
            publish_addr: Some("2001:db8:1:1::"),
            ..encrypted(
                "IPv6 publishes its own interface address",
                Some(dual),
                facts(),
            )
        },
    ]
}

#[test]
fn outcome_table() {
    for row in rows() {
        let name = row.name;
        let plan = run(row.config.as_ref(), &test_pools(), &row.nodes, &row.facts);
        let outcome = plan.families.get(row.family);
        assert_eq!(outcome.state, row.state, "{name}: {outcome:?}");
        assert_eq!(outcome.backend, row.backend, "{name}");
        assert!(
            outcome.message.contains(row.message),
            "{name}: {:?}",
            outcome.message
        );
        let dp = plan.dataplane.family(row.family);
        assert_eq!(dp.interface.is_some(), row.interface, "{name}: interface");
        assert_eq!(
            dp.interface.as_ref().map(|i| i.backend),
            row.backend.filter(|_| row.interface),
            "{name}"
        );
        assert_eq!(dp.rule.is_some(), row.steering, "{name}: rule");
        assert_eq!(!dp.routes.is_empty(), row.steering, "{name}: routes");
        if !row.interface {
            assert!(dp.is_empty(), "{name}: {dp:?}");
        }
        let publish = plan.publish.get(row.family);
        assert_eq!(publish.public_key, row.publish_key, "{name}: publish key");
        let addr = row.publish_addr.map(|a| a.parse().unwrap());
        assert_eq!(publish.interface_addr, addr, "{name}: publish address");
        let iface_addr = dp
            .interface
            .as_ref()
            .and_then(|i| i.address)
            .map(|n| n.addr());
        assert_eq!(iface_addr, addr, "{name}: interface address");
    }
}

#[test]
fn nothing_at_all_when_off() {
    let opted_out = own_replaced(NodeView::test_v4(1).opted_out());
    let unsupported = facts().with_wireguard(false, false);
    let cases = [
        ("no config", None, three_nodes(), facts()),
        ("opted out", v4(), opted_out, facts()),
        ("unsupported", v4(), three_nodes(), unsupported),
    ];
    for (name, config, nodes, facts) in cases {
        let plan = run(config.as_ref(), &test_pools(), &nodes, &facts);
        assert!(plan.dataplane.is_empty(), "{name}: {:?}", plan.dataplane);
        assert_eq!(plan.publish, Default::default(), "{name}");
        assert!(plan.skipped.is_empty(), "{name}: {:?}", plan.skipped);
    }
}

fn bad_selector() -> LabelSelector {
    LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "zone".into(),
            operator: "Matches".into(),
            values: None,
        }]),
    }
}

#[test]
fn fail_static_errors() {
    let nodes = three_nodes();
    let with = |f: fn(&mut EncryptionConfigSpec)| {
        let mut spec = EncryptionConfigSpec::test();
        f(&mut spec);
        Some(spec)
    };
    let cases: Vec<(&str, Option<EncryptionConfigSpec>, &str, &str)> = vec![
        (
            "unknown own node",
            v4(),
            "node-9",
            "node \"node-9\" is not in the cluster snapshot",
        ),
        (
            "unknown own node without config",
            None,
            "node-9",
            "keeping the dataplane as it is",
        ),
        (
            "invalid node selector",
            Some(EncryptionConfigSpec::test().with_node_selector(bad_selector())),
            OWN,
            "unknown operator \"Matches\"",
        ),
        (
            "port 0",
            with(|s| s.ipv4.port = 0),
            OWN,
            "port-range: spec.ipv4.port: 0 is not a UDP port",
        ),
        (
            "port too large",
            with(|s| s.ipv6.port = 70_000),
            OWN,
            "port-range: spec.ipv6.port: 70000 is not a UDP port",
        ),
        (
            "negative MTU",
            with(|s| s.ipv4.mtu = -1),
            OWN,
            "mtu-range: spec.ipv4.mtu",
        ),
        (
            "routing table 0",
            with(|s| s.routing_table = 0),
            OWN,
            "routing-table: spec.routingTable: table 0",
        ),
        (
            "firewall mark too large",
            with(|s| s.firewall_mark = 1 << 33),
            OWN,
            "firewall-mark: spec.firewallMark",
        ),
        (
            "keepalive too large",
            with(|s| s.persistent_keepalive = 70_000),
            OWN,
            "persistent-keepalive: spec.persistentKeepalive",
        ),
    ];
    for (name, config, node, message) in cases {
        let snapshot = Snapshot {
            config: config.as_ref(),
            pools: &[],
            nodes: &nodes,
        };
        let err = plan(&snapshot, &LocalFacts::test(node)).unwrap_err();
        assert!(err.to_string().contains(message), "{name}: {err}");
        if node != OWN {
            assert_eq!(err, PlanError::UnknownNode { node: node.into() }, "{name}");
        }
    }
}
