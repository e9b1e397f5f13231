//! What the agent publishes on its own Node: the public keys and interface addresses of the
//! plan's [`Publication`]s, as a JSON merge patch touching only the agent's annotations and
//! only when they differ from what the Node carries.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::{Family, PerFamily};
use kube_encrypt_api::node::{interface_annotation, key_annotation};
use kube_encrypt_api::plan::Publication;
use serde_json::{json, Map, Value};

/// The agent's annotations: `Some(value)` to set, `None` to remove.
pub type Annotations = BTreeMap<&'static str, Option<String>>;

/// The annotations the plan asks for, with the node's own public keys.
pub fn desired_annotations(
    publish: &PerFamily<Publication>,
    keys: &PerFamily<Option<WireGuardKey>>,
) -> Annotations {
    let mut wanted = Annotations::new();
    for family in Family::ALL {
        let publication = publish.get(family);
        let key = keys
            .get(family)
            .filter(|_| publication.public_key)
            .map(|k| k.to_base64());
        wanted.insert(key_annotation(family), key);
        let addr = publication.interface_addr.map(|ip| ip.to_string());
        wanted.insert(interface_annotation(family), addr);
    }
    wanted
}

/// The merge patch bringing `node`'s annotations to `wanted`; `None` when nothing differs.
pub fn annotation_patch(node: Option<&Node>, wanted: &Annotations) -> Option<Value> {
    let current = node.and_then(|n| n.metadata.annotations.as_ref());
    let mut changes = Map::new();
    for (name, value) in wanted {
        let now = current.and_then(|c| c.get(*name));
        if now != value.as_ref() {
            let patched = value
                .as_ref()
                .map_or(Value::Null, |v| Value::String(v.clone()));
            changes.insert((*name).to_owned(), patched);
        }
    }
    if changes.is_empty() {
        return None;
    }
    Some(json!({ "metadata": { "annotations": changes } }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const KEY: &str = "YFtnIPi7Ix7v4kdjyEXqm2ErCAgH1Ls1EFsYH2H+/Gk=";

    fn node(annotations: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("node-a".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn v4_published() -> PerFamily<Publication> {
        PerFamily {
            v4: Publication {
                public_key: true,
                interface_addr: Some("198.18.1.1".parse().unwrap()),
            },
            v6: Publication::default(),
        }
    }

    fn keys() -> PerFamily<Option<WireGuardKey>> {
        PerFamily {
            v4: Some(KEY.parse().unwrap()),
            v6: Some(KEY.parse().unwrap()),
        }
    }

    #[test]
    fn patches_only_what_differs() {
        let wanted = desired_annotations(&v4_published(), &keys());
        let cases: Vec<(&str, Node, Option<Value>)> = vec![
            (
                "fresh node gets key and address",
                node(&[("other", "kept")]),
                Some(json!({"metadata": {"annotations": {
                    "kube-encrypt.dev/public-key": KEY,
                    "kube-encrypt.dev/interface-ipv4": "198.18.1.1",
                }}})),
            ),
            (
                "already published: no patch",
                node(&[
                    ("kube-encrypt.dev/public-key", KEY),
                    ("kube-encrypt.dev/interface-ipv4", "198.18.1.1"),
                ]),
                None,
            ),
            (
                "stale v6 annotations are removed, changed address replaced",
                node(&[
                    ("kube-encrypt.dev/public-key", KEY),
                    ("kube-encrypt.dev/interface-ipv4", "198.18.9.9"),
                    ("kube-encrypt.dev/public-key-v6", KEY),
                    ("kube-encrypt.dev/interface-ipv6", "2001:db8::1"),
                ]),
                Some(json!({"metadata": {"annotations": {
                    "kube-encrypt.dev/interface-ipv4": "198.18.1.1",
                    "kube-encrypt.dev/public-key-v6": null,
                    "kube-encrypt.dev/interface-ipv6": null,
                }}})),
            ),
        ];
        for (name, node, want) in cases {
            assert_eq!(annotation_patch(Some(&node), &wanted), want, "{name}");
        }
    }

    #[test]
    fn nothing_published_removes_everything_of_ours() {
        let wanted = desired_annotations(&PerFamily::default(), &keys());
        let node = node(&[("kube-encrypt.dev/public-key", KEY), ("other", "kept")]);
        let want = json!({"metadata": {"annotations": {"kube-encrypt.dev/public-key": null}}});
        assert_eq!(annotation_patch(Some(&node), &wanted), Some(want));
    }
}
