//! No downgrade by copying a key: of two nodes publishing one public key, the established one
//! (programmed on this node's device, else the older Node, else the name) stays a peer and
//! the other is refused. Nobody goes plaintext because of a copy.

use crate::crd::{EncryptionConfigSpec, EncryptionState};
use crate::dataplane::PeerSpec;
use crate::fixtures::{key, test_pools};
use crate::net::Family::V4;
use crate::node::NodeView;
use crate::plan::LocalFacts;

use super::{assert_skipped, facts, peers, routes, run, strings, OWN};

struct Row {
    name: &'static str,
    nodes: Vec<NodeView>,
    facts: LocalFacts,
    peers: &'static [&'static str],
    skipped: &'static [(&'static str, &'static str)],
}

const OLDER: &str = "2026-01-01T00:00:00Z";
const NEWER: &str = "2026-02-01T00:00:00Z";

/// node-1 (this node), node-2 (the victim, created at `victim`) and node-3 publishing
/// node-2's key (created at `copier`).
fn copied(victim: Option<&str>, copier: Option<&str>) -> Vec<NodeView> {
    let stamp = |node: NodeView, at: Option<&str>| match at {
        Some(at) => node.with_created(at),
        None => node,
    };
    vec![
        NodeView::test_v4(1),
        stamp(NodeView::test_v4(2), victim),
        stamp(NodeView::test_v4(3).with_key(V4, key("node-2", V4)), copier),
    ]
}

/// node-2 as this node's device has it; `named`: the agent's record of its node name
/// survived (it does not after the state dir is lost: the peer is then found by endpoint).
fn node_2_on_device(named: bool) -> PeerSpec {
    PeerSpec {
        public_key: key("node-2", V4),
        node: if named {
            "node-2".into()
        } else {
            String::new()
        },
        endpoint: "192.0.2.12:51820".parse().unwrap(),
        allowed_ips: vec!["198.18.2.0/24".parse().unwrap()],
        persistent_keepalive: None,
    }
}

const NODE_2: [&str; 1] = ["node-2 192.0.2.12:51820 198.18.2.0/24"];
const NODE_3: [&str; 1] = ["node-3 192.0.2.13:51820 198.18.3.0/24"];

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "copy by a newer node",
            nodes: copied(Some(OLDER), Some(NEWER)),
            facts: facts(),
            peers: &NODE_2,
            skipped: &[(
                "node-3",
                "refused: publishes the same IPv4 public key as node node-2, which keeps it \
                 (its Node is older)",
            )],
        },
        Row {
            name: "copy by an older node while the victim is programmed on the device",
            nodes: copied(Some(NEWER), Some(OLDER)),
            facts: facts().with_current_peers(V4, vec![node_2_on_device(true)]),
            peers: &NODE_2,
            skipped: &[(
                "node-3",
                "as node node-2, which keeps it (it is what this node's device has programmed)",
            )],
        },
        Row {
            name: "copy after every agent restarted: the device still has the victim",
            nodes: copied(Some(NEWER), Some(OLDER)),
            facts: facts().with_current_peers(V4, vec![node_2_on_device(false)]),
            peers: &NODE_2,
            skipped: &[("node-3", "it is what this node's device has programmed")],
        },
        Row {
            name: "a fresh node (nothing on the device): the older Node keeps the key",
            nodes: copied(Some(NEWER), Some(OLDER)),
            facts: facts(),
            peers: &NODE_3,
            skipped: &[(
                "node-2",
                "as node node-3, which keeps it (its Node is older)",
            )],
        },
        Row {
            name: "no creation times at all: the name decides",
            nodes: copied(None, None),
            facts: facts(),
            peers: &NODE_2,
            skipped: &[(
                "node-3",
                "as node node-2, which keeps it (its name sorts first)",
            )],
        },
        Row {
            name: "a creation time beats none",
            nodes: copied(None, Some(NEWER)),
            facts: facts(),
            peers: &NODE_3,
            skipped: &[("node-2", "(its Node is older)")],
        },
        Row {
            name: "three holders: one keeps it, both others are named with it",
            nodes: vec![
                NodeView::test_v4(1),
                NodeView::test_v4(4).with_key(V4, key("node-2", V4)),
                NodeView::test_v4(2),
                NodeView::test_v4(3).with_key(V4, key("node-2", V4)),
            ],
            facts: facts(),
            peers: &NODE_2,
            skipped: &[
                ("node-3", "as node node-2, which keeps it"),
                ("node-4", "as node node-2, which keeps it"),
            ],
        },
        Row {
            name: "a copy of this node's own key is refused; this node keeps encrypting",
            nodes: vec![
                NodeView::test_v4(1).with_created(NEWER),
                NodeView::test_v4(2),
                NodeView::test_v4(3)
                    .with_key(V4, key(OWN, V4))
                    .with_created(OLDER),
            ],
            facts: facts(),
            peers: &NODE_2,
            skipped: &[(
                "node-3",
                "refused: publishes this node's own IPv4 public key, a copy",
            )],
        },
    ]
}

#[test]
fn key_copy_table() {
    let config = EncryptionConfigSpec::test();
    for row in rows() {
        let plan = run(Some(&config), &test_pools(), &row.nodes, &row.facts);
        assert_eq!(peers(&plan, V4), strings(row.peers), "{}: peers", row.name);
        assert_skipped(row.name, &plan, V4, row.skipped);
        assert!(
            plan.skipped.iter().all(|s| s.refused),
            "{}: a copy is a refusal",
            row.name
        );
        let outcome = plan.families.get(V4);
        assert_eq!(outcome.state, EncryptionState::Encrypted, "{}", row.name);
        assert!(
            routes(&plan, V4).contains(&"throw 198.18.1.0/24".to_owned()),
            "{}: this node keeps steering",
            row.name
        );
    }
}
