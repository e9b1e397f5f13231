//! What every node claims of one family's address space, and who keeps what two nodes claim
//! at once: the established one ([`super::standing`]); the other loses.

use std::cmp::Reverse;
use std::ops::Range;

use ipnet::IpNet;

use crate::crd::RouteSource;
use crate::node::NodeView;

use super::intervals::span;
use super::standing::{Device, Standing};

/// What a claimed prefix is to its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClaimKind {
    /// A pod CIDR (`PodCIDRs`) or a pod IP (`WorkloadIPs`).
    Workload,
    /// The published `interface-ipv4` / `interface-ipv6` address.
    Interface,
    /// An InternalIP.
    NodeIp,
}

impl ClaimKind {
    pub fn name(self, source: RouteSource) -> &'static str {
        match (self, source) {
            (ClaimKind::Workload, RouteSource::PodCidrs) => "pod CIDR",
            (ClaimKind::Workload, RouteSource::WorkloadIps) => "pod IP",
            (ClaimKind::Interface, _) => "interface address",
            (ClaimKind::NodeIp, _) => "InternalIP",
        }
    }
}

/// One prefix one node claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Claim {
    /// Index of the node in the snapshot.
    pub node: usize,
    pub net: IpNet,
    pub kind: ClaimKind,
    /// Sent through the node's tunnel when it is a peer, thrown when it is not. A claim that is
    /// not routed (an InternalIP without host encryption) still reserves its address: no other
    /// node may route it.
    pub routed: bool,
}

/// The claims of every node, flat, and each node's range in it.
#[derive(Debug, Default)]
pub(super) struct Claims {
    pub all: Vec<Claim>,
    /// Per node, same index as the snapshot's nodes.
    pub ranges: Vec<Range<usize>>,
}

impl Claims {
    pub fn of(&self, node: usize) -> &[Claim] {
        &self.all[self.ranges[node].clone()]
    }
}

/// A claim as a span, for the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Spot {
    first: u128,
    last: Reverse<u128>,
    claim: usize,
}

/// Every pair of claims of two different competing nodes that overlap, where at least one of
/// the two is routed. Prefixes either nest or are disjoint, so one sweep in address order with
/// a stack of the enclosing prefixes finds them all.
fn overlapping_pairs(claims: &Claims, competing: &[bool]) -> Vec<(usize, usize)> {
    let mut spots: Vec<Spot> = claims
        .all
        .iter()
        .enumerate()
        .filter(|(_, c)| competing[c.node])
        .map(|(index, c)| {
            let (first, last) = span(&c.net);
            Spot {
                first,
                last: Reverse(last),
                claim: index,
            }
        })
        .collect();
    spots.sort_unstable();
    let mut enclosing: Vec<Spot> = Vec::new();
    let mut pairs = Vec::new();
    for spot in spots {
        while enclosing.last().is_some_and(|e| e.last.0 < spot.first) {
            enclosing.pop();
        }
        let claim = &claims.all[spot.claim];
        for outer in &enclosing {
            let other = &claims.all[outer.claim];
            if other.node != claim.node && (other.routed || claim.routed) {
                pairs.push((outer.claim, spot.claim));
            }
        }
        enclosing.push(spot);
    }
    pairs
}

/// One decided contest.
struct Contest<'a> {
    winner: Standing<'a>,
    winner_claim: usize,
    loser_claim: usize,
    why: &'static str,
}

/// Which competing nodes lose a contest, with the reason (same index as `nodes`). Contests are
/// decided strongest winner first, and a contest with a node that already lost is moot, so a
/// node that loses to a loser is not punished for it.
pub(super) fn contests(
    nodes: &[NodeView],
    claims: &Claims,
    competing: &[bool],
    device: &Device<'_>,
    source: RouteSource,
) -> Vec<Option<String>> {
    let mut lost: Vec<Option<String>> = vec![None; nodes.len()];
    let pairs = overlapping_pairs(claims, competing);
    if pairs.is_empty() {
        return lost;
    }
    let standing = |claim: usize| {
        let c = &claims.all[claim];
        device.net_standing(&nodes[c.node], c.net)
    };
    let mut decided: Vec<Contest<'_>> = pairs
        .into_iter()
        .map(|(a, b)| {
            let (sa, sb) = (standing(a), standing(b));
            let (winner, loser, ws, ls) = if sa < sb {
                (a, b, sa, sb)
            } else {
                (b, a, sb, sa)
            };
            Contest {
                winner: ws,
                winner_claim: winner,
                loser_claim: loser,
                why: ws.why_over(&ls),
            }
        })
        .collect();
    let loser_name = |c: &Contest<'_>| nodes[claims.all[c.loser_claim].node].name.as_str();
    let nets = |c: &Contest<'_>| {
        (
            claims.all[c.winner_claim].net,
            claims.all[c.loser_claim].net,
        )
    };
    decided.sort_by(|a, b| {
        (a.winner, loser_name(a), nets(a)).cmp(&(b.winner, loser_name(b), nets(b)))
    });
    for contest in decided {
        let (won, lose) = (
            &claims.all[contest.winner_claim],
            &claims.all[contest.loser_claim],
        );
        if lost[won.node].is_some() || lost[lose.node].is_some() {
            continue;
        }
        lost[lose.node] = Some(format!(
            "refused: its {} {} overlaps the {} {} of node {}, which keeps it ({})",
            lose.kind.name(source),
            shown(&lose.net),
            won.kind.name(source),
            shown(&won.net),
            nodes[won.node].name,
            contest.why
        ));
    }
    lost
}

/// A host prefix as its address, any other prefix as itself.
pub(super) fn shown(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(node: usize, net: &str, routed: bool) -> Claim {
        Claim {
            node,
            net: net.parse().unwrap(),
            kind: ClaimKind::Workload,
            routed,
        }
    }

    #[test]
    fn the_sweep_finds_every_overlap_between_nodes() {
        let claims = Claims {
            all: vec![
                claim(0, "198.18.0.0/16", true),
                claim(0, "198.18.9.0/24", true),
                claim(1, "198.18.1.0/24", true),
                claim(2, "198.18.1.7/32", false),
                claim(3, "198.18.1.7/32", false),
                claim(4, "198.19.0.0/24", true),
                claim(5, "198.19.1.0/24", true),
            ],
            ranges: vec![0..2, 2..3, 3..4, 4..5, 5..6, 6..7],
        };
        let mut pairs = overlapping_pairs(&claims, &[true; 6]);
        pairs.sort_unstable();
        assert_eq!(pairs, [(0, 2), (0, 3), (0, 4), (2, 3), (2, 4)]);
        let without_node_0 = overlapping_pairs(&claims, &[false, true, true, true, true, true]);
        assert_eq!(without_node_0.len(), 2, "{without_node_0:?}");
    }
}
