//! NAT rules when an IPPool is created, updated, disabled or deleted.

use super::{assert_row, disabled, enabled, pool, pool_change_findings};
use crate::crd::EncryptionConfigSpec;
use crate::rules::{evaluate_pool_change, ConfigRef, NamedPool, PoolChange, Rule, Rule::*};

struct Row {
    name: &'static str,
    /// Which families are encrypted; `None`: no EncryptionConfig exists.
    config: Option<(bool, bool)>,
    pools: Vec<NamedPool>,
    change: PoolChange,
    expect: &'static [Rule],
}

fn v4() -> NamedPool {
    pool("v4", "198.18.0.0/16", true)
}
fn v6() -> NamedPool {
    pool("v6", "2001:db8:1::/48", true)
}
fn v6_second() -> NamedPool {
    pool("v6-b", "2001:db8:2::/48", true)
}
fn v6_without_nat() -> NamedPool {
    pool("v6", "2001:db8:1::/48", false)
}
/// A pool without NAT that was there before the webhook (pre-existing problem).
fn legacy() -> NamedPool {
    pool("legacy", "2001:db8:9::/48", false)
}

fn update(old: NamedPool, new: NamedPool) -> PoolChange {
    PoolChange::Update { old, new }
}

const V6_ON: Option<(bool, bool)> = Some((false, true));
const V4_ON: Option<(bool, bool)> = Some((true, false));
const BOTH_ON: Option<(bool, bool)> = Some((true, true));
const ALL_OFF: Option<(bool, bool)> = Some((false, false));

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    use PoolChange::{Create, Delete};
    vec![
        // natOutgoing turned off
        Row { name: "v6 NAT off, v6 on", config: V6_ON, pools: vec![v4(), v6()], change: update(v6(), v6_without_nat()), expect: &[Ipv6NatOutgoing] },
        Row { name: "v6 NAT off, only v4 on", config: V4_ON, pools: vec![v4(), v6()], change: update(v6(), v6_without_nat()), expect: &[] },
        Row { name: "v6 NAT off, all off", config: ALL_OFF, pools: vec![v4(), v6()], change: update(v6(), v6_without_nat()), expect: &[] },
        Row { name: "v6 NAT off, no config", config: None, pools: vec![v4(), v6()], change: update(v6(), v6_without_nat()), expect: &[] },
        Row { name: "v6 NAT off, another v6 pool has NAT", config: V6_ON, pools: vec![v6(), v6_second()], change: update(v6(), v6_without_nat()), expect: &[Ipv6NatOutgoing] },
        Row { name: "v4 NAT off, v4 on", config: V4_ON, pools: vec![v4(), v6()], change: update(v4(), pool("v4", "198.18.0.0/16", false)), expect: &[Ipv4NatOutgoing] },
        Row { name: "v4 NAT off, only v6 on", config: V6_ON, pools: vec![v4(), v6()], change: update(v4(), pool("v4", "198.18.0.0/16", false)), expect: &[] },
        // delete
        Row { name: "delete last v6 pool, v6 on", config: V6_ON, pools: vec![v4(), v6()], change: Delete(v6()), expect: &[Ipv6NatOutgoing] },
        Row { name: "delete last v6 pool, v6 off", config: V4_ON, pools: vec![v4(), v6()], change: Delete(v6()), expect: &[] },
        Row { name: "delete last v6 pool, no config", config: None, pools: vec![v6()], change: Delete(v6()), expect: &[] },
        Row { name: "delete one of two v6 pools", config: V6_ON, pools: vec![v6(), v6_second()], change: Delete(v6()), expect: &[] },
        Row { name: "delete last v4 pool, both on", config: BOTH_ON, pools: vec![v4(), v6()], change: Delete(v4()), expect: &[Ipv4NatOutgoing] },
        Row { name: "delete a v6 pool without NAT", config: V6_ON, pools: vec![v6(), legacy()], change: Delete(legacy()), expect: &[] },
        Row { name: "delete a disabled v6 pool", config: V6_ON, pools: vec![v6(), disabled(v6_second())], change: Delete(disabled(v6_second())), expect: &[] },
        // disable / re-enable
        Row { name: "disable last v6 pool, v6 on", config: V6_ON, pools: vec![v4(), v6()], change: update(v6(), disabled(v6())), expect: &[Ipv6NatOutgoing] },
        Row { name: "disable last v6 pool, v6 off", config: V4_ON, pools: vec![v4(), v6()], change: update(v6(), disabled(v6())), expect: &[] },
        Row { name: "disable one of two v6 pools", config: V6_ON, pools: vec![v6(), v6_second()], change: update(v6(), disabled(v6())), expect: &[] },
        Row { name: "re-enable a v6 pool without NAT, v6 on", config: V6_ON, pools: vec![v6(), disabled(legacy())], change: update(disabled(legacy()), legacy()), expect: &[Ipv6NatOutgoing] },
        // CIDR moved to the other family
        Row { name: "last v6 pool becomes v4, v6 on", config: V6_ON, pools: vec![v6()], change: update(v6(), pool("v6", "198.19.0.0/16", true)), expect: &[Ipv6NatOutgoing] },
        Row { name: "v4 pool without NAT becomes v6, v6 on", config: V6_ON, pools: vec![v6(), pool("x", "198.19.0.0/16", false)], change: update(pool("x", "198.19.0.0/16", false), pool("x", "2001:db8:5::/48", false)), expect: &[Ipv6NatOutgoing] },
        // create
        Row { name: "create v6 pool without NAT, v6 on", config: V6_ON, pools: vec![v6()], change: Create(pool("new", "2001:db8:5::/48", false)), expect: &[Ipv6NatOutgoing] },
        Row { name: "create first v6 pool without NAT, v6 on", config: V6_ON, pools: vec![], change: Create(pool("new", "2001:db8:5::/48", false)), expect: &[Ipv6NatOutgoing] },
        Row { name: "create v6 pool without NAT, v6 off", config: V4_ON, pools: vec![v4()], change: Create(pool("new", "2001:db8:5::/48", false)), expect: &[] },
        Row { name: "create disabled v6 pool without NAT, v6 on", config: V6_ON, pools: vec![v6()], change: Create(disabled(pool("new", "2001:db8:5::/48", false))), expect: &[] },
        Row { name: "create v6 pool with NAT, v6 on", config: V6_ON, pools: vec![v6()], change: Create(pool("new", "2001:db8:5::/48", true)), expect: &[] },
        Row { name: "create v4 pool without NAT, only v6 on", config: V6_ON, pools: vec![v6()], change: Create(pool("new", "198.19.0.0/16", false)), expect: &[] },
        // an old problem elsewhere does not block unrelated or fixing changes
        Row { name: "old problem, unrelated create", config: V6_ON, pools: vec![v6(), legacy()], change: Create(pool("new", "198.19.0.0/16", true)), expect: &[] },
        Row { name: "old problem, fixing it", config: V6_ON, pools: vec![v6(), legacy()], change: update(legacy(), pool("legacy", "2001:db8:9::/48", true)), expect: &[] },
        Row { name: "old problem, still not NAT after edit", config: V6_ON, pools: vec![legacy()], change: update(legacy(), pool("legacy", "2001:db8:a::/48", false)), expect: &[] },
        Row { name: "config with no v6 pool yet, unrelated v4 create", config: V6_ON, pools: vec![], change: Create(v4()), expect: &[] },
        Row { name: "config with no v6 pool yet, unrelated v4 delete", config: V6_ON, pools: vec![v4()], change: Delete(v4()), expect: &[] },
        Row { name: "config with no pool yet, first pool with NAT", config: V6_ON, pools: vec![], change: Create(v6()), expect: &[] },
        // several problems at once
        Row { name: "overlapping v6 pool without NAT, v6 on", config: V6_ON, pools: vec![v6()], change: Create(pool("new", "2001:db8:1:1::/64", false)), expect: &[PoolOverlap, Ipv6NatOutgoing] },
        Row { name: "disable the last v6 pool among many v4 pools", config: V6_ON, pools: (0..20).map(|i| pool(&format!("v4-{i}"), &format!("198.18.{i}.0/24"), true)).chain([v6()]).collect(), change: update(v6(), disabled(v6())), expect: &[Ipv6NatOutgoing] },
        Row { name: "fix a pool whose CIDR had spaces", config: V6_ON, pools: vec![v6(), pool("b", " 2001:db8:2::/48", false)], change: update(pool("b", " 2001:db8:2::/48", false), pool("b", "2001:db8:2::/48", true)), expect: &[] },
        Row { name: "invalid CIDR is only a CIDR problem", config: V6_ON, pools: vec![v6()], change: Create(pool("new", "2001:db8:1::1/48", false)), expect: &[PoolCidr] },
        Row { name: "v6 pool broken while both on", config: BOTH_ON, pools: vec![v4(), v6()], change: update(v6(), pool("v6", "2001:db8:1::1/48", true)), expect: &[PoolCidr, Ipv6NatOutgoing] },
    ]
}

fn spec_of(families: (bool, bool)) -> EncryptionConfigSpec {
    enabled(families.0, families.1)
}

#[test]
fn pool_change_nat_table() {
    for r in rows() {
        let spec = r.config.map(spec_of);
        let config = spec.as_ref().map(|spec| ConfigRef {
            name: "default",
            spec,
        });
        let findings = pool_change_findings(r.name, r.change, config, &r.pools);
        assert_row(r.name, &findings, r.expect);
    }
}

#[test]
fn pool_list_already_holding_the_new_version_changes_nothing() {
    // A watch cache may already hold the new object when the webhook runs.
    let spec = spec_of((false, true));
    let config = Some(ConfigRef {
        name: "default",
        spec: &spec,
    });
    let change = update(v6(), v6_without_nat());
    let stale = evaluate_pool_change(change.clone(), config, &[v4(), v6()]);
    let fresh = evaluate_pool_change(change, config, &[v4(), v6_without_nat()]);
    assert_eq!(stale, fresh);
    assert_eq!(super::ids(&fresh), [Ipv6NatOutgoing]);
}

#[test]
fn change_findings_name_the_config_and_the_way_out() {
    let spec = spec_of((false, true));
    let config = Some(ConfigRef {
        name: "default",
        spec: &spec,
    });
    let cases = [
        (
            update(v6(), v6_without_nat()),
            "spec.natOutgoing",
            "keep natOutgoing: true on IPPool \"v6\"",
        ),
        (
            update(v6(), disabled(v6())),
            "spec.disabled",
            "disabling IPPool \"v6\"",
        ),
        (PoolChange::Delete(v6()), "", "deleting IPPool \"v6\""),
    ];
    for (change, field, says) in cases {
        let findings = evaluate_pool_change(change, config, &[v6()]);
        let [f] = findings.as_slice() else {
            panic!("one finding expected: {findings:?}")
        };
        assert_eq!(f.field, field);
        assert!(f.message.contains(says), "{f}");
        assert!(f.message.contains("EncryptionConfig \"default\""), "{f}");
        assert!(f.message.contains("kubectl encrypt disable --ipv6"), "{f}");
    }
}
