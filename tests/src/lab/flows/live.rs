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
use kube_encrypt_api::plan::NodeSelector;

use super::matrix::{ClusterView, NodeFacts};
use crate::lab::cluster::ClusterError;
use crate::lab::topology::{parse_node_ref, Topology};

fn api_err(action: &str) -> impl FnOnce(kube::Error) -> ClusterError + '_ {
    crate::lab::cluster::api_err(action)
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
    // The agents' own selector semantics; an invalid selector selects nothing (they fail static).
    let selected = NodeSelector::compile(selector).is_ok_and(|s| s.matches(&node.labels));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
