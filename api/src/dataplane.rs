//! The dataplane of one node as data: what the planner wants, what the agent observes, and
//! what [`crate::diff`] compares. Every collection is kept sorted so two states compare equal
//! exactly when the node would behave the same.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::crd::BackendKind;
use crate::key::WireGuardKey;
use crate::net::{Family, PerFamily};

/// A node's whole dataplane as kube-encrypt manages it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataplane {
    pub families: PerFamily<FamilyDataplane>,
    /// The agent's one nftables table; `None` = the table does not exist.
    pub firewall: Option<FirewallSpec>,
    /// Kernel settings the mesh needs, sorted by key.
    pub sysctls: Vec<Sysctl>,
}

/// One family's WireGuard interface, peers, routes and rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyDataplane {
    /// `None` = no interface (family off, unsupported, or withdrawn).
    pub interface: Option<InterfaceSpec>,
    /// Sorted by public key.
    pub peers: Vec<PeerSpec>,
    /// Routes in the kube-encrypt routing table, sorted by (table, destination).
    pub routes: Vec<Route>,
    /// The policy rule sending unmarked traffic to the table; `None` = absent.
    pub rule: Option<RuleSpec>,
}

/// A WireGuard interface. The private key is not part of the plan: the agent owns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    pub name: String,
    /// Kernel module or userspace daemon.
    pub backend: BackendKind,
    pub listen_port: u16,
    pub fwmark: u32,
    pub mtu: u32,
    /// The interface's own address as a host prefix (`/32`, `/128`), if it has one.
    pub address: Option<IpNet>,
}

/// A WireGuard peer: another node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSpec {
    pub public_key: WireGuardKey,
    /// Node name, for logs and status; not programmed.
    pub node: String,
    pub endpoint: SocketAddr,
    /// Sorted.
    pub allowed_ips: Vec<IpNet>,
    /// Seconds, `None` = off.
    pub persistent_keepalive: Option<u16>,
}

/// A route in the kube-encrypt table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Route {
    /// The kube-encrypt routing table.
    pub table: u32,
    pub destination: IpNet,
    pub kind: RouteKind,
}

/// What the table does with a destination.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RouteKind {
    /// `<cidr> dev <interface>`: encrypt.
    Device(String),
    /// `throw <cidr>`: leave the table, route unencrypted by the main table.
    Throw,
    /// `unreachable <cidr> metric` [`UNREACHABLE_METRIC`]: the fallback under every device
    /// route. While the WireGuard interface exists its device route (lower metric) wins; when
    /// the interface vanishes (its userspace daemon died) the kernel removes the device routes
    /// and this one drops the traffic, instead of letting it fall through to the main table
    /// and leave the node in plaintext.
    Unreachable,
}

/// Metric of [`RouteKind::Unreachable`] routes: above the metric every other route of the
/// table gets (the kernel's default, 0 for IPv4 and 1024 for IPv6).
pub const UNREACHABLE_METRIC: u32 = 0xffff;

impl RouteKind {
    /// The route's metric when it is not the kernel's default.
    pub fn metric(&self) -> Option<u32> {
        match self {
            RouteKind::Unreachable => Some(UNREACHABLE_METRIC),
            RouteKind::Device(_) | RouteKind::Throw => None,
        }
    }
}

/// `priority P: not fwmark M/M lookup T`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub family: Family,
    pub priority: u32,
    pub table: u32,
    pub fwmark: u32,
    pub mask: u32,
}

/// The intent of the agent's nftables table (one `inet` table for both families).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallSpec {
    /// Accept WireGuard UDP in and out on these ports, sorted.
    pub wireguard_ports: Vec<u16>,
    /// Masquerade traffic leaving these WireGuard interfaces whose source is neither local
    /// nor one of `own_sources` (the peer would drop it as outside our allowed IPs).
    pub masquerade: Vec<InterfaceMasquerade>,
    /// NAT outgoing: masquerade traffic from these pools to destinations outside every pool,
    /// unless it leaves through a WireGuard interface.
    pub nat_outgoing: Vec<NatOutgoing>,
    /// With host encryption: mark packets arriving on these underlay interfaces with
    /// `rpf_mark` so reverse-path checks resolve through the main table.
    pub rpf: Option<RpfMark>,
    /// Clamp the MSS of TCP SYNs leaving through these WireGuard interfaces (forwarded and
    /// local) to the route's MTU, sorted: TCP works even where the ICMP "fragmentation
    /// needed" of path MTU discovery is filtered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clamp_mss: Vec<String>,
}

/// Masquerade rule for one WireGuard interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceMasquerade {
    pub interface: String,
    /// Sources that keep their address: the node's own allowed IPs, sorted.
    pub own_sources: Vec<IpNet>,
}

/// NAT outgoing for one family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatOutgoing {
    pub family: Family,
    /// Pools with `natOutgoing: true`, sorted.
    pub sources: Vec<IpNet>,
    /// Every enabled pool of the family, sorted: destinations that are never masqueraded.
    pub cluster: Vec<IpNet>,
    /// WireGuard interfaces whose traffic is never masqueraded here.
    pub exempt_interfaces: Vec<String>,
}

/// Reverse-path marking with host encryption.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpfMark {
    pub mark: u32,
    /// Underlay interfaces, sorted.
    pub interfaces: Vec<String>,
}

/// A kernel setting, such as `net.ipv4.conf.all.src_valid_mark = 1`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

impl Dataplane {
    pub fn family(&self, family: Family) -> &FamilyDataplane {
        self.families.get(family)
    }

    /// True when nothing of kube-encrypt is present.
    pub fn is_empty(&self) -> bool {
        self.families.iter().all(|(_, f)| f.is_empty())
            && self.firewall.is_none()
            && self.sysctls.is_empty()
    }
}

impl FamilyDataplane {
    pub fn is_empty(&self) -> bool {
        self.interface.is_none()
            && self.peers.is_empty()
            && self.routes.is_empty()
            && self.rule.is_none()
    }
}

impl PeerSpec {
    /// The peer's endpoint IP.
    pub fn endpoint_ip(&self) -> IpAddr {
        self.endpoint.ip()
    }
}
