//! Who is in the mesh, as node N sees it: for each family, which other nodes become WireGuard
//! peers (with their allowed IPs) and which are left out (and why), so their destinations are
//! thrown back to unencrypted routing.
//!
//! ```text
//!  every other node ─► candidacy (selected, key, endpoint, key not a copy)
//!                   ─► claims (workloads, interface address, InternalIPs)
//!                   ─► guard (pools, special ranges, this node's own ranges)
//!                   ─► contests (overlaps between nodes: the established claimant keeps it)
//!                   ─► peers | skipped (+ throws that overlap nothing legitimate)
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::crd::{IPPoolSpec, RouteSource};
use crate::dataplane::PeerSpec;
use crate::key::WireGuardKey;
use crate::net::{host_net, Family};
use crate::node::{key_annotation, NodeView, ENCRYPTION_LABEL};

use super::addresses::{normalized, push_uncovered, workload_nets};
use super::claims::{contests, Claim, ClaimKind, Claims};
use super::guard::Guard;
use super::intervals::Intervals;
use super::selector::NodeSelector;
use super::settings::Settings;
use super::standing::Device;
use super::{LocalFacts, SkippedPeer};

/// Why a whole node (both families) stays out of the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Exclusion {
    OptedOut,
    NotSelected,
}

impl Exclusion {
    pub fn of(node: &NodeView, selector: &NodeSelector) -> Option<Self> {
        if node.opted_out {
            Some(Self::OptedOut)
        } else if !selector.matches(&node.labels) {
            Some(Self::NotSelected)
        } else {
            None
        }
    }

    pub fn reason(self) -> String {
        match self {
            Self::OptedOut => format!("opted out by label {ENCRYPTION_LABEL}=disabled"),
            Self::NotSelected => "not selected by spec.nodeSelector".to_owned(),
        }
    }
}

/// The cluster as node N plans it.
pub(super) struct Mesh<'a> {
    pub settings: &'a Settings,
    pub nodes: &'a [NodeView],
    pub pools: &'a [IPPoolSpec],
    pub own: &'a NodeView,
    pub facts: &'a LocalFacts,
    /// Per node (same index as `nodes`): why it is out of the mesh altogether.
    exclusions: Vec<Option<Exclusion>>,
}

/// Node N's view of one family's mesh.
#[derive(Debug, Default)]
pub(super) struct Members {
    /// Sorted by public key.
    pub peers: Vec<PeerSpec>,
    /// Sorted by node.
    pub skipped: Vec<SkippedPeer>,
    /// Destinations of the skipped nodes, to be thrown (unsorted).
    pub throws: Vec<IpNet>,
}

/// How node N's own key for one family stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum OwnKey {
    /// Published and equal to the device's key.
    Consistent,
    /// Not yet published as the device has it: peers cannot know it yet.
    Publishing,
}

/// Why a node is not a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Skip {
    reason: String,
    /// The node's own data was refused (a copied key, addresses it may not claim).
    refused: bool,
}

impl Skip {
    fn benign(reason: String) -> Self {
        Self {
            reason,
            refused: false,
        }
    }

    fn refused(reason: String) -> Self {
        Self {
            reason,
            refused: true,
        }
    }
}

/// Where a node stands before its addresses are looked at.
enum Candidacy {
    Own,
    Peer { key: WireGuardKey, endpoint: IpAddr },
    Out(Skip),
}

/// Who publishes a key: how many nodes, and the established one among them.
#[derive(Clone, Copy, Debug)]
struct Holders {
    keeper: usize,
    count: usize,
}

impl<'a> Mesh<'a> {
    pub fn new(
        settings: &'a Settings,
        snapshot: &super::Snapshot<'a>,
        own: &'a NodeView,
        facts: &'a LocalFacts,
        selector: &NodeSelector,
    ) -> Self {
        let exclusions = snapshot
            .nodes
            .iter()
            .map(|n| Exclusion::of(n, selector))
            .collect();
        Self {
            settings,
            nodes: snapshot.nodes,
            pools: snapshot.pools,
            own,
            facts,
            exclusions,
        }
    }

    /// Peers, skipped nodes and their destinations for `family`.
    pub fn members(&self, family: Family) -> Members {
        let device = Device::new(family, self.facts.current_peers.get(family));
        let holders = key_holders(self.nodes, family, &device);
        let candidacy: Vec<Candidacy> = (0..self.nodes.len())
            .map(|i| self.candidacy(i, family, &holders, &device))
            .collect();
        let claims = self.claims(family, &candidacy);
        let guard = Guard::new(self, family);
        let checked = self.check(&guard, &candidacy, &claims);
        let source = self.settings.route_source;
        let lost = contests(self.nodes, &claims, &checked.competing, &device, source);
        self.assemble(family, candidacy, &claims, checked, lost)
    }

    /// How node N's own key for `family` stands. Another node publishing the same key does
    /// not change it: the device key is this node's own, so the other node is the copy.
    pub fn own_key(&self, family: Family) -> OwnKey {
        let device = *self.facts.own_public_keys.get(family);
        match device {
            Some(key) if *self.own.keys.get(family) == Some(key) => OwnKey::Consistent,
            _ => OwnKey::Publishing,
        }
    }

    /// Node N's own destinations of `family`: the ones it throws back to the main table.
    pub fn own_workload_nets(&self, family: Family) -> Vec<IpNet> {
        workload_nets(self.own, family, self.settings.route_source)
    }

    /// The peer's key and endpoint address, or why it is not a peer.
    fn candidacy(
        &self,
        index: usize,
        family: Family,
        holders: &HashMap<WireGuardKey, Holders>,
        device: &Device<'_>,
    ) -> Candidacy {
        let node = &self.nodes[index];
        if node.name == self.own.name {
            return Candidacy::Own;
        }
        if let Some(exclusion) = self.exclusions[index] {
            return Candidacy::Out(Skip::benign(exclusion.reason()));
        }
        let Some(key) = *node.keys.get(family) else {
            return Candidacy::Out(Skip::benign(missing_key_reason(node, family)));
        };
        let Some(endpoint) = node.endpoint_ip(family) else {
            return Candidacy::Out(Skip::benign(format!(
                "has no {family} InternalIP to use as WireGuard endpoint"
            )));
        };
        if *self.facts.own_public_keys.get(family) == Some(key) {
            return Candidacy::Out(Skip::refused(format!(
                "refused: publishes this node's own {family} public key, a copy (this node keeps \
                 its key and stays encrypted)"
            )));
        }
        let keeper = holders[&key].keeper;
        if keeper != index {
            let other = &self.nodes[keeper];
            let why = device
                .key_standing(other, key)
                .why_over(&device.key_standing(node, key));
            return Candidacy::Out(Skip::refused(format!(
                "refused: publishes the same {family} public key as node {}, which keeps it ({why})",
                other.name
            )));
        }
        Candidacy::Peer { key, endpoint }
    }

    /// What every other node claims: its workload destinations, its interface address (peers
    /// only: nobody else's is used) and its InternalIPs (routed with host encryption).
    fn claims(&self, family: Family, candidacy: &[Candidacy]) -> Claims {
        let settings = self.settings;
        let workloads: usize = match settings.route_source {
            RouteSource::PodCidrs => self.nodes.len(),
            RouteSource::WorkloadIps => self.nodes.iter().map(|n| n.workload_ips.len()).sum(),
        };
        let mut claims = Claims {
            all: Vec::with_capacity(workloads + self.nodes.len() * 2),
            ranges: Vec::with_capacity(self.nodes.len()),
        };
        for (index, node) in self.nodes.iter().enumerate() {
            let start = claims.all.len();
            let mut add = |net: IpNet, kind: ClaimKind, routed: bool| {
                claims.all.push(Claim {
                    node: index,
                    net,
                    kind,
                    routed,
                })
            };
            let peer = match &candidacy[index] {
                Candidacy::Own => None,
                Candidacy::Peer { .. } => Some(true),
                Candidacy::Out(_) => Some(false),
            };
            if let Some(peer) = peer {
                match settings.route_source {
                    RouteSource::PodCidrs => node
                        .pod_cidrs_of(family)
                        .for_each(|net| add(net, ClaimKind::Workload, true)),
                    RouteSource::WorkloadIps => node
                        .workload_ips
                        .iter()
                        .filter(|ip| Family::of_addr(ip) == family)
                        .for_each(|ip| add(host_net(*ip), ClaimKind::Workload, true)),
                }
                if let (true, Some(addr)) = (peer, node.interface_addrs.get(family)) {
                    add(host_net(*addr), ClaimKind::Interface, true);
                }
                let host = settings.host_encryption
                    && !settings.exempts_host_traffic(self.own.control_plane, node.control_plane);
                for ip in node.internal_ips_of(family) {
                    add(host_net(ip), ClaimKind::NodeIp, host);
                }
            }
            claims.ranges.push(start..claims.all.len());
        }
        claims
    }

    /// Checks every routed claim on its own: which claims are sane (for throws), which peers
    /// are refused and why, and which nodes compete for their claims.
    fn check(&self, guard: &Guard, candidacy: &[Candidacy], claims: &Claims) -> Checked {
        let source = self.settings.route_source;
        let mut checked = Checked {
            sane: vec![true; claims.all.len()],
            refusals: vec![None; self.nodes.len()],
            competing: vec![false; self.nodes.len()],
        };
        for (index, node) in self.nodes.iter().enumerate() {
            let peer = matches!(candidacy[index], Candidacy::Peer { .. });
            let mut refusal = None;
            for offset in claims.ranges[index].clone() {
                let claim = &claims.all[offset];
                if !claim.routed {
                    continue;
                }
                let problem = guard.refusal(node, claim);
                checked.sane[offset] = problem.is_none();
                let problem = problem.or_else(|| guard.pool_refusal(claim).filter(|_| peer));
                if let (None, Some(problem)) = (&refusal, problem) {
                    refusal = Some(format!(
                        "refused: its {} {} {problem}",
                        claim.kind.name(source),
                        super::claims::shown(&claim.net)
                    ));
                }
            }
            let own = matches!(candidacy[index], Candidacy::Own);
            checked.competing[index] = !own && refusal.is_none();
            checked.refusals[index] = refusal.filter(|_| peer);
        }
        checked
    }

    /// Peers from the candidates that passed, every other node skipped, and the skipped
    /// nodes' sane destinations thrown where no peer's allowed IPs are.
    fn assemble(
        &self,
        family: Family,
        candidacy: Vec<Candidacy>,
        claims: &Claims,
        checked: Checked,
        mut lost: Vec<Option<String>>,
    ) -> Members {
        let mut members = Members {
            peers: Vec::with_capacity(self.nodes.len()),
            ..Members::default()
        };
        let mut thrown: Vec<usize> = Vec::new();
        let mut refusals = checked.refusals;
        for (index, candidate) in candidacy.into_iter().enumerate() {
            let node = &self.nodes[index];
            let skip = match candidate {
                Candidacy::Own => continue,
                Candidacy::Out(skip) => skip,
                Candidacy::Peer { key, endpoint } => {
                    match refusals[index].take().or_else(|| lost[index].take()) {
                        Some(reason) => Skip::refused(reason),
                        None => {
                            let peer = self.peer(node, family, key, endpoint, claims.of(index));
                            members.peers.push(peer);
                            continue;
                        }
                    }
                }
            };
            thrown.extend(claims.ranges[index].clone().filter(|&offset| {
                let claim = &claims.all[offset];
                claim.routed && claim.kind != ClaimKind::Interface && checked.sane[offset]
            }));
            members.skipped.push(SkippedPeer {
                node: node.name.clone(),
                family,
                reason: skip.reason,
                refused: skip.refused,
            });
        }
        members.throws = throws(&members.peers, claims, &thrown);
        members.peers.sort_unstable_by_key(|p| p.public_key);
        members.skipped.sort();
        members
    }

    fn peer(
        &self,
        node: &NodeView,
        family: Family,
        key: WireGuardKey,
        ip: IpAddr,
        claims: &[Claim],
    ) -> PeerSpec {
        let settings = self.settings;
        let mut allowed_ips: Vec<IpNet> = claims
            .iter()
            .filter(|c| c.routed && c.kind != ClaimKind::Interface)
            .map(|c| c.net)
            .collect();
        for claim in claims.iter().filter(|c| c.kind == ClaimKind::Interface) {
            push_uncovered(&mut allowed_ips, claim.net.addr());
        }
        PeerSpec {
            public_key: key,
            node: node.name.clone(),
            endpoint: SocketAddr::new(ip, settings.family(family).port),
            allowed_ips: normalized(allowed_ips),
            persistent_keepalive: settings.keepalive,
        }
    }
}

/// The outcome of the per-claim checks.
struct Checked {
    /// Per claim: passes the guard, pools aside.
    sane: Vec<bool>,
    /// Per node: why a peer candidate is refused.
    refusals: Vec<Option<String>>,
    /// Per node: takes part in the contests (its claims are all acceptable).
    competing: Vec<bool>,
}

/// The claims at `offsets` that overlap no peer's allowed IPs: throwing one that did would
/// send part of a peer's traffic around its tunnel.
fn throws(peers: &[PeerSpec], claims: &Claims, offsets: &[usize]) -> Vec<IpNet> {
    if offsets.is_empty() {
        return Vec::new();
    }
    let routed = Intervals::new(peers.iter().flat_map(|p| p.allowed_ips.iter().copied()));
    offsets
        .iter()
        .map(|&offset| &claims.all[offset])
        .filter(|claim| !routed.overlaps(&claim.span()))
        .map(|claim| claim.net)
        .collect()
}

/// Every published key of `family`, how many nodes publish it and which of them keeps it.
fn key_holders(
    nodes: &[NodeView],
    family: Family,
    device: &Device<'_>,
) -> HashMap<WireGuardKey, Holders> {
    let mut holders: HashMap<WireGuardKey, Holders> = HashMap::with_capacity(nodes.len());
    let mut shared = false;
    for (index, node) in nodes.iter().enumerate() {
        let Some(key) = *node.keys.get(family) else {
            continue;
        };
        let entry = holders.entry(key).or_insert(Holders {
            keeper: index,
            count: 0,
        });
        entry.count += 1;
        shared |= entry.count > 1;
    }
    if !shared {
        return holders;
    }
    for (index, node) in nodes.iter().enumerate() {
        let Some(key) = *node.keys.get(family) else {
            continue;
        };
        let entry = holders.get_mut(&key).expect("counted above");
        let keeper = &nodes[entry.keeper];
        if entry.count > 1 && device.key_standing(node, key) < device.key_standing(keeper, key) {
            entry.keeper = index;
        }
    }
    holders
}

fn missing_key_reason(node: &NodeView, family: Family) -> String {
    let field = format!("metadata.annotations[{}]", key_annotation(family));
    match node.problems.iter().find(|p| p.field == field) {
        Some(problem) => format!(
            "malformed {family} public key annotation: {}",
            problem.message
        ),
        None => format!("publishes no {family} public key (off, unsupported or not running)"),
    }
}
