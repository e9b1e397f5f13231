//! Nodes as the agent watches them: deserialized straight into the few fields the planner
//! reads (name, uid, labels, annotations, spec, addresses), so the images, conditions, node
//! info and managedFields a kubelet writes — most of a Node's 8 KB — are skipped by the
//! parser instead of being allocated and dropped, for every one of thousands of Nodes at
//! every list and every heartbeat.
//!
//! What is kept is trimmed further ([`SlimNode::keep_only`]): the agent's own annotations,
//! and the labels the planner reads (opt-out, control plane, and the keys of the config's
//! node selector). A cloud node carries a dozen labels and a handful of annotations that
//! would otherwise be most of the cache.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::runtime::watcher::Event;
use kube::Resource;
use kube_encrypt_api::node::{CONTROL_PLANE_LABEL, ENCRYPTION_LABEL};
use serde::Deserialize;

/// The annotations the agent reads (and writes on its own Node).
const OWN_ANNOTATIONS: &str = "kube-encrypt.dev/";

/// The label keys the planner reads on every Node, besides the node selector's.
pub const PLANNED_LABELS: [&str; 2] = [ENCRYPTION_LABEL, CONTROL_PLANE_LABEL];

/// The label keys a cache of Nodes must keep for `selector`.
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

/// The JSON of a Node, reduced to what [`SlimNode`] keeps; every other field is skipped.
#[derive(Deserialize, Default)]
#[serde(default)]
struct WireNode {
    metadata: WireMeta,
    spec: Option<NodeSpec>,
    status: WireStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireStatus {
    addresses: Option<Vec<NodeAddress>>,
}

impl From<WireNode> for SlimNode {
    fn from(wire: WireNode) -> Self {
        let mut annotations = wire.metadata.annotations;
        if let Some(annotations) = annotations.as_mut() {
            annotations.retain(|key, _| key.starts_with(OWN_ANNOTATIONS));
        }
        SlimNode {
            metadata: ObjectMeta {
                name: wire.metadata.name,
                uid: wire.metadata.uid,
                resource_version: wire.metadata.resource_version,
                labels: wire.metadata.labels,
                annotations,
                ..Default::default()
            },
            spec: wire.spec,
            addresses: wire.status.addresses,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::watch::strip_node;
    use kube::ResourceExt;

    /// A Node as a kubelet writes it, with everything the agent does not read.
    fn kubelet_node() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": "node-b",
                "uid": "0d9c5b0e-7c59-4a1e-9c3f-1f0f5e0b6a01",
                "resourceVersion": "4711",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"kubernetes.io/hostname": "node-b", "kube-encrypt.dev/encryption": "disabled"},
                "annotations": {
                    "kube-encrypt.dev/public-key": "YFtnIPi7cn4AwXDiT5y/xBGhmA4lxAIUUb0LNADzvmY=",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}",
                },
                "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                    "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:conditions": {}}}}],
            },
            "spec": {"podCIDR": "198.18.2.0/24", "podCIDRs": ["198.18.2.0/24"], "providerID": "azure:///x"},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "192.0.2.12"}],
                "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:10Z"}],
                "images": [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 320368}],
                "nodeInfo": {"kubeletVersion": "v1.35.4", "machineID": "m", "systemUUID": "s",
                    "bootID": "b", "kernelVersion": "6", "osImage": "o", "containerRuntimeVersion": "c",
                    "kubeProxyVersion": "v1.35.4", "operatingSystem": "linux", "architecture": "amd64"},
            },
        })
    }

    #[test]
    fn a_slim_node_keeps_what_the_planner_reads_of_a_full_node() {
        let slim: SlimNode = serde_json::from_value(kubelet_node()).unwrap();
        assert_eq!(
            slim.resource_version().as_deref(),
            Some("4711"),
            "the watch resumes from it"
        );
        let mut full: Node = serde_json::from_value(kubelet_node()).unwrap();
        strip_node(&mut full);
        full.metadata.creation_timestamp = None;
        let metadata = &mut full.metadata;
        let annotations = metadata.annotations.as_mut().unwrap();
        annotations.retain(|k, _| k.starts_with("kube-encrypt.dev/"));
        let labels = metadata.labels.as_mut().unwrap();
        labels.remove("kubernetes.io/hostname");
        assert_eq!(slim.keep_only(&label_keys(None)).into_node(), full);
        let views = kube_encrypt_api::node::node_views([&full], None);
        assert!(views[0].opted_out, "the opt-out label is kept");
    }

    #[test]
    fn the_node_selectors_keys_are_kept() {
        let selector: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"pool": "encrypted"},
            "matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z9"]}],
        }))
        .unwrap();
        let keys = label_keys(Some(&selector));
        let want = [
            "kube-encrypt.dev/encryption",
            "node-role.kubernetes.io/control-plane",
            "pool",
            "zone",
        ];
        assert_eq!(keys.iter().map(String::as_str).collect::<Vec<_>>(), want);
    }

    #[test]
    fn bookmarks_and_bare_nodes_deserialize() {
        let bookmark =
            json!({"kind": "Node", "apiVersion": "v1", "metadata": {"resourceVersion": "12"}});
        let slim: SlimNode = serde_json::from_value(bookmark).unwrap();
        assert_eq!(slim.resource_version().as_deref(), Some("12"));
        let bare: SlimNode = serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap();
        assert_eq!(bare.into_node().metadata.name.as_deref(), Some("n"));
    }
}
