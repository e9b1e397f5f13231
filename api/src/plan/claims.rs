//! What every node claims of one family's address space, and who keeps what two nodes claim
//! at once: the established one ([`super::standing`]); the other loses.

use std::cmp::Reverse;
use std::ops::Range;

use ipnet::IpNet;

use crate::crd::RouteSource;
use crate::node::NodeView;

use super::intervals::Span;
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

impl Claim {
    /// `net` as numbers.
    pub fn span(&self) -> Span {
        Span::of(&self.net)
    }
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

/// A competing claim as the sweep needs it, without going back to the claim (in address
/// order the claims would be visited at random: a cache miss each at cluster scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Spot {
    first: u128,
    last: u128,
    claim: usize,
    node: usize,
    routed: bool,
}

impl Spot {
    fn of(claim: usize, c: &Claim) -> Self {
        let span = c.span();
        Self {
            first: span.first,
            last: span.last,
            claim,
            node: c.node,
            routed: c.routed,
        }
    }

    /// An IPv4 spot as one number that sorts like the spot (first address, then the last one
    /// descending, then the claim), several times faster than a tuple.
    fn packed_v4(self) -> u128 {
        (self.first << 96)
            | ((u128::from(u32::MAX) - self.last) << 64)
            | ((self.claim as u128) << 32)
            | ((self.node as u128) << 1)
            | u128::from(self.routed)
    }

    fn unpacked_v4(key: u128) -> Self {
        let field = |shift: u32| (key >> shift) & u128::from(u32::MAX);
        Self {
            first: field(96),
            last: u128::from(u32::MAX) - field(64),
            claim: field(32) as usize,
            node: (field(0) >> 1) as usize,
            routed: key & 1 == 1,
        }
    }
}

/// Every pair of claims of two different competing nodes that overlap, where at least one of
/// the two is routed.
fn overlapping_pairs(claims: &Claims, competing: &[bool]) -> Vec<(usize, usize)> {
    let spots = claims
        .all
        .iter()
        .enumerate()
        .filter(|(_, c)| competing[c.node])
        .map(|(index, c)| Spot::of(index, c));
    let ipv4 = claims.all.first().is_some_and(|c| c.net.addr().is_ipv4());
    let small = claims.all.len() < 1 << 31 && claims.ranges.len() < 1 << 31;
    if ipv4 && small {
        let mut keys: Vec<u128> = spots.map(Spot::packed_v4).collect();
        keys.sort_unstable();
        return sweep(keys.into_iter().map(Spot::unpacked_v4));
    }
    let mut spots: Vec<Spot> = spots.collect();
    spots.sort_unstable_by_key(|s| (s.first, Reverse(s.last), s.claim));
    sweep(spots.into_iter())
}

/// Prefixes either nest or are disjoint, so one pass in address order (an enclosing prefix
/// before what it holds) with a stack of the enclosing prefixes finds every overlap.
fn sweep(in_order: impl Iterator<Item = Spot>) -> Vec<(usize, usize)> {
    let mut enclosing: Vec<Spot> = Vec::new();
    let mut pairs = Vec::new();
    for spot in in_order {
        while enclosing.last().is_some_and(|e| e.last < spot.first) {
            enclosing.pop();
        }
        for outer in &enclosing {
            if outer.node != spot.node && (outer.routed || spot.routed) {
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

    #[test]
    fn an_ipv4_spot_packs_into_one_number_and_back() {
        let spot = Spot::of(7, &claim(3, "198.18.1.0/24", true));
        assert_eq!(Spot::unpacked_v4(spot.packed_v4()), spot);
        let host = Spot::of(8, &claim(3, "198.18.1.0/32", false));
        assert!(
            spot.packed_v4() < host.packed_v4(),
            "the enclosing prefix first"
        );
    }

    #[test]
    fn the_sweep_works_the_same_for_ipv6() {
        let claims = Claims {
            all: vec![
                claim(0, "2001:db8:1::/48", true),
                claim(1, "2001:db8:1:2::/64", true),
                claim(2, "2001:db8:1:2::7/128", false),
                claim(3, "2001:db8:2::/64", true),
            ],
            ranges: vec![0..1, 1..2, 2..3, 3..4],
        };
        let mut pairs = overlapping_pairs(&claims, &[true; 4]);
        pairs.sort_unstable();
        assert_eq!(pairs, [(0, 1), (0, 2), (1, 2)]);
    }
}
