//! No node draws traffic that is not its own into its tunnel: each row is one way a wrong or
//! hostile Node could try (node-3 unless said otherwise), and what node-1 plans for it.
//! node-1 sits on the underlay `192.0.2.11/24` (`2001:db8::b/64`); the API server is
//! `192.0.2.1` (`2001:db8::1`).

use crate::crd::{EncryptionConfigSpec, IPPoolSpec, RouteSource};
use crate::dataplane::PeerSpec;
use crate::fixtures::{key, test_pools};
use crate::net::Family::{self, V4, V6};
use crate::node::NodeView;
use crate::plan::LocalFacts;

use super::{assert_skipped, facts, peers, routes, run, strings};

struct Row {
    name: &'static str,
    config: EncryptionConfigSpec,
    pools: Vec<IPPoolSpec>,
    nodes: Vec<NodeView>,
    facts: LocalFacts,
    family: Family,
    routes: &'static [&'static str],
    peers: &'static [&'static str],
    skipped: &'static [(&'static str, &'static str)],
}

/// node-1 on its underlay, with the API server protected.
fn underlay_facts() -> LocalFacts {
    facts()
        .with_local_address("192.0.2.11/24")
        .with_local_address("2001:db8::b/64")
        .with_protected("192.0.2.1")
        .with_protected("2001:db8::1")
}

/// `node-<i>` with its InternalIPs and keys but none of its addresses: the row adds them.
fn hostile(i: u8) -> NodeView {
    NodeView::test(&format!("node-{i}"))
        .with_internal_ip(&format!("192.0.2.{}", 10 + u16::from(i)))
        .with_internal_ip(&format!("2001:db8::{:x}", 10 + u16::from(i)))
        .with_test_key(V4)
        .with_test_key(V6)
}

/// When node-1 and node-2 joined: before anything the rows add (a node without a
/// creationTimestamp counts as the newest).
const JOINED: &str = "2026-01-01T00:00:00Z";

/// node-1 and node-2 as they should be, and `third`.
fn with_third(third: NodeView) -> Vec<NodeView> {
    vec![
        NodeView::test_dual(1).with_created(JOINED),
        NodeView::test_dual(2).with_created(JOINED),
        third,
    ]
}

/// A v4 row in the standard cluster where node-3 is replaced by `third`.
fn v4_row(
    name: &'static str,
    third: NodeView,
    routes: &'static [&'static str],
    peers: &'static [&'static str],
    skipped: &'static [(&'static str, &'static str)],
) -> Row {
    Row {
        name,
        config: EncryptionConfigSpec::test().with_ipv6(),
        pools: test_pools(),
        nodes: with_third(third),
        facts: underlay_facts(),
        family: V4,
        routes,
        peers,
        skipped,
    }
}

/// The same for IPv6.
fn v6_row(
    name: &'static str,
    third: NodeView,
    routes: &'static [&'static str],
    peers: &'static [&'static str],
    skipped: &'static [(&'static str, &'static str)],
) -> Row {
    Row {
        family: V6,
        ..v4_row(name, third, routes, peers, skipped)
    }
}

/// node-1 and node-2 only, node-2 untouched: the routes and peers every rejecting v4 row
/// leaves.
const UNTOUCHED_V4: [&str; 2] = ["throw 198.18.1.0/24", "198.18.2.0/24 dev wg-encrypt"];
const NODE_2_V4: [&str; 1] = ["node-2 192.0.2.12:51820 198.18.2.0/24"];
const UNTOUCHED_V6: [&str; 2] = [
    "throw 2001:db8:1:1::/64",
    "2001:db8:1:2::/64 dev wg-encrypt-v6",
];
const NODE_2_V6: [&str; 1] = ["node-2 [2001:db8::c]:51821 2001:db8:1:2::/64"];

fn peer_on_device(node: &str, name_known: bool, endpoint: &str, allowed: &[&str]) -> PeerSpec {
    PeerSpec {
        public_key: key(node, V4),
        node: if name_known {
            node.into()
        } else {
            String::new()
        },
        endpoint: endpoint.parse().unwrap(),
        allowed_ips: allowed.iter().map(|n| n.parse().unwrap()).collect(),
        persistent_keepalive: None,
    }
}

fn workload_ips() -> EncryptionConfigSpec {
    EncryptionConfigSpec::test().with_route_source(RouteSource::WorkloadIps)
}

fn rows() -> Vec<Row> {
    let host = EncryptionConfigSpec::test().with_host_encryption();
    vec![
        v4_row(
            "pod CIDR 0.0.0.0/0",
            hostile(3).with_pod_cidr("0.0.0.0/0"),
            &UNTOUCHED_V4,
            &NODE_2_V4,
            &[("node-3", "refused: its pod CIDR 0.0.0.0/0 is wider than /8")],
        ),
        v4_row(
            "pod CIDR inside ours",
            hostile(3).with_pod_cidr("198.18.1.128/25"),
            &UNTOUCHED_V4,
            &NODE_2_V4,
            &[("node-3", "198.18.1.128/25 overlaps this node's pod CIDR 198.18.1.0/24")],
        ),
        v4_row(
            "pod CIDR covering the underlay",
            hostile(3).with_pod_cidr("192.0.2.128/25"),
            &UNTOUCHED_V4,
            &NODE_2_V4,
            &[("node-3", "overlaps the underlay subnet 192.0.2.0/24")],
        ),
        v4_row(
            "pod CIDR outside every pool: refused, thrown",
            hostile(3).with_pod_cidr("198.51.100.0/24"),
            &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.51.100.0/24",
            ],
            &NODE_2_V4,
            &[(
                "node-3",
                "198.51.100.0/24 lies outside every enabled IPv4 IPPool (the IPPools must cover",
            )],
        ),
        v4_row(
            "pod CIDR inside another peer's: the older node keeps it",
            hostile(3)
                .with_pod_cidr("198.18.2.0/25")
                .with_created("2026-02-01T00:00:00Z"),
            &UNTOUCHED_V4,
            &NODE_2_V4,
            &[(
                "node-3",
                "its pod CIDR 198.18.2.0/25 overlaps the pod CIDR 198.18.2.0/24 of node node-2, \
                 which keeps it (its Node is older)",
            )],
        ),
        Row {
            facts: underlay_facts().with_current_peers(
                V4,
                vec![peer_on_device("node-2", true, "192.0.2.12:51820", &["198.18.2.0/24"])],
            ),
            ..v4_row(
                "pod CIDR of a programmed peer claimed by an older node: the programmed one keeps it",
                hostile(3)
                    .with_pod_cidr("198.18.2.0/24")
                    .with_created("2020-01-01T00:00:00Z"),
                &UNTOUCHED_V4,
                &NODE_2_V4,
                &[("node-3", "which keeps it (it is what this node's device has programmed)")],
            )
        },
        Row {
            nodes: vec![
                NodeView::test_dual(1),
                NodeView::test_dual(2)
                    .with_pod_cidr("198.18.3.0/24")
                    .with_created("2026-02-01T00:00:00Z"),
                NodeView::test_dual(3)
                    .opted_out()
                    .with_created("2026-01-01T00:00:00Z"),
            ],
            ..v4_row(
                "an opted-out node keeps its range against a newer peer",
                NodeView::default(),
                &[
                    "throw 198.18.1.0/24",
                    "throw 198.18.2.0/24",
                    "throw 198.18.3.0/24",
                ],
                &[],
                &[
                    ("node-2", "overlaps the pod CIDR 198.18.3.0/24 of node node-3"),
                    ("node-3", "opted out"),
                ],
            )
        },
        v4_row(
            "interface annotation at a pod of this node",
            NodeView::test_dual(3).with_interface_addr("198.18.1.5"),
            &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            &NODE_2_V4,
            &[("node-3", "interface address 198.18.1.5 overlaps this node's pod CIDR")],
        ),
        v4_row(
            "interface annotation at another node's pod",
            NodeView::test_dual(3).with_interface_addr("198.18.2.5"),
            &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            &NODE_2_V4,
            &[("node-3", "interface address 198.18.2.5 lies outside its own pod CIDRs")],
        ),
        v4_row(
            "interface annotation at the cloud metadata service",
            NodeView::test_dual(3).with_interface_addr("169.254.169.254"),
            &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            &NODE_2_V4,
            &[("node-3", "overlaps the link-local range 169.254.0.0/16")],
        ),
        v4_row(
            "interface annotation at the API server",
            NodeView::test_dual(3).with_interface_addr("192.0.2.1"),
            &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "throw 198.18.3.0/24",
            ],
            &NODE_2_V4,
            &[("node-3", "192.0.2.1 overlaps the API server's address 192.0.2.1")],
        ),
        Row {
            config: host.clone(),
            ..v4_row(
                "host encryption: an InternalIP equal to the API server",
                NodeView::test_dual(3).with_internal_ip("192.0.2.1"),
                &[
                    "192.0.2.12/32 dev wg-encrypt",
                    "throw 192.0.2.13/32",
                    "throw 198.18.1.0/24",
                    "198.18.2.0/24 dev wg-encrypt",
                    "throw 198.18.3.0/24",
                ],
                &["node-2 192.0.2.12:51820 192.0.2.12/32,198.18.2.0/24"],
                &[("node-3", "its InternalIP 192.0.2.1 overlaps the API server's address")],
            )
        },
        Row {
            config: host.clone().with_control_plane_host_encryption(),
            ..v4_row(
                "host encryption: the API server as a control-plane peer's own InternalIP",
                NodeView::test_dual(3)
                    .with_internal_ip("192.0.2.1")
                    .control_plane(),
                &[
                    "192.0.2.1/32 dev wg-encrypt",
                    "192.0.2.12/32 dev wg-encrypt",
                    "192.0.2.13/32 dev wg-encrypt",
                    "throw 198.18.1.0/24",
                    "198.18.2.0/24 dev wg-encrypt",
                    "198.18.3.0/24 dev wg-encrypt",
                ],
                &[
                    "node-2 192.0.2.12:51820 192.0.2.12/32,198.18.2.0/24",
                    "node-3 192.0.2.13:51820 192.0.2.1/32,192.0.2.13/32,198.18.3.0/24",
                ],
                &[],
            )
        },
        Row {
            config: host.clone(),
            ..v4_row(
                "host encryption: an InternalIP of another node",
                NodeView::test_dual(3)
                    .with_internal_ip("192.0.2.12")
                    .with_created("2026-02-01T00:00:00Z"),
                &[
                    "192.0.2.12/32 dev wg-encrypt",
                    "throw 192.0.2.13/32",
                    "throw 198.18.1.0/24",
                    "198.18.2.0/24 dev wg-encrypt",
                    "throw 198.18.3.0/24",
                ],
                &["node-2 192.0.2.12:51820 192.0.2.12/32,198.18.2.0/24"],
                &[(
                    "node-3",
                    "its InternalIP 192.0.2.12 overlaps the InternalIP 192.0.2.12 of node node-2",
                )],
            )
        },
        v4_row(
            "without host encryption a shared InternalIP routes nothing and is left alone",
            NodeView::test_dual(3).with_internal_ip("192.0.2.12"),
            &[
                "throw 198.18.1.0/24",
                "198.18.2.0/24 dev wg-encrypt",
                "198.18.3.0/24 dev wg-encrypt",
            ],
            &[
                "node-2 192.0.2.12:51820 198.18.2.0/24",
                "node-3 192.0.2.13:51820 198.18.3.0/24",
            ],
            &[],
        ),
        Row {
            nodes: vec![
                NodeView::test_dual(1).with_created(JOINED),
                NodeView::test_dual(2).with_created(JOINED),
                hostile(3)
                    .with_pod_cidr("198.19.0.0/24")
                    .with_created("2026-02-01T00:00:00Z"),
                NodeView::test("node-4")
                    .with_internal_ip("198.19.0.4")
                    .with_pod_cidr("198.18.4.0/24")
                    .with_test_key(V4)
                    .with_created(JOINED),
            ],
            ..v4_row(
                "a pod CIDR holding another node's InternalIP (no host encryption)",
                NodeView::default(),
                &[
                    "throw 198.18.1.0/24",
                    "198.18.2.0/24 dev wg-encrypt",
                    "198.18.4.0/24 dev wg-encrypt",
                    "throw 198.19.0.0/24",
                ],
                &[
                    "node-2 192.0.2.12:51820 198.18.2.0/24",
                    "node-4 198.19.0.4:51820 198.18.4.0/24",
                ],
                &[(
                    "node-3",
                    "its pod CIDR 198.19.0.0/24 overlaps the InternalIP 198.19.0.4 of node node-4, \
                     which keeps it (its Node is older)",
                )],
            )
        },
        Row {
            config: workload_ips(),
            nodes: vec![
                NodeView::test_v4(1).with_workload_ip("198.18.1.5"),
                NodeView::test_v4(2).with_workload_ip("198.18.2.5"),
                hostile(3).with_workload_ip("192.0.2.11"),
            ],
            ..v4_row(
                "WorkloadIPs: a pod IP equal to this node's IP",
                NodeView::default(),
                &[
                    "throw 198.18.1.5/32",
                    "198.18.2.0/32 dev wg-encrypt",
                    "198.18.2.5/32 dev wg-encrypt",
                ],
                &["node-2 192.0.2.12:51820 198.18.2.0/32,198.18.2.5/32"],
                &[("node-3", "its pod IP 192.0.2.11 overlaps this node's address 192.0.2.11")],
            )
        },
        Row {
            config: workload_ips(),
            nodes: vec![
                NodeView::test_v4(1).with_workload_ip("198.18.1.5"),
                NodeView::test_v4(2)
                    .with_workload_ip("198.18.2.5")
                    .with_created(JOINED),
                hostile(3)
                    .with_workload_ip("198.18.2.5")
                    .with_workload_ip("198.18.3.5")
                    .with_created("2026-02-01T00:00:00Z"),
            ],
            ..v4_row(
                "WorkloadIPs: a pod IP of another node",
                NodeView::default(),
                &[
                    "throw 198.18.1.5/32",
                    "198.18.2.0/32 dev wg-encrypt",
                    "198.18.2.5/32 dev wg-encrypt",
                    "throw 198.18.3.5/32",
                ],
                &["node-2 192.0.2.12:51820 198.18.2.0/32,198.18.2.5/32"],
                &[(
                    "node-3",
                    "its pod IP 198.18.2.5 overlaps the pod IP 198.18.2.5 of node node-2, which \
                     keeps it (its Node is older)",
                )],
            )
        },
        Row {
            config: workload_ips(),
            pools: vec![IPPoolSpec::test("192.0.2.0/24")],
            nodes: vec![
                hostile(1).with_workload_ip("192.0.2.40"),
                hostile(2).with_workload_ip("192.0.2.50"),
            ],
            ..v4_row(
                "WorkloadIPs: pods on the node network (VPC CNI) are peers' pods",
                NodeView::default(),
                &["throw 192.0.2.40/32", "192.0.2.50/32 dev wg-encrypt"],
                &["node-2 192.0.2.12:51820 192.0.2.50/32"],
                &[],
            )
        },
        Row {
            config: workload_ips(),
            nodes: vec![
                NodeView::test_v4(1),
                hostile(2).with_interface_addr("198.18.2.0"),
            ],
            ..v4_row(
                "WorkloadIPs: an interface address without a pod CIDR",
                NodeView::default(),
                &[],
                &[],
                &[("node-2", "interface address 198.18.2.0 lies outside its own pod CIDRs")],
            )
        },
        v6_row(
            "IPv6: pod CIDR ::/0",
            hostile(3).with_pod_cidr("::/0"),
            &UNTOUCHED_V6,
            &NODE_2_V6,
            &[("node-3", "its pod CIDR ::/0 is wider than /16")],
        ),
        v6_row(
            "IPv6: pod CIDR inside ours",
            hostile(3).with_pod_cidr("2001:db8:1:1::/80"),
            &UNTOUCHED_V6,
            &NODE_2_V6,
            &[("node-3", "overlaps this node's pod CIDR 2001:db8:1:1::/64")],
        ),
        v6_row(
            "IPv6: pod CIDR inside another peer's",
            hostile(3).with_pod_cidr("2001:db8:1:2::/80"),
            &UNTOUCHED_V6,
            &NODE_2_V6,
            &[("node-3", "of node node-2, which keeps it (its Node is older)")],
        ),
        v6_row(
            "IPv6: interface annotation at a link-local address",
            NodeView::test_dual(3).with_interface_addr("fe80::1"),
            &[
                "throw 2001:db8:1:1::/64",
                "2001:db8:1:2::/64 dev wg-encrypt-v6",
                "throw 2001:db8:1:3::/64",
            ],
            &NODE_2_V6,
            &[("node-3", "overlaps the link-local range fe80::/10")],
        ),
        v6_row(
            "IPv6: interface annotation at the API server",
            NodeView::test_dual(3).with_interface_addr("2001:db8::1"),
            &[
                "throw 2001:db8:1:1::/64",
                "2001:db8:1:2::/64 dev wg-encrypt-v6",
                "throw 2001:db8:1:3::/64",
            ],
            &NODE_2_V6,
            &[("node-3", "overlaps the API server's address 2001:db8::1")],
        ),
        Row {
            config: EncryptionConfigSpec::test()
                .with_ipv6()
                .with_host_encryption()
                .with_route_source(RouteSource::WorkloadIps),
            nodes: vec![
                NodeView::test_dual(1),
                NodeView::test_dual(2).with_workload_ip("2001:db8:1:2::5"),
                hostile(3).with_workload_ip("2001:db8::b"),
            ],
            ..v6_row(
                "IPv6 WorkloadIPs: a pod IP equal to this node's IP",
                NodeView::default(),
                &[
                    "2001:db8::c/128 dev wg-encrypt-v6",
                    "throw 2001:db8::d/128",
                    "2001:db8:1:2::/128 dev wg-encrypt-v6",
                    "2001:db8:1:2::5/128 dev wg-encrypt-v6",
                ],
                &["node-2 [2001:db8::c]:51821 2001:db8::c/128,2001:db8:1:2::/128,2001:db8:1:2::5/128"],
                &[("node-3", "its pod IP 2001:db8::b overlaps this node's address 2001:db8::b")],
            )
        },
    ]
}

#[test]
fn hijack_table() {
    for row in rows() {
        let plan = run(Some(&row.config), &row.pools, &row.nodes, &row.facts);
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
        assert_eq!(
            plan.families.get(row.family).state,
            crate::crd::EncryptionState::Encrypted,
            "{}: the rest of the mesh is untouched",
            row.name
        );
    }
}

/// What one bad node does to the others: nothing. The same cluster planned with and without
/// node-3's attempt gives node-2 the same peer entry.
#[test]
fn a_refused_node_leaves_the_others_as_they_were() {
    let config = EncryptionConfigSpec::test().with_host_encryption();
    let clean = run(
        Some(&config),
        &test_pools(),
        &with_third(NodeView::test_dual(3)),
        &underlay_facts(),
    );
    let attacked = run(
        Some(&config),
        &test_pools(),
        &with_third(hostile(3).with_pod_cidr("0.0.0.0/1")),
        &underlay_facts(),
    );
    let node_2 = |plan: &crate::plan::NodePlan| {
        plan.dataplane
            .family(V4)
            .peers
            .iter()
            .find(|p| p.node == "node-2")
            .cloned()
    };
    assert!(node_2(&clean).is_some());
    assert_eq!(node_2(&attacked), node_2(&clean));
    let refused = attacked
        .skipped
        .iter()
        .find(|s| s.node == "node-3")
        .unwrap();
    assert!(refused.refused, "{refused:?}");
}
