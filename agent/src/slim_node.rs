//! Nodes as the agent watches them: deserialized straight into the few fields the planner
//! reads, so the images, conditions, node info and managedFields a kubelet writes — most of a
//! Node's ~8 KB as served — are skipped by the parser instead of being allocated and dropped,
//! for every one of thousands of Nodes at every list and every heartbeat.
//!
//! Kept of each Node: name, uid (the owner of its NodeEncryption), creationTimestamp (of two
//! nodes claiming one key or prefix, the older keeps it), resourceVersion (for the watch
//! only: it is dropped before the Node is stored, so a heartbeat leaves the stored Node as
//! it was), `spec.podCIDR(s)` and `spec.providerID`, `status.addresses`, the agent's own
//! annotations (`kube-encrypt.dev/`), and the labels the planner reads ([`label_keys`]:
//! opt-out, control plane, and the keys of the config's node selector). A cloud node
//! carries a dozen labels and a handful of annotations that would otherwise be most of the
//! cache. Anything else the planner comes to read must be added here.
//!
//! The anchors do the same: Cilium's agents watch Nodes and Pods through "slim" copies of
//! the Kubernetes types that declare only the fields Cilium reads; Calico's Felix does not
//! watch the API server at scale at all but takes a filtered stream from Typha. A filtered
//! stream needs a server side (a field selector cannot drop fields), so the agent filters
//! where it parses. Measured with `cargo bench -p kube-encrypt-tests --bench agent_scale`
//! (5,000 kubelet-like Nodes of ~8 KB as served, 1 % heartbeating every 10 s): the agent's
//! RSS went from 80–86 MiB to 52–56 MiB and its CPU over the 120 s of heartbeats (two
//! resyncs included) from 0.26–0.28 % to 0.17–0.18 % of a core; the README has the figures.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::runtime::watcher::Event;
use kube::Resource;
use kube_encrypt_api::node::{CONTROL_PLANE_LABEL, ENCRYPTION_LABEL};
use serde::Deserialize;

/// The prefix of the annotations the agent reads (and writes on its own Node).
pub const OWN_ANNOTATIONS: &str = "kube-encrypt.dev/";

/// The label keys the planner reads on every Node, besides the node selector's.
pub const PLANNED_LABELS: [&str; 2] = [ENCRYPTION_LABEL, CONTROL_PLANE_LABEL];

/// The label keys a cache of Nodes must keep for `selector`: [`PLANNED_LABELS`] and every
/// key the selector names (in `matchLabels` and in `matchExpressions`, whatever the operator).
pub fn label_keys(selector: Option<&LabelSelector>) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = PLANNED_LABELS.iter().map(|k| k.to_string()).collect();
    if let Some(selector) = selector {
        keys.extend(
            selector
                .match_labels
                .iter()
                .flatten()
                .map(|(k, _)| k.clone()),
        );
        let expressions = selector.match_expressions.iter().flatten();
        keys.extend(expressions.map(|e| e.key.clone()));
    }
    keys
}

/// A Node with only what the agent reads; `resourceVersion` kept for the watch.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "WireNode")]
pub struct SlimNode {
    metadata: ObjectMeta,
    spec: Option<NodeSpec>,
    addresses: Option<Vec<NodeAddress>>,
}

impl Resource for SlimNode {
    type DynamicType = ();
    type Scope = k8s_openapi::ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Node".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "nodes".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl SlimNode {
    /// The Node the planner reads, without the watch's resource version.
    pub fn into_node(self) -> Node {
        Node {
            metadata: ObjectMeta {
                resource_version: None,
                ..self.metadata
            },
            spec: self.spec,
            status: self.addresses.map(|addresses| NodeStatus {
                addresses: Some(addresses),
                ..Default::default()
            }),
        }
    }

    /// Drops every label whose key is not in `label_keys`.
    pub fn keep_only(mut self, label_keys: &BTreeSet<String>) -> Self {
        if let Some(labels) = self.metadata.labels.as_mut() {
            labels.retain(|key, _| label_keys.contains(key));
        }
        self
    }

    /// A watch event of slim Nodes as one of Nodes with only `label_keys` as labels.
    pub fn into_node_event(event: Event<SlimNode>, label_keys: &BTreeSet<String>) -> Event<Node> {
        let node = |slim: SlimNode| slim.keep_only(label_keys).into_node();
        match event {
            Event::Apply(slim) => Event::Apply(node(slim)),
            Event::Delete(slim) => Event::Delete(node(slim)),
            Event::Init => Event::Init,
            Event::InitApply(slim) => Event::InitApply(node(slim)),
            Event::InitDone => Event::InitDone,
        }
    }
}

/// The JSON of a Node, reduced to what [`SlimNode`] keeps; every other field is skipped
/// unparsed. Absent and `null` read the same.
#[derive(Deserialize, Default)]
#[serde(default)]
struct WireNode {
    metadata: Option<WireMeta>,
    spec: Option<WireSpec>,
    status: Option<WireStatus>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    creation_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireSpec {
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
    #[serde(rename = "podCIDRs")]
    pod_cidrs: Option<Vec<String>>,
    #[serde(rename = "providerID")]
    provider_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireStatus {
    addresses: Option<Vec<NodeAddress>>,
}

impl From<WireNode> for SlimNode {
    fn from(wire: WireNode) -> Self {
        let meta = wire.metadata.unwrap_or_default();
        let mut annotations = meta.annotations;
        if let Some(annotations) = annotations.as_mut() {
            annotations.retain(|key, _| key.starts_with(OWN_ANNOTATIONS));
        }
        SlimNode {
            metadata: ObjectMeta {
                name: meta.name,
                uid: meta.uid,
                resource_version: meta.resource_version,
                creation_timestamp: meta.creation_timestamp,
                labels: meta.labels,
                annotations,
                ..Default::default()
            },
            spec: wire.spec.map(|spec| NodeSpec {
                pod_cidr: spec.pod_cidr,
                pod_cidrs: spec.pod_cidrs,
                provider_id: spec.provider_id,
                ..Default::default()
            }),
            addresses: wire.status.and_then(|status| status.addresses),
        }
    }
}

#[cfg(test)]
mod tests;
