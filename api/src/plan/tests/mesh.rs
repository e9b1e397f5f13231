//! Peers, routes and skipped nodes: who is in the mesh and where traffic goes.

use crate::crd::{EncryptionConfigSpec, RouteSource};
use crate::dataplane::{RouteKind, UNREACHABLE_METRIC};
use crate::fixtures::{key, test_pools, TestNode};
use crate::net::Family::{self, V4, V6};
use crate::node::{NodeView, PUBLIC_KEY_ANNOTATION};
use crate::plan::LocalFacts;

use super::{
    assert_skipped, facts, peers, routes, run, strings, three_dual_nodes, three_nodes, OWN,
};

struct Row {
    name: &'static str,
    config: EncryptionConfigSpec,
    nodes: Vec<NodeView>,
    facts: LocalFacts,
    family: Family,
    routes: &'static [&'static str],
    peers: &'static [&'static str],
    skipped: &'static [(&'static str, &'static str)],
}

/// `node-1`, `node-2` and the given third node.
fn with_third(third: NodeView) -> Vec<NodeView> {
    vec![NodeView::test_v4(1), NodeView::test_v4(2), third]
}

fn bare(name: &str) -> NodeView {
    NodeView::test(name)
}

fn workload(i: u8) -> NodeView {
    NodeView::test_v4(i)
        .with_workload_ip(&format!("198.18.{i}.5"))
        .with_workload_ip(&format!("198.18.{i}.6"))
}

fn rows() -> Vec<Row> {
    let host = EncryptionConfigSpec::test().with_host_encryption();
    let v6_only = EncryptionConfigSpec::test().without_ipv4().with_ipv6();
    let dual = EncryptionConfigSpec::test().with_ipv6();
    vec![
        Row {
            name: "same-node CIDR thrown, cross-node CIDRs through the interface",
            config: EncryptionConfigSpec::test(),
            nodes: three_nodes(),
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "198.18.3.0/24 dev wg-encrypt",
            ],
            peers: &[
                "node-2 192.0.2.12:51820 198.18.2.0/24",
                "node-3 192.0.2.13:51820 198.18.3.0/24",
            ],
            skipped: &[],
        },
        Row {
            name: "node without a key is thrown",
            config: EncryptionConfigSpec::test(),
            nodes: with_third(
                bare("node-3")
                    .with_internal_ip("192.0.2.13")
                    .with_pod_cidr("198.18.3.0/24"),
            ),
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/24"],
            skipped: &[("node-3", "publishes no IPv4 public key")],
        },
        Row {
            name: "unsupported node publishes nothing and is thrown",
            config: EncryptionConfigSpec::test(),
            nodes: with_third(
                bare("node-3")
                    .with_internal_ip("192.0.2.13")
                    .with_pod_cidr("198.18.3.0/24")
                    .with_label("zone", "a"),
            ),
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/24"],
            skipped: &[("node-3", "not running")],
        },
        Row {
            name: "opted-out node is thrown even with a key",
            config: EncryptionConfigSpec::test(),
            nodes: with_third(NodeView::test_v4(3).opted_out()),
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/24"],
            skipped: &[(
                "node-3",
                "opted out by label kube-encrypt.dev/encryption=disabled",
            )],
        },
        Row {
            name: "node not selected by spec.nodeSelector is thrown",
            config: EncryptionConfigSpec::test().selecting("zone", "a"),
            nodes: vec![
                NodeView::test_v4(1).with_label("zone", "a"),
                NodeView::test_v4(2).with_label("zone", "a"),
                NodeView::test_v4(3).with_label("zone", "b"),
            ],
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/24"],
            skipped: &[("node-3", "not selected by spec.nodeSelector")],
        },
        Row {
            name: "node publishing this node's key: refused; this node keeps encrypting",
            config: EncryptionConfigSpec::test(),
            nodes: with_third(NodeView::test_v4(3).with_key(V4, key(OWN, V4))),
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/24"],
            skipped: &[(
                "node-3",
                "refused: publishes this node's own IPv4 public key",
            )],
        },
        Row {
            name: "malformed key annotation: that node skipped, the rest intact",
            config: EncryptionConfigSpec::test(),
            nodes: with_third(NodeView::from_node(
                &TestNode::new("node-3")
                    .internal_ip("192.0.2.13")
                    .pod_cidr("198.18.3.0/24")
                    .annotation(PUBLIC_KEY_ANNOTATION, "not-a-key")
                    .build(),
            )),
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/24"],
            skipped: &[(
                "node-3",
                "malformed IPv4 public key annotation: \"not-a-key\" not base64",
            )],
        },
        Row {
            name: "node without an InternalIP has no endpoint and is thrown",
            config: EncryptionConfigSpec::test(),
            nodes: with_third(
                bare("node-3")
                    .with_pod_cidr("198.18.3.0/24")
                    .with_test_key(V4),
            ),
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/24"],
            skipped: &[("node-3", "has no IPv4 InternalIP")],
        },
        Row {
            name: "interface address inside the pod CIDR adds nothing",
            config: EncryptionConfigSpec::test(),
            nodes: vec![
                NodeView::test_v4(1),
                NodeView::test_v4(2).with_interface_addr("198.18.2.77"),
            ],
            facts: facts(),
            family: V4,
            routes: &["throw 198.18.1.0/24", "198.18.2.0/24 dev wg-encrypt"],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/24"],
            skipped: &[],
        },
        Row {
            name: "peer without pod CIDR or interface address: programmed, nothing routed",
            config: EncryptionConfigSpec::test(),
            nodes: with_third(
                bare("node-3")
                    .with_internal_ip("192.0.2.13")
                    .with_test_key(V4),
            ),
            facts: facts(),
            family: V4,
            routes: &["throw 198.18.1.0/24", "198.18.2.0/24 dev wg-encrypt"],
            peers: &[
                "node-2 192.0.2.12:51820 198.18.2.0/24",
                "node-3 192.0.2.13:51820 ",
            ],
            skipped: &[],
        },
        Row {
            name:
                "a keyless node claiming a peer's CIDR: the peer keeps it, nothing thrown over it",
            config: EncryptionConfigSpec::test(),
            nodes: with_third(
                bare("node-3")
                    .with_internal_ip("192.0.2.13")
                    .with_pod_cidr("198.18.2.0/24"),
            ),
            facts: facts(),
            family: V4,
            routes: &["throw 198.18.1.0/24", "198.18.2.0/24 dev wg-encrypt"],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/24"],
            skipped: &[("node-3", "publishes no IPv4 public key")],
        },
        Row {
            name: "host encryption adds node IPs; a skipped node's IPs are thrown",
            config: host.clone(),
            nodes: vec![
                NodeView::test_v4(1),
                NodeView::test_v4(2),
                bare("node-4")
                    .with_internal_ip("192.0.2.14")
                    .with_pod_cidr("198.18.4.0/24"),
            ],
            facts: facts(),
            family: V4,
            routes: &[
                "192.0.2.12/32 dev wg-encrypt",
                "throw 192.0.2.14/32",
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.4.0/24",
            ],
            peers: &["node-2 192.0.2.12:51820 192.0.2.12/32,198.18.2.0/24"],
            skipped: &[("node-4", "publishes no IPv4 public key")],
        },
        Row {
            name: "host encryption on a control-plane node leaves host traffic out",
            config: host.clone(),
            nodes: vec![NodeView::test_v4(1).control_plane(), NodeView::test_v4(2)],
            facts: facts(),
            family: V4,
            routes: &["throw 198.18.1.0/24", "198.18.2.0/24 dev wg-encrypt"],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/24"],
            skipped: &[],
        },
        Row {
            name: "host encryption leaves a control-plane peer's host traffic out",
            config: host.clone(),
            nodes: vec![
                NodeView::test_v4(1),
                NodeView::test_v4(2).control_plane(),
                NodeView::test_v4(3),
            ],
            facts: facts(),
            family: V4,
            routes: &[
                "192.0.2.13/32 dev wg-encrypt",
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "198.18.3.0/24 dev wg-encrypt",
            ],
            peers: &[
                "node-2 192.0.2.12:51820 198.18.2.0/24",
                "node-3 192.0.2.13:51820 192.0.2.13/32,198.18.3.0/24",
            ],
            skipped: &[],
        },
        Row {
            name: "controlPlaneHostEncryption encrypts control-plane host traffic too",
            config: host.clone().with_control_plane_host_encryption(),
            nodes: vec![
                NodeView::test_v4(1).control_plane(),
                NodeView::test_v4(2).control_plane(),
            ],
            facts: facts(),
            family: V4,
            routes: &[
                "192.0.2.12/32 dev wg-encrypt",
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
            ],
            peers: &["node-2 192.0.2.12:51820 192.0.2.12/32,198.18.2.0/24"],
            skipped: &[],
        },
        Row {
            name: "WorkloadIPs: pod IPs as host prefixes plus the interface address",
            config: EncryptionConfigSpec::test().with_route_source(RouteSource::WorkloadIps),
            nodes: vec![workload(1), workload(2)],
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.5/32",
                "throw 198.18.1.6/32",
                "198.18.2.0/32 dev wg-encrypt",
                "198.18.2.5/32 dev wg-encrypt",
                "198.18.2.6/32 dev wg-encrypt",
            ],
            peers: &["node-2 192.0.2.12:51820 198.18.2.0/32,198.18.2.5/32,198.18.2.6/32"],
            skipped: &[],
        },
        Row {
            name: "WorkloadIPs: a skipped node's pod IPs are thrown",
            config: EncryptionConfigSpec::test().with_route_source(RouteSource::WorkloadIps),
            nodes: vec![workload(1), workload(3).opted_out()],
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.5/32",
                "throw 198.18.1.6/32",
                "throw 198.18.3.5/32",
                "throw 198.18.3.6/32",
            ],
            peers: &[],
            skipped: &[("node-3", "opted out")],
        },
        Row {
            name: "IPv6 planned with its own interface and port",
            config: v6_only.clone(),
            nodes: three_dual_nodes(),
            facts: facts(),
            family: V6,
            routes: &[
                "throw 2001:db8:1:1::/64",
                "2001:db8:1:2::/64 dev wg-encrypt-v6",
                "2001:db8:1:3::/64 dev wg-encrypt-v6",
            ],
            peers: &[
                "node-2 [2001:db8::c]:51821 2001:db8:1:2::/64",
                "node-3 [2001:db8::d]:51821 2001:db8:1:3::/64",
            ],
            skipped: &[],
        },
        Row {
            name: "IPv6 only: nothing planned for IPv4",
            config: v6_only,
            nodes: three_dual_nodes(),
            facts: facts(),
            family: V4,
            routes: &[],
            peers: &[],
            skipped: &[],
        },
        Row {
            name: "dual-stack, IPv4 side: a node without an IPv6 key is still an IPv4 peer",
            config: dual.clone(),
            nodes: with_third(
                NodeView::test_v4(3)
                    .with_internal_ip("2001:db8::d")
                    .with_pod_cidr("2001:db8:1:3::/64"),
            ),
            facts: facts(),
            family: V4,
            routes: &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "198.18.3.0/24 dev wg-encrypt",
            ],
            peers: &[
                "node-2 192.0.2.12:51820 198.18.2.0/24",
                "node-3 192.0.2.13:51820 198.18.3.0/24",
            ],
            skipped: &[],
        },
        Row {
            name: "dual-stack, IPv6 side: the node without an IPv6 key is thrown",
            config: dual.clone(),
            nodes: vec![
                NodeView::test_dual(1),
                NodeView::test_dual(2),
                NodeView::test_v4(3)
                    .with_internal_ip("2001:db8::d")
                    .with_pod_cidr("2001:db8:1:3::/64"),
            ],
            facts: facts(),
            family: V6,
            routes: &[
                "throw 2001:db8:1:1::/64",
                "2001:db8:1:2::/64 dev wg-encrypt-v6",
                "throw 2001:db8:1:3::/64",
            ],
            peers: &["node-2 [2001:db8::c]:51821 2001:db8:1:2::/64"],
            skipped: &[("node-3", "publishes no IPv6 public key")],
        },
        Row {
            name: "dual-stack, IPv6 side: a node without an IPv6 InternalIP is thrown",
            config: dual,
            nodes: vec![
                NodeView::test_dual(1),
                NodeView::test_dual(2),
                NodeView::test_v4(3)
                    .with_pod_cidr("2001:db8:1:3::/64")
                    .with_test_key(V6),
            ],
            facts: facts(),
            family: V6,
            routes: &[
                "throw 2001:db8:1:1::/64",
                "2001:db8:1:2::/64 dev wg-encrypt-v6",
                "throw 2001:db8:1:3::/64",
            ],
            peers: &["node-2 [2001:db8::c]:51821 2001:db8:1:2::/64"],
            skipped: &[("node-3", "has no IPv6 InternalIP")],
        },
        Row {
            name: "lockout: own published key differs, peers planned but nothing routed",
            config: host,
            nodes: three_nodes(),
            facts: facts().with_own_key(V4, Some(key("rotated", V4))),
            family: V4,
            routes: &[],
            peers: &[
                "node-2 192.0.2.12:51820 192.0.2.12/32,198.18.2.0/24",
                "node-3 192.0.2.13:51820 192.0.2.13/32,198.18.3.0/24",
            ],
            skipped: &[],
        },
    ]
}

#[test]
fn mesh_table() {
    for row in rows() {
        let plan = run(Some(&row.config), &test_pools(), &row.nodes, &row.facts);
        assert_eq!(
            routes(&plan, row.family),
            strings(row.routes),
            "{}: routes",
            row.name
        );
        assert_eq!(
            peers(&plan, row.family),
            strings(row.peers),
            "{}: peers",
            row.name
        );
        assert_skipped(row.name, &plan, row.family, row.skipped);
    }
}

#[test]
fn every_device_route_has_an_unreachable_fallback_and_thrown_ones_do_not() {
    let plan = run(
        Some(&EncryptionConfigSpec::test()),
        &test_pools(),
        &three_nodes(),
        &facts(),
    );
    let lines: Vec<String> = plan
        .dataplane
        .family(V4)
        .routes
        .iter()
        .map(|r| format!("{:?} {}", r.kind, r.destination))
        .collect();
    assert_eq!(
        lines,
        strings(&[
            "Throw 198.18.1.0/24",
            "Device(\"wg-encrypt\") 198.18.2.0/24",
            "Unreachable 198.18.2.0/24",
            "Device(\"wg-encrypt\") 198.18.3.0/24",
            "Unreachable 198.18.3.0/24",
        ])
    );
    assert_eq!(
        RouteKind::Unreachable.metric(),
        Some(UNREACHABLE_METRIC),
        "above the kernel's default metrics (0 IPv4, 1024 IPv6)"
    );
    const { assert!(UNREACHABLE_METRIC > 1024) };
    assert_eq!(RouteKind::Device("wg-encrypt".into()).metric(), None);
}

#[test]
fn routes_use_the_configured_table_and_rule() {
    let mut config = EncryptionConfigSpec::test();
    config.routing_table = 4242;
    config.routing_rule_priority = 77;
    config.firewall_mark = 0x20000;
    let plan = run(Some(&config), &test_pools(), &three_nodes(), &facts());
    let dp = plan.dataplane.family(V4);
    assert!(dp.routes.iter().all(|r| r.table == 4242), "{:?}", dp.routes);
    let rule = dp.rule.clone().expect("rule");
    assert_eq!(
        (
            rule.family,
            rule.priority,
            rule.table,
            rule.fwmark,
            rule.mask
        ),
        (V4, 77, 4242, 0x20000, 0x20000)
    );
    assert_eq!(dp.interface.as_ref().map(|i| i.fwmark), Some(0x20000));
}

#[test]
fn persistent_keepalive_only_when_positive() {
    for (seconds, expected) in [(0, None), (25, Some(25))] {
        let config = EncryptionConfigSpec::test().with_keepalive(seconds);
        let plan = run(Some(&config), &test_pools(), &three_nodes(), &facts());
        let keepalives: Vec<_> = plan
            .dataplane
            .family(V4)
            .peers
            .iter()
            .map(|p| p.persistent_keepalive)
            .collect();
        assert_eq!(keepalives, vec![expected; 2], "keepalive {seconds}");
    }
}

#[test]
fn malformed_data_of_every_node_is_reported_sorted() {
    let broken = |name: &str| {
        NodeView::from_node(
            &TestNode::new(name)
                .internal_ip("not-an-ip")
                .pod_cidr("198.18.9.1/24")
                .annotation(PUBLIC_KEY_ANNOTATION, "AAAA")
                .build(),
        )
    };
    let nodes = vec![NodeView::test_v4(1), broken("node-9"), broken("node-5")];
    let plan = run(
        Some(&EncryptionConfigSpec::test()),
        &test_pools(),
        &nodes,
        &facts(),
    );
    let fields: Vec<String> = plan
        .problems
        .iter()
        .map(|p| format!("{} {}", p.node, p.field))
        .collect();
    assert_eq!(
        fields,
        strings(&[
            "node-5 metadata.annotations[kube-encrypt.dev/public-key]",
            "node-5 spec.podCIDRs[0]",
            "node-5 status.addresses[0].address",
            "node-9 metadata.annotations[kube-encrypt.dev/public-key]",
            "node-9 spec.podCIDRs[0]",
            "node-9 status.addresses[0].address",
        ])
    );
    // The problems are reported even when nothing is planned.
    let off = run(None, &[], &nodes, &facts());
    assert_eq!(off.problems, plan.problems);
}
