//! Rules that look at one `EncryptionConfig` alone (also expressed as CRD CEL rules).

use crate::crd::{EncryptionConfigSpec, FamilySettings, RouteSource, SINGLETON_NAME};
use crate::net::Family;

use super::{Finding, Rule};

/// Mark bits kube-proxy uses (masquerade 0x4000, drop 0x8000).
const RESERVED_MARKS: i64 = 0x4000 | 0x8000;
/// `ip rule` priorities the kernel uses for its own rules: 0 (local), 32766 (main), 32767 (default).
const MAX_RULE_PRIORITY: i64 = 32765;
/// Routing tables the kernel reserves: default, main, local.
const RESERVED_TABLES: [i64; 3] = [253, 254, 255];
/// Linux `IFNAMSIZ` minus the terminating NUL.
const MAX_INTERFACE_NAME_BYTES: usize = 15;

/// Every single-object finding of a config named `name`.
pub(super) fn check(name: &str, spec: &EncryptionConfigSpec) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(singleton_name(name));
    for family in Family::ALL {
        let settings = spec.family(family);
        findings.extend(port_range(&settings));
        findings.extend(mtu_range(&settings));
        findings.extend(interface_name(&settings));
    }
    findings.extend(port_conflict(spec));
    findings.extend(distinct_interface_names(spec));
    findings.extend(routing_table(spec.routing_table));
    findings.extend(rule_priority(spec.routing_rule_priority));
    findings.extend(firewall_mark(spec.firewall_mark));
    findings.extend(persistent_keepalive(spec.persistent_keepalive));
    findings.extend(host_encryption_route_source(spec));
    findings
}

fn field(family: Family, name: &str) -> String {
    format!("spec.{}.{name}", family.field())
}

fn singleton_name(name: &str) -> Option<Finding> {
    (name != SINGLETON_NAME).then(|| {
        Finding::new(
            Rule::SingletonName,
            "metadata.name",
            format!("the EncryptionConfig is a singleton named '{SINGLETON_NAME}', not {name:?}; rename it to '{SINGLETON_NAME}'"),
        )
    })
}

fn port_range(s: &FamilySettings) -> Option<Finding> {
    (!(1..=65535).contains(&s.port)).then(|| {
        Finding::new(
            Rule::PortRange,
            field(s.family, "port"),
            format!("{} is not a UDP port; use a port in 1-65535", s.port),
        )
    })
}

fn port_conflict(spec: &EncryptionConfigSpec) -> Option<Finding> {
    let (v4, v6) = (&spec.ipv4, &spec.ipv6);
    (v4.enabled && v6.enabled && v4.port == v6.port).then(|| {
        Finding::new(
            Rule::PortConflict,
            "spec.ipv6.port",
            format!(
                "IPv4 and IPv6 encryption are both enabled on port {}; give spec.ipv6.port a different port (default 51821)",
                v6.port
            ),
        )
    })
}

/// The smallest MTU a family's WireGuard interface may have: 576 for IPv4 (RFC 791), 1280 for
/// IPv6 (RFC 8200).
fn min_mtu(family: Family) -> i64 {
    match family {
        Family::V4 => 576,
        Family::V6 => 1280,
    }
}

fn mtu_range(s: &FamilySettings) -> Option<Finding> {
    let min = min_mtu(s.family);
    let ok = s.mtu == 0 || (min..=9000).contains(&s.mtu);
    (!ok).then(|| {
        Finding::new(
            Rule::MtuRange,
            field(s.family, "mtu"),
            format!(
                "{} MTU {} is out of range; use 0 (auto) or {min}-9000",
                s.family, s.mtu
            ),
        )
    })
}

/// Why `name` is not an interface name the agent can create, if it is not.
///
/// Linux accepts 1-15 bytes without `/`, `:` or whitespace and not `.` or `..`; the rule also
/// refuses a leading `-` (command-line tools would take the name for an option) and keeps to
/// printable ASCII, so byte and character counts agree (the CRD's CEL regex counts
/// characters) and no name carries a byte the kernel treats as space (0xA0 inside UTF-8).
pub fn interface_name_problem(name: &str) -> Option<String> {
    let bad = |b: u8| !b.is_ascii_graphic() || b == b'/' || b == b':';
    if name.is_empty() {
        Some("is empty".into())
    } else if name.len() > MAX_INTERFACE_NAME_BYTES {
        Some(format!(
            "is {} bytes long, Linux allows {MAX_INTERFACE_NAME_BYTES}",
            name.len()
        ))
    } else if let Some(at) = name.bytes().position(bad) {
        // Every byte before `at` is ASCII, so `at` starts a character.
        let c = name[at..].chars().next().unwrap_or_default();
        Some(format!("contains {c:?}"))
    } else if name == "." || name == ".." {
        Some("is reserved by Linux".into())
    } else if name.starts_with('-') {
        Some("starts with '-', which ip, wg and nft read as an option".into())
    } else {
        None
    }
}

fn interface_name(s: &FamilySettings) -> Option<Finding> {
    interface_name_problem(s.interface_name).map(|problem| {
        Finding::new(
            Rule::InterfaceName,
            field(s.family, "interfaceName"),
            format!(
                "interface name {:?} {problem}; use 1-15 printable ASCII characters without '/', ':' or whitespace, not starting with '-', such as 'wg-encrypt'",
                s.interface_name
            ),
        )
    })
}

fn distinct_interface_names(spec: &EncryptionConfigSpec) -> Option<Finding> {
    (spec.ipv4.interface_name == spec.ipv6.interface_name).then(|| {
        Finding::new(
            Rule::InterfaceName,
            "spec.ipv6.interfaceName",
            format!(
                "IPv4 and IPv6 both use interface {:?}; give spec.ipv6.interfaceName another name (default 'wg-encrypt-v6')",
                spec.ipv6.interface_name
            ),
        )
    })
}

fn routing_table(table: i64) -> Option<Finding> {
    let message = if RESERVED_TABLES.contains(&table) {
        format!("table {table} is reserved by the kernel (253 default, 254 main, 255 local)")
    } else if !(1..=i64::from(u32::MAX)).contains(&table) {
        format!("table {table} is outside 1-4294967295")
    } else {
        return None;
    };
    Some(Finding::new(
        Rule::RoutingTable,
        "spec.routingTable",
        format!("{message}; pick an unused table such as 51820"),
    ))
}

fn rule_priority(priority: i64) -> Option<Finding> {
    (!(1..=MAX_RULE_PRIORITY).contains(&priority)).then(|| {
        Finding::new(
            Rule::RulePriority,
            "spec.routingRulePriority",
            format!(
                "priority {priority} is outside 1-{MAX_RULE_PRIORITY} (0, 32766 and 32767 are the kernel's local, main and default rules); use e.g. 99"
            ),
        )
    })
}

fn firewall_mark(mark: i64) -> Option<Finding> {
    let message = if mark == 0 {
        "firewall mark 0 marks nothing".to_owned()
    } else if !(1..=i64::from(u32::MAX)).contains(&mark) {
        format!("firewall mark {mark} does not fit in 32 bits")
    } else if mark & RESERVED_MARKS != 0 {
        format!(
            "firewall mark {mark:#x} overlaps kube-proxy's marks 0x4000/0x8000 (bits {:#x})",
            mark & RESERVED_MARKS
        )
    } else {
        return None;
    };
    Some(Finding::new(
        Rule::FirewallMark,
        "spec.firewallMark",
        format!("{message}; use a free bit such as 0x100000 (1048576)"),
    ))
}

fn persistent_keepalive(seconds: i64) -> Option<Finding> {
    (!(0..=65535).contains(&seconds)).then(|| {
        Finding::new(
            Rule::PersistentKeepalive,
            "spec.persistentKeepalive",
            format!("{seconds} s is not a WireGuard keepalive; use 0 (off) to 65535 seconds, typically 25"),
        )
    })
}

fn host_encryption_route_source(spec: &EncryptionConfigSpec) -> Option<Finding> {
    (spec.host_encryption && spec.route_source == RouteSource::PodCidrs).then(|| {
        Finding::new(
            Rule::HostEncryptionRouteSource,
            "spec.routeSource",
            "host encryption is on with routeSource PodCIDRs: when pods take addresses from the node network (Azure CNI, AWS VPC CNI) nodes have no spec.podCIDRs and pod traffic stays unencrypted; set routeSource: WorkloadIPs on such clusters",
        )
    })
}
