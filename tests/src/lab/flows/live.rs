//! The live configuration the flows are judged against, read from the emulator:
//! EncryptionConfig, IPPools, Nodes (labels) and NodeEncryptions (Unsupported families).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use kube::Client;
use kube_encrypt_api::crd::{
    EncryptionConfig, EncryptionState, FamilyStatus, IPPool, NodeEncryption, SINGLETON_NAME,
};
use kube_encrypt_api::net::{parse_network, Family, PerFamily};
use kube_encrypt_api::node::NodeView;

use super::matrix::{ClusterView, NodeFacts};
use crate::lab::cluster::ClusterError;
use crate::lab::topology::{parse_node_ref, Topology};

fn api_err(action: &str) -> impl FnOnce(kube::Error) -> ClusterError + '_ {
    move |source| ClusterError::Api {
        action: action.to_string(),
        source,
    }
}

/// Reads the live view; `no_wireguard` are the lab's nodes started without WireGuard.
pub async fn read(client: &Client, topo: &Topology) -> Result<ClusterView, ClusterError> {
    let config = Api::<EncryptionConfig>::all(client.clone())
        .get_opt(SINGLETON_NAME)
        .await
        .map_err(api_err("read EncryptionConfig"))?;
    let pools = Api::<IPPool>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api_err("list IPPools"))?;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api_err("list Nodes"))?;
    let statuses = Api::<NodeEncryption>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api_err("list NodeEncryptions"))?;
    let spec = config.map(|c| c.spec).unwrap_or_default();
    let mut view = ClusterView {
        enabled: PerFamily::from_fn(|f| spec.family(f).enabled),
        ports: PerFamily::from_fn(|f| u16::try_from(spec.family(f).port).unwrap_or(0)),
        host_encryption: spec.host_encryption,
        control_plane_host_encryption: spec.control_plane_host_encryption,
        nodes: BTreeMap::new(),
        pools: pools
            .items
            .iter()
            .filter(|p| !p.spec.disabled)
            .filter_map(|p| {
                parse_network(&p.spec.cidr)
                    .ok()
                    .map(|cidr| (cidr, p.spec.nat_outgoing))
            })
            .collect(),
    };
    let unsupported = unsupported_families(&statuses.items);
    for node in &nodes.items {
        let node_view = NodeView::from_node(node);
        let Some(index) = parse_node_ref(&node_view.name, topo.spec.nodes) else {
            continue;
        };
        let facts = node_facts(
            &node_view,
            spec.node_selector.as_ref(),
            &topo.spec.no_wireguard,
            index,
            &unsupported,
        );
        view.nodes.insert(index, facts);
    }
    Ok(view)
}

/// Per node name, the families its agent reports `Unsupported`.
fn unsupported_families(statuses: &[NodeEncryption]) -> BTreeMap<String, BTreeSet<Family>> {
    let is_unsupported = |s: &Option<FamilyStatus>| {
        s.as_ref()
            .is_some_and(|s| s.state == EncryptionState::Unsupported)
    };
    statuses
        .iter()
        .filter_map(|ne| {
            let status = ne.status.as_ref()?;
            let families = [(Family::V4, &status.ipv4), (Family::V6, &status.ipv6)]
                .into_iter()
                .filter(|(_, s)| is_unsupported(s))
                .map(|(f, _)| f)
                .collect();
            Some((ne.metadata.name.clone()?, families))
        })
        .collect()
}

fn node_facts(
    node: &NodeView,
    selector: Option<&LabelSelector>,
    no_wireguard: &BTreeSet<u8>,
    index: u8,
    unsupported: &BTreeMap<String, BTreeSet<Family>>,
) -> NodeFacts {
    let selected = selector.is_none_or(|s| selector_matches(s, &node.labels));
    let lab_without_wireguard = no_wireguard.contains(&index);
    let agent_unsupported = unsupported.get(&node.name).cloned().unwrap_or_default();
    let note = if node.opted_out {
        Some("opted out".to_string())
    } else if !selected {
        Some("not selected by spec.nodeSelector".to_string())
    } else if lab_without_wireguard {
        Some("no WireGuard".to_string())
    } else if !agent_unsupported.is_empty() {
        Some("agent reports Unsupported".to_string())
    } else {
        None
    };
    NodeFacts {
        participates: selected && !node.opted_out,
        wireguard: PerFamily::from_fn(|f| {
            !lab_without_wireguard && !agent_unsupported.contains(&f)
        }),
        control_plane: node.control_plane,
        note,
    }
}

/// Kubernetes label selector semantics: every matchLabels entry and every expression holds.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_match = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_match && expressions_match
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            match_labels: None,
        }
    }

    #[test]
    fn selectors() {
        let node = labels(&[("zone", "a"), ("role", "worker")]);
        let by_labels = LabelSelector {
            match_labels: Some(labels(&[("zone", "a")])),
            match_expressions: None,
        };
        let cases = [
            ("empty selects all", LabelSelector::default(), true),
            ("matchLabels", by_labels, true),
            ("In", expr("zone", "In", &["a", "b"]), true),
            ("In miss", expr("zone", "In", &["b"]), false),
            ("NotIn absent key", expr("gpu", "NotIn", &["yes"]), true),
            ("Exists", expr("role", "Exists", &[]), true),
            ("DoesNotExist", expr("role", "DoesNotExist", &[]), false),
            ("unknown operator", expr("role", "Gt", &[]), false),
        ];
        for (name, selector, want) in cases {
            assert_eq!(selector_matches(&selector, &node), want, "{name}");
        }
    }

    #[test]
    fn facts_combine_labels_lab_and_agent() {
        let view = |lbls: &[(&str, &str)]| NodeView {
            name: "node-2".into(),
            labels: labels(lbls),
            opted_out: lbls
                .iter()
                .any(|(k, v)| *k == "kube-encrypt.dev/encryption" && *v == "disabled"),
            ..Default::default()
        };
        let none = BTreeMap::new();
        let plain = node_facts(&view(&[]), None, &BTreeSet::new(), 2, &none);
        assert!(plain.participates && plain.wireguard.v4 && plain.note.is_none());
        let opted = node_facts(
            &view(&[("kube-encrypt.dev/encryption", "disabled")]),
            None,
            &BTreeSet::new(),
            2,
            &none,
        );
        assert!(!opted.participates);
        let sel = LabelSelector {
            match_labels: Some(labels(&[("encrypt", "yes")])),
            match_expressions: None,
        };
        assert!(!node_facts(&view(&[]), Some(&sel), &BTreeSet::new(), 2, &none).participates);
        let no_wg = node_facts(&view(&[]), None, &BTreeSet::from([2]), 2, &none);
        assert!(no_wg.participates && !no_wg.wireguard.v4 && !no_wg.wireguard.v6);
        let agent = BTreeMap::from([("node-2".to_string(), BTreeSet::from([Family::V6]))]);
        let v6_unsupported = node_facts(&view(&[]), None, &BTreeSet::new(), 2, &agent);
        assert!(v6_unsupported.wireguard.v4 && !v6_unsupported.wireguard.v6);
    }
}
