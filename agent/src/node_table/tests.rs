use kube_encrypt_api::fixtures::TestNode;
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::{node_views, PUBLIC_KEY_ANNOTATION};

use super::*;

const OWN: &str = "node-a";

fn node(name: &str, ip: &str) -> TestNode {
    TestNode::new(name)
        .internal_ip(ip)
        .pod_cidr("198.18.2.0/24")
        .test_key(Family::V4)
}

fn a() -> Node {
    node(OWN, "192.0.2.1").build()
}

fn b() -> Node {
    node("node-b", "192.0.2.2").build()
}

fn c() -> Node {
    node("node-c", "192.0.2.3").build()
}

/// node-b moved to another address: what the planner reads changed.
fn b_moved() -> Node {
    node("node-b", "192.0.2.22").build()
}

/// node-b with an annotation the planner does not read (as after a heartbeat or a label
/// the cache drops): the same view.
fn b_unseen_change() -> Node {
    node("node-b", "192.0.2.2")
        .annotation("kube-encrypt.dev/later", "x")
        .build()
}

/// The agent's own Node with an annotation the planner does not read: the same view, but
/// the agent writes against its own Node.
fn a_unseen_change() -> Node {
    node(OWN, "192.0.2.1")
        .annotation("kube-encrypt.dev/later", "x")
        .build()
}

/// node-b publishing a malformed key: kept, its view says what is wrong.
fn b_malformed() -> Node {
    node("node-b", "192.0.2.2")
        .annotation(PUBLIC_KEY_ANNOTATION, "not a key")
        .build()
}

fn listed(nodes: Vec<Node>) -> Vec<Event<Node>> {
    let mut events = vec![Event::Init];
    events.extend(nodes.into_iter().map(Event::InitApply));
    events.push(Event::InitDone);
    events
}

/// After the first list of a, b, the events of each row: whether each was relevant, and the
/// table then — exactly what converting the same Nodes at once gives.
#[test]
fn the_table_holds_the_views_of_the_nodes_and_tells_what_a_round_sees() {
    type Row = (&'static str, Vec<Event<Node>>, Vec<bool>, Vec<Node>);
    let rows: Vec<Row> = vec![
        ("nothing happens", vec![], vec![], vec![a(), b()]),
        (
            "a change the planner cannot see",
            vec![Event::Apply(b_unseen_change())],
            vec![false],
            vec![a(), b()],
        ),
        (
            "a change of the own Node the planner cannot see",
            vec![Event::Apply(a_unseen_change())],
            vec![true],
            vec![a_unseen_change(), b()],
        ),
        (
            "a node moves",
            vec![Event::Apply(b_moved())],
            vec![true],
            vec![a(), b_moved()],
        ),
        (
            "a node joins in the middle, then another change is the same",
            vec![Event::Apply(c()), Event::Apply(c())],
            vec![true, false],
            vec![a(), b(), c()],
        ),
        (
            "a malformed annotation is kept as a problem of that node",
            vec![Event::Apply(b_malformed())],
            vec![true],
            vec![a(), b_malformed()],
        ),
        (
            "a node leaves; deleting it again changes nothing",
            vec![Event::Delete(b()), Event::Delete(b())],
            vec![true, false],
            vec![a()],
        ),
        (
            "the own Node leaves",
            vec![Event::Delete(a())],
            vec![true],
            vec![b()],
        ),
        (
            "a node joins and leaves before a round",
            vec![Event::Apply(c()), Event::Delete(c())],
            vec![true, true],
            vec![a(), b()],
        ),
        (
            "a relist finding the same",
            listed(vec![b(), a()]),
            vec![false, false, false, false],
            vec![a(), b()],
        ),
        (
            "a relist finding a node gone and one changed",
            listed(vec![b_moved()]),
            vec![false, false, true],
            vec![b_moved()],
        ),
    ];
    for (what, events, relevant, expected) in rows {
        let mut table = NodeTable::new(OWN);
        for event in listed(vec![b(), a()]) {
            table.apply(event);
        }
        let seen: Vec<bool> = events.into_iter().map(|e| table.apply(e)).collect();
        assert_eq!(seen, relevant, "{what}");
        let snapshot = table.snapshot();
        assert_eq!(*snapshot.views, node_views(&expected, None), "{what}");
        let own = expected
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(OWN));
        assert_eq!(snapshot.own.as_deref(), own, "{what}");
    }
}

#[test]
fn the_first_list_wakes_the_loop_even_when_empty() {
    let rows: [(&str, Vec<Node>); 2] = [("two nodes", vec![a(), b()]), ("no node", vec![])];
    for (what, nodes) in rows {
        let mut table = NodeTable::new(OWN);
        assert!(!table.synced(), "{what}");
        let seen: Vec<bool> = listed(nodes).into_iter().map(|e| table.apply(e)).collect();
        assert_eq!(seen.last(), Some(&true), "{what}");
        assert!(
            seen[..seen.len() - 1].iter().all(|r| !r),
            "{what}: {seen:?}"
        );
        assert!(table.synced(), "{what}");
    }
}

#[test]
fn a_snapshot_taken_keeps_what_it_saw() {
    let mut table = NodeTable::new(OWN);
    for event in listed(vec![a(), b()]) {
        table.apply(event);
    }
    let before = table.snapshot();
    table.apply(Event::Apply(b_moved()));
    table.apply(Event::Apply(c()));
    let after = table.snapshot();
    assert_eq!(*before.views, node_views(&[a(), b()], None));
    assert_eq!(*after.views, node_views(&[a(), b_moved(), c()], None));
    assert!(
        Arc::ptr_eq(&after.views, &table.snapshot().views),
        "no change, no copy"
    );
}

#[test]
fn a_name_listed_twice_keeps_its_last_view() {
    let mut table = NodeTable::new(OWN);
    for event in listed(vec![b(), a(), b_moved()]) {
        table.apply(event);
    }
    assert_eq!(*table.snapshot().views, node_views(&[a(), b_moved()], None));
}
