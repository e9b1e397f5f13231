//! Firewall intent (ports, masquerade, NAT outgoing, RPF marking) and kernel settings.

use ipnet::IpNet;

use crate::crd::{EncryptionConfigSpec, IPPoolSpec, RouteSource};
use crate::dataplane::{FirewallSpec, InterfaceMasquerade, NatOutgoing, RpfMark, Sysctl};
use crate::fixtures::key;
use crate::net::Family::{self, V4, V6};
use crate::node::NodeView;
use crate::plan::{LocalFacts, SRC_VALID_MARK};

use super::{facts, run, three_dual_nodes, three_nodes};

struct Row {
    name: &'static str,
    config: Option<EncryptionConfigSpec>,
    pools: Vec<IPPoolSpec>,
    nodes: Vec<NodeView>,
    facts: LocalFacts,
    firewall: Option<FirewallSpec>,
    src_valid_mark: bool,
}

fn nets(items: &[&str]) -> Vec<IpNet> {
    items.iter().map(|n| n.parse().unwrap()).collect()
}

fn masq(interface: &str, own: &[&str]) -> InterfaceMasquerade {
    InterfaceMasquerade {
        interface: interface.into(),
        own_sources: nets(own),
    }
}

fn nat(family: Family, sources: &[&str], cluster: &[&str], interface: &str) -> NatOutgoing {
    NatOutgoing {
        family,
        sources: nets(sources),
        cluster: nets(cluster),
        exempt_interfaces: vec![interface.into()],
    }
}

fn rpf(interfaces: &[&str]) -> Option<RpfMark> {
    Some(RpfMark {
        mark: 0x10_0000,
        interfaces: interfaces.iter().map(ToString::to_string).collect(),
    })
}

/// The IPv4 firewall of `node-1` in the three-node cluster, without NAT or RPF.
fn v4_firewall() -> FirewallSpec {
    FirewallSpec {
        wireguard_ports: vec![51820],
        masquerade: vec![masq("wg-encrypt", &["198.18.1.0/24"])],
        nat_outgoing: vec![],
        rpf: None,
        clamp_mss: vec!["wg-encrypt".into()],
    }
}

fn v4_row(
    name: &'static str,
    config: EncryptionConfigSpec,
    firewall: FirewallSpec,
    src_valid_mark: bool,
) -> Row {
    Row {
        name,
        config: Some(config),
        pools: vec![],
        nodes: three_nodes(),
        facts: facts(),
        firewall: Some(firewall),
        src_valid_mark,
    }
}

fn rows() -> Vec<Row> {
    let host = EncryptionConfigSpec::test().with_host_encryption();
    let v6_only = EncryptionConfigSpec::test().without_ipv4().with_ipv6();
    let own_cp = vec![NodeView::test_v4(1).control_plane(), NodeView::test_v4(2)];
    let v6_firewall = |nat_outgoing, rpf| FirewallSpec {
        wireguard_ports: vec![51821],
        masquerade: vec![masq("wg-encrypt-v6", &["2001:db8:1:1::/64"])],
        nat_outgoing,
        rpf,
        clamp_mss: vec!["wg-encrypt-v6".into()],
    };
    vec![
        Row {
            pools: vec![IPPoolSpec::test("198.18.0.0/15")],
            ..v4_row(
                "IPv4: port, masquerade and NAT outgoing",
                EncryptionConfigSpec::test(),
                FirewallSpec {
                    nat_outgoing: vec![nat(
                        V4,
                        &["198.18.0.0/15"],
                        &["198.18.0.0/15"],
                        "wg-encrypt",
                    )],
                    ..v4_firewall()
                },
                false,
            )
        },
        Row {
            pools: vec![IPPoolSpec::test("198.18.0.0/15").without_nat()],
            ..v4_row(
                "pools without natOutgoing: no NAT",
                EncryptionConfigSpec::test(),
                v4_firewall(),
                false,
            )
        },
        Row {
            pools: vec![
                IPPoolSpec::test("198.19.0.0/16").without_nat(),
                IPPoolSpec::test("198.18.0.0/16"),
                IPPoolSpec::test("10.0.0.0/8").disabled(),
                IPPoolSpec::test("not-a-cidr"),
                IPPoolSpec::test("2001:db8:1::/48"),
            ],
            ..v4_row(
                "disabled, invalid and other-family pools are ignored",
                EncryptionConfigSpec::test(),
                FirewallSpec {
                    nat_outgoing: vec![nat(
                        V4,
                        &["198.18.0.0/16"],
                        &["198.18.0.0/16", "198.19.0.0/16"],
                        "wg-encrypt",
                    )],
                    ..v4_firewall()
                },
                false,
            )
        },
        Row {
            name: "dual-stack: both ports, both interfaces, NAT per family, MSS clamped on both",
            config: Some(EncryptionConfigSpec::test().with_ipv6()),
            pools: vec![
                IPPoolSpec::test("2001:db8:1::/48"),
                IPPoolSpec::test("198.18.0.0/15"),
            ],
            nodes: three_dual_nodes(),
            facts: facts(),
            firewall: Some(FirewallSpec {
                wireguard_ports: vec![51820, 51821],
                masquerade: vec![
                    masq("wg-encrypt", &["198.18.1.0/24"]),
                    masq("wg-encrypt-v6", &["2001:db8:1:1::/64"]),
                ],
                nat_outgoing: vec![
                    nat(V4, &["198.18.0.0/15"], &["198.18.0.0/15"], "wg-encrypt"),
                    nat(
                        V6,
                        &["2001:db8:1::/48"],
                        &["2001:db8:1::/48"],
                        "wg-encrypt-v6",
                    ),
                ],
                rpf: None,
                clamp_mss: vec!["wg-encrypt".into(), "wg-encrypt-v6".into()],
            }),
            src_valid_mark: false,
        },
        Row {
            name: "IPv4 off: only IPv6 NAT",
            config: Some(v6_only.clone()),
            pools: vec![
                IPPoolSpec::test("2001:db8:1::/48"),
                IPPoolSpec::test("198.18.0.0/15"),
            ],
            nodes: three_dual_nodes(),
            facts: facts(),
            firewall: Some(v6_firewall(
                vec![nat(
                    V6,
                    &["2001:db8:1::/48"],
                    &["2001:db8:1::/48"],
                    "wg-encrypt-v6",
                )],
                None,
            )),
            src_valid_mark: false,
        },
        Row {
            facts: LocalFacts {
                underlay_interfaces: vec!["eth1".into(), "eth0".into(), "eth1".into()],
                ..facts()
            },
            ..v4_row(
                "host encryption: RPF marking on the underlay and src_valid_mark",
                host.clone(),
                FirewallSpec {
                    rpf: rpf(&["eth0", "eth1"]),
                    ..v4_firewall()
                },
                true,
            )
        },
        Row {
            facts: facts().with_own_key(V4, Some(key("rotated", V4))),
            ..v4_row(
                "host encryption while publishing a new key: no RPF, no sysctl",
                host.clone(),
                v4_firewall(),
                false,
            )
        },
        Row {
            nodes: own_cp.clone(),
            ..v4_row(
                "host encryption on an exempt control-plane node: no RPF",
                host.clone(),
                v4_firewall(),
                true,
            )
        },
        Row {
            nodes: own_cp,
            ..v4_row(
                "controlPlaneHostEncryption: the control-plane node marks RPF",
                host.clone().with_control_plane_host_encryption(),
                FirewallSpec {
                    rpf: rpf(&["eth0"]),
                    ..v4_firewall()
                },
                true,
            )
        },
        Row {
            name: "IPv6-only host encryption: RPF but no IPv4 sysctl",
            config: Some(v6_only.with_host_encryption()),
            pools: vec![],
            nodes: three_dual_nodes(),
            facts: facts(),
            firewall: Some(v6_firewall(vec![], rpf(&["eth0"]))),
            src_valid_mark: false,
        },
        Row {
            nodes: vec![
                NodeView::test_v4(1)
                    .with_workload_ip("198.18.1.6")
                    .with_workload_ip("198.18.1.5"),
                NodeView::test_v4(2).with_workload_ip("198.18.2.5"),
            ],
            ..v4_row(
                "WorkloadIPs: own sources are the pod IPs and the interface address",
                EncryptionConfigSpec::test().with_route_source(RouteSource::WorkloadIps),
                FirewallSpec {
                    masquerade: vec![masq(
                        "wg-encrypt",
                        &["198.18.1.0/32", "198.18.1.5/32", "198.18.1.6/32"],
                    )],
                    ..v4_firewall()
                },
                false,
            )
        },
        Row {
            facts: facts().with_wireguard(false, false),
            firewall: None,
            ..v4_row(
                "unsupported: no firewall",
                EncryptionConfigSpec::test(),
                v4_firewall(),
                false,
            )
        },
        Row {
            config: None,
            pools: vec![IPPoolSpec::test("198.18.0.0/15")],
            firewall: None,
            ..v4_row(
                "no config: no firewall",
                EncryptionConfigSpec::test(),
                v4_firewall(),
                false,
            )
        },
    ]
}

#[test]
fn firewall_table() {
    for row in rows() {
        let plan = run(row.config.as_ref(), &row.pools, &row.nodes, &row.facts);
        assert_eq!(plan.dataplane.firewall, row.firewall, "{}", row.name);
        let expected: Vec<Sysctl> = row
            .src_valid_mark
            .then(|| Sysctl {
                key: SRC_VALID_MARK.into(),
                value: "1".into(),
            })
            .into_iter()
            .collect();
        assert_eq!(plan.dataplane.sysctls, expected, "{}: sysctls", row.name);
    }
}
