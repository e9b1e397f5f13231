//! The `Ready` and `Degraded` conditions from the node verdicts (rules in the module doc of
//! [`super`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube_encrypt_api::crd::{EncryptionConfigSpec, EncryptionConfigStatus, EncryptionState};
use kube_encrypt_api::net::Family;

use super::nodes::{Issue, NodeVerdict};

pub const READY: &str = "Ready";
pub const DEGRADED: &str = "Degraded";
/// Nodes named in a message before "and N more".
const NAMED: usize = 5;

/// One condition before its transition time is settled.
struct Draft {
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: String,
}

type Verdicts<'a> = Result<Vec<(&'a str, NodeVerdict)>, String>;

/// Both conditions; `previous` supplies the transition times of unchanged statuses.
pub fn build(
    spec: &EncryptionConfigSpec,
    verdicts: &Verdicts<'_>,
    previous: Option<&EncryptionConfigStatus>,
    now: Timestamp,
) -> Vec<Condition> {
    let drafts = match verdicts {
        Err(e) => invalid_selector(e),
        Ok(verdicts) => vec![ready(spec, verdicts), degraded(verdicts)],
    };
    let previous = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    drafts
        .into_iter()
        .map(|d| settle(d, previous, now))
        .collect()
}

fn settle(draft: Draft, previous: &[Condition], now: Timestamp) -> Condition {
    let status = if draft.status { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == draft.type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::from_second(now.as_second()).unwrap_or(now)));
    Condition {
        type_: draft.type_.to_owned(),
        status: status.to_owned(),
        reason: draft.reason.to_owned(),
        message: draft.message,
        last_transition_time: since,
        observed_generation: None,
    }
}

fn invalid_selector(error: &str) -> Vec<Draft> {
    let message = format!("spec.nodeSelector is invalid: {error}; fix it (the agents keep their dataplane as it is until then)");
    vec![
        Draft {
            type_: READY,
            status: false,
            reason: "InvalidNodeSelector",
            message: message.clone(),
        },
        Draft {
            type_: DEGRADED,
            status: true,
            reason: "InvalidNodeSelector",
            message,
        },
    ]
}

/// `a (detail), b (detail) and 3 more`.
fn named(items: &[String]) -> String {
    let shown = items
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match items.len().saturating_sub(NAMED) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// `node (detail)` for every node with an issue matching `pick`.
fn nodes_with(
    verdicts: &[(&str, NodeVerdict)],
    pick: impl Fn(&Issue) -> Option<String>,
) -> Vec<String> {
    verdicts
        .iter()
        .filter_map(|(name, verdict)| match verdict {
            NodeVerdict::Reported { issues, .. } => {
                let details: Vec<String> = issues.iter().filter_map(&pick).collect();
                (!details.is_empty()).then(|| format!("{name} ({})", details.join("; ")))
            }
            _ => None,
        })
        .collect()
}

fn errors(verdicts: &[(&str, NodeVerdict)]) -> Vec<String> {
    nodes_with(verdicts, |i| match i {
        Issue::Error { family, message } => Some(format!("{family}: {message}")),
        _ => None,
    })
}

fn ready(spec: &EncryptionConfigSpec, verdicts: &[(&str, NodeVerdict)]) -> Draft {
    let participating = verdicts
        .iter()
        .filter(|(_, v)| *v != NodeVerdict::NotParticipating)
        .count();
    let pending: Vec<String> = verdicts
        .iter()
        .filter(|(_, v)| *v == NodeVerdict::Pending)
        .map(|(name, _)| (*name).to_owned())
        .collect();
    let updating = nodes_with(verdicts, |i| match i {
        Issue::NotConverged { detail, .. } => Some(detail.clone()),
        _ => None,
    });
    let errors = errors(verdicts);
    let not_ready = |reason, message| Draft {
        type_: READY,
        status: false,
        reason,
        message,
    };
    if !errors.is_empty() {
        let message = format!(
            "{} of {participating} participating nodes report errors: {}",
            errors.len(),
            named(&errors)
        );
        return not_ready("NodeErrors", message);
    }
    if !pending.is_empty() {
        let message = format!(
            "{} of {participating} participating nodes have not reported yet (is the agent running there?): {}",
            pending.len(),
            named(&pending)
        );
        return not_ready("NodesPending", message);
    }
    if !updating.is_empty() {
        let message = format!(
            "{} of {participating} participating nodes do not run the config yet: {}",
            updating.len(),
            named(&updating)
        );
        return not_ready("NodesUpdating", message);
    }
    let (reason, message) = converged(spec, verdicts, participating);
    Draft {
        type_: READY,
        status: true,
        reason,
        message,
    }
}

fn converged(
    spec: &EncryptionConfigSpec,
    verdicts: &[(&str, NodeVerdict)],
    participating: usize,
) -> (&'static str, String) {
    let families = spec.enabled_families();
    if participating == 0 {
        return ("NoParticipatingNodes", "no node participates (every node is opted out by label kube-encrypt.dev/encryption=disabled or not selected by spec.nodeSelector)".to_owned());
    }
    if families.is_empty() {
        return (
            "EncryptionOff",
            format!("encryption is off on all {participating} participating nodes"),
        );
    }
    let names: Vec<&str> = families.iter().map(|f: &Family| f.name()).collect();
    let mut message = format!(
        "all {participating} participating nodes run the config ({} encryption)",
        names.join(" and ")
    );
    let unsupported: Vec<String> = verdicts
        .iter()
        .filter(|(_, v)| {
            matches!(
                v,
                NodeVerdict::Reported {
                    state: EncryptionState::Unsupported,
                    ..
                }
            )
        })
        .map(|(name, _)| (*name).to_owned())
        .collect();
    if !unsupported.is_empty() {
        message.push_str(&format!(
            "; {} without WireGuard stay unencrypted: {}",
            unsupported.len(),
            named(&unsupported)
        ));
    }
    ("Encrypted", message)
}

fn degraded(verdicts: &[(&str, NodeVerdict)]) -> Draft {
    let agent_degraded = nodes_with(verdicts, |i| match i {
        Issue::AgentDegraded { message } => Some(message.clone()),
        _ => None,
    });
    let stale = nodes_with(verdicts, |i| match i {
        Issue::Stale { last_update } => Some(format!("last report {last_update}")),
        _ => None,
    });
    let errors = errors(verdicts);
    let (reason, message) = if !errors.is_empty() {
        (
            "NodeErrors",
            format!("{} nodes report errors: {}", errors.len(), named(&errors)),
        )
    } else if !agent_degraded.is_empty() {
        (
            "AgentsDegraded",
            format!(
                "{} agents refuse or cannot apply part of the config: {}",
                agent_degraded.len(),
                named(&agent_degraded)
            ),
        )
    } else if !stale.is_empty() {
        (
            "AgentsNotReporting",
            format!(
                "{} agents have not reported for over 15 minutes (node down or agent stopped?): {}",
                stale.len(),
                named(&stale)
            ),
        )
    } else {
        return Draft {
            type_: DEGRADED,
            status: false,
            reason: "Healthy",
            message: "no participating node reports a problem".to_owned(),
        };
    };
    Draft {
        type_: DEGRADED,
        status: true,
        reason,
        message,
    }
}
