//! Pruning: drops fields the schema does not declare (unless a node sets
//! `x-kubernetes-preserve-unknown-fields`) and nulls of non-nullable fields, which the
//! server removes before defaulting.

use serde_json::{Map, Value};

use super::{
    child_path, index_path, is_object_meta_key, key_path, map_values_schema, preserves_unknown,
};

/// Prunes a whole object; its `apiVersion`, `kind` and `metadata` stay.
pub(super) fn prune_root(schema: &Value, obj: &mut Value, pruned: &mut Vec<String>) {
    prune_node(schema, obj, "", true, pruned);
}

fn prune_node(schema: &Value, value: &mut Value, path: &str, root: bool, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => prune_object(schema, map, path, root, pruned),
        Value::Array(items) => {
            if let Some(items_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_node(items_schema, item, &index_path(path, i), false, pruned);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    root: bool,
    pruned: &mut Vec<String>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let values_schema = map_values_schema(schema);
    let keep_unknown = preserves_unknown(schema) || values_schema.is_some();
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if is_object_meta_key(schema, root, &key) {
            continue;
        }
        let declared = properties.and_then(|p| p.get(&key));
        let child_schema = declared.or(values_schema);
        match child_schema {
            Some(child) if map.get(&key).is_some_and(Value::is_null) && !nullable(child) => {
                map.remove(&key);
            }
            Some(child) => {
                let child_at = if declared.is_some() {
                    child_path(path, &key)
                } else {
                    key_path(path, &key)
                };
                if let Some(child_value) = map.get_mut(&key) {
                    prune_node(child, child_value, &child_at, false, pruned);
                }
            }
            None if keep_unknown => {}
            None => {
                map.remove(&key);
                pruned.push(child_path(path, &key));
            }
        }
    }
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}
