//! The flow matrix of SPEC §4.2 for the lab, and what each flow should do given the live
//! cluster configuration. Pure: the live view is read elsewhere.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use kube_encrypt_api::net::{Family, PerFamily};

use crate::lab::topology::{ext_addr, Topology};

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Pod `j` on node `i`.
    Pod(u8, u8),
    /// The host network of node `i`.
    Node(u8),
    /// `ke-ext`, outside the cluster.
    Ext,
}

/// What a flow is, in the words of SPEC §4.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowKind {
    PodPodSameNode,
    PodPodCrossNode,
    HostHost,
    HostRemotePod,
    RemotePodHost,
    PodOutside,
}

impl FlowKind {
    pub fn describe(self) -> &'static str {
        match self {
            FlowKind::PodPodSameNode => "pod → pod, same node",
            FlowKind::PodPodCrossNode => "pod → pod, other node",
            FlowKind::HostHost => "host → host",
            FlowKind::HostRemotePod => "host → remote pod",
            FlowKind::RemotePodHost => "remote pod → host",
            FlowKind::PodOutside => "pod → outside",
        }
    }
}

/// One probe: traffic from `src` to `dst` over `family`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub family: Family,
    pub kind: FlowKind,
    pub src: Endpoint,
    pub dst: Endpoint,
}

/// What a flow should do. `encrypted: None` is not checked (mixed by design).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub works: bool,
    pub encrypted: Option<bool>,
}

/// What kube-encrypt is configured to do, as far as the flows care.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// `spec.<family>.enabled` of the EncryptionConfig (false without one).
    pub enabled: PerFamily<bool>,
    /// The WireGuard listen ports.
    pub ports: PerFamily<u16>,
    pub host_encryption: bool,
    pub control_plane_host_encryption: bool,
    /// Per node index.
    pub nodes: BTreeMap<u8, NodeFacts>,
    /// Enabled IPPools with their natOutgoing.
    pub pools: Vec<(IpNet, bool)>,
}

/// What decides whether one node encrypts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// Selected by `spec.nodeSelector` and not labelled `kube-encrypt.dev/encryption=disabled`.
    pub participates: bool,
    /// Has a usable WireGuard for the family (the lab's `--no-wireguard`, or the agent
    /// reporting `Unsupported`).
    pub wireguard: PerFamily<bool>,
    pub control_plane: bool,
    /// Why it does not encrypt, for the report.
    pub note: Option<String>,
}

impl Default for NodeFacts {
    fn default() -> Self {
        Self {
            participates: true,
            wireguard: PerFamily { v4: true, v6: true },
            control_plane: false,
            note: None,
        }
    }
}

impl ClusterView {
    /// Whether node `i` encrypts `family`.
    pub fn encrypts(&self, i: u8, family: Family) -> bool {
        let facts = self.nodes.get(&i).cloned().unwrap_or_default();
        *self.enabled.get(family) && facts.participates && *facts.wireguard.get(family)
    }

    /// Pod traffic between nodes `a` and `b` goes through WireGuard.
    pub fn pods_encrypted(&self, a: u8, b: u8, family: Family) -> bool {
        a != b && self.encrypts(a, family) && self.encrypts(b, family)
    }

    /// Host traffic between nodes `a` and `b` goes through WireGuard.
    pub fn hosts_encrypted(&self, a: u8, b: u8, family: Family) -> bool {
        let host_ok = |i: u8| {
            let cp = self.nodes.get(&i).map(|n| n.control_plane).unwrap_or(false);
            !cp || self.control_plane_host_encryption
        };
        self.host_encryption && self.pods_encrypted(a, b, family) && host_ok(a) && host_ok(b)
    }

    /// A pod at `addr` on node `i` gets NAT outgoing: the node encrypts the family and the
    /// enabled pool holding the address has natOutgoing.
    pub fn nat_outgoing(&self, i: u8, addr: IpAddr) -> bool {
        self.encrypts(i, Family::of_addr(&addr))
            && self
                .pools
                .iter()
                .any(|(cidr, nat)| *nat && cidr.contains(&addr))
    }
}

/// The flows to probe in `topo`, per family: one per row of SPEC §4.2, plus pod → pod from
/// node 1 to every other node (so opted-out and no-WireGuard nodes are covered).
pub fn plan(topo: &Topology) -> Vec<Flow> {
    let mut flows = Vec::new();
    for family in topo.families() {
        let flow = |kind, src, dst| Flow {
            family,
            kind,
            src,
            dst,
        };
        flows.push(flow(
            FlowKind::PodPodSameNode,
            Endpoint::Pod(1, 1),
            Endpoint::Pod(1, 2),
        ));
        for other in topo.nodes.iter().skip(1) {
            flows.push(flow(
                FlowKind::PodPodCrossNode,
                Endpoint::Pod(1, 1),
                Endpoint::Pod(other.index, 1),
            ));
        }
        if topo.nodes.len() > 1 {
            flows.push(flow(
                FlowKind::HostHost,
                Endpoint::Node(1),
                Endpoint::Node(2),
            ));
            flows.push(flow(
                FlowKind::HostRemotePod,
                Endpoint::Node(1),
                Endpoint::Pod(2, 1),
            ));
            flows.push(flow(
                FlowKind::RemotePodHost,
                Endpoint::Pod(2, 1),
                Endpoint::Node(1),
            ));
        }
        flows.push(flow(
            FlowKind::PodOutside,
            Endpoint::Pod(1, 1),
            Endpoint::Ext,
        ));
    }
    flows
}

/// The node an endpoint lives on (none for `ke-ext`).
pub fn node_of(endpoint: Endpoint) -> Option<u8> {
    match endpoint {
        Endpoint::Pod(i, _) | Endpoint::Node(i) => Some(i),
        Endpoint::Ext => None,
    }
}

/// The address of an endpoint in `family`.
pub fn addr_of(topo: &Topology, endpoint: Endpoint, family: Family) -> IpAddr {
    match endpoint {
        Endpoint::Pod(i, j) => {
            topo.node(i).expect("planned node").pods[usize::from(j) - 1].addr(family)
        }
        Endpoint::Node(i) => topo.node(i).expect("planned node").addr(family),
        Endpoint::Ext => ext_addr(family),
    }
}

/// What `flow` should do under `view`.
pub fn expect(topo: &Topology, view: &ClusterView, flow: &Flow) -> Expectation {
    let f = flow.family;
    let (a, b) = (
        node_of(flow.src).unwrap_or(0),
        node_of(flow.dst).unwrap_or(0),
    );
    match flow.kind {
        FlowKind::PodPodSameNode => Expectation {
            works: true,
            encrypted: Some(false),
        },
        FlowKind::PodPodCrossNode => Expectation {
            works: true,
            encrypted: Some(view.pods_encrypted(a, b, f)),
        },
        FlowKind::HostHost => Expectation {
            works: true,
            encrypted: Some(view.hosts_encrypted(a, b, f)),
        },
        FlowKind::HostRemotePod | FlowKind::RemotePodHost => {
            // One direction is pod traffic, the other host traffic: all-encrypted only with
            // host encryption, all-plaintext only when the pods' traffic is not encrypted.
            let encrypted = if view.hosts_encrypted(a, b, f) {
                Some(true)
            } else if !view.pods_encrypted(a, b, f) {
                Some(false)
            } else {
                None
            };
            Expectation {
                works: true,
                encrypted,
            }
        }
        FlowKind::PodOutside => Expectation {
            works: view.nat_outgoing(a, addr_of(topo, flow.src, f)),
            encrypted: Some(false),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::{LabSpec, DEFAULT_MTU};

    fn topo(nodes: u8) -> Topology {
        Topology::new(LabSpec::new(nodes, true, DEFAULT_MTU, &[]).unwrap())
    }

    fn both(v: bool) -> PerFamily<bool> {
        PerFamily { v4: v, v6: v }
    }

    fn view(enabled: PerFamily<bool>, host: bool, nat: bool) -> ClusterView {
        ClusterView {
            enabled,
            ports: PerFamily {
                v4: 51820,
                v6: 51821,
            },
            host_encryption: host,
            pools: vec![
                ("198.18.0.0/16".parse().unwrap(), nat),
                ("2001:db8:1::/48".parse().unwrap(), nat),
            ],
            ..Default::default()
        }
    }

    fn flow(family: Family, kind: FlowKind, src: Endpoint, dst: Endpoint) -> Flow {
        Flow {
            family,
            kind,
            src,
            dst,
        }
    }

    #[test]
    fn the_plan_covers_every_row_per_family() {
        let flows = plan(&topo(3));
        assert_eq!(flows.len(), 2 * 7);
        for family in Family::ALL {
            let kinds: Vec<_> = flows
                .iter()
                .filter(|f| f.family == family)
                .map(|f| f.kind)
                .collect();
            assert_eq!(
                kinds
                    .iter()
                    .filter(|k| **k == FlowKind::PodPodCrossNode)
                    .count(),
                2
            );
            for kind in [
                FlowKind::PodPodSameNode,
                FlowKind::HostHost,
                FlowKind::HostRemotePod,
                FlowKind::RemotePodHost,
                FlowKind::PodOutside,
            ] {
                assert!(kinds.contains(&kind), "{family} lacks {kind:?}");
            }
        }
        assert_eq!(
            plan(&topo(1)).len(),
            2 * 2,
            "one node: same node and outside only"
        );
    }

    #[test]
    fn expectations_follow_the_config() {
        use Endpoint::*;
        use FlowKind::*;
        let t = topo(3);
        let off = view(both(false), false, true);
        let on = view(both(true), false, true);
        let v4_only = view(
            PerFamily {
                v4: true,
                v6: false,
            },
            false,
            true,
        );
        let host = view(both(true), true, true);
        let no_nat = view(both(true), false, false);
        let mut opted_out = view(both(true), false, true);
        opted_out.nodes.insert(
            3,
            NodeFacts {
                participates: false,
                ..Default::default()
            },
        );
        let mut no_wg = view(both(true), true, true);
        no_wg.nodes.insert(
            2,
            NodeFacts {
                wireguard: both(false),
                ..Default::default()
            },
        );
        let (v4, v6) = (Family::V4, Family::V6);
        let yes = |e| Expectation {
            works: true,
            encrypted: e,
        };
        let cases: Vec<(&str, &ClusterView, Flow, Expectation)> = vec![
            (
                "off: cross node plain",
                &off,
                flow(v4, PodPodCrossNode, Pod(1, 1), Pod(2, 1)),
                yes(Some(false)),
            ),
            (
                "off: no NAT, outside fails",
                &off,
                flow(v4, PodOutside, Pod(1, 1), Ext),
                Expectation {
                    works: false,
                    encrypted: Some(false),
                },
            ),
            (
                "on: cross node encrypted",
                &on,
                flow(v4, PodPodCrossNode, Pod(1, 1), Pod(2, 1)),
                yes(Some(true)),
            ),
            (
                "on: same node plain",
                &on,
                flow(v4, PodPodSameNode, Pod(1, 1), Pod(1, 2)),
                yes(Some(false)),
            ),
            (
                "on: host plain without host encryption",
                &on,
                flow(v4, HostHost, Node(1), Node(2)),
                yes(Some(false)),
            ),
            (
                "on: host→pod mixed, unchecked",
                &on,
                flow(v4, HostRemotePod, Node(1), Pod(2, 1)),
                yes(None),
            ),
            (
                "on: NAT outgoing",
                &on,
                flow(v6, PodOutside, Pod(1, 1), Ext),
                yes(Some(false)),
            ),
            (
                "v4 only: v6 plain",
                &v4_only,
                flow(v6, PodPodCrossNode, Pod(1, 1), Pod(2, 1)),
                yes(Some(false)),
            ),
            (
                "v4 only: v6 no NAT",
                &v4_only,
                flow(v6, PodOutside, Pod(1, 1), Ext),
                Expectation {
                    works: false,
                    encrypted: Some(false),
                },
            ),
            (
                "host: host encrypted",
                &host,
                flow(v6, HostHost, Node(1), Node(2)),
                yes(Some(true)),
            ),
            (
                "host: pod→host encrypted",
                &host,
                flow(v4, RemotePodHost, Pod(2, 1), Node(1)),
                yes(Some(true)),
            ),
            (
                "pool without NAT",
                &no_nat,
                flow(v4, PodOutside, Pod(1, 1), Ext),
                Expectation {
                    works: false,
                    encrypted: Some(false),
                },
            ),
            (
                "opted out node plain",
                &opted_out,
                flow(v4, PodPodCrossNode, Pod(1, 1), Pod(3, 1)),
                yes(Some(false)),
            ),
            (
                "others still encrypted",
                &opted_out,
                flow(v4, PodPodCrossNode, Pod(1, 1), Pod(2, 1)),
                yes(Some(true)),
            ),
            (
                "no WireGuard node plain",
                &no_wg,
                flow(v4, PodPodCrossNode, Pod(1, 1), Pod(2, 1)),
                yes(Some(false)),
            ),
            (
                "no WireGuard: host→pod plain",
                &no_wg,
                flow(v4, HostRemotePod, Node(1), Pod(2, 1)),
                yes(Some(false)),
            ),
        ];
        for (name, view, flow, want) in cases {
            assert_eq!(expect(&t, view, &flow), want, "{name}");
        }
    }

    #[test]
    fn control_plane_hosts_need_their_own_switch() {
        let mut v = view(both(true), true, true);
        v.nodes.insert(
            1,
            NodeFacts {
                control_plane: true,
                ..Default::default()
            },
        );
        assert!(!v.hosts_encrypted(1, 2, Family::V4));
        assert!(v.pods_encrypted(1, 2, Family::V4));
        v.control_plane_host_encryption = true;
        assert!(v.hosts_encrypted(1, 2, Family::V4));
    }
}
