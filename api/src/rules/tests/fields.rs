//! Single-object rules at every boundary. The same rows run through the CRD's CEL rules in
//! `cel.rs`.

use serde_json::{json, Value};

use super::{assert_row, spec};
use crate::crd::IPPoolSpec;
use crate::rules::{
    evaluate_config_fields, evaluate_pool_fields, NamedPool, Rule, Rule::*, Severity,
};

/// An EncryptionConfig named `name` with `spec` (JSON, defaults left out), and the rule ids it
/// must produce.
pub(crate) struct ConfigRow {
    pub name: &'static str,
    pub object_name: &'static str,
    pub spec: Value,
    pub expect: &'static [Rule],
}

fn row(name: &'static str, spec: Value, expect: &'static [Rule]) -> ConfigRow {
    ConfigRow {
        name,
        object_name: "default",
        spec,
        expect,
    }
}

fn port(family: &str, port: i64, expect: &'static [Rule]) -> ConfigRow {
    row("port", json!({ family: {"port": port} }), expect)
}

fn mtu(family: &str, mtu: i64, expect: &'static [Rule]) -> ConfigRow {
    row("mtu", json!({ family: {"mtu": mtu} }), expect)
}

fn ifname(family: &str, name: &str, expect: &'static [Rule]) -> ConfigRow {
    row(
        "interface name",
        json!({ family: {"interfaceName": name} }),
        expect,
    )
}

fn top(field: &'static str, value: i64, expect: &'static [Rule]) -> ConfigRow {
    row(field, json!({ field: value }), expect)
}

#[rustfmt::skip]
pub(crate) fn config_rows() -> Vec<ConfigRow> {
    vec![
        row("all defaults", json!({}), &[]),
        // port-range
        port("ipv4", -1, &[PortRange]),
        port("ipv4", 0, &[PortRange]),
        port("ipv4", 1, &[]),
        port("ipv4", 65535, &[]),
        port("ipv4", 65536, &[PortRange]),
        port("ipv6", 0, &[PortRange]),
        port("ipv6", 1, &[]),
        port("ipv6", 65535, &[]),
        port("ipv6", 65536, &[PortRange]),
        // port-conflict
        row("same port, both on", json!({"ipv4": {"enabled": true, "port": 51820}, "ipv6": {"enabled": true, "port": 51820}}), &[PortConflict]),
        row("different ports, both on", json!({"ipv4": {"enabled": true}, "ipv6": {"enabled": true}}), &[]),
        row("same port, only v4 on", json!({"ipv4": {"enabled": true, "port": 7000}, "ipv6": {"port": 7000}}), &[]),
        row("same port, only v6 on", json!({"ipv4": {"port": 7000}, "ipv6": {"enabled": true, "port": 7000}}), &[]),
        row("same port, both off", json!({"ipv4": {"port": 7000}, "ipv6": {"port": 7000}}), &[]),
        row("same bad port, both on", json!({"ipv4": {"enabled": true, "port": 0}, "ipv6": {"enabled": true, "port": 0}}), &[PortRange, PortRange, PortConflict]),
        // mtu-range
        mtu("ipv4", 0, &[]),
        mtu("ipv4", -1, &[MtuRange]),
        mtu("ipv4", 1, &[MtuRange]),
        mtu("ipv4", 575, &[MtuRange]),
        mtu("ipv4", 576, &[]),
        mtu("ipv4", 1420, &[]),
        mtu("ipv4", 9000, &[]),
        mtu("ipv4", 9001, &[MtuRange]),
        mtu("ipv6", 0, &[]),
        mtu("ipv6", 576, &[MtuRange]),
        mtu("ipv6", 1279, &[MtuRange]),
        mtu("ipv6", 1280, &[]),
        mtu("ipv6", 9000, &[]),
        mtu("ipv6", 9001, &[MtuRange]),
        // interface-name
        ifname("ipv4", "abcdefghijklmno", &[]),
        ifname("ipv4", "abcdefghijklmnop", &[InterfaceName]),
        ifname("ipv4", "", &[InterfaceName]),
        ifname("ipv4", "w", &[]),
        ifname("ipv4", "wg:0", &[InterfaceName]),
        ifname("ipv4", "wg/0", &[InterfaceName]),
        ifname("ipv4", "wg 0", &[InterfaceName]),
        ifname("ipv4", "wg\t0", &[InterfaceName]),
        ifname("ipv4", "wg0\n", &[InterfaceName]),
        ifname("ipv4", ".", &[InterfaceName]),
        ifname("ipv4", "..", &[InterfaceName]),
        ifname("ipv4", "...", &[]),
        ifname("ipv4", "wg.encrypt_1-a", &[]),
        ifname("ipv4", "-wg", &[InterfaceName]),
        ifname("ipv4", "-", &[InterfaceName]),
        ifname("ipv4", "wg-", &[]),
        ifname("ipv6", "--help", &[InterfaceName]),
        ifname("ipv4", "wgé", &[InterfaceName]),
        ifname("ipv4", "ééééééé", &[InterfaceName]),
        ifname("ipv6", "abcdefghijklmnop", &[InterfaceName]),
        ifname("ipv6", "wg:v6", &[InterfaceName]),
        ifname("ipv6", "wg-encrypt", &[InterfaceName]),
        row("both names equal and invalid", json!({"ipv4": {"interfaceName": "a b"}, "ipv6": {"interfaceName": "a b"}}), &[InterfaceName, InterfaceName, InterfaceName]),
        // routing-table
        top("routingTable", -1, &[RoutingTable]),
        top("routingTable", 0, &[RoutingTable]),
        top("routingTable", 1, &[]),
        top("routingTable", 252, &[]),
        top("routingTable", 253, &[RoutingTable]),
        top("routingTable", 254, &[RoutingTable]),
        top("routingTable", 255, &[RoutingTable]),
        top("routingTable", 256, &[]),
        top("routingTable", 4_294_967_295, &[]),
        top("routingTable", 4_294_967_296, &[RoutingTable]),
        // rule-priority
        top("routingRulePriority", -1, &[RulePriority]),
        top("routingRulePriority", 0, &[RulePriority]),
        top("routingRulePriority", 1, &[]),
        top("routingRulePriority", 32765, &[]),
        top("routingRulePriority", 32766, &[RulePriority]),
        top("routingRulePriority", 32767, &[RulePriority]),
        // firewall-mark
        top("firewallMark", -1, &[FirewallMark]),
        top("firewallMark", 0, &[FirewallMark]),
        top("firewallMark", 0x1, &[]),
        top("firewallMark", 0x3fff, &[]),
        top("firewallMark", 0x4000, &[FirewallMark]),
        top("firewallMark", 0x8000, &[FirewallMark]),
        top("firewallMark", 0xc000, &[FirewallMark]),
        top("firewallMark", 0x10000, &[]),
        top("firewallMark", 0x100000, &[]),
        top("firewallMark", 0x104000, &[FirewallMark]),
        top("firewallMark", 0x108000, &[FirewallMark]),
        top("firewallMark", 0xffff_0000, &[]),
        top("firewallMark", 0xffff_ffff, &[FirewallMark]),
        top("firewallMark", 0x1_0000_0000, &[FirewallMark]),
        // persistent-keepalive
        top("persistentKeepalive", -1, &[PersistentKeepalive]),
        top("persistentKeepalive", 0, &[]),
        top("persistentKeepalive", 25, &[]),
        top("persistentKeepalive", 65535, &[]),
        top("persistentKeepalive", 65536, &[PersistentKeepalive]),
        // singleton-name
        ConfigRow { name: "other name", object_name: "other", spec: json!({}), expect: &[SingletonName] },
        ConfigRow { name: "capitalised name", object_name: "Default", spec: json!({}), expect: &[SingletonName] },
        // host-encryption-route-source (warning, not in the CRD)
        row("host encryption, PodCIDRs", json!({"hostEncryption": true}), &[HostEncryptionRouteSource]),
        row("host encryption, WorkloadIPs", json!({"hostEncryption": true, "routeSource": "WorkloadIPs"}), &[]),
        row("no host encryption, PodCIDRs", json!({"hostEncryption": false, "routeSource": "PodCIDRs"}), &[]),
        // several problems at once, all reported
        ConfigRow {
            name: "everything wrong",
            object_name: "encryption",
            spec: json!({
                "ipv4": {"enabled": true, "port": 0, "mtu": 100, "interfaceName": "wg:bad"},
                "ipv6": {"enabled": true, "port": 0, "mtu": 1279, "interfaceName": "wg:bad"},
                "routingTable": 254, "routingRulePriority": 0, "firewallMark": 0x4000,
                "persistentKeepalive": -5, "hostEncryption": true
            }),
            expect: &[
                SingletonName, PortRange, PortRange, PortConflict, MtuRange, MtuRange,
                InterfaceName, InterfaceName, InterfaceName, RoutingTable, RulePriority,
                FirewallMark, PersistentKeepalive, HostEncryptionRouteSource,
            ],
        },
    ]
}

#[test]
fn config_fields_table() {
    let rows = config_rows();
    assert!(rows.len() >= 80, "the table shrank to {} rows", rows.len());
    for r in rows {
        let label = format!("{}: {} {}", r.name, r.object_name, r.spec);
        let findings = evaluate_config_fields(r.object_name, &spec(r.spec.clone()));
        assert_row(&label, &findings, r.expect);
    }
}

#[test]
fn host_encryption_with_pod_cidrs_only_warns() {
    let findings = evaluate_config_fields("default", &spec(json!({"hostEncryption": true})));
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Warning);
    assert_eq!(findings[0].field, "spec.routeSource");
}

#[test]
fn findings_name_the_field_and_the_fix() {
    let s = spec(json!({"ipv6": {"mtu": 1279}, "firewallMark": 0x104000}));
    let text: Vec<String> = evaluate_config_fields("default", &s)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        text,
        [
            "mtu-range: spec.ipv6.mtu: IPv6 MTU 1279 is out of range; use 0 (auto) or 1280-9000",
            "firewall-mark: spec.firewallMark: firewall mark 0x104000 overlaps kube-proxy's marks 0x4000/0x8000 (bits 0x4000); use a free bit such as 0x100000 (1048576)",
        ]
    );
}

/// CIDRs the API server's `isCIDR` (Go `netip.ParsePrefix`) rejects but kube-cel 0.8 (ipnet)
/// accepts: the Rust rule follows the API server.
pub(super) const KUBE_CEL_ACCEPTS: &[&str] = &["010.18.0.0/16", "198.18.00.0/24"];

/// An IPPool CIDR and whether `pool-cidr` accepts it.
pub(super) fn cidr_rows() -> Vec<(&'static str, bool)> {
    vec![
        ("198.18.0.0/16", true),
        ("198.18.0.0/15", true),
        ("198.18.0.1/16", false),
        ("198.19.0.0/15", false),
        ("198.18.0.7/32", true),
        ("0.0.0.0/0", true),
        ("198.18.0.0/33", false),
        ("198.18.0.0", false),
        ("198.18.0.0/", false),
        ("198.18.0/16", false),
        ("010.18.0.0/16", false),
        ("198.18.00.0/24", false),
        ("2001:0db8:0001::/48", true),
        ("2001:db8:1::/48", true),
        ("2001:DB8:1::/48", true),
        ("2001:db8:1::1/48", false),
        ("2001:db8::/129", false),
        ("::/0", true),
        ("::ffff:198.18.0.0/112", false),
        ("fe80::/64", true),
        ("fe80::%eth0/64", false),
        (" 198.18.0.0/16", false),
        ("198.18.0.0/16 ", false),
        ("", false),
        ("not-a-cidr", false),
    ]
}

#[test]
fn pool_cidr_table() {
    for (cidr, valid) in cidr_rows() {
        let pool = NamedPool::new(
            "p",
            IPPoolSpec {
                cidr: cidr.into(),
                nat_outgoing: true,
                disabled: false,
            },
        );
        let expect: &[Rule] = if valid { &[] } else { &[PoolCidr] };
        assert_row(cidr, &evaluate_pool_fields(&pool), expect);
    }
}

#[test]
fn pool_cidr_message_gives_the_network_address() {
    let pool = NamedPool::new(
        "pods",
        IPPoolSpec {
            cidr: "198.18.0.1/16".into(),
            nat_outgoing: true,
            disabled: false,
        },
    );
    assert_eq!(
        evaluate_pool_fields(&pool)[0].to_string(),
        "pool-cidr: spec.cidr: IPPool \"pods\": \"198.18.0.1/16\" has host bits set; write the network address 198.18.0.0/16"
    );
}

#[test]
fn interface_name_problem_names_the_first_bad_character() {
    use crate::rules::interface_name_problem;
    let rows = [
        ("wg 0", Some("contains ' '")),
        ("wg\t0", Some("contains '\\t'")),
        ("wgé", Some("contains 'é'")),
        ("ab/c:d", Some("contains '/'")),
        ("wg\u{a0}0", Some("contains '\\u{a0}'")),
        ("ééééééé", Some("contains 'é'")),
        (
            "abcdefghijklmnop",
            Some("is 16 bytes long, Linux allows 15"),
        ),
        ("wg-encrypt", None),
    ];
    for (name, expect) in rows {
        assert_eq!(interface_name_problem(name).as_deref(), expect, "{name:?}");
    }
}
