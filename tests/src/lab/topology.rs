//! Names and addresses of everything in the lab (SPEC §7). Pure: no I/O.
//!
//! ```text
//!  ke-lab:  bridge `underlay` 192.0.2.1/24 2001:db8::1/64   (API emulator :6443)
//!    ├── veth node-<i> ── ke-node-<i>: eth0 192.0.2.1<i> 2001:db8::1<i>
//!    │                       bridge cni0 198.18.<i>.1/24 2001:db8:1:<i>::1/64
//!    │                         └── veth p<j> ── ke-pod-<i>-<j>: eth0 198.18.<i>.<j+1>
//!    └── veth ext ──── ke-ext: eth0 192.0.2.200 2001:db8::200 (no route to pods)
//! ```

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use kube_encrypt_api::net::Family;
use serde::{Deserialize, Serialize};

/// The network namespace holding the underlay bridge and the API emulator.
pub const LAB_NETNS: &str = "ke-lab";
/// The network namespace of the host outside the cluster.
pub const EXT_NETNS: &str = "ke-ext";
/// The underlay bridge inside `ke-lab`.
pub const UNDERLAY_BRIDGE: &str = "underlay";
/// The underlay interface inside a node and inside `ke-ext`.
pub const UNDERLAY_IF: &str = "eth0";
/// The pod bridge inside a node (the host-gw CNI's gateway).
pub const POD_BRIDGE: &str = "cni0";
/// The interface of a pod.
pub const POD_IF: &str = "eth0";
/// The `ke-lab` end of `ke-ext`'s veth.
pub const EXT_UNDERLAY_PEER: &str = "ext";
/// Pods per node.
pub const PODS_PER_NODE: u8 = 2;
/// Largest lab: node `i` gets `192.0.2.1<i>`, which stays below `.200` (ke-ext) up to 89.
pub const MAX_NODES: u8 = 20;
/// The emulator's port on the underlay.
pub const API_PORT: u16 = 6443;
/// The webhook's port on the underlay.
pub const WEBHOOK_PORT: u16 = 8443;
/// The default underlay MTU.
pub const DEFAULT_MTU: u32 = 1500;

/// What `up` was asked to build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabSpec {
    pub nodes: u8,
    pub ipv6: bool,
    pub mtu: u32,
    /// Indexes of the nodes without a usable WireGuard.
    pub no_wireguard: BTreeSet<u8>,
    /// Which API server the lab runs.
    #[serde(default)]
    pub apiserver: ApiServerKind,
    /// The node whose namespaces hold etcd and kube-apiserver (labelled control-plane);
    /// `None`: they run in `ke-lab`.
    #[serde(default)]
    pub control_plane_on: Option<u8>,
}

/// The lab's API server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub enum ApiServerKind {
    /// The real control plane: etcd, kube-apiserver and kube-controller-manager built from
    /// their Go modules (`scripts/build-control-plane.sh`).
    Kube,
    /// The project's own Kubernetes API emulator (no Go needed).
    #[default]
    Emulator,
}

impl ApiServerKind {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Kube => "kube-apiserver (etcd, kube-apiserver, kube-controller-manager)",
            Self::Emulator => "API emulator",
        }
    }
}

/// Names and addresses of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlan {
    pub index: u8,
    /// The Kubernetes Node name.
    pub name: String,
    pub netns: String,
    /// The `ke-lab` end of the node's underlay veth (where `flows` captures).
    pub underlay_peer: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    pub pod_cidr_v4: Ipv4Net,
    pub pod_cidr_v6: Ipv6Net,
    pub wireguard: bool,
    pub pods: Vec<PodPlan>,
}

/// Names and addresses of one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlan {
    pub node: u8,
    pub index: u8,
    /// The Kubernetes Pod name (namespace `default`).
    pub name: String,
    pub netns: String,
    /// The node end of the pod's veth, attached to `cni0`.
    pub node_if: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

/// Every name and address of a lab built from a [`LabSpec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub spec: LabSpec,
    pub nodes: Vec<NodePlan>,
}

/// Why a [`LabSpec`] cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("--nodes must be 1-{MAX_NODES}, got {0}")]
    NodeCount(u8),
    #[error("--mtu must be 1280-9000 (IPv6 needs 1280), got {0}")]
    Mtu(u32),
    #[error("--no-wireguard {0}: no such node; nodes are node-1 … node-{1}")]
    UnknownNode(String, u8),
    #[error("--control-plane-on {0}: no such node; nodes are node-1 … node-{1}")]
    UnknownControlPlaneNode(String, u8),
    #[error("--control-plane-on needs the real control plane (--apiserver kube)")]
    ControlPlaneNeedsKube,
}

impl LabSpec {
    /// Checks the spec; `no_wireguard` holds node names (`node-2`) or indexes (`2`).
    pub fn new(
        nodes: u8,
        ipv6: bool,
        mtu: u32,
        no_wireguard: &[String],
    ) -> Result<Self, SpecError> {
        if nodes == 0 || nodes > MAX_NODES {
            return Err(SpecError::NodeCount(nodes));
        }
        if !(1280..=9000).contains(&mtu) {
            return Err(SpecError::Mtu(mtu));
        }
        let no_wireguard = no_wireguard
            .iter()
            .map(|name| {
                parse_node_ref(name, nodes)
                    .ok_or_else(|| SpecError::UnknownNode(name.clone(), nodes))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            nodes,
            ipv6,
            mtu,
            no_wireguard,
            apiserver: ApiServerKind::default(),
            control_plane_on: None,
        })
    }

    /// The same spec with `apiserver` as API server.
    pub fn with_apiserver(mut self, apiserver: ApiServerKind) -> Self {
        self.apiserver = apiserver;
        self
    }

    /// The same spec with the control plane on node `node` (`node-1` or `1`).
    pub fn with_control_plane_on(mut self, node: &str) -> Result<Self, SpecError> {
        if self.apiserver != ApiServerKind::Kube {
            return Err(SpecError::ControlPlaneNeedsKube);
        }
        let index = parse_node_ref(node, self.nodes)
            .ok_or_else(|| SpecError::UnknownControlPlaneNode(node.to_owned(), self.nodes))?;
        self.control_plane_on = Some(index);
        Ok(self)
    }
}

/// `node-2` or `2` → 2, when the lab has that node.
pub fn parse_node_ref(text: &str, nodes: u8) -> Option<u8> {
    let digits = text.strip_prefix("node-").unwrap_or(text);
    let index: u8 = digits.parse().ok()?;
    (1..=nodes).contains(&index).then_some(index)
}

impl Topology {
    pub fn new(spec: LabSpec) -> Self {
        let nodes = (1..=spec.nodes)
            .map(|i| node_plan(i, !spec.no_wireguard.contains(&i)))
            .collect();
        Self { spec, nodes }
    }

    pub fn node(&self, index: u8) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.index == index)
    }

    /// The node holding the control plane, if it runs on a node.
    pub fn control_plane_node(&self) -> Option<&NodePlan> {
        self.spec.control_plane_on.and_then(|i| self.node(i))
    }

    /// Where the API server listens, as nodes and `ke-lab` reach it: `192.0.2.1:6443`, or
    /// the control-plane node's address.
    pub fn api_addr(&self) -> SocketAddr {
        let ip = match self.control_plane_node() {
            Some(node) => IpAddr::V4(node.v4),
            None => lab_addr(Family::V4),
        };
        SocketAddr::new(ip, API_PORT)
    }

    /// The network namespace the API server runs in.
    pub fn api_netns(&self) -> &str {
        self.control_plane_node()
            .map_or(LAB_NETNS, |node| node.netns.as_str())
    }

    /// The families the lab carries: IPv4, plus IPv6 with `--ipv6`.
    pub fn families(&self) -> Vec<Family> {
        if self.spec.ipv6 {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }

    /// Every network namespace of the lab, in creation order.
    pub fn netns_names(&self) -> Vec<String> {
        let mut names = vec![LAB_NETNS.to_string(), EXT_NETNS.to_string()];
        for node in &self.nodes {
            names.push(node.netns.clone());
            names.extend(node.pods.iter().map(|p| p.netns.clone()));
        }
        names
    }
}

fn node_plan(i: u8, wireguard: bool) -> NodePlan {
    let pods = (1..=PODS_PER_NODE).map(|j| pod_plan(i, j)).collect();
    NodePlan {
        index: i,
        name: format!("node-{i}"),
        netns: format!("ke-node-{i}"),
        underlay_peer: format!("node-{i}"),
        v4: format!("192.0.2.1{i}")
            .parse()
            .expect("node index keeps the address valid"),
        v6: format!("2001:db8::1{i}")
            .parse()
            .expect("node index keeps the address valid"),
        pod_cidr_v4: Ipv4Net::new(Ipv4Addr::new(198, 18, i, 0), 24).expect("/24 is valid"),
        pod_cidr_v6: format!("2001:db8:1:{i}::/64")
            .parse()
            .expect("node index keeps the CIDR valid"),
        wireguard,
        pods,
    }
}

fn pod_plan(i: u8, j: u8) -> PodPlan {
    PodPlan {
        node: i,
        index: j,
        name: format!("pod-{i}-{j}"),
        netns: format!("ke-pod-{i}-{j}"),
        node_if: format!("p{j}"),
        // Pods start at .2 / ::2; .1 / ::1 is the node's cni0, .254 / ::fffe the WireGuard address.
        v4: Ipv4Addr::new(198, 18, i, j + 1),
        v6: format!("2001:db8:1:{i}::{:x}", j + 1)
            .parse()
            .expect("pod index keeps the address valid"),
    }
}

impl NodePlan {
    pub fn addr(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.v4.into(),
            Family::V6 => self.v6.into(),
        }
    }

    pub fn pod_cidr(&self, family: Family) -> IpNet {
        match family {
            Family::V4 => self.pod_cidr_v4.into(),
            Family::V6 => self.pod_cidr_v6.into(),
        }
    }

    /// The pod bridge's address: the pods' default gateway.
    pub fn gateway(&self, family: Family) -> IpAddr {
        nth_host(self.pod_cidr(family), 1)
    }
}

impl PodPlan {
    pub fn addr(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.v4.into(),
            Family::V6 => self.v6.into(),
        }
    }
}

/// The underlay address of `ke-lab` (API emulator, webhook) per family.
pub fn lab_addr(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        Family::V6 => "2001:db8::1".parse().expect("valid literal"),
    }
}

/// The address of the outside host `ke-ext` per family.
pub fn ext_addr(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200)),
        Family::V6 => "2001:db8::200".parse().expect("valid literal"),
    }
}

/// The prefix length of the underlay per family.
pub fn underlay_prefix(family: Family) -> u8 {
    match family {
        Family::V4 => 24,
        Family::V6 => 64,
    }
}

/// Where the webhook listens (in `ke-lab`), as the API server reaches it.
pub fn webhook_addr() -> SocketAddr {
    SocketAddr::new(lab_addr(Family::V4), WEBHOOK_PORT)
}

fn nth_host(net: IpNet, n: u8) -> IpAddr {
    match net {
        IpNet::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4.network()) + u32::from(n))),
        IpNet::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6.network()) + u128::from(n))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: u8) -> LabSpec {
        LabSpec::new(nodes, true, DEFAULT_MTU, &[]).unwrap()
    }

    #[test]
    fn addresses_follow_spec_section_7() {
        let topo = Topology::new(spec(3));
        let cases: [(u8, &str, &str, &str, &str); 2] = [
            (
                1,
                "192.0.2.11",
                "2001:db8::11",
                "198.18.1.0/24",
                "2001:db8:1:1::/64",
            ),
            (
                3,
                "192.0.2.13",
                "2001:db8::13",
                "198.18.3.0/24",
                "2001:db8:1:3::/64",
            ),
        ];
        for (i, v4, v6, cidr4, cidr6) in cases {
            let node = topo.node(i).unwrap();
            assert_eq!(node.v4.to_string(), v4);
            assert_eq!(node.v6.to_string(), v6);
            assert_eq!(node.pod_cidr_v4.to_string(), cidr4);
            assert_eq!(node.pod_cidr_v6.to_string(), cidr6);
            assert_eq!(node.netns, format!("ke-node-{i}"));
        }
    }

    #[test]
    fn pods_start_at_two_and_avoid_the_wireguard_addresses() {
        let topo = Topology::new(spec(2));
        let pods: Vec<_> = topo.nodes.iter().flat_map(|n| n.pods.iter()).collect();
        assert_eq!(pods.len(), 4);
        assert_eq!(pods[0].v4.to_string(), "198.18.1.2");
        assert_eq!(pods[1].v6.to_string(), "2001:db8:1:1::3");
        assert_eq!(pods[3].netns, "ke-pod-2-2");
        for pod in pods {
            assert_ne!(pod.v4.octets()[3], 254);
            assert_ne!(pod.v6.segments()[7], 0xfffe);
            let node = topo.node(pod.node).unwrap();
            assert!(node.pod_cidr_v4.contains(&pod.v4));
            assert!(node.pod_cidr_v6.contains(&pod.v6));
        }
    }

    #[test]
    fn gateways_are_the_first_host() {
        let topo = Topology::new(spec(2));
        let node = topo.node(2).unwrap();
        assert_eq!(node.gateway(Family::V4).to_string(), "198.18.2.1");
        assert_eq!(node.gateway(Family::V6).to_string(), "2001:db8:1:2::1");
    }

    #[test]
    fn spec_rejects_bad_input() {
        let cases: [(u8, u32, &[&str], Option<SpecError>); 6] = [
            (0, 1500, &[], Some(SpecError::NodeCount(0))),
            (21, 1500, &[], Some(SpecError::NodeCount(21))),
            (2, 1000, &[], Some(SpecError::Mtu(1000))),
            (
                2,
                1500,
                &["node-3"],
                Some(SpecError::UnknownNode("node-3".into(), 2)),
            ),
            (2, 1500, &["node-2"], None),
            (3, 9000, &["1", "node-3"], None),
        ];
        for (nodes, mtu, no_wg, want) in cases {
            let names: Vec<String> = no_wg.iter().map(|s| s.to_string()).collect();
            let got = LabSpec::new(nodes, false, mtu, &names);
            assert_eq!(got.err(), want, "nodes={nodes} mtu={mtu} no_wg={no_wg:?}");
        }
        let spec = LabSpec::new(3, false, 1500, &["1".into(), "node-3".into()]).unwrap();
        assert_eq!(
            spec.no_wireguard.into_iter().collect::<Vec<_>>(),
            vec![1, 3]
        );
    }

    #[test]
    fn the_control_plane_runs_on_a_node_only_with_kube() {
        let base = LabSpec::new(3, false, DEFAULT_MTU, &[]).unwrap();
        assert_eq!(
            base.clone().with_control_plane_on("node-1").err(),
            Some(SpecError::ControlPlaneNeedsKube)
        );
        let kube = base.with_apiserver(ApiServerKind::Kube);
        assert_eq!(
            kube.clone().with_control_plane_on("node-4").err(),
            Some(SpecError::UnknownControlPlaneNode("node-4".into(), 3))
        );
        let topo = Topology::new(kube.clone().with_control_plane_on("2").unwrap());
        assert_eq!(topo.api_addr().to_string(), "192.0.2.12:6443");
        assert_eq!(topo.api_netns(), "ke-node-2");
        let in_lab = Topology::new(kube);
        assert_eq!(in_lab.api_addr().to_string(), "192.0.2.1:6443");
        assert_eq!(in_lab.api_netns(), LAB_NETNS);
    }

    #[test]
    fn node_refs_accept_names_and_indexes() {
        let cases = [
            ("node-2", Some(2)),
            ("2", Some(2)),
            ("node-4", None),
            ("0", None),
            ("x", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_node_ref(text, 3), want, "{text}");
        }
    }

    #[test]
    fn netns_names_cover_every_namespace() {
        let names = Topology::new(spec(2)).netns_names();
        assert_eq!(
            names,
            [
                "ke-lab",
                "ke-ext",
                "ke-node-1",
                "ke-pod-1-1",
                "ke-pod-1-2",
                "ke-node-2",
                "ke-pod-2-1",
                "ke-pod-2-2"
            ]
        );
    }
}
