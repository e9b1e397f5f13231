//! `ipv4-nat-outgoing` and `ipv6-nat-outgoing`: an enabled family needs at least one enabled
//! pool of that family, and NAT outgoing on every enabled pool of it.

use std::collections::BTreeSet;

use crate::crd::EncryptionConfigSpec;
use crate::net::Family;

use super::pool::PoolView;
use super::{ConfigRef, Finding, PoolChange, Rule};

fn rule(family: Family) -> Rule {
    match family {
        Family::V4 => Rule::Ipv4NatOutgoing,
        Family::V6 => Rule::Ipv6NatOutgoing,
    }
}

/// The NAT-outgoing state of one family across the enabled pools with a valid CIDR.
#[derive(Debug, Default, PartialEq, Eq)]
struct FamilyPools<'a> {
    /// At least one enabled pool of the family exists.
    any: bool,
    /// Enabled pools of the family with `natOutgoing: false`, by name.
    without_nat: BTreeSet<&'a str>,
}

impl<'a> FamilyPools<'a> {
    fn of(pools: impl IntoIterator<Item = PoolView<'a>>, family: Family) -> Self {
        let mut state = Self::default();
        let in_family = |p: &PoolView<'_>| p.network.is_some_and(|n| Family::of_net(&n) == family);
        for pool in pools.into_iter().filter(in_family) {
            state.any = true;
            if !pool.spec.nat_outgoing {
                state.without_nat.insert(pool.name);
            }
        }
        state
    }
}

fn quoted(names: &BTreeSet<&str>) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `IPPool "a" has` / `IPPools "a", "b" have`.
fn pools_have(names: &BTreeSet<&str>) -> String {
    match names.len() {
        1 => format!("IPPool {} has", quoted(names)),
        _ => format!("IPPools {} have", quoted(names)),
    }
}

/// The NAT findings of a config against the cluster's pools.
pub(super) fn check_config<'a>(
    spec: &EncryptionConfigSpec,
    pools: impl IntoIterator<Item = PoolView<'a>> + Clone,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for family in spec.enabled_families() {
        let state = FamilyPools::of(pools.clone(), family);
        findings.extend(nat_findings(family, &state));
    }
    findings
}

/// What is wrong with `family`'s pools for its encryption (nothing: no finding, no text built).
fn nat_findings(family: Family, state: &FamilyPools<'_>) -> Vec<Finding> {
    if state.any && state.without_nat.is_empty() {
        return Vec::new();
    }
    let field = format!("spec.{}.enabled", family.field());
    let mut findings = Vec::new();
    if !state.any {
        findings.push(Finding::new(
            rule(family),
            field.clone(),
            format!(
                "{family} encryption needs NAT outgoing, but no enabled {family} IPPool exists; create one with natOutgoing: true, or set {field}: false"
            ),
        ));
    }
    if !state.without_nat.is_empty() {
        findings.push(Finding::new(
            rule(family),
            field.clone(),
            format!(
                "{family} encryption needs natOutgoing: true on every enabled {family} IPPool, but {} natOutgoing: false; set natOutgoing: true there (kubectl encrypt enable --fix-nat-outgoing), or set {field}: false",
                pools_have(&state.without_nat)
            ),
        ));
    }
    findings
}

/// The NAT findings a pool change causes: the cluster after the change is evaluated, and what
/// was already wrong before it is not blamed on it (so fixing one pool is never blocked by
/// another).
pub(super) fn check_change(
    change: &PoolChange,
    config: ConfigRef<'_>,
    before: &[PoolView<'_>],
    after: &[PoolView<'_>],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for family in config.spec.enabled_families() {
        let (old, new) = (
            FamilyPools::of(before.iter().copied(), family),
            FamilyPools::of(after.iter().copied(), family),
        );
        if old.any && !new.any {
            findings.push(last_pool_removed(change, config.name, family));
        }
        let added: BTreeSet<&str> = new
            .without_nat
            .difference(&old.without_nat)
            .copied()
            .collect();
        if !added.is_empty() {
            findings.push(Finding::new(
                rule(family),
                "spec.natOutgoing",
                format!(
                    "{family} encryption is enabled (EncryptionConfig {:?}) and needs natOutgoing: true on every enabled {family} IPPool; keep natOutgoing: true on IPPool {}, or disable {family} encryption first (kubectl encrypt disable --{})",
                    config.name,
                    quoted(&added),
                    family.field()
                ),
            ));
        }
    }
    findings
}

fn last_pool_removed(change: &PoolChange, config: &str, family: Family) -> Finding {
    let (field, verb) = match change {
        PoolChange::Delete(_) => ("", "deleting"),
        PoolChange::Update { new, .. } if new.spec.disabled => ("spec.disabled", "disabling"),
        PoolChange::Update { .. } | PoolChange::Create(_) => ("spec.cidr", "changing the CIDR of"),
    };
    Finding::new(
        rule(family),
        field,
        format!(
            "{verb} IPPool {:?} would leave {family} encryption (EncryptionConfig {config:?}) without an enabled {family} IPPool with NAT outgoing; disable {family} encryption first (kubectl encrypt disable --{}), or create another {family} IPPool with natOutgoing: true beforehand",
            change.pool().name,
            family.field()
        ),
    )
}
