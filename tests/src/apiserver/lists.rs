//! How lists merge, for strategic merge patches and server-side apply: by key (like
//! `containers` by `name`), as a set of scalars (like `finalizers`), or atomically.

use serde_json::Value;

use super::registry::ResourceType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// Scalars merged as a set.
    Set,
    /// Objects merged by these key fields.
    Map(Vec<String>),
}

/// The list type at `path` (the map keys leading to the list; list positions are skipped).
pub fn list_type(rt: &ResourceType, path: &[String], items: &[Value]) -> ListType {
    match path {
        [m, f] if m == "metadata" && f == "ownerReferences" => {
            return ListType::Map(vec!["uid".into()])
        }
        [m, f] if m == "metadata" && f == "finalizers" => return ListType::Set,
        [m, ..] if m == "metadata" => return ListType::Atomic,
        _ => {}
    }
    match &rt.crd {
        Some(crd) => custom_list_type(crd, rt.preferred_version(), path),
        None => builtin_list_type(path.last().map(String::as_str).unwrap_or(""), items),
    }
}

fn builtin_list_type(field: &str, items: &[Value]) -> ListType {
    let key = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "webhooks"
        | "secrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" | "addresses" => "type",
        "hostAliases" => "ip",
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => "containerPort",
        "ports" => "port",
        _ => return ListType::Atomic,
    };
    ListType::Map(vec![key.into()])
}

/// Reads `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` from the CRD schema.
fn custom_list_type(crd: &Value, version: &str, path: &[String]) -> ListType {
    let Some(schema) = crd_schema(crd, version) else {
        return ListType::Atomic;
    };
    let found = path.iter().try_fold(schema, |node, key| {
        let node = node.get("items").unwrap_or(node);
        node.get("properties")
            .and_then(|p| p.get(key))
            .or_else(|| node.get("additionalProperties"))
    });
    let Some(node) = found else {
        return ListType::Atomic;
    };
    match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => {
            let keys = node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| {
                    k.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            ListType::Map(keys)
        }
        _ => ListType::Atomic,
    }
}

/// `openAPIV3Schema` of one version of a CRD.
pub fn crd_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
        .pointer("/schema/openAPIV3Schema")
}

/// The key fields of `item` for a map list, or `None` when it lacks one.
pub fn item_key(item: &Value, keys: &[String]) -> Option<serde_json::Map<String, Value>> {
    let mut out = serde_json::Map::new();
    for k in keys {
        out.insert(k.clone(), item.get(k)?.clone());
    }
    Some(out)
}

/// Whether `item` carries exactly these key values.
pub fn has_key(item: &Value, key: &serde_json::Map<String, Value>) -> bool {
    key.iter().all(|(k, v)| item.get(k) == Some(v))
}
