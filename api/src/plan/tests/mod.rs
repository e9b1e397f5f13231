//! Table-driven planner tests. Every plan made here is also checked for the output invariants
//! (sorted, deduplicated, one route per destination) and for independence from node order.

mod config;
mod firewall;
mod hijack;
mod keys;
mod mesh;
mod mtu;
mod outcome;
mod workload;

use crate::crd::{EncryptionConfigSpec, IPPoolSpec};
use crate::dataplane::RouteKind;
use crate::net::Family;
use crate::node::NodeView;

use super::{plan, LocalFacts, NodePlan, Snapshot};

/// The node every test plans for.
pub(super) const OWN: &str = "node-1";

/// `node-1` (own), `node-2`, `node-3`: IPv4 only, keys published, pod CIDRs `198.18.<i>.0/24`.
pub(super) fn three_nodes() -> Vec<NodeView> {
    (1..=3).map(NodeView::test_v4).collect()
}

/// The same three nodes, dual-stack.
pub(super) fn three_dual_nodes() -> Vec<NodeView> {
    (1..=3).map(NodeView::test_dual).collect()
}

pub(super) fn facts() -> LocalFacts {
    LocalFacts::test(OWN)
}

/// Plans for [`OWN`], checks the invariants and that reversing the node order changes nothing.
pub(super) fn run(
    config: Option<&EncryptionConfigSpec>,
    pools: &[IPPoolSpec],
    nodes: &[NodeView],
    facts: &LocalFacts,
) -> NodePlan {
    let made = plan(
        &Snapshot {
            config,
            pools,
            nodes,
        },
        facts,
    )
    .expect("plan");
    assert_invariants(&made);
    let reversed: Vec<NodeView> = nodes.iter().rev().cloned().collect();
    let again = plan(
        &Snapshot {
            config,
            pools,
            nodes: &reversed,
        },
        facts,
    )
    .expect("plan");
    assert_eq!(again, made, "the order of the nodes leaked into the plan");
    made
}

fn strictly_sorted<T: Ord>(items: &[T]) -> bool {
    items.windows(2).all(|w| w[0] < w[1])
}

fn assert_invariants(plan: &NodePlan) {
    for (family, dp) in plan.dataplane.families.iter() {
        let keys: Vec<_> = dp.peers.iter().map(|p| p.public_key).collect();
        assert!(
            strictly_sorted(&keys),
            "{family}: peers not sorted by unique key"
        );
        for peer in &dp.peers {
            assert!(
                strictly_sorted(&peer.allowed_ips),
                "{family}: {} allowed IPs",
                peer.node
            );
        }
        let destinations: Vec<_> = dp
            .routes
            .iter()
            .filter(|r| r.kind != RouteKind::Unreachable)
            .map(|r| r.destination)
            .collect();
        assert!(
            strictly_sorted(&destinations),
            "{family}: routes not one per destination"
        );
        let fallback = |kind: fn(&RouteKind) -> bool| -> Vec<_> {
            dp.routes
                .iter()
                .filter(|r| kind(&r.kind))
                .map(|r| (r.table, r.destination))
                .collect()
        };
        assert_eq!(
            fallback(|k| matches!(k, RouteKind::Device(_))),
            fallback(|k| *k == RouteKind::Unreachable),
            "{family}: every device route, and only those, has an unreachable fallback"
        );
        assert!(
            dp.rule.is_none() || dp.interface.is_some(),
            "{family}: rule without interface"
        );
        assert!(
            dp.routes.is_empty() || dp.rule.is_some(),
            "{family}: routes without rule"
        );
    }
    assert!(
        plan.skipped.windows(2).all(|w| w[0] <= w[1]),
        "skipped not sorted"
    );
    for skipped in &plan.skipped {
        assert_eq!(
            skipped.refused,
            skipped.reason.starts_with("refused: "),
            "{skipped:?}"
        );
    }
    if let Some(fw) = &plan.dataplane.firewall {
        assert!(strictly_sorted(&fw.wireguard_ports), "firewall ports");
    }
    let sysctl_keys: Vec<_> = plan.dataplane.sysctls.iter().map(|s| &s.key).collect();
    assert!(strictly_sorted(&sysctl_keys), "sysctls");
}

/// Routes of `family` as `throw <net>` / `<net> dev <interface>`; the unreachable fallbacks
/// under device routes are checked by [`assert_invariants`] and left out.
pub(super) fn routes(plan: &NodePlan, family: Family) -> Vec<String> {
    let dp = plan.dataplane.family(family);
    dp.routes
        .iter()
        .filter_map(|r| match &r.kind {
            RouteKind::Throw => Some(format!("throw {}", r.destination)),
            RouteKind::Device(dev) => Some(format!("{} dev {dev}", r.destination)),
            RouteKind::Unreachable => None,
        })
        .collect()
}

/// Peers of `family` as `<node> <endpoint> <allowed,ips>`, sorted by node.
pub(super) fn peers(plan: &NodePlan, family: Family) -> Vec<String> {
    let mut lines: Vec<String> = plan
        .dataplane
        .family(family)
        .peers
        .iter()
        .map(|p| {
            let ips: Vec<String> = p.allowed_ips.iter().map(ToString::to_string).collect();
            format!("{} {} {}", p.node, p.endpoint, ips.join(","))
        })
        .collect();
    lines.sort();
    lines
}

/// Asserts the skipped nodes of `family` are exactly `expected` (node, part of the reason).
pub(super) fn assert_skipped(
    name: &str,
    plan: &NodePlan,
    family: Family,
    expected: &[(&str, &str)],
) {
    let skipped: Vec<_> = plan.skipped.iter().filter(|s| s.family == family).collect();
    assert_eq!(skipped.len(), expected.len(), "{name}: skipped {skipped:?}");
    for (got, (node, reason)) in skipped.iter().zip(expected) {
        assert_eq!(got.node, *node, "{name}: skipped {skipped:?}");
        assert!(
            got.reason.contains(reason),
            "{name}: {} reason {:?}",
            got.node,
            got.reason
        );
    }
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}
