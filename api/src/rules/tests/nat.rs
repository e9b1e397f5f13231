//! `ipv4-nat-outgoing` / `ipv6-nat-outgoing` when a config is evaluated against the pools.

use serde_json::json;

use super::{assert_row, config_findings, disabled, enabled, pool, spec};
use crate::crd::EncryptionConfigSpec;
use crate::rules::{evaluate_config, NamedPool, Rule, Rule::*};

struct Row {
    name: &'static str,
    spec: EncryptionConfigSpec,
    pools: Vec<NamedPool>,
    expect: &'static [Rule],
}

fn v4_nat() -> NamedPool {
    pool("v4", "198.18.0.0/16", true)
}
fn v6_nat() -> NamedPool {
    pool("v6", "2001:db8:1::/48", true)
}

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    vec![
        Row { name: "v6 on, v6 pool with NAT", spec: enabled(false, true), pools: vec![v6_nat()], expect: &[] },
        Row { name: "v6 on, v6 pool without NAT", spec: enabled(false, true), pools: vec![pool("b", "2001:db8:2::/48", false)], expect: &[Ipv6NatOutgoing] },
        Row { name: "v6 on, no pool at all", spec: enabled(false, true), pools: vec![], expect: &[Ipv6NatOutgoing] },
        Row { name: "v6 on, only a disabled v6 pool", spec: enabled(false, true), pools: vec![disabled(v6_nat())], expect: &[Ipv6NatOutgoing] },
        Row { name: "v6 on, only a v4 pool", spec: enabled(false, true), pools: vec![v4_nat()], expect: &[Ipv6NatOutgoing] },
        Row { name: "v6 on, one v6 pool with and one without NAT", spec: enabled(false, true), pools: vec![v6_nat(), pool("b", "2001:db8:2::/48", false)], expect: &[Ipv6NatOutgoing] },
        Row { name: "v6 on, disabled v6 pool without NAT is ignored", spec: enabled(false, true), pools: vec![v6_nat(), disabled(pool("b", "2001:db8:2::/48", false))], expect: &[] },
        Row { name: "v6 on, invalid pool CIDR is ignored", spec: enabled(false, true), pools: vec![v6_nat(), pool("bad", "2001:db8:3::1/48", false)], expect: &[] },
        Row { name: "v6 on, CIDR with spaces is ignored", spec: enabled(false, true), pools: vec![v6_nat(), pool("spaced", " 2001:db8:4::/48", false)], expect: &[] },
        Row { name: "v6 on, IPv4-mapped pool is not a v6 pool", spec: enabled(false, true), pools: vec![pool("mapped", "::ffff:198.18.0.0/112", true)], expect: &[Ipv6NatOutgoing] },
        Row { name: "v6 on, many v6 pools, one without NAT", spec: enabled(false, true), pools: (0..50).map(|i| pool(&format!("p{i:02}"), &format!("2001:db8:{i:x}::/48"), i != 37)).collect(), expect: &[Ipv6NatOutgoing] },
        Row { name: "v4 only, v6 pool lacks NAT", spec: enabled(true, false), pools: vec![v4_nat(), pool("b", "2001:db8:2::/48", false)], expect: &[] },
        Row { name: "v4 on, v4 pool without NAT", spec: enabled(true, false), pools: vec![pool("a", "198.18.0.0/16", false)], expect: &[Ipv4NatOutgoing] },
        Row { name: "v4 on, no v4 pool", spec: enabled(true, false), pools: vec![v6_nat()], expect: &[Ipv4NatOutgoing] },
        Row { name: "both on, no pools", spec: enabled(true, true), pools: vec![], expect: &[Ipv4NatOutgoing, Ipv6NatOutgoing] },
        Row { name: "both on, both with NAT", spec: enabled(true, true), pools: vec![v4_nat(), v6_nat()], expect: &[] },
        Row { name: "both off, no pools", spec: enabled(false, false), pools: vec![], expect: &[] },
        Row {
            name: "several problems at once",
            spec: spec(json!({"ipv6": {"enabled": true, "port": 0}, "routingTable": 255})),
            pools: vec![pool("b", "2001:db8:2::/48", false)],
            expect: &[Ipv6NatOutgoing, PortRange, RoutingTable],
        },
    ]
}

#[test]
fn nat_config_table() {
    for r in rows() {
        assert_row(
            r.name,
            &config_findings(r.name, &r.spec, &r.pools),
            r.expect,
        );
    }
}

#[test]
fn nat_finding_names_every_pool_without_nat_and_the_fix() {
    let pools = [
        v6_nat(),
        pool("b", "2001:db8:2::/48", false),
        pool("a", "2001:db8:3::/48", false),
    ];
    let findings = evaluate_config("default", &enabled(false, true), &pools);
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_eq!(f.field, "spec.ipv6.enabled");
    assert!(
        f.message
            .contains(r#"IPPools "a", "b" have natOutgoing: false"#),
        "{f}"
    );
    assert!(f.message.contains("set natOutgoing: true"), "{f}");
}

#[test]
fn missing_pool_finding_says_to_create_one() {
    let findings = evaluate_config("default", &enabled(false, true), &[]);
    assert_eq!(
        findings[0].to_string(),
        "ipv6-nat-outgoing: spec.ipv6.enabled: IPv6 encryption needs NAT outgoing, but no enabled IPv6 IPPool exists; create one with natOutgoing: true, or set spec.ipv6.enabled: false"
    );
}
