//! The status report: one serde struct holding everything the table shows, built from a
//! snapshot. `-o json|yaml` print it as it is; the tables render it.

use std::collections::BTreeMap;

use kube_encrypt_api::crd::{EncryptionConfig, EncryptionState, FamilyStatus, IPPool};
use kube_encrypt_api::net::Family;
use kube_encrypt_api::rules::{self, Severity};
use serde::Serialize;

use crate::cluster::Snapshot;
use crate::fleet::{Fleet, Member};

/// A handshake older than this is stale: WireGuard's REJECT_AFTER_TIME (180 s), after which
/// the session is dead (the agent reports such peers among its worst peers).
pub const STALE_HANDSHAKE_SECONDS: i64 = 180;

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub config: ConfigSummary,
    pub pools: Vec<PoolSummary>,
    pub nodes: Vec<NodeSummary>,
    pub warnings: Vec<Warning>,
    pub skipped_peers: Vec<SkippedPeer>,
    /// True when the exit code is 2: something participating is not encrypted or not healthy.
    pub degraded: bool,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSummary {
    /// Whether the EncryptionConfig `default` exists.
    pub present: bool,
    pub ipv4: FamilyConfig,
    pub ipv6: FamilyConfig,
    pub host_encryption: bool,
    pub route_source: String,
    pub backend: String,
    /// The node selector as `key=value,...`; absent = every node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// `Ready` condition status (`True`, `False`, `Unknown`) as the status controller wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Counts per enabled family over the participating nodes.
    pub counts: Vec<FamilyCounts>,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FamilyConfig {
    pub enabled: bool,
    pub port: i64,
    /// 0 = automatic.
    pub mtu: i64,
    pub interface_name: String,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FamilyCounts {
    pub family: Family,
    pub participating: usize,
    pub encrypted: usize,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolSummary {
    pub name: String,
    pub cidr: String,
    /// `None` when the CIDR is invalid.
    pub family: Option<Family>,
    pub nat_outgoing: bool,
    pub disabled: bool,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub name: String,
    /// Selected by the config's node selector and not opted out.
    pub participating: bool,
    pub opted_out: bool,
    /// The agent wrote a NodeEncryption for this node.
    pub reported: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<FamilyStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<FamilyStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
    /// This node makes the cluster degraded.
    pub degraded: bool,
}

/// Something that needs attention; `node` is absent for cluster-wide problems.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub message: String,
    /// Whether it makes the cluster degraded (exit 2); otherwise it is advice.
    pub degrades: bool,
}

/// A peer a node left out of its mesh, and why.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SkippedPeer {
    pub node: String,
    pub family: Family,
    pub peer: String,
    pub reason: String,
}

/// Builds the report of `snapshot`.
pub fn build(snapshot: &Snapshot) -> StatusReport {
    let fleet = Fleet::from_snapshot(snapshot);
    let config = snapshot.config.as_ref();
    let families = enabled_families(config);
    let mut warnings = config_warnings(snapshot, &fleet);
    let nodes: Vec<NodeSummary> = fleet
        .members
        .iter()
        .map(|m| node_summary(m, &families, &mut warnings))
        .collect();
    warnings.extend(duplicate_key_warnings(&fleet));
    warnings.sort();
    warnings.dedup();
    let degraded = warnings.iter().any(|w| w.degrades);
    StatusReport {
        config: config_summary(config, &nodes, &families),
        pools: snapshot.pools.iter().map(pool_summary).collect(),
        skipped_peers: skipped_peers(&fleet),
        nodes,
        warnings,
        degraded,
    }
}

/// The families the config enables (none without a config).
pub fn enabled_families(config: Option<&EncryptionConfig>) -> Vec<Family> {
    config
        .map(|c| c.spec.enabled_families())
        .unwrap_or_default()
}

fn config_summary(
    config: Option<&EncryptionConfig>,
    nodes: &[NodeSummary],
    families: &[Family],
) -> ConfigSummary {
    let spec = config.map(|c| c.spec.clone()).unwrap_or_default();
    let family_config = |f: Family| {
        let s = spec.family(f);
        FamilyConfig {
            enabled: s.enabled,
            port: s.port,
            mtu: s.mtu,
            interface_name: s.interface_name.to_owned(),
        }
    };
    let ready = config
        .and_then(|c| c.status.as_ref())
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    ConfigSummary {
        present: config.is_some(),
        ipv4: family_config(Family::V4),
        ipv6: family_config(Family::V6),
        host_encryption: spec.host_encryption,
        route_source: spec.route_source.as_str().to_owned(),
        backend: format!("{:?}", spec.backend),
        node_selector: spec.node_selector.as_ref().map(selector_text),
        ready,
        counts: families.iter().map(|f| family_counts(*f, nodes)).collect(),
    }
}

fn family_counts(family: Family, nodes: &[NodeSummary]) -> FamilyCounts {
    let participating: Vec<&NodeSummary> = nodes.iter().filter(|n| n.participating).collect();
    let encrypted = participating
        .iter()
        .filter(|n| state_of(n, family) == Some(EncryptionState::Encrypted))
        .count();
    FamilyCounts {
        family,
        participating: participating.len(),
        encrypted,
    }
}

/// The reported state of `family` on a node.
pub fn state_of(node: &NodeSummary, family: Family) -> Option<EncryptionState> {
    family_of(node, family).map(|f| f.state)
}

pub fn family_of(node: &NodeSummary, family: Family) -> Option<&FamilyStatus> {
    match family {
        Family::V4 => node.ipv4.as_ref(),
        Family::V6 => node.ipv6.as_ref(),
    }
}

fn selector_text(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(format!("{} {} ({values})", e.key, e.operator));
    }
    parts.join(",")
}

fn pool_summary(pool: &IPPool) -> PoolSummary {
    PoolSummary {
        name: pool.metadata.name.clone().unwrap_or_default(),
        cidr: pool.spec.cidr.clone(),
        family: rules::pool_network(&pool.spec.cidr)
            .ok()
            .map(|n| Family::of_net(&n)),
        nat_outgoing: pool.spec.nat_outgoing,
        disabled: pool.spec.disabled,
    }
}

fn cluster_warning(message: String, degrades: bool) -> Warning {
    Warning {
        node: None,
        message,
        degrades,
    }
}

fn node_warning(node: &str, message: String, degrades: bool) -> Warning {
    Warning {
        node: Some(node.to_owned()),
        message,
        degrades,
    }
}

/// The shared rules on the live config and pools, the status controller's Degraded condition
/// and a node selector the agents cannot use.
fn config_warnings(snapshot: &Snapshot, fleet: &Fleet) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let pools = snapshot.named_pools();
    for finding in rules::evaluate_pools(&pools) {
        warnings.push(cluster_warning(
            finding.to_string(),
            finding.severity == Severity::Deny,
        ));
    }
    let Some(config) = &snapshot.config else {
        return warnings;
    };
    let name = config.metadata.name.as_deref().unwrap_or_default();
    for finding in rules::evaluate_config(name, &config.spec, &pools) {
        warnings.push(cluster_warning(
            finding.to_string(),
            finding.severity == Severity::Deny,
        ));
    }
    let degraded = config.status.iter().flat_map(|s| &s.conditions);
    for condition in degraded.filter(|c| c.type_ == "Degraded" && c.status == "True") {
        let text = format!("EncryptionConfig is Degraded: {}", condition.message);
        warnings.push(cluster_warning(text, true));
    }
    if let Some(e) = &fleet.selector_error {
        warnings.push(cluster_warning(format!("spec.nodeSelector: {e}"), true));
    }
    warnings
}

fn node_summary(member: &Member, families: &[Family], warnings: &mut Vec<Warning>) -> NodeSummary {
    let before = warnings.len();
    if member.participating {
        expect_encrypted(member, families, warnings);
        report_peers(member, families, warnings);
    }
    for problem in &member.view.problems {
        let text = format!("{}: {}", problem.field, problem.message);
        warnings.push(node_warning(member.name(), text, member.participating));
    }
    let report = member.report.as_ref();
    NodeSummary {
        name: member.name().to_owned(),
        participating: member.participating,
        opted_out: member.view.opted_out,
        reported: report.is_some(),
        ipv4: report.and_then(|r| r.ipv4.clone()),
        ipv6: report.and_then(|r| r.ipv6.clone()),
        last_update: report.and_then(|r| r.last_update.clone()),
        degraded: warnings[before..].iter().any(|w| w.degrades),
    }
}

/// Every enabled family must be Encrypted on a participating node.
fn expect_encrypted(member: &Member, families: &[Family], warnings: &mut Vec<Warning>) {
    let name = member.name();
    if families.is_empty() {
        return;
    }
    if member.report.is_none() {
        let text = "no NodeEncryption: its agent has not reported (is the kube-encrypt-agent pod running on it?)";
        warnings.push(node_warning(name, text.into(), true));
        return;
    }
    for family in families {
        match member.family(*family) {
            Some(s) if s.state == EncryptionState::Encrypted => {}
            Some(s) => {
                let detail = if s.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.message)
                };
                let text = format!("{family} {:?}{detail}", s.state);
                warnings.push(node_warning(name, text, true));
            }
            None => warnings.push(node_warning(
                name,
                format!("{family}: not reported yet"),
                true,
            )),
        }
    }
    if let Some(condition) = member.degraded_condition() {
        let text = format!("Degraded: {}", condition.message);
        warnings.push(node_warning(name, text, true));
    }
}

/// Peers without a handshake or with a stale one: advice, not degradation (an idle peer
/// without persistent keepalive has no fresh handshake either).
fn report_peers(member: &Member, families: &[Family], warnings: &mut Vec<Warning>) {
    for family in families {
        let Some(status) = member.family(*family) else {
            continue;
        };
        for peer in &status.worst_peers {
            let text = match peer.handshake_age_seconds {
                None => format!(
                    "{family} peer {} has never completed a handshake",
                    peer.node
                ),
                Some(age) if age > STALE_HANDSHAKE_SECONDS => format!(
                    "{family} peer {}: last handshake {} ago (stale after {})",
                    peer.node,
                    crate::format::age(age),
                    crate::format::age(STALE_HANDSHAKE_SECONDS)
                ),
                Some(_) => continue,
            };
            warnings.push(node_warning(member.name(), text, false));
        }
    }
}

/// Two nodes publishing one key: neither is programmed as a peer.
pub fn duplicate_key_warnings(fleet: &Fleet) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for family in Family::ALL {
        let mut by_key: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for m in &fleet.members {
            if let Some(key) = m.view.keys.get(family) {
                by_key.entry(key.to_base64()).or_default().push(m.name());
            }
        }
        for (key, nodes) in by_key.into_iter().filter(|(_, n)| n.len() > 1) {
            let text = format!(
                "nodes {} publish the same {family} key {}: neither is a peer of anyone; delete the private key in the agent's state dir on all but one and restart those agents",
                nodes.join(", "),
                crate::format::short_key(&key)
            );
            warnings.push(cluster_warning(text, true));
        }
    }
    warnings
}

fn skipped_peers(fleet: &Fleet) -> Vec<SkippedPeer> {
    let mut skipped = Vec::new();
    for member in &fleet.members {
        for family in Family::ALL {
            let Some(status) = member.family(family) else {
                continue;
            };
            skipped.extend(status.skipped_peers.iter().map(|s| SkippedPeer {
                node: member.name().to_owned(),
                family,
                peer: s.node.clone(),
                reason: s.reason.clone(),
            }));
        }
    }
    skipped
}
