//! The one conversion from Kubernetes `Node`s (and `Pod`s, in WorkloadIPs mode) to the planner's
//! node view. Everyone uses it: the agent to plan, the webhook and the plugin to check.
//!
//! A malformed annotation is recorded on that node's view as a [`NodeProblem`]; it never fails
//! the conversion, so one bad node cannot break the mesh for the others.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;

use crate::key::WireGuardKey;
use crate::net::{parse_network, Family, PerFamily};
use crate::quote::quoted;

/// Annotation holding a node's IPv4 WireGuard public key.
pub const PUBLIC_KEY_ANNOTATION: &str = "kube-encrypt.dev/public-key";
/// Annotation holding a node's IPv6 WireGuard public key.
pub const PUBLIC_KEY_V6_ANNOTATION: &str = "kube-encrypt.dev/public-key-v6";
/// Annotation holding the address of a node's IPv4 WireGuard interface.
pub const INTERFACE_IPV4_ANNOTATION: &str = "kube-encrypt.dev/interface-ipv4";
/// Annotation holding the address of a node's IPv6 WireGuard interface.
pub const INTERFACE_IPV6_ANNOTATION: &str = "kube-encrypt.dev/interface-ipv6";
/// Label opting a node out when set to `disabled`.
pub const ENCRYPTION_LABEL: &str = "kube-encrypt.dev/encryption";
/// Label of control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// The annotation carrying `family`'s public key.
pub fn key_annotation(family: Family) -> &'static str {
    match family {
        Family::V4 => PUBLIC_KEY_ANNOTATION,
        Family::V6 => PUBLIC_KEY_V6_ANNOTATION,
    }
}

/// The annotation carrying `family`'s interface address.
pub fn interface_annotation(family: Family) -> &'static str {
    match family {
        Family::V4 => INTERFACE_IPV4_ANNOTATION,
        Family::V6 => INTERFACE_IPV6_ANNOTATION,
    }
}

/// What the planner knows of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// `metadata.creationTimestamp`: set by the API server, the same for every agent. Of two
    /// nodes claiming one key or address, the older keeps it (unless the claim of the other
    /// is what this node has programmed).
    pub created: Option<Timestamp>,
    pub labels: BTreeMap<String, String>,
    /// `status.addresses` of type `InternalIP`, in the node's order.
    pub internal_ips: Vec<IpAddr>,
    /// `spec.podCIDRs` (or `spec.podCIDR`), valid ones only.
    pub pod_cidrs: Vec<IpNet>,
    /// Published WireGuard public keys, valid ones only.
    pub keys: PerFamily<Option<WireGuardKey>>,
    /// Published interface addresses, valid ones only.
    pub interface_addrs: PerFamily<Option<IpAddr>>,
    /// IPs of the node's (non host-network, non terminated) pods; filled in WorkloadIPs mode.
    pub workload_ips: Vec<IpAddr>,
    /// `spec.providerID`, such as `azure:///subscriptions/...`.
    pub provider_id: Option<String>,
    /// Labelled `kube-encrypt.dev/encryption=disabled`.
    pub opted_out: bool,
    /// Labelled `node-role.kubernetes.io/control-plane`.
    pub control_plane: bool,
    /// Malformed data found on this node; the affected parts are left out above.
    pub problems: Vec<NodeProblem>,
}

/// A malformed piece of one node's data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("node {node}: {field}: {message}")]
pub struct NodeProblem {
    pub node: String,
    /// Where the bad value sits, such as `metadata.annotations[kube-encrypt.dev/public-key]`.
    pub field: String,
    pub message: String,
}

impl NodeView {
    /// Converts a Node. Never fails: bad values become [`NodeProblem`]s on the view.
    pub fn from_node(node: &Node) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let mut view = NodeView {
            created: node.metadata.creation_timestamp.as_ref().map(|t| t.0),
            opted_out: labels.get(ENCRYPTION_LABEL).map(String::as_str) == Some("disabled"),
            control_plane: labels.contains_key(CONTROL_PLANE_LABEL),
            provider_id: node.spec.as_ref().and_then(|s| s.provider_id.clone()),
            name,
            labels,
            ..Default::default()
        };
        view.read_internal_ips(node);
        view.read_pod_cidrs(node);
        view.read_annotations(node);
        view
    }

    /// The node's InternalIPs of `family`.
    pub fn internal_ips_of(&self, family: Family) -> impl Iterator<Item = IpAddr> + '_ {
        self.internal_ips
            .iter()
            .copied()
            .filter(move |ip| Family::of_addr(ip) == family)
    }

    /// The first InternalIP of `family`: the WireGuard endpoint address.
    pub fn endpoint_ip(&self, family: Family) -> Option<IpAddr> {
        self.internal_ips_of(family).next()
    }

    /// The pod CIDRs of `family`.
    pub fn pod_cidrs_of(&self, family: Family) -> impl Iterator<Item = IpNet> + '_ {
        self.pod_cidrs
            .iter()
            .copied()
            .filter(move |n| Family::of_net(n) == family)
    }

    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(NodeProblem {
            node: self.name.clone(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn read_internal_ips(&mut self, node: &Node) {
        let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
        for (i, address) in addresses.into_iter().flatten().enumerate() {
            if address.type_ != "InternalIP" {
                continue;
            }
            match address.address.trim().parse::<IpAddr>() {
                Ok(ip) => self.internal_ips.push(ip),
                Err(_) => self.problem(
                    format!("status.addresses[{i}].address"),
                    format!("{} is not an IP address", quoted(&address.address)),
                ),
            }
        }
    }

    fn read_pod_cidrs(&mut self, node: &Node) {
        let spec = node.spec.as_ref();
        let listed = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
        let cidrs = if listed.is_empty() {
            spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect()
        } else {
            listed
        };
        for (i, text) in cidrs.iter().enumerate() {
            match parse_network(text) {
                Ok(net) => self.pod_cidrs.push(net),
                Err(e) => self.problem(format!("spec.podCIDRs[{i}]"), e.to_string()),
            }
        }
    }

    fn read_annotations(&mut self, node: &Node) {
        let Some(annotations) = node.metadata.annotations.as_ref() else {
            return;
        };
        for family in Family::ALL {
            if let Some(text) = annotations.get(key_annotation(family)) {
                self.read_key(family, text);
            }
            if let Some(text) = annotations.get(interface_annotation(family)) {
                self.read_interface_addr(family, text);
            }
        }
    }

    fn read_key(&mut self, family: Family, text: &str) {
        match text.parse::<WireGuardKey>() {
            Ok(key) => *self.keys.get_mut(family) = Some(key),
            Err(e) => self.problem(
                format!("metadata.annotations[{}]", key_annotation(family)),
                format!("{} {e}", quoted(text)),
            ),
        }
    }

    fn read_interface_addr(&mut self, family: Family, text: &str) {
        let field = format!("metadata.annotations[{}]", interface_annotation(family));
        match text.trim().parse::<IpAddr>() {
            Ok(ip) if Family::of_addr(&ip) == family => {
                *self.interface_addrs.get_mut(family) = Some(ip)
            }
            Ok(_) => self.problem(
                field,
                format!("{} is not an {family} address", quoted(text)),
            ),
            Err(_) => self.problem(field, format!("{} is not an IP address", quoted(text))),
        }
    }
}

/// The workload IPs of every node, from its pods: host-network pods, pods not yet scheduled
/// and terminated pods are left out. Sorted and deduplicated per node.
pub fn workload_ips_by_node<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
) -> BTreeMap<String, Vec<IpAddr>> {
    // Grouped under the pods' own `&str` names (hashed): no String per pod, no string
    // comparisons down a tree; the sorted map is built once per node at the end.
    let mut by_node: HashMap<&str, Vec<IpAddr>> = HashMap::new();
    for pod in pods {
        let Some(node) = pod_node(pod) else { continue };
        by_node.entry(node).or_default().extend(pod_ips(pod));
    }
    by_node
        .into_iter()
        .map(|(node, mut ips)| {
            ips.sort_unstable();
            ips.dedup();
            (node.to_owned(), ips)
        })
        .collect()
}

fn pod_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if spec.host_network == Some(true) {
        return None;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    spec.node_name.as_deref()
}

/// `status.podIPs`, or `status.podIP` when that list is empty (the API server keeps podIP
/// equal to podIPs[0], so reading both would parse every address twice).
fn pod_ips(pod: &Pod) -> impl Iterator<Item = IpAddr> + '_ {
    let status = pod.status.as_ref();
    let listed = status
        .and_then(|s| s.pod_ips.as_deref())
        .unwrap_or_default();
    let single = status
        .and_then(|s| s.pod_ip.as_ref())
        .filter(|_| listed.is_empty());
    listed
        .iter()
        .map(|p| &p.ip)
        .chain(single)
        .filter_map(|text| text.parse().ok())
}

/// Converts every node, attaching workload IPs when they are given.
pub fn node_views<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    workload_ips: Option<&BTreeMap<String, Vec<IpAddr>>>,
) -> Vec<NodeView> {
    let mut views: Vec<NodeView> = nodes.into_iter().map(NodeView::from_node).collect();
    if let Some(by_node) = workload_ips {
        attach_workload_ips(&mut views, by_node);
    }
    views.sort_by(|a, b| a.name.cmp(&b.name));
    views
}

/// Sets every view's workload IPs from `by_node` ([`workload_ips_by_node`]); a node without
/// pods gets none.
pub fn attach_workload_ips(views: &mut [NodeView], by_node: &BTreeMap<String, Vec<IpAddr>>) {
    for view in views {
        view.workload_ips = by_node.get(&view.name).cloned().unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::TestNode;
    use crate::quote::MAX_QUOTED_CHARS;

    #[test]
    fn a_pods_addresses_come_from_pod_ips_else_pod_ip() {
        let rows: [(&str, serde_json::Value, &[&str]); 5] = [
            (
                "podIPs, dual stack",
                serde_json::json!({"podIP": "198.18.2.10", "podIPs": [{"ip": "198.18.2.10"}, {"ip": "2001:db8::10"}]}),
                &["198.18.2.10", "2001:db8::10"],
            ),
            (
                "podIP alone (an older API server)",
                serde_json::json!({"podIP": "198.18.2.11"}),
                &["198.18.2.11"],
            ),
            (
                "an empty podIPs list",
                serde_json::json!({"podIP": "198.18.2.12", "podIPs": []}),
                &["198.18.2.12"],
            ),
            (
                "a podIP that disagrees with podIPs is not added",
                serde_json::json!({"podIP": "198.18.9.9", "podIPs": [{"ip": "198.18.2.13"}]}),
                &["198.18.2.13"],
            ),
            (
                "unparsable addresses are left out",
                serde_json::json!({"podIP": "nope", "podIPs": [{"ip": "nope"}, {"ip": "198.18.2.14"}]}),
                &["198.18.2.14"],
            ),
        ];
        for (what, status, expected) in rows {
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"}, "spec": {"nodeName": "node-2", "containers": []}, "status": status
            }))
            .unwrap();
            let got: Vec<String> = pod_ips(&pod).map(|ip| ip.to_string()).collect();
            assert_eq!(got, expected, "{what}");
            let by_node = workload_ips_by_node([&pod, &pod]);
            assert_eq!(
                by_node["node-2"].len(),
                expected.len(),
                "{what}: deduplicated"
            );
        }
    }

    /// Every problem message stays short, whatever the size of the value it quotes.
    #[test]
    fn a_megabyte_annotation_is_quoted_cut() {
        let huge = "A".repeat(1 << 20);
        let node = TestNode::new("node-9")
            .internal_ip(&huge)
            .pod_cidr(&huge)
            .annotation(PUBLIC_KEY_ANNOTATION, &huge)
            .annotation(INTERFACE_IPV4_ANNOTATION, &huge)
            .interface_addr(Family::V6, "198.18.9.0")
            .build();
        let view = NodeView::from_node(&node);
        assert_eq!(view.problems.len(), 5, "{:?}", view.problems);
        for problem in &view.problems {
            let text = problem.to_string();
            assert!(text.len() < 400, "{} bytes: {text:.300}", text.len());
            if problem.field != "metadata.annotations[kube-encrypt.dev/interface-ipv6]" {
                let quoted = format!("{:?}…", "A".repeat(MAX_QUOTED_CHARS));
                assert!(text.contains(&quoted), "{text:.300}");
                assert!(text.contains("(1048576 bytes)"), "{text:.300}");
            }
        }
        assert!(view.internal_ips.is_empty() && view.pod_cidrs.is_empty());
        assert_eq!(view.keys, PerFamily::default());
        assert_eq!(view.interface_addrs, PerFamily::default());
    }

    #[test]
    fn the_creation_timestamp_is_kept() {
        let node = TestNode::new("node-1")
            .created("2026-01-02T03:04:05Z")
            .build();
        let view = NodeView::from_node(&node);
        assert_eq!(
            view.created.map(|t| t.to_string()).as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
        assert_eq!(
            NodeView::from_node(&TestNode::new("x").build()).created,
            None
        );
    }
}
