//! The admission rules of SPEC §3: one place that decides whether a config or a pool change is
//! acceptable. The webhook, the plugin's pre-flight checks and the agent all call it.
//!
//! ```text
//!  EncryptionConfig + IPPools ─► evaluate_config ─────┐
//!  IPPool change + config + IPPools ─► evaluate_pool_change ─┼─► Vec<Finding> (sorted, every problem)
//!  IPPools ─► evaluate_pools ─────────────────────────┘
//! ```
//!
//! A caller judging many requests against one set of pools (the webhook, per cache snapshot)
//! builds a [`PoolSet`] once, which parses every CIDR, and calls [`evaluate_config_against`] /
//! [`evaluate_pool_change_against`]: the same rules, the same findings.
//!
//! Every finding says what is wrong and what to change. Rules for which [`Rule::in_crd_schema`]
//! holds are also CEL rules of the CRDs (their messages start with the rule id); a test runs the
//! same table through both.

mod config;
mod nat;
mod pool;
mod rule;

#[cfg(test)]
pub(crate) mod tests;

use std::fmt;

use crate::crd::{EncryptionConfig, EncryptionConfigSpec, IPPool, IPPoolSpec, SINGLETON_NAME};

use pool::PoolView;

pub use config::interface_name_problem;
pub use pool::{network as pool_network, PoolCidrError, PoolSet};
pub use rule::{Rule, Severity, UnknownRule};

/// One problem found by a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// Path of the offending field in the object under review (`spec.ipv6.enabled`,
    /// `spec.cidr`); empty when the whole object is meant (a deletion).
    pub field: String,
    /// What is wrong and what to change.
    pub message: String,
}

impl Finding {
    /// A finding with the rule's default severity.
    pub fn new(rule: Rule, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            rule,
            severity: rule.default_severity(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.rule, self.message)
        } else {
            write!(f, "{}: {}: {}", self.rule, self.field, self.message)
        }
    }
}

/// An IPPool by name, as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPool {
    pub name: String,
    pub spec: IPPoolSpec,
}

impl NamedPool {
    pub fn new(name: impl Into<String>, spec: IPPoolSpec) -> Self {
        Self {
            name: name.into(),
            spec,
        }
    }
}

impl From<&IPPool> for NamedPool {
    fn from(pool: &IPPool) -> Self {
        Self::new(
            pool.metadata.name.clone().unwrap_or_default(),
            pool.spec.clone(),
        )
    }
}

/// The EncryptionConfig a pool change is checked against.
#[derive(Clone, Copy, Debug)]
pub struct ConfigRef<'a> {
    pub name: &'a str,
    pub spec: &'a EncryptionConfigSpec,
}

impl<'a> From<&'a EncryptionConfig> for ConfigRef<'a> {
    fn from(cfg: &'a EncryptionConfig) -> Self {
        Self {
            name: cfg.metadata.name.as_deref().unwrap_or_default(),
            spec: &cfg.spec,
        }
    }
}

/// A requested change to one IPPool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolChange {
    Create(NamedPool),
    Update { old: NamedPool, new: NamedPool },
    Delete(NamedPool),
}

impl PoolChange {
    /// The pool being changed (its new version, or the deleted one).
    pub fn pool(&self) -> &NamedPool {
        match self {
            PoolChange::Create(p) | PoolChange::Delete(p) | PoolChange::Update { new: p, .. } => p,
        }
    }
}

fn sorted(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort();
    findings.dedup();
    findings
}

/// Every finding about the config named `name` with `spec`, given the cluster's pools.
pub fn evaluate_config(
    name: &str,
    spec: &EncryptionConfigSpec,
    pools: &[NamedPool],
) -> Vec<Finding> {
    config_findings(name, spec, views(pools).iter().copied())
}

/// [`evaluate_config`] against pools parsed once.
pub fn evaluate_config_against(
    name: &str,
    spec: &EncryptionConfigSpec,
    pools: &PoolSet,
) -> Vec<Finding> {
    config_findings(name, spec, pools.views())
}

fn config_findings<'a>(
    name: &str,
    spec: &EncryptionConfigSpec,
    pools: impl IntoIterator<Item = PoolView<'a>> + Clone,
) -> Vec<Finding> {
    let mut findings = config::check(name, spec);
    findings.extend(nat::check_config(spec, pools));
    sorted(findings)
}

fn views(pools: &[NamedPool]) -> Vec<PoolView<'_>> {
    pools.iter().map(PoolView::of).collect()
}

/// The findings of the rules that guard the dataplane ([`Rule::guards_dataplane`]) about
/// `spec`, sorted. The planner refuses a config with any of them, and the agent keeps its
/// dataplane as it is until the config is fixed.
pub fn dataplane_blockers(spec: &EncryptionConfigSpec) -> Vec<Finding> {
    let mut findings = config::check(SINGLETON_NAME, spec);
    findings.retain(|f| f.rule.guards_dataplane());
    sorted(findings)
}

/// Every finding about the `default` config as the agent sees it, sorted: the rules that guard
/// the dataplane deny (the agent does not apply the config), every other rule only warns (it
/// is admission policy, which an admin may relax; the agent applies the config anyway).
pub fn evaluate_for_agent(spec: &EncryptionConfigSpec, pools: &[NamedPool]) -> Vec<Finding> {
    let findings = evaluate_config(SINGLETON_NAME, spec, pools)
        .into_iter()
        .map(|f| Finding {
            severity: if f.rule.guards_dataplane() {
                Severity::Deny
            } else {
                Severity::Warning
            },
            ..f
        })
        .collect();
    sorted(findings)
}

/// The findings about the config alone (the rules its CRD also enforces, plus the warning),
/// without looking at pools.
pub fn evaluate_config_fields(name: &str, spec: &EncryptionConfigSpec) -> Vec<Finding> {
    sorted(config::check(name, spec))
}

/// The findings about one pool alone (`pool-cidr`).
pub fn evaluate_pool_fields(pool: &NamedPool) -> Vec<Finding> {
    pool::check_cidr(pool).into_iter().collect()
}

/// Every finding a pool change causes, given the config (if any) and the cluster's pools as
/// they are before the change. NAT rules are evaluated on the pools after the change; only what
/// the change makes worse is reported, so an unrelated pool is never blocked by an old problem.
pub fn evaluate_pool_change(
    change: PoolChange,
    config: Option<ConfigRef<'_>>,
    pools: &[NamedPool],
) -> Vec<Finding> {
    pool_change_findings(&change, config, views(pools).iter().copied())
}

/// [`evaluate_pool_change`] against pools parsed once.
pub fn evaluate_pool_change_against(
    change: PoolChange,
    config: Option<ConfigRef<'_>>,
    pools: &PoolSet,
) -> Vec<Finding> {
    pool_change_findings(&change, config, pools.views())
}

fn pool_change_findings<'a>(
    change: &'a PoolChange,
    config: Option<ConfigRef<'_>>,
    pools: impl IntoIterator<Item = PoolView<'a>> + Clone,
) -> Vec<Finding> {
    let before = pool::before(change, pools.clone());
    let after = pool::apply(change, pools);
    let mut findings = Vec::new();
    if let PoolChange::Create(new) | PoolChange::Update { new, .. } = change {
        findings.extend(pool::check_cidr(new));
        findings.extend(pool::check_overlap(
            PoolView::of(new),
            after.iter().copied(),
        ));
    }
    if let Some(config) = config {
        findings.extend(nat::check_change(change, config, &before, &after));
    }
    sorted(findings)
}

/// Every problem among the cluster's pools: invalid CIDRs and each overlapping pair once.
pub fn evaluate_pools(pools: &[NamedPool]) -> Vec<Finding> {
    let mut findings: Vec<Finding> = pools.iter().filter_map(pool::check_cidr).collect();
    let views = views(pools);
    for (i, p) in views.iter().enumerate() {
        findings.extend(pool::check_overlap(*p, views[i + 1..].iter().copied()));
    }
    sorted(findings)
}

/// [`evaluate_config`] over the Kubernetes objects.
pub fn evaluate_config_object(cfg: &EncryptionConfig, pools: &[IPPool]) -> Vec<Finding> {
    let config = ConfigRef::from(cfg);
    evaluate_config(config.name, config.spec, &named(pools))
}

/// [`evaluate_pool_change`] over the Kubernetes objects of an admission request: `old` and
/// `new` are the request's old object and object (create: no old; delete: no new).
pub fn evaluate_pool_object(
    old: Option<&IPPool>,
    new: Option<&IPPool>,
    config: Option<&EncryptionConfig>,
    pools: &[IPPool],
) -> Vec<Finding> {
    let change = match (old, new) {
        (None, Some(new)) => PoolChange::Create(new.into()),
        (Some(old), Some(new)) => PoolChange::Update {
            old: old.into(),
            new: new.into(),
        },
        (Some(old), None) => PoolChange::Delete(old.into()),
        (None, None) => return Vec::new(),
    };
    evaluate_pool_change(change, config.map(ConfigRef::from), &named(pools))
}

fn named(pools: &[IPPool]) -> Vec<NamedPool> {
    pools.iter().map(NamedPool::from).collect()
}
