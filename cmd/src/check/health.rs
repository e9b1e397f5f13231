//! The checks that read the cluster's state: the shared admission rules on the live config and
//! pools (and, as a pre-flight, on the families not enabled yet), NAT outgoing, agent reports,
//! node states, MTU consistency, handshakes, duplicate keys, nodes without keys.

use std::collections::BTreeMap;

use kube_encrypt_api::crd::{EncryptionConfigSpec, EncryptionState, SINGLETON_NAME};
use kube_encrypt_api::net::Family;
use kube_encrypt_api::rules::{self, Finding, Rule, Severity};

use super::CheckResult;
use crate::cluster::Snapshot;
use crate::fleet::{Fleet, Member};
use crate::status::model::{duplicate_key_warnings, STALE_HANDSHAKE_SECONDS};

/// Lists at most this many names in one detail line.
const NAMED: usize = 5;

pub fn checks(snapshot: &Snapshot) -> Vec<CheckResult> {
    let fleet = Fleet::from_snapshot(snapshot);
    let spec = snapshot.config.as_ref().map(|c| c.spec.clone());
    let families = spec
        .as_ref()
        .map(|s| s.enabled_families())
        .unwrap_or_default();
    let mut checks = vec![config_present(spec.is_some())];
    checks.extend(rule_checks(snapshot));
    checks.extend(Family::ALL.map(|f| nat_outgoing(snapshot, spec.as_ref(), f)));
    if !families.is_empty() {
        checks.push(agents_report(&fleet));
        checks.push(node_states(&fleet, &families));
        checks.extend(families.iter().map(|f| mtu_consistency(&fleet, *f)));
        checks.push(handshakes(&fleet, &families));
        checks.push(keys_published(&fleet, &families));
    }
    checks.push(duplicate_keys(&fleet));
    checks.push(node_data(&fleet));
    checks
}

fn names(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMED {
        text.push_str(&format!(" and {} more", names.len() - NAMED));
    }
    text
}

fn config_present(present: bool) -> CheckResult {
    let name = "EncryptionConfig";
    match present {
        true => CheckResult::pass(name, "\"default\" exists"),
        false => CheckResult::warn(
            name,
            "no EncryptionConfig \"default\": encryption is off",
            "kubectl encrypt enable",
        ),
    }
}

/// The admission rules on the live objects, one check per finding (NAT rules have their own).
fn rule_checks(snapshot: &Snapshot) -> Vec<CheckResult> {
    let pools = snapshot.named_pools();
    let mut findings = rules::evaluate_pools(&pools);
    if let Some(config) = &snapshot.config {
        let name = config.metadata.name.as_deref().unwrap_or(SINGLETON_NAME);
        findings.extend(rules::evaluate_config(name, &config.spec, &pools));
    }
    let shown: Vec<&Finding> = findings.iter().filter(|f| !is_nat(f.rule)).collect();
    if shown.is_empty() {
        return vec![CheckResult::pass(
            "admission rules",
            "the config and the pools pass every rule",
        )];
    }
    shown
        .into_iter()
        .map(|f| {
            let name = format!("rule {}", f.rule);
            let detail = if f.field.is_empty() {
                f.message.clone()
            } else {
                format!("{}: {}", f.field, f.message)
            };
            match f.severity {
                Severity::Deny => {
                    CheckResult::fail(&name, detail, "change the field as the message says")
                }
                Severity::Warning => CheckResult::warn(&name, detail, "see the message"),
            }
        })
        .collect()
}

fn is_nat(rule: Rule) -> bool {
    matches!(rule, Rule::Ipv4NatOutgoing | Rule::Ipv6NatOutgoing)
}

/// NAT outgoing per family through the shared rule: on the live config for an enabled family,
/// and as a pre-flight (the config with that family enabled) for one not enabled yet.
fn nat_outgoing(
    snapshot: &Snapshot,
    spec: Option<&EncryptionConfigSpec>,
    family: Family,
) -> CheckResult {
    let mut probe = spec.cloned().unwrap_or_default();
    let enabled = probe.family(family).enabled;
    match family {
        Family::V4 => probe.ipv4.enabled = true,
        Family::V6 => probe.ipv6.enabled = true,
    }
    let findings: Vec<Finding> =
        rules::evaluate_config(SINGLETON_NAME, &probe, &snapshot.named_pools())
            .into_iter()
            .filter(|f| is_nat(f.rule) && f.field.starts_with(&format!("spec.{}.", family.field())))
            .collect();
    let name = format!("{family} NAT outgoing");
    let pools = crate::enable::nat::family_pools(&snapshot.pools, family);
    if findings.is_empty() {
        return CheckResult::pass(
            &name,
            format!(
                "{} enabled {family} pool(s), all with natOutgoing: true",
                pools.len()
            ),
        );
    }
    if !enabled && pools.is_empty() {
        let detail = format!("{family} encryption off and no enabled {family} IPPool");
        return CheckResult::pass(&name, detail);
    }
    let detail = findings
        .iter()
        .map(|f| f.message.clone())
        .collect::<Vec<_>>()
        .join("; ");
    let fix = match pools.is_empty() {
        true => format!("create an {family} IPPool with natOutgoing: true"),
        false => format!(
            "kubectl encrypt enable --{} --fix-nat-outgoing",
            family.field()
        ),
    };
    match enabled {
        true => CheckResult::fail(&name, detail, fix),
        false => CheckResult::warn(
            &name,
            format!("needed before enabling {family}: {detail}"),
            fix,
        ),
    }
}

fn agents_report(fleet: &Fleet) -> CheckResult {
    let missing: Vec<String> = fleet
        .participants()
        .filter(|m| m.report.is_none())
        .map(|m| m.name().to_owned())
        .collect();
    let name = "agents report";
    let total = fleet.participants().count();
    match missing.is_empty() {
        true => CheckResult::pass(name, format!("{total}/{total} participating nodes have a NodeEncryption")),
        false => CheckResult::fail(
            name,
            format!("no NodeEncryption from {}", names(&missing)),
            "check that the kube-encrypt-agent pod runs on those nodes (kubectl -n kube-encrypt get pods -o wide)",
        ),
    }
}

fn node_states(fleet: &Fleet, families: &[Family]) -> CheckResult {
    let mut off = Vec::new();
    for member in fleet.participants().filter(|m| m.report.is_some()) {
        for family in families {
            match member.family(*family) {
                Some(s) if s.state == EncryptionState::Encrypted => {}
                Some(s) => off.push(format!("{} {family} {:?}", member.name(), s.state)),
                None => off.push(format!("{} {family} not reported", member.name())),
            }
        }
        if let Some(c) = member.degraded_condition() {
            off.push(format!("{} Degraded: {}", member.name(), c.message));
        }
    }
    let name = "nodes encrypted";
    match off.is_empty() {
        true => CheckResult::pass(name, "every reporting participating node is Encrypted"),
        false => CheckResult::fail(
            name,
            names(&off),
            "kubectl encrypt status --node NODE shows each node's message",
        ),
    }
}

fn mtu_consistency(fleet: &Fleet, family: Family) -> CheckResult {
    let mut by_mtu: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for member in fleet.participants() {
        if let Some(mtu) = member
            .family(family)
            .filter(|s| s.state == EncryptionState::Encrypted)
            .and_then(|s| s.mtu)
        {
            by_mtu
                .entry(mtu)
                .or_default()
                .push(member.name().to_owned());
        }
    }
    let name = format!("{family} MTU consistent");
    if by_mtu.len() <= 1 {
        let detail = by_mtu
            .keys()
            .next()
            .map_or("no node reports an MTU yet".into(), |m| {
                format!("every node uses {m}")
            });
        return CheckResult::pass(&name, detail);
    }
    let detail = by_mtu
        .iter()
        .map(|(mtu, nodes)| format!("{mtu} on {}", names(nodes)))
        .collect::<Vec<_>>()
        .join("; ");
    CheckResult::fail(
        &name,
        detail,
        format!(
            "set spec.{}.mtu to the smallest, or give every node's underlay the same MTU",
            family.field()
        ),
    )
}

fn handshakes(fleet: &Fleet, families: &[Family]) -> CheckResult {
    let mut stale = Vec::new();
    for member in fleet.participants() {
        for family in families {
            let Some(status) = member.family(*family) else {
                continue;
            };
            for peer in &status.worst_peers {
                match peer.handshake_age_seconds {
                    None => stale.push(format!(
                        "{} → {} ({family}, never)",
                        member.name(),
                        peer.node
                    )),
                    Some(age) if age > STALE_HANDSHAKE_SECONDS => stale.push(format!(
                        "{} → {} ({family}, {} ago)",
                        member.name(),
                        peer.node,
                        crate::format::age(age)
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    let name = "handshakes fresh";
    match stale.is_empty() {
        true => CheckResult::pass(name, "no peer without a recent handshake"),
        false => CheckResult::warn(
            name,
            format!("{} peer(s) without a recent handshake: {}", stale.len(), names(&stale)),
            "idle peers without persistentKeepalive are normal; otherwise open the WireGuard UDP ports between the nodes",
        ),
    }
}

fn keys_published(fleet: &Fleet, families: &[Family]) -> CheckResult {
    let missing: Vec<String> = fleet
        .participants()
        .flat_map(|m| {
            families
                .iter()
                .filter(|f| m.view.keys.get(**f).is_none())
                .map(move |f| key_gap(m, *f))
        })
        .collect();
    let name = "nodes have keys";
    match missing.is_empty() {
        true => CheckResult::pass(name, "every participating node publishes its keys"),
        false => CheckResult::fail(
            name,
            names(&missing),
            "their traffic stays unencrypted; kubectl encrypt status --node NODE says why (no WireGuard, agent not running)",
        ),
    }
}

fn key_gap(member: &Member, family: Family) -> String {
    match member.family(family) {
        Some(s) if s.state != EncryptionState::Encrypted => {
            format!("{} {family} ({:?})", member.name(), s.state)
        }
        _ => format!("{} {family}", member.name()),
    }
}

fn duplicate_keys(fleet: &Fleet) -> CheckResult {
    let duplicates = duplicate_key_warnings(fleet);
    let name = "keys unique";
    match duplicates.is_empty() {
        true => CheckResult::pass(name, "no two nodes publish the same key"),
        false => CheckResult::fail(
            name,
            duplicates.iter().map(|w| w.message.clone()).collect::<Vec<_>>().join("; "),
            "delete the private key in the agent's state dir on all but one of them and restart those agents",
        ),
    }
}

fn node_data(fleet: &Fleet) -> CheckResult {
    let problems: Vec<String> = fleet
        .members
        .iter()
        .flat_map(|m| m.view.problems.iter().map(|p| p.to_string()))
        .collect();
    let name = "node data valid";
    match problems.is_empty() {
        true => CheckResult::pass(
            name,
            "addresses, pod CIDRs and kube-encrypt annotations parse",
        ),
        false => CheckResult::fail(
            name,
            names(&problems),
            "correct the named field on those nodes",
        ),
    }
}
