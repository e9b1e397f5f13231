//! One node's verdict: does it take part, what did its agent report, and does that match
//! what the config asks of it.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube_encrypt_api::crd::{
    EncryptionConfigSpec, EncryptionState, FamilyStatus, NodeEncryptionStatus,
};
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::NodeView;
use kube_encrypt_api::plan::NodeSelector;

/// A report older than this means the agent stopped reporting (it writes at least every
/// 5 minutes).
pub const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// What one node contributes to the config's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeVerdict {
    /// Opted out or not selected: counted as disabled, never blocks Ready.
    NotParticipating,
    /// Participates, but its agent has not written a NodeEncryption yet.
    Pending,
    /// Participates and reported.
    Reported {
        /// Its worst state among the families it can take part in (counts).
        state: EncryptionState,
        /// What keeps it from Ready or makes the cluster Degraded.
        issues: Vec<Issue>,
    },
}

/// Something about one node's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    /// A family in state Error: the agent cannot apply it.
    Error { family: Family, message: String },
    /// A family not (yet) in the state the config asks for.
    NotConverged { family: Family, detail: String },
    /// The agent's own Degraded condition is True.
    AgentDegraded { message: String },
    /// The report is older than [`STALE_AFTER`].
    Stale { last_update: String },
}

/// Whether `node` takes part in encryption under `selector` (the planner's rule: not opted
/// out by label, and selected by `spec.nodeSelector`).
pub fn participates(node: &NodeView, selector: &NodeSelector) -> bool {
    !node.opted_out && selector.matches(&node.labels)
}

/// How bad a state is, for "a node counts once, by its worst family".
fn badness(state: EncryptionState) -> u8 {
    match state {
        EncryptionState::Encrypted => 0,
        EncryptionState::Disabled => 1,
        EncryptionState::Unsupported => 2,
        EncryptionState::Error => 3,
    }
}

/// The verdict on `node`, given the config and its agent's report (if any).
pub fn judge(
    node: &NodeView,
    selector: &NodeSelector,
    spec: &EncryptionConfigSpec,
    report: Option<&NodeEncryptionStatus>,
    now: Timestamp,
) -> NodeVerdict {
    if !participates(node, selector) {
        return NodeVerdict::NotParticipating;
    }
    let Some(report) = report else {
        return NodeVerdict::Pending;
    };
    let mut issues = Vec::new();
    let mut worst: Option<EncryptionState> = None;
    for family in Family::ALL {
        let status = family_status(report, family);
        let settings = spec.family(family);
        let can_take_part = node.endpoint_ip(family).is_some();
        let counts =
            settings.enabled && (can_take_part || status.state != EncryptionState::Disabled);
        if counts && worst.is_none_or(|w| badness(status.state) > badness(w)) {
            worst = Some(status.state);
        }
        issues.extend(family_issue(spec, family, &status, can_take_part));
    }
    issues.extend(agent_issues(report, now));
    NodeVerdict::Reported {
        state: worst.unwrap_or(EncryptionState::Disabled),
        issues,
    }
}

fn family_status(report: &NodeEncryptionStatus, family: Family) -> FamilyStatus {
    let status = match family {
        Family::V4 => report.ipv4.as_ref(),
        Family::V6 => report.ipv6.as_ref(),
    };
    status.cloned().unwrap_or_else(|| FamilyStatus {
        state: EncryptionState::Disabled,
        message: format!("the agent reports nothing about {family}"),
        ..Default::default()
    })
}

/// Whether `status` is what the config asks of `family` on this node.
fn family_issue(
    spec: &EncryptionConfigSpec,
    family: Family,
    status: &FamilyStatus,
    can_take_part: bool,
) -> Option<Issue> {
    let settings = spec.family(family);
    let not_converged = |detail: String| Some(Issue::NotConverged { family, detail });
    match (settings.enabled, status.state) {
        (_, EncryptionState::Error) => Some(Issue::Error {
            family,
            message: status.message.clone(),
        }),
        (_, EncryptionState::Unsupported) => None,
        (false, EncryptionState::Disabled) => None,
        (false, EncryptionState::Encrypted) => not_converged(format!(
            "still encrypting {family} although spec.{}.enabled is false",
            family.field()
        )),
        (true, EncryptionState::Disabled) if !can_take_part => None,
        (true, EncryptionState::Disabled) => {
            not_converged(format!("{family} is not encrypted yet: {}", status.message))
        }
        (true, EncryptionState::Encrypted) => outdated(&settings, status).and_then(not_converged),
    }
}

/// What an encrypting family still runs differently from the config, if anything.
fn outdated(
    settings: &kube_encrypt_api::crd::FamilySettings<'_>,
    status: &FamilyStatus,
) -> Option<String> {
    let family = settings.family;
    if status.listen_port.is_some_and(|p| p != settings.port) {
        return Some(format!(
            "{family} listens on port {} instead of {}",
            status.listen_port.unwrap_or_default(),
            settings.port
        ));
    }
    if status
        .interface
        .as_deref()
        .is_some_and(|i| i != settings.interface_name)
    {
        return Some(format!(
            "{family} runs on interface {} instead of {}",
            status.interface.as_deref().unwrap_or_default(),
            settings.interface_name
        ));
    }
    if settings.mtu != 0 && status.mtu.is_some_and(|m| m != settings.mtu) {
        return Some(format!(
            "{family} MTU is {} instead of {}",
            status.mtu.unwrap_or_default(),
            settings.mtu
        ));
    }
    None
}

fn agent_issues(report: &NodeEncryptionStatus, now: Timestamp) -> Vec<Issue> {
    let mut issues = Vec::new();
    let degraded = report
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded" && c.status == "True");
    if let Some(condition) = degraded {
        issues.push(Issue::AgentDegraded {
            message: condition.message.clone(),
        });
    }
    let stale = report
        .last_update
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|t| now.duration_since(t).unsigned_abs() > STALE_AFTER && t < now);
    if stale {
        issues.push(Issue::Stale {
            last_update: report.last_update.clone().unwrap_or_default(),
        });
    }
    issues
}
