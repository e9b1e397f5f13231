//! What a node may claim at all, before any comparison with the other nodes: its workload
//! destinations lie inside an enabled IPPool, its interface address inside its own pod CIDRs,
//! and nothing it claims touches the special ranges or what is local to this node (its
//! addresses, its pod CIDRs and workloads, the underlay subnets, the API server).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::crd::{IPPoolSpec, RouteSource};
use crate::net::{host_net, Family};
use crate::node::NodeView;
use crate::rules::pool_network;

use super::addresses::{own_interface_address, workload_nets};
use super::claims::{shown, Claim, ClaimKind};
use super::intervals::{Intervals, Span};
use super::mesh::Mesh;

/// Ranges no node's claim may touch, per family: (range, what it is).
const SPECIAL_V4: [(&str, &str); 5] = [
    ("0.0.0.0/8", "the unspecified range 0.0.0.0/8"),
    ("127.0.0.0/8", "the loopback range 127.0.0.0/8"),
    ("169.254.0.0/16", "the link-local range 169.254.0.0/16"),
    ("224.0.0.0/4", "the multicast range 224.0.0.0/4"),
    (
        "255.255.255.255/32",
        "the broadcast address 255.255.255.255",
    ),
];
const SPECIAL_V6: [(&str, &str); 5] = [
    ("::/128", "the unspecified address ::"),
    ("::1/128", "the loopback address ::1"),
    ("::ffff:0:0/96", "the IPv4-mapped range ::ffff:0:0/96"),
    ("fe80::/10", "the link-local range fe80::/10"),
    ("ff00::/8", "the multicast range ff00::/8"),
];

/// The shortest prefix a node may claim: anything wider reaches far beyond one node's pods
/// (a default route, a whole /1) and would draw foreign traffic into its tunnel.
fn shortest_prefix(family: Family) -> u8 {
    match family {
        Family::V4 => 8,
        Family::V6 => 16,
    }
}

/// What of this node a claim may not overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Local {
    Address,
    PodCidr,
    Workload,
    Interface,
    Protected,
}

impl fmt::Display for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Local::Address => "this node's address",
            Local::PodCidr => "this node's pod CIDR",
            Local::Workload => "this node's pod IP",
            Local::Interface => "this node's interface address",
            Local::Protected => "the API server's address",
        })
    }
}

/// The per-claim checks of one family.
pub(super) struct Guard {
    family: Family,
    route_source: RouteSource,
    /// Control-plane nodes' InternalIPs may be API server addresses in the tunnel.
    control_plane_host_encryption: bool,
    special: Vec<(Span, &'static str)>,
    pools: Vec<Span>,
    locals: Vec<(IpNet, Local)>,
    local_index: Intervals,
    subnets: Vec<(IpNet, Span)>,
}

impl Guard {
    pub fn new(mesh: &Mesh<'_>, family: Family) -> Self {
        let special = match family {
            Family::V4 => &SPECIAL_V4,
            Family::V6 => &SPECIAL_V6,
        };
        let locals = locals(mesh, family);
        let spanned = |net: IpNet| (net, Span::of(&net));
        Self {
            family,
            route_source: mesh.settings.route_source,
            control_plane_host_encryption: mesh.settings.control_plane_host_encryption,
            special: special
                .iter()
                .map(|(net, what)| (Span::of(&net.parse().expect("special range")), *what))
                .collect(),
            pools: enabled_pools(mesh.pools, family)
                .iter()
                .map(Span::of)
                .collect(),
            local_index: Intervals::new(locals.iter().map(|(net, _)| *net)),
            locals,
            subnets: underlay_subnets(mesh, family)
                .into_iter()
                .map(spanned)
                .collect(),
        }
    }

    /// Why `node` may not claim `claim` whatever the other nodes claim, ignoring the pools.
    pub fn refusal(&self, node: &NodeView, claim: &Claim) -> Option<String> {
        let shortest = shortest_prefix(self.family);
        if claim.net.prefix_len() < shortest {
            return Some(format!("is wider than /{shortest}"));
        }
        let span = claim.span();
        if let Some((_, what)) = self.special.iter().find(|(s, _)| s.overlaps(&span)) {
            return Some(format!("overlaps {what}"));
        }
        if let Some(local) = self.local_overlap(node, claim, &span) {
            return Some(local);
        }
        if let Some(subnet) = self.subnet_overlap(claim, &span) {
            return Some(subnet);
        }
        let own = |net: &IpNet| net.contains(&claim.net);
        (claim.kind == ClaimKind::Interface && !node.pod_cidrs.iter().any(own))
            .then(|| "lies outside its own pod CIDRs".to_owned())
    }

    /// Why a workload destination of a peer is refused by the pools, if it is.
    pub fn pool_refusal(&self, claim: &Claim) -> Option<String> {
        let pooled = || {
            let span = claim.span();
            self.pools.iter().any(|p| span.within(p))
        };
        if claim.kind != ClaimKind::Workload || pooled() {
            return None;
        }
        Some(format!(
            "lies outside every enabled {} IPPool (the IPPools must cover the pod CIDRs)",
            self.family
        ))
    }

    fn local_overlap(&self, node: &NodeView, claim: &Claim, span: &Span) -> Option<String> {
        if !self.local_index.overlaps(span) {
            return None;
        }
        let exempt = |local: Local| {
            local == Local::Protected
                && claim.kind == ClaimKind::NodeIp
                && node.control_plane
                && self.control_plane_host_encryption
        };
        self.locals
            .iter()
            .find(|(net, local)| overlaps(net, &claim.net) && !exempt(*local))
            .map(|(net, local)| format!("overlaps {local} {}", shown(net)))
    }

    /// Node IPs live in the underlay subnets by nature, and so do pod IPs where pods take
    /// addresses from the node network (WorkloadIPs with Azure CNI, AWS VPC CNI): those host
    /// prefixes may sit in an underlay subnet; nothing else may.
    fn subnet_overlap(&self, claim: &Claim, span: &Span) -> Option<String> {
        let host = claim.net.prefix_len() == claim.net.max_prefix_len();
        let exempt = claim.kind == ClaimKind::NodeIp
            || (claim.kind == ClaimKind::Workload
                && self.route_source == RouteSource::WorkloadIps
                && host);
        if exempt {
            return None;
        }
        self.subnets
            .iter()
            .find(|(_, subnet)| subnet.overlaps(span))
            .map(|(subnet, _)| format!("overlaps the underlay subnet {subnet}"))
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

fn enabled_pools(pools: &[IPPoolSpec], family: Family) -> Vec<IpNet> {
    pools
        .iter()
        .filter(|p| !p.disabled)
        .filter_map(|p| pool_network(&p.cidr).ok())
        .filter(|net| Family::of_net(net) == family)
        .collect()
}

/// This node's own addresses, pod CIDRs, workloads, interface address and the protected
/// addresses of `family`.
fn locals(mesh: &Mesh<'_>, family: Family) -> Vec<(IpNet, Local)> {
    let own = mesh.own;
    let facts = mesh.facts;
    let in_family = |net: &IpNet| Family::of_net(net) == family;
    let addresses = own
        .internal_ips_of(family)
        .chain(facts.local_addresses.iter().map(IpNet::addr))
        .map(host_net)
        .filter(in_family)
        .map(|net| (net, Local::Address));
    let pod_cidrs = own.pod_cidrs_of(family).map(|net| (net, Local::PodCidr));
    let workloads = (mesh.settings.route_source == RouteSource::WorkloadIps)
        .then(|| workload_nets(own, family, RouteSource::WorkloadIps))
        .into_iter()
        .flatten()
        .map(|net| (net, Local::Workload));
    let interface = own_interface_address(own, family).map(|net| (net, Local::Interface));
    let protected = facts
        .protected
        .iter()
        .filter(|ip| Family::of_addr(ip) == family)
        .map(|ip: &IpAddr| (host_net(*ip), Local::Protected));
    addresses
        .chain(pod_cidrs)
        .chain(workloads)
        .chain(interface)
        .chain(protected)
        .collect()
}

/// The subnets of this node's underlay addresses.
fn underlay_subnets(mesh: &Mesh<'_>, family: Family) -> Vec<IpNet> {
    let mut subnets: Vec<IpNet> = mesh
        .facts
        .local_addresses
        .iter()
        .filter(|net| Family::of_net(net) == family)
        .map(IpNet::trunc)
        .collect();
    subnets.sort_unstable();
    subnets.dedup();
    subnets
}
