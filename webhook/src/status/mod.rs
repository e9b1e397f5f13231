//! `EncryptionConfig.status`, aggregated from the NodeEncryption reports of the agents by the
//! replica holding the Lease (see [`controller`]); [`aggregate`] is the pure part.
//!
//! ```text
//!  Nodes (labels, InternalIPs) ──┐
//!  NodeEncryptions (reports) ────┼─► nodes::judge per node ─► aggregate ─► status ─► merge patch of /status
//!  EncryptionConfig `default` ───┘                                          (only when it changed)
//! ```
//!
//! **Participating nodes** are those the agents plan for: not labelled
//! `kube-encrypt.dev/encryption=disabled` and selected by `spec.nodeSelector`.
//!
//! **Counts** (`status.nodes`): `total` is every Node. A node counts once: non-participating
//! nodes as `disabled`; participating nodes by their worst reported state (Error, then
//! Unsupported, then Disabled, then Encrypted) among the enabled families the node can take
//! part in (a family it has no InternalIP of does not count); with no family enabled, as
//! `disabled`. Participating nodes whose agent has not reported yet are in no bucket, so
//! `total` minus the four buckets is the number of nodes still pending.
//!
//! **Ready=True** exactly when `spec.nodeSelector` is valid and every participating node has a
//! NodeEncryption in which, for each family:
//! - enabled in the spec: `Encrypted` with the spec's port, interface name and (when not 0,
//!   auto) MTU; or `Unsupported` (a node without WireGuard stays unencrypted, as planned for
//!   mixed clusters); or `Disabled` on a node without an InternalIP of that family;
//! - disabled in the spec: `Disabled` or `Unsupported` (encryption removed).
//!
//! With no participating node, Ready is True (nothing to do). Otherwise Ready=False with
//! reason `InvalidNodeSelector`, `NodeErrors` (a family in Error), `NodesPending` (reports
//! missing) or `NodesUpdating` (reports not yet matching the spec), in that order of
//! precedence; the message names the nodes (at most five, then a count).
//!
//! **Degraded=True** when `spec.nodeSelector` is invalid (`InvalidNodeSelector`), a
//! participating node reports a family in Error (`NodeErrors`), an agent reports its own
//! Degraded condition (`AgentsDegraded`: it refuses part of the config), or a report is older
//! than 15 minutes (`AgentsNotReporting`: agents write at least every 5). Otherwise False,
//! reason `Healthy`. Staleness does not affect Ready: the dataplane of a silent agent stays as
//! it was.
//!
//! `lastTransitionTime` changes only when a condition's status changes;
//! `observedGeneration` is the config's `metadata.generation`.

pub mod controller;
pub mod nodes;

mod conditions;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube_encrypt_api::crd::{EncryptionConfig, EncryptionState, NodeCounts, NodeEncryptionStatus};
use kube_encrypt_api::node::NodeView;
use kube_encrypt_api::plan::NodeSelector;

use nodes::NodeVerdict;

pub use conditions::{DEGRADED, READY};

/// Everything the status is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub config: &'a EncryptionConfig,
    /// Every Node, converted by the API crate.
    pub nodes: &'a [NodeView],
    /// NodeEncryption statuses by node name.
    pub reports: &'a BTreeMap<String, NodeEncryptionStatus>,
    pub now: Timestamp,
}

/// The status the config should have now.
pub fn aggregate(inputs: Inputs<'_>) -> kube_encrypt_api::crd::EncryptionConfigStatus {
    let spec = &inputs.config.spec;
    let previous = inputs.config.status.as_ref();
    let verdicts = match NodeSelector::compile(spec.node_selector.as_ref()) {
        Ok(selector) => Ok(inputs
            .nodes
            .iter()
            .map(|node| {
                let report = inputs.reports.get(&node.name);
                (
                    node.name.as_str(),
                    nodes::judge(node, &selector, spec, report, inputs.now),
                )
            })
            .collect::<Vec<_>>()),
        Err(e) => Err(e.to_string()),
    };
    let counts = match &verdicts {
        Ok(verdicts) => count(verdicts),
        Err(_) => NodeCounts {
            total: len(inputs.nodes.len()),
            ..Default::default()
        },
    };
    let conditions = conditions::build(spec, &verdicts, previous, inputs.now);
    kube_encrypt_api::crd::EncryptionConfigStatus {
        observed_generation: inputs.config.metadata.generation,
        conditions,
        nodes: Some(counts),
    }
}

fn count(verdicts: &[(&str, NodeVerdict)]) -> NodeCounts {
    let mut counts = NodeCounts {
        total: len(verdicts.len()),
        ..Default::default()
    };
    for (_, verdict) in verdicts {
        let bucket = match verdict {
            NodeVerdict::NotParticipating => &mut counts.disabled,
            NodeVerdict::Pending => continue,
            NodeVerdict::Reported { state, .. } => match state {
                EncryptionState::Encrypted => &mut counts.encrypted,
                EncryptionState::Disabled => &mut counts.disabled,
                EncryptionState::Unsupported => &mut counts.unsupported,
                EncryptionState::Error => &mut counts.error,
            },
        };
        *bucket += 1;
    }
    counts
}

fn len(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
