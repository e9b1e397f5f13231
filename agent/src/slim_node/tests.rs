use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube_encrypt_api::node::NodeView;
use serde_json::{json, Value};

use super::*;

const KEY: &str = "YFtnIPi7cn4AwXDiT5y/xBGhmA4lxAIUUb0LNADzvmY=";

/// A Node as a kubelet, a cloud provider and kubectl leave it, with everything the agent
/// does not read, labelled for the selector of [`selector`].
fn kubelet_node() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "node-b",
            "uid": "0d9c5b0e-7c59-4a1e-9c3f-1f0f5e0b6a01",
            "resourceVersion": "4711",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                "kubernetes.io/hostname": "node-b",
                "kube-encrypt.dev/encryption": "disabled",
                "node-role.kubernetes.io/control-plane": "",
                "pool": "encrypted",
                "topology.kubernetes.io/zone": "z1",
            },
            "annotations": {
                "kube-encrypt.dev/public-key": KEY,
                "kube-encrypt.dev/interface-ipv4": "198.18.2.0",
                "kube-encrypt.dev/some-later-annotation": "x",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}",
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:conditions": {}}}}],
        },
        "spec": {
            "podCIDR": "198.18.2.0/24",
            "podCIDRs": ["198.18.2.0/24", "2001:db8:2::/64"],
            "providerID": "aws:///us-east-1a/i-0123",
            "taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}],
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "192.0.2.12"},
                {"type": "Hostname", "address": "node-b"},
            ],
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:10Z"}],
            "images": [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 320368}],
            "nodeInfo": {"kubeletVersion": "v1.35.4", "machineID": "m", "systemUUID": "s",
                "bootID": "b", "kernelVersion": "6", "osImage": "o", "containerRuntimeVersion": "c",
                "kubeProxyVersion": "v1.35.4", "operatingSystem": "linux", "architecture": "amd64"},
        },
    })
}

/// A node selector naming `pool` (matchLabels) and `topology.kubernetes.io/zone`
/// (matchExpressions).
fn selector() -> LabelSelector {
    serde_json::from_value(json!({
        "matchLabels": {"pool": "encrypted"},
        "matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z1"]}],
    }))
    .unwrap()
}

/// The Node the agent stores for `node`, as JSON.
fn stored(node: Value, selector: Option<&LabelSelector>) -> Value {
    let slim: SlimNode = serde_json::from_value(node).unwrap();
    serde_json::to_value(slim.keep_only(&label_keys(selector)).into_node()).unwrap()
}

#[test]
fn a_stored_node_keeps_what_the_planner_reads_and_nothing_else() {
    let with_selector = stored(kubelet_node(), Some(&selector()));
    let without = stored(kubelet_node(), None);
    let cases: [(&str, &Value, Option<Value>); 24] = [
        ("/metadata/name", &with_selector, Some(json!("node-b"))),
        (
            "/metadata/uid",
            &with_selector,
            Some(json!("0d9c5b0e-7c59-4a1e-9c3f-1f0f5e0b6a01")),
        ),
        (
            "/metadata/creationTimestamp",
            &with_selector,
            Some(json!("2026-01-01T00:00:00Z")),
        ),
        ("/metadata/resourceVersion", &with_selector, None),
        ("/metadata/managedFields", &with_selector, None),
        (
            "/metadata/labels/kube-encrypt.dev~1encryption",
            &without,
            Some(json!("disabled")),
        ),
        (
            "/metadata/labels/node-role.kubernetes.io~1control-plane",
            &without,
            Some(json!("")),
        ),
        (
            "/metadata/labels/pool",
            &with_selector,
            Some(json!("encrypted")),
        ),
        (
            "/metadata/labels/topology.kubernetes.io~1zone",
            &with_selector,
            Some(json!("z1")),
        ),
        ("/metadata/labels/pool", &without, None),
        (
            "/metadata/labels/topology.kubernetes.io~1zone",
            &without,
            None,
        ),
        (
            "/metadata/labels/kubernetes.io~1hostname",
            &with_selector,
            None,
        ),
        (
            "/metadata/annotations/kube-encrypt.dev~1public-key",
            &with_selector,
            Some(json!(KEY)),
        ),
        (
            "/metadata/annotations/kube-encrypt.dev~1interface-ipv4",
            &with_selector,
            Some(json!("198.18.2.0")),
        ),
        (
            "/metadata/annotations/kube-encrypt.dev~1some-later-annotation",
            &with_selector,
            Some(json!("x")),
        ),
        (
            "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
            &with_selector,
            None,
        ),
        (
            "/metadata/annotations/node.alpha.kubernetes.io~1ttl",
            &with_selector,
            None,
        ),
        (
            "/spec/podCIDRs",
            &with_selector,
            Some(json!(["198.18.2.0/24", "2001:db8:2::/64"])),
        ),
        (
            "/spec/providerID",
            &with_selector,
            Some(json!("aws:///us-east-1a/i-0123")),
        ),
        ("/spec/taints", &with_selector, None),
        (
            "/status/addresses/0",
            &with_selector,
            Some(json!({"type": "InternalIP", "address": "192.0.2.12"})),
        ),
        ("/status/conditions", &with_selector, None),
        ("/status/images", &with_selector, None),
        ("/status/nodeInfo", &with_selector, None),
    ];
    for (pointer, node, want) in cases {
        assert_eq!(node.pointer(pointer), want.as_ref(), "{pointer}");
    }
}

#[test]
fn the_planner_sees_a_stored_node_as_it_sees_the_full_node() {
    let full: Node = serde_json::from_value(kubelet_node()).unwrap();
    let keys = label_keys(Some(&selector()));
    let mut want = NodeView::from_node(&full);
    want.labels.retain(|key, _| keys.contains(key));
    let slim: SlimNode = serde_json::from_value(kubelet_node()).unwrap();
    let got = NodeView::from_node(&slim.keep_only(&keys).into_node());
    assert_eq!(got, want);
    assert!(got.created.is_some() && got.opted_out && got.control_plane);
    assert_eq!((got.pod_cidrs.len(), got.internal_ips.len()), (2, 1));
    assert!(got.keys.v4.is_some() && got.interface_addrs.v4.is_some());
}

#[test]
fn the_watch_resumes_from_the_slim_nodes_resource_version() {
    let slim: SlimNode = serde_json::from_value(kubelet_node()).unwrap();
    assert_eq!(slim.resource_version().as_deref(), Some("4711"));
    assert_eq!(slim.name_any(), "node-b");
}

#[test]
fn the_label_keys_are_the_planned_ones_and_every_key_the_selector_names() {
    let planned = [
        "kube-encrypt.dev/encryption",
        "node-role.kubernetes.io/control-plane",
    ];
    let cases: [(&str, Option<Value>, &[&str]); 6] = [
        ("no selector", None, &[]),
        ("empty selector", Some(json!({})), &[]),
        (
            "matchLabels",
            Some(json!({"matchLabels": {"pool": "a", "tier": "b"}})),
            &["pool", "tier"],
        ),
        (
            "every operator of matchExpressions",
            Some(json!({"matchExpressions": [
                {"key": "in", "operator": "In", "values": ["x"]},
                {"key": "notin", "operator": "NotIn", "values": ["x"]},
                {"key": "exists", "operator": "Exists"},
                {"key": "absent", "operator": "DoesNotExist"},
            ]})),
            &["absent", "exists", "in", "notin"],
        ),
        (
            "both",
            Some(json!({"matchLabels": {"pool": "a"},
                "matchExpressions": [{"key": "zone", "operator": "Exists"}]})),
            &["pool", "zone"],
        ),
        (
            "a planned label named again",
            Some(json!({"matchLabels": {"kube-encrypt.dev/encryption": "enabled"}})),
            &[],
        ),
    ];
    for (name, selector, extra) in cases {
        let selector: Option<LabelSelector> = selector.map(|s| serde_json::from_value(s).unwrap());
        let mut want: BTreeSet<String> = planned.iter().map(|k| k.to_string()).collect();
        want.extend(extra.iter().map(|k| k.to_string()));
        assert_eq!(label_keys(selector.as_ref()), want, "{name}");
    }
}

#[test]
fn bookmarks_bare_and_null_fields_deserialize() {
    let cases = [
        (
            "bookmark",
            json!({"kind": "Node", "apiVersion": "v1", "metadata": {"resourceVersion": "12"}}),
        ),
        ("bare", json!({"metadata": {"name": "n"}})),
        ("nothing", json!({})),
        (
            "null metadata maps",
            json!({"metadata": {"name": "n", "labels": null, "annotations": null}}),
        ),
        (
            "null spec and status",
            json!({"metadata": {"name": "n"}, "spec": null, "status": null}),
        ),
        (
            "null addresses",
            json!({"metadata": {"name": "n"}, "status": {"addresses": null}}),
        ),
    ];
    for (name, node) in cases {
        let slim = serde_json::from_value::<SlimNode>(node.clone());
        let slim = slim.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            slim.metadata.name,
            node["metadata"]["name"].as_str().map(String::from),
            "{name}"
        );
        let view = NodeView::from_node(&slim.into_node());
        assert!(
            view.internal_ips.is_empty() && view.problems.is_empty(),
            "{name}"
        );
    }
}

#[test]
fn every_watch_event_is_carried_over_with_the_labels_trimmed() {
    let keys = label_keys(None);
    let slim = || serde_json::from_value::<SlimNode>(kubelet_node()).unwrap();
    let labels = |node: &Node| node.labels().keys().cloned().collect::<Vec<_>>();
    let planned: Vec<String> = PLANNED_LABELS.iter().map(|k| k.to_string()).collect();
    let checked = |kind: &'static str, node: &Node| {
        assert_eq!(labels(node), planned, "{kind}");
        assert_eq!(node.resource_version(), None, "{kind}");
        kind
    };
    let events = [
        Event::Init,
        Event::InitApply(slim()),
        Event::InitDone,
        Event::Apply(slim()),
        Event::Delete(slim()),
    ];
    let mut kinds = Vec::new();
    for event in events {
        match SlimNode::into_node_event(event, &keys) {
            Event::Init => kinds.push("Init"),
            Event::InitDone => kinds.push("InitDone"),
            Event::InitApply(node) => kinds.push(checked("InitApply", &node)),
            Event::Apply(node) => kinds.push(checked("Apply", &node)),
            Event::Delete(node) => kinds.push(checked("Delete", &node)),
        }
    }
    assert_eq!(kinds, ["Init", "InitApply", "InitDone", "Apply", "Delete"]);
}
