//! Table-driven tests of the admission rules. Every row states the exact rule ids it expects.

mod cel;
mod change;
pub(crate) mod fields;
mod nat;
mod objects;
mod overlap;
mod rule_ids;

use serde_json::Value;

use super::{
    evaluate_config, evaluate_config_against, evaluate_pool_change, evaluate_pool_change_against,
    ConfigRef, Finding, NamedPool, PoolChange, PoolSet, Rule,
};
use crate::crd::{EncryptionConfigSpec, IPPoolSpec};

/// The rule ids of `findings`, sorted, one per finding.
fn ids(findings: &[Finding]) -> Vec<Rule> {
    let mut ids: Vec<Rule> = findings.iter().map(|f| f.rule).collect();
    ids.sort();
    ids
}

fn sorted(rules: &[Rule]) -> Vec<Rule> {
    let mut rules = rules.to_vec();
    rules.sort();
    rules
}

/// Asserts one table row: the findings carry exactly the `expected` rule ids.
fn assert_row(row: &str, findings: &[Finding], expected: &[Rule]) {
    assert_eq!(
        ids(findings),
        sorted(expected),
        "row {row:?}: got findings {:#?}",
        findings.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    for f in findings {
        assert!(!f.message.is_empty(), "row {row:?}: empty message in {f:?}");
    }
}

/// A spec from its JSON form; fields left out take their defaults, as in the cluster.
fn spec(json: Value) -> EncryptionConfigSpec {
    serde_json::from_value(json).expect("test spec deserializes")
}

/// A spec with the given families enabled and everything else default.
fn enabled(v4: bool, v6: bool) -> EncryptionConfigSpec {
    spec(serde_json::json!({"ipv4": {"enabled": v4}, "ipv6": {"enabled": v6}}))
}

fn pool(name: &str, cidr: &str, nat: bool) -> NamedPool {
    NamedPool::new(
        name,
        IPPoolSpec {
            cidr: cidr.into(),
            nat_outgoing: nat,
            disabled: false,
        },
    )
}

fn disabled(mut pool: NamedPool) -> NamedPool {
    pool.spec.disabled = true;
    pool
}

/// [`evaluate_config`], checked to find exactly what [`evaluate_config_against`] finds on the
/// same pools parsed once into a [`PoolSet`] (the webhook's path).
fn config_findings(row: &str, spec: &EncryptionConfigSpec, pools: &[NamedPool]) -> Vec<Finding> {
    let findings = evaluate_config("default", spec, pools);
    let set = PoolSet::new(pools.to_vec());
    assert_eq!(
        evaluate_config_against("default", spec, &set),
        findings,
        "row {row:?}: a PoolSet finds something else"
    );
    findings
}

/// [`evaluate_pool_change`], checked the same way against [`evaluate_pool_change_against`].
fn pool_change_findings(
    row: &str,
    change: PoolChange,
    config: Option<ConfigRef<'_>>,
    pools: &[NamedPool],
) -> Vec<Finding> {
    let findings = evaluate_pool_change(change.clone(), config, pools);
    let set = PoolSet::new(pools.to_vec());
    assert_eq!(
        evaluate_pool_change_against(change, config, &set),
        findings,
        "row {row:?}: a PoolSet finds something else"
    );
    findings
}
