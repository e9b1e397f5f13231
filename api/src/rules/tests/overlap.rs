//! `pool-overlap` (and `pool-cidr`) for pool changes and for the whole pool list.

use super::{assert_row, disabled, pool, pool_change_findings};
use crate::rules::{evaluate_pool_change, evaluate_pools, NamedPool, PoolChange, Rule, Rule::*};

struct Row {
    name: &'static str,
    pools: Vec<NamedPool>,
    change: PoolChange,
    expect: &'static [Rule],
}

fn a() -> NamedPool {
    pool("a", "198.18.0.0/16", true)
}
fn b() -> NamedPool {
    pool("b", "2001:db8:1::/48", true)
}

fn create(name: &str, cidr: &str) -> PoolChange {
    PoolChange::Create(pool(name, cidr, true))
}

fn update(old: NamedPool, cidr: &str) -> PoolChange {
    let mut new = old.clone();
    new.spec.cidr = cidr.into();
    PoolChange::Update { old, new }
}

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    vec![
        Row { name: "v4 inside", pools: vec![a(), b()], change: create("c", "198.18.1.0/24"), expect: &[PoolOverlap] },
        Row { name: "v4 containing", pools: vec![a(), b()], change: create("c", "198.18.0.0/15"), expect: &[PoolOverlap] },
        Row { name: "v4 identical", pools: vec![a(), b()], change: create("c", "198.18.0.0/16"), expect: &[PoolOverlap] },
        Row { name: "v4 adjacent", pools: vec![a(), b()], change: create("c", "198.19.0.0/16"), expect: &[] },
        Row { name: "v4 last address", pools: vec![a(), b()], change: create("c", "198.18.255.255/32"), expect: &[PoolOverlap] },
        Row { name: "v6 inside", pools: vec![a(), b()], change: create("c", "2001:db8:1:1::/64"), expect: &[PoolOverlap] },
        Row { name: "v6 containing", pools: vec![a(), b()], change: create("c", "2001:db8::/32"), expect: &[PoolOverlap] },
        Row { name: "v6 adjacent", pools: vec![a(), b()], change: create("c", "2001:db8:2::/48"), expect: &[] },
        Row { name: "families never overlap", pools: vec![pool("all4", "0.0.0.0/0", true)], change: create("all6", "::/0"), expect: &[] },
        Row { name: "overlapping a disabled pool", pools: vec![disabled(a())], change: create("c", "198.18.1.0/24"), expect: &[] },
        Row { name: "disabled pool overlapping", pools: vec![a()], change: PoolChange::Create(disabled(pool("c", "198.18.1.0/24", true))), expect: &[] },
        Row { name: "overlapping two pools", pools: vec![a(), pool("c", "198.19.0.0/16", true)], change: create("d", "198.18.0.0/15"), expect: &[PoolOverlap, PoolOverlap] },
        Row { name: "update in place, shrink", pools: vec![a(), b()], change: update(a(), "198.18.0.0/17"), expect: &[] },
        Row { name: "update in place, grow", pools: vec![a(), b()], change: update(a(), "198.18.0.0/15"), expect: &[] },
        Row { name: "update onto another pool", pools: vec![a(), pool("c", "198.20.0.0/16", true)], change: update(a(), "198.20.0.0/24"), expect: &[PoolOverlap] },
        Row { name: "re-enable onto another pool", pools: vec![a(), disabled(pool("c", "198.18.0.0/24", true))], change: PoolChange::Update { old: disabled(pool("c", "198.18.0.0/24", true)), new: pool("c", "198.18.0.0/24", true) }, expect: &[PoolOverlap] },
        Row { name: "delete never overlaps", pools: vec![a(), pool("c", "198.18.0.0/24", true)], change: PoolChange::Delete(pool("c", "198.18.0.0/24", true)), expect: &[] },
        Row { name: "overlapping one of many pools", pools: (0..100).map(|i| pool(&format!("p{i:03}"), &format!("198.18.{i}.0/24"), true)).collect(), change: create("c", "198.18.42.128/25"), expect: &[PoolOverlap] },
        Row { name: "disjoint from many pools", pools: (0..100).map(|i| pool(&format!("p{i:03}"), &format!("198.18.{i}.0/24"), true)).collect(), change: create("c", "198.18.200.0/24"), expect: &[] },
        Row { name: "overlapping a pool whose CIDR is invalid", pools: vec![pool("bad", "198.18.0.1/16", true)], change: create("c", "198.18.0.0/24"), expect: &[] },
        Row { name: "host bits set", pools: vec![a()], change: create("c", "198.18.0.1/16"), expect: &[PoolCidr] },
        Row { name: "not a CIDR", pools: vec![a()], change: create("c", "pods"), expect: &[PoolCidr] },
        Row { name: "invalid CIDR on a disabled pool", pools: vec![a()], change: PoolChange::Create(disabled(pool("c", "pods", true))), expect: &[PoolCidr] },
    ]
}

#[test]
fn pool_overlap_table() {
    for r in rows() {
        assert_row(
            r.name,
            &pool_change_findings(r.name, r.change, None, &r.pools),
            r.expect,
        );
    }
}

#[test]
fn overlap_names_both_pools() {
    let findings = evaluate_pool_change(create("c", "198.18.1.0/24"), None, &[a()]);
    assert_eq!(
        findings[0].to_string(),
        "pool-overlap: spec.cidr: IPPool \"c\" (198.18.1.0/24) overlaps enabled IPPool \"a\" (198.18.0.0/16); give them disjoint ranges or disable one"
    );
}

#[test]
fn whole_pool_list_reports_each_problem_once() {
    let pools = [
        a(),
        pool("inside-a", "198.18.5.0/24", true),
        pool("also-inside-a", "198.18.6.0/24", false),
        disabled(pool("off", "198.18.7.0/24", true)),
        pool("bad", "198.18.0.1/16", true),
        b(),
        pool("inside-b", "2001:db8:1:2::/64", true),
    ];
    let findings = evaluate_pools(&pools);
    assert_eq!(
        super::ids(&findings),
        [PoolCidr, PoolOverlap, PoolOverlap, PoolOverlap],
        "{findings:#?}"
    );
}
