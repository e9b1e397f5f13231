//! Who is in the mesh, as node N sees it: for each family, which other nodes become WireGuard
//! peers (with their allowed IPs) and which are left out (and why), so their destinations are
//! thrown back to unencrypted routing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::dataplane::PeerSpec;
use crate::key::WireGuardKey;
use crate::net::Family;
use crate::node::{key_annotation, NodeView, ENCRYPTION_LABEL};

use super::addresses::{node_ip_nets, normalized, push_uncovered, workload_nets};
use super::selector::NodeSelector;
use super::settings::Settings;
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
    /// Published and equal to the device's key, and nobody else's.
    Consistent,
    /// Not yet published as the device has it: peers cannot know it yet.
    Publishing,
    /// Another node publishes the device's key too, so no peer programs this node.
    DuplicateOf(String),
}

/// Who publishes a key: how many nodes, and the two with the smallest names (so the reason
/// naming the other holder does not depend on the order of the nodes).
#[derive(Clone, Copy, Debug)]
struct Holders {
    first: usize,
    second: usize,
    count: usize,
}

impl Holders {
    fn one(index: usize) -> Self {
        Self {
            first: index,
            second: index,
            count: 1,
        }
    }

    fn add(&mut self, index: usize, nodes: &[NodeView]) {
        let name = |i: usize| nodes[i].name.as_str();
        if self.count == 1 || name(index) < name(self.second) {
            self.second = index;
        }
        if name(self.second) < name(self.first) {
            std::mem::swap(&mut self.first, &mut self.second);
        }
        self.count += 1;
    }
}

impl<'a> Mesh<'a> {
    pub fn new(
        settings: &'a Settings,
        nodes: &'a [NodeView],
        own: &'a NodeView,
        facts: &'a LocalFacts,
        selector: &NodeSelector,
    ) -> Self {
        let exclusions = nodes.iter().map(|n| Exclusion::of(n, selector)).collect();
        Self {
            settings,
            nodes,
            own,
            facts,
            exclusions,
        }
    }

    /// Peers, skipped nodes and their destinations for `family`.
    pub fn members(&self, family: Family) -> Members {
        let holders = key_holders(self.nodes, family);
        let mut members = Members {
            peers: Vec::with_capacity(self.nodes.len()),
            ..Members::default()
        };
        for (index, node) in self.nodes.iter().enumerate() {
            if node.name == self.own.name {
                continue;
            }
            match self.classify(index, family, &holders) {
                Ok((public_key, endpoint)) => {
                    members
                        .peers
                        .push(self.peer(node, family, public_key, endpoint));
                }
                Err(reason) => {
                    members.throws.extend(self.destinations(node, family));
                    members.skipped.push(SkippedPeer {
                        node: node.name.clone(),
                        family,
                        reason,
                    });
                }
            }
        }
        members.peers.sort_unstable_by_key(|p| p.public_key);
        members.skipped.sort();
        members
    }

    /// How node N's own key for `family` stands.
    pub fn own_key(&self, family: Family) -> OwnKey {
        let device = *self.facts.own_public_keys.get(family);
        let published = *self.own.keys.get(family);
        let twin = device.and_then(|key| {
            self.nodes
                .iter()
                .filter(|n| n.name != self.own.name && *n.keys.get(family) == Some(key))
                .min_by(|a, b| a.name.cmp(&b.name))
        });
        match (twin, device) {
            (Some(twin), _) => OwnKey::DuplicateOf(twin.name.clone()),
            (None, Some(key)) if published == Some(key) => OwnKey::Consistent,
            _ => OwnKey::Publishing,
        }
    }

    /// Node N's own destinations of `family`: the ones it throws back to the main table.
    pub fn own_workload_nets(&self, family: Family) -> Vec<IpNet> {
        workload_nets(self.own, family, self.settings.route_source)
    }

    /// The peer's key and endpoint address, or why it is not a peer.
    fn classify(
        &self,
        index: usize,
        family: Family,
        holders: &HashMap<WireGuardKey, Holders>,
    ) -> Result<(WireGuardKey, IpAddr), String> {
        let node = &self.nodes[index];
        if let Some(exclusion) = self.exclusions[index] {
            return Err(exclusion.reason());
        }
        let Some(key) = *node.keys.get(family) else {
            return Err(missing_key_reason(node, family));
        };
        let Some(endpoint) = node.endpoint_ip(family) else {
            return Err(format!(
                "has no {family} InternalIP to use as WireGuard endpoint"
            ));
        };
        if *self.facts.own_public_keys.get(family) == Some(key) {
            return Err(format!("publishes this node's own {family} public key"));
        }
        let h = holders[&key];
        if h.count > 1 {
            let other = if h.first == index { h.second } else { h.first };
            return Err(format!(
                "publishes the same {family} public key as node {}; neither is programmed",
                self.nodes[other].name
            ));
        }
        Ok((key, endpoint))
    }

    fn peer(&self, node: &NodeView, family: Family, key: WireGuardKey, ip: IpAddr) -> PeerSpec {
        let settings = self.settings;
        let mut allowed_ips = workload_nets(node, family, settings.route_source);
        if let Some(addr) = *node.interface_addrs.get(family) {
            push_uncovered(&mut allowed_ips, addr);
        }
        if settings.host_encryption
            && !settings.exempts_host_traffic(self.own.control_plane, node.control_plane)
        {
            allowed_ips.extend(node_ip_nets(node, family));
        }
        PeerSpec {
            public_key: key,
            node: node.name.clone(),
            endpoint: SocketAddr::new(ip, settings.family(family).port),
            allowed_ips: normalized(allowed_ips),
            persistent_keepalive: settings.keepalive,
        }
    }

    /// What traffic to a skipped node goes to: its workloads (and, with host encryption, its
    /// node IPs). All of it is thrown so it keeps flowing unencrypted.
    fn destinations(&self, node: &NodeView, family: Family) -> Vec<IpNet> {
        let mut nets = workload_nets(node, family, self.settings.route_source);
        if self.settings.host_encryption {
            nets.extend(node_ip_nets(node, family));
        }
        nets
    }
}

/// Every published key of `family` and who publishes it.
fn key_holders(nodes: &[NodeView], family: Family) -> HashMap<WireGuardKey, Holders> {
    let mut holders: HashMap<WireGuardKey, Holders> = HashMap::with_capacity(nodes.len());
    for (index, node) in nodes.iter().enumerate() {
        let Some(key) = *node.keys.get(family) else {
            continue;
        };
        holders
            .entry(key)
            .and_modify(|h| h.add(index, nodes))
            .or_insert(Holders::one(index));
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
