//! Test builders for node views, Kubernetes Nodes and Pods, configs, pools and local facts,
//! shared by this crate's tests, its benchmark and the other crates' tests.
//!
//! ```
//! use kube_encrypt_api::fixtures::{self, TestNode};
//! use kube_encrypt_api::net::Family;
//! use kube_encrypt_api::node::NodeView;
//!
//! let view = NodeView::test("node-1")
//!     .with_internal_ip("192.0.2.11")
//!     .with_pod_cidr("198.18.1.0/24")
//!     .with_test_key(Family::V4);
//! let node = TestNode::new("node-1").internal_ip("192.0.2.11").pod_cidr("198.18.1.0/24").build();
//! assert_eq!(NodeView::from_node(&node).pod_cidrs, view.pod_cidrs);
//! assert_eq!(view.keys.v4, Some(fixtures::key("node-1", Family::V4)));
//! ```
//!
//! Addresses come from documentation ranges (192.0.2.0/24, 198.18.0.0/15, 2001:db8::/32);
//! [`cluster`] builds thousands of nodes from 172.16.0.0/12 and 10.0.0.0/8 as pure data.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeSpec, NodeStatus, Pod, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{Backend, EncryptionConfigSpec, IPPoolSpec, RouteSource};
use crate::dataplane::PeerSpec;
use crate::key::WireGuardKey;
use crate::net::{parse_network, Family, PerFamily};
use crate::node::{
    interface_annotation, key_annotation, NodeProblem, NodeView, CONTROL_PLANE_LABEL,
    ENCRYPTION_LABEL,
};
use crate::plan::{LocalFacts, WireGuardSupport};

/// A deterministic, valid WireGuard public key for `seed` and `family`.
pub fn key(seed: &str, family: Family) -> WireGuardKey {
    // FNV-1a over the seed, then splitmix64 to fill 32 bytes.
    let mut state = seed
        .bytes()
        .chain([family as u8])
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes[0] |= 1;
    WireGuardKey::from_bytes(bytes)
}

fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|_| panic!("fixture: {text:?} is not an IP"))
}

fn timestamp(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|_| panic!("fixture: {text:?} is not an RFC 3339 time"))
}

impl NodeView {
    /// A node with a name and nothing else.
    pub fn test(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    pub fn with_internal_ip(mut self, addr: &str) -> Self {
        self.internal_ips.push(ip(addr));
        self
    }

    /// Sets `metadata.creationTimestamp` (RFC 3339, such as `2026-01-01T00:00:00Z`).
    pub fn with_created(mut self, at: &str) -> Self {
        self.created = Some(timestamp(at));
        self
    }

    pub fn with_pod_cidr(mut self, cidr: &str) -> Self {
        self.pod_cidrs
            .push(parse_network(cidr).expect("fixture: pod CIDR"));
        self
    }

    pub fn with_key(mut self, family: Family, key: WireGuardKey) -> Self {
        *self.keys.get_mut(family) = Some(key);
        self
    }

    /// Publishes [`key`]`(name, family)`, the key [`LocalFacts::test`] gives the same node.
    pub fn with_test_key(self, family: Family) -> Self {
        let key = key(&self.name, family);
        self.with_key(family, key)
    }

    pub fn with_interface_addr(mut self, addr: &str) -> Self {
        let addr = ip(addr);
        *self.interface_addrs.get_mut(Family::of_addr(&addr)) = Some(addr);
        self
    }

    pub fn with_workload_ip(mut self, addr: &str) -> Self {
        self.workload_ips.push(ip(addr));
        self
    }

    /// Sets a label; the opt-out and control-plane flags follow the labels as in
    /// [`NodeView::from_node`].
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self.opted_out = self.labels.get(ENCRYPTION_LABEL).map(String::as_str) == Some("disabled");
        self.control_plane = self.labels.contains_key(CONTROL_PLANE_LABEL);
        self
    }

    pub fn opted_out(self) -> Self {
        self.with_label(ENCRYPTION_LABEL, "disabled")
    }

    pub fn control_plane(self) -> Self {
        self.with_label(CONTROL_PLANE_LABEL, "")
    }

    pub fn with_provider_id(mut self, id: &str) -> Self {
        self.provider_id = Some(id.to_owned());
        self
    }

    pub fn with_problem(mut self, field: &str, message: &str) -> Self {
        self.problems.push(NodeProblem {
            node: self.name.clone(),
            field: field.to_owned(),
            message: message.to_owned(),
        });
        self
    }

    /// `node-<i>`: InternalIP `192.0.2.<10+i>`, pod CIDR `198.18.<i>.0/24`, interface address
    /// `198.18.<i>.0` (the network address, as the planner gives it) and its IPv4 test key.
    pub fn test_v4(i: u8) -> Self {
        Self::test(&format!("node-{i}"))
            .with_internal_ip(&format!("192.0.2.{}", 10 + u16::from(i)))
            .with_pod_cidr(&format!("198.18.{i}.0/24"))
            .with_interface_addr(&format!("198.18.{i}.0"))
            .with_test_key(Family::V4)
    }

    /// [`NodeView::test_v4`] plus InternalIP `2001:db8::<10+i>`, pod CIDR
    /// `2001:db8:1:<i>::/64`, its IPv6 interface address `2001:db8:1:<i>::` and IPv6 test key.
    pub fn test_dual(i: u8) -> Self {
        Self::test_v4(i)
            .with_internal_ip(&format!("2001:db8::{:x}", 10 + u16::from(i)))
            .with_pod_cidr(&format!("2001:db8:1:{i:x}::/64"))
            .with_interface_addr(&format!("2001:db8:1:{i:x}::"))
            .with_test_key(Family::V6)
    }
}

impl EncryptionConfigSpec {
    /// The defaults with IPv4 encryption on.
    pub fn test() -> Self {
        let mut spec = Self::default();
        spec.ipv4.enabled = true;
        spec
    }

    pub fn with_ipv6(mut self) -> Self {
        self.ipv6.enabled = true;
        self
    }

    pub fn without_ipv4(mut self) -> Self {
        self.ipv4.enabled = false;
        self
    }

    pub fn with_host_encryption(mut self) -> Self {
        self.host_encryption = true;
        self
    }

    pub fn with_control_plane_host_encryption(mut self) -> Self {
        self.control_plane_host_encryption = true;
        self
    }

    pub fn with_route_source(mut self, source: RouteSource) -> Self {
        self.route_source = source;
        self
    }

    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    pub fn with_node_selector(mut self, selector: LabelSelector) -> Self {
        self.node_selector = Some(selector);
        self
    }

    /// Selects nodes labelled `key=value`.
    pub fn selecting(self, key: &str, value: &str) -> Self {
        self.with_node_selector(LabelSelector {
            match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
            match_expressions: None,
        })
    }

    pub fn with_keepalive(mut self, seconds: i64) -> Self {
        self.persistent_keepalive = seconds;
        self
    }

    pub fn with_mtu(mut self, family: Family, mtu: i64) -> Self {
        match family {
            Family::V4 => self.ipv4.mtu = mtu,
            Family::V6 => self.ipv6.mtu = mtu,
        }
        self
    }
}

/// The pools of the test nodes: `198.18.0.0/15` and `2001:db8:1::/48`, enabled, with NAT
/// outgoing.
pub fn test_pools() -> Vec<IPPoolSpec> {
    vec![
        IPPoolSpec::test("198.18.0.0/15"),
        IPPoolSpec::test("2001:db8:1::/48"),
    ]
}

impl IPPoolSpec {
    /// An enabled pool with NAT outgoing.
    pub fn test(cidr: &str) -> Self {
        Self {
            cidr: cidr.to_owned(),
            nat_outgoing: true,
            disabled: false,
        }
    }

    pub fn without_nat(mut self) -> Self {
        self.nat_outgoing = false;
        self
    }

    pub fn disabled(mut self) -> Self {
        self.disabled = true;
        self
    }
}

impl LocalFacts {
    /// Node `name` with a 1500-byte `eth0` underlay, userspace WireGuard only, and device keys
    /// equal to [`key`]`(name, family)` (what [`NodeView::with_test_key`] publishes); no local
    /// addresses, nothing protected, no peers on the device yet.
    pub fn test(name: &str) -> Self {
        Self {
            node_name: name.to_owned(),
            underlay_mtu: Some(1500),
            underlay_interfaces: vec!["eth0".to_owned()],
            wireguard: WireGuardSupport {
                kernel: false,
                userspace: true,
            },
            own_public_keys: PerFamily::from_fn(|family| Some(key(name, family))),
            local_addresses: Vec::new(),
            protected: Vec::new(),
            current_peers: PerFamily::default(),
        }
    }

    /// Adds an underlay address with its prefix length, such as `192.0.2.11/24`.
    pub fn with_local_address(mut self, net: &str) -> Self {
        let net: IpNet = net.parse().expect("fixture: local address with prefix");
        self.local_addresses.push(net);
        self
    }

    /// Adds an address that must never go into a tunnel (the API server's).
    pub fn with_protected(mut self, addr: &str) -> Self {
        self.protected.push(ip(addr));
        self
    }

    /// The peers the device has programmed for `family`.
    pub fn with_current_peers(mut self, family: Family, peers: Vec<PeerSpec>) -> Self {
        *self.current_peers.get_mut(family) = peers;
        self
    }

    pub fn with_wireguard(mut self, kernel: bool, userspace: bool) -> Self {
        self.wireguard = WireGuardSupport { kernel, userspace };
        self
    }

    pub fn with_underlay_mtu(mut self, mtu: Option<u32>) -> Self {
        self.underlay_mtu = mtu;
        self
    }

    pub fn with_own_key(mut self, family: Family, key: Option<WireGuardKey>) -> Self {
        *self.own_public_keys.get_mut(family) = key;
        self
    }
}

/// Builds a Kubernetes `Node`.
#[derive(Clone, Debug)]
pub struct TestNode(Node);

impl TestNode {
    pub fn new(name: &str) -> Self {
        Self(Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus::default()),
        })
    }

    pub fn internal_ip(mut self, addr: &str) -> Self {
        let status = self.0.status.get_or_insert_with(Default::default);
        status
            .addresses
            .get_or_insert_with(Vec::new)
            .push(NodeAddress {
                address: addr.to_owned(),
                type_: "InternalIP".to_owned(),
            });
        self
    }

    pub fn pod_cidr(mut self, cidr: &str) -> Self {
        let spec = self.0.spec.get_or_insert_with(Default::default);
        spec.pod_cidrs
            .get_or_insert_with(Vec::new)
            .push(cidr.to_owned());
        self
    }

    /// Sets `metadata.creationTimestamp` (RFC 3339).
    pub fn created(mut self, at: &str) -> Self {
        self.0.metadata.creation_timestamp = Some(Time(timestamp(at)));
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Publishes [`key`]`(name, family)`.
    pub fn test_key(self, family: Family) -> Self {
        let name = self.0.metadata.name.clone().unwrap_or_default();
        self.annotation(key_annotation(family), &key(&name, family).to_base64())
    }

    pub fn interface_addr(self, family: Family, addr: &str) -> Self {
        self.annotation(interface_annotation(family), addr)
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn build(self) -> Node {
        self.0
    }
}

/// Builds a Kubernetes `Pod`.
#[derive(Clone, Debug)]
pub struct TestPod(Pod);

impl TestPod {
    /// A running pod on `node`.
    pub fn new(name: &str, node: &str) -> Self {
        Self(Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("default".to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.to_owned()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".to_owned()),
                ..PodStatus::default()
            }),
        })
    }

    /// Adds a pod IP (`status.podIPs`, and `status.podIP` for the first).
    pub fn ip(mut self, addr: &str) -> Self {
        let status = self.0.status.get_or_insert_with(Default::default);
        status.pod_ip.get_or_insert_with(|| addr.to_owned());
        status.pod_ips.get_or_insert_with(Vec::new).push(PodIP {
            ip: addr.to_owned(),
        });
        self
    }

    pub fn host_network(mut self) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .host_network = Some(true);
        self
    }

    pub fn phase(mut self, phase: &str) -> Self {
        self.0.status.get_or_insert_with(Default::default).phase = Some(phase.to_owned());
        self
    }

    pub fn build(self) -> Pod {
        self.0
    }
}

/// A generated cluster, for scale tests and benchmarks.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
}

/// `nodes` Nodes named `node-00000`…, each with InternalIP `172.16.0.0 + i`, pod CIDR
/// `10.0.0.0/24 + i`, a published IPv4 key and interface address (the CIDR's network
/// address), and `pods_per_node` running pods with IPs from its pod CIDR. At most 65,536
/// nodes and 253 pods per node; the pools to plan them with: `10.0.0.0/8`.
pub fn cluster(nodes: usize, pods_per_node: usize) -> Cluster {
    assert!(
        nodes <= 1 << 16 && pods_per_node <= 253,
        "fixture: cluster too large"
    );
    let mut cluster = Cluster {
        nodes: Vec::with_capacity(nodes),
        pods: Vec::with_capacity(nodes * pods_per_node),
    };
    for i in 0..nodes as u32 {
        let name = format!("node-{i:05}");
        let node_ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 0)) + i);
        let cidr_base = u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (i << 8);
        let pod_ip = |host: u32| Ipv4Addr::from(cidr_base + host).to_string();
        cluster.nodes.push(
            TestNode::new(&name)
                .internal_ip(&node_ip.to_string())
                .pod_cidr(&format!("{}/24", Ipv4Addr::from(cidr_base)))
                .test_key(Family::V4)
                .interface_addr(Family::V4, &pod_ip(0))
                .build(),
        );
        for p in 0..pods_per_node as u32 {
            let pod = TestPod::new(&format!("pod-{i}-{p}"), &name).ip(&pod_ip(p + 1));
            cluster.pods.push(pod.build());
        }
    }
    cluster
}
