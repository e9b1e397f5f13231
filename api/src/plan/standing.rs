//! Who keeps a key or an address that two nodes claim: the established one. Established is,
//! in this order, (1) what this node's device has programmed for that node now (the device
//! outlives agent restarts), (2) the older Node by `metadata.creationTimestamp` (set by the
//! API server, the same for every agent), (3) the node name. So a claim never flips between
//! two nodes, and a late copy never takes over what another node holds.

use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::jiff::Timestamp;

use crate::dataplane::PeerSpec;
use crate::key::WireGuardKey;
use crate::net::{host_net, Family};
use crate::node::NodeView;

/// How strongly one node holds one claim; smaller is more established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Standing<'a> {
    programmed: bool,
    created: Option<Timestamp>,
    name: &'a str,
}

impl<'a> Standing<'a> {
    pub fn new(node: &'a NodeView, programmed: bool) -> Self {
        Self {
            programmed,
            created: node.created,
            name: &node.name,
        }
    }

    fn key(&self) -> (bool, bool, Option<Timestamp>, &'a str) {
        (
            !self.programmed,
            self.created.is_none(),
            self.created,
            self.name,
        )
    }

    /// Why `self` is established over `other` (which it must beat).
    pub fn why_over(&self, other: &Standing<'_>) -> &'static str {
        if self.programmed != other.programmed {
            "it is what this node's device has programmed"
        } else if self.created != other.created {
            "its Node is older"
        } else {
            "its name sorts first"
        }
    }
}

impl Ord for Standing<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Standing<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The peers this node's device has programmed for one family, found by node: by the name
/// the agent recorded, or by endpoint when the record was lost. Indexed on first use only,
/// as most plans meet no contested claim.
pub(super) struct Device<'a> {
    family: Family,
    current: &'a [PeerSpec],
    index: OnceCell<Index<'a>>,
}

#[derive(Default)]
struct Index<'a> {
    by_name: HashMap<&'a str, &'a PeerSpec>,
    by_endpoint: HashMap<IpAddr, &'a PeerSpec>,
}

impl<'a> Device<'a> {
    pub fn new(family: Family, current: &'a [PeerSpec]) -> Self {
        Self {
            family,
            current,
            index: OnceCell::new(),
        }
    }

    fn index(&self) -> &Index<'a> {
        self.index.get_or_init(|| {
            let mut index = Index::default();
            for peer in self.current {
                if peer.node.is_empty() {
                    index.by_endpoint.insert(peer.endpoint.ip(), peer);
                } else {
                    index.by_name.insert(&peer.node, peer);
                }
            }
            index
        })
    }

    /// The peer programmed for `node`, if any.
    fn peer(&self, node: &NodeView) -> Option<&'a PeerSpec> {
        if self.current.is_empty() {
            return None;
        }
        let index = self.index();
        index.by_name.get(node.name.as_str()).copied().or_else(|| {
            let endpoint = node.endpoint_ip(self.family)?;
            index.by_endpoint.get(&endpoint).copied()
        })
    }

    /// `node`'s standing for `key`: programmed when the device has that key for it.
    pub fn key_standing<'n>(&self, node: &'n NodeView, key: WireGuardKey) -> Standing<'n> {
        let programmed = self.peer(node).is_some_and(|p| p.public_key == key);
        Standing::new(node, programmed)
    }

    /// `node`'s standing for `net`: programmed when one of the allowed IPs the device has for
    /// it covers `net`, or `net` is the endpoint address it has for it.
    pub fn net_standing<'n>(&self, node: &'n NodeView, net: IpNet) -> Standing<'n> {
        let programmed = self.peer(node).is_some_and(|p| {
            p.allowed_ips.iter().any(|a| a.contains(&net)) || host_net(p.endpoint.ip()) == net
        });
        Standing::new(node, programmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, created: Option<&str>) -> NodeView {
        NodeView {
            created: created.map(|t| t.parse().unwrap()),
            ..NodeView::test(name)
        }
    }

    #[test]
    fn programmed_then_older_then_name() {
        let old = node("node-9", Some("2026-01-01T00:00:00Z"));
        let young = node("node-1", Some("2026-06-01T00:00:00Z"));
        let unknown = node("node-0", None);
        let (a, b) = (node("a", None), node("b", None));
        let rows = [
            (
                Standing::new(&young, true),
                Standing::new(&old, false),
                "programmed",
            ),
            (
                Standing::new(&old, false),
                Standing::new(&young, false),
                "older",
            ),
            (
                Standing::new(&young, false),
                Standing::new(&unknown, false),
                "older",
            ),
            (
                Standing::new(&unknown, true),
                Standing::new(&old, false),
                "programmed",
            ),
            (Standing::new(&a, false), Standing::new(&b, false), "name"),
        ];
        for (winner, loser, why) in rows {
            assert!(winner < loser, "{winner:?} should beat {loser:?}");
            assert!(winner.why_over(&loser).contains(why), "{winner:?}: {why}");
        }
    }
}
