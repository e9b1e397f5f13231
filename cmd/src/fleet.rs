//! The nodes as the plugin sees them: each Node through the one conversion
//! (`kube_encrypt_api::node::NodeView`), whether it takes part (the config's node selector and
//! the opt-out label), and what its agent reported in its NodeEncryption.

use std::collections::BTreeMap;

use kube_encrypt_api::crd::{EncryptionConfig, NodeEncryption, NodeEncryptionStatus};
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::NodeView;
use kube_encrypt_api::plan::NodeSelector;

use crate::cluster::Snapshot;

/// One node joined with its report.
#[derive(Clone, Debug)]
pub struct Member {
    pub view: NodeView,
    /// Selected by the config and not opted out.
    pub participating: bool,
    /// The NodeEncryption's status; `None` when the agent never reported.
    pub report: Option<NodeEncryptionStatus>,
}

/// Every node of a snapshot, sorted by name.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    pub members: Vec<Member>,
    /// The config's node selector cannot be compiled (the agents refuse it too).
    pub selector_error: Option<String>,
}

impl Fleet {
    pub fn from_snapshot(snapshot: &Snapshot) -> Self {
        Self::new(
            snapshot.config.as_ref(),
            &snapshot.nodes,
            &snapshot.encryptions,
        )
    }

    pub fn new(
        config: Option<&EncryptionConfig>,
        nodes: &[k8s_openapi::api::core::v1::Node],
        encryptions: &[NodeEncryption],
    ) -> Self {
        let selector = config.map(|c| NodeSelector::compile(c.spec.node_selector.as_ref()));
        let selector_error = match &selector {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        let mut reports: BTreeMap<&str, &NodeEncryption> = encryptions
            .iter()
            .filter_map(|e| Some((e.metadata.name.as_deref()?, e)))
            .collect();
        let mut members: Vec<Member> = nodes
            .iter()
            .map(|node| {
                let view = NodeView::from_node(node);
                let selected = match &selector {
                    Some(Ok(selector)) => selector.matches(&view.labels),
                    Some(Err(_)) | None => true,
                };
                let report = reports
                    .remove(view.name.as_str())
                    .and_then(|e| e.status.clone());
                Member {
                    participating: selected && !view.opted_out,
                    view,
                    report,
                }
            })
            .collect();
        members.sort_by(|a, b| a.view.name.cmp(&b.view.name));
        Self {
            members,
            selector_error,
        }
    }

    pub fn participants(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.participating)
    }
}

impl Member {
    pub fn name(&self) -> &str {
        &self.view.name
    }

    /// The reported status of `family`, if any.
    pub fn family(&self, family: Family) -> Option<&kube_encrypt_api::crd::FamilyStatus> {
        let report = self.report.as_ref()?;
        match family {
            Family::V4 => report.ipv4.as_ref(),
            Family::V6 => report.ipv6.as_ref(),
        }
    }

    /// Whether the agent reports its `Degraded` condition as true.
    pub fn degraded_condition(
        &self,
    ) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        let report = self.report.as_ref()?;
        report
            .conditions
            .iter()
            .find(|c| c.type_ == "Degraded" && c.status == "True")
    }
}
