//! Defaulting: a missing field (or a null one that is not nullable) whose schema has a
//! `default` gets a copy of it, and defaulting goes on inside it, so a defaulted object
//! gets its own fields' defaults too.

use serde_json::{Map, Value};

use super::map_values_schema;

/// Applies every `default` of `schema` to `value`, recursively.
pub(super) fn apply(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => apply_object(schema, map),
        Value::Array(items) => {
            if let Some(items_schema) = schema.get("items") {
                for item in items.iter_mut() {
                    default_slot(items_schema, item);
                    apply(items_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn apply_object(schema: &Value, map: &mut Map<String, Value>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, property) in properties {
            let Some(default) = property.get("default") else {
                continue;
            };
            match map.get_mut(key) {
                None => {
                    map.insert(key.clone(), default.clone());
                }
                Some(existing) => default_slot(property, existing),
            }
        }
        for (key, property) in properties {
            if let Some(child) = map.get_mut(key) {
                apply(property, child);
            }
        }
    }
    if let Some(values_schema) = map_values_schema(schema).filter(|s| s.is_object()) {
        let declared = schema.get("properties").and_then(Value::as_object);
        for (key, child) in map.iter_mut() {
            if declared.is_some_and(|d| d.contains_key(key)) {
                continue;
            }
            default_slot(values_schema, child);
            apply(values_schema, child);
        }
    }
}

/// A present value that is null and not nullable takes the default, if any.
fn default_slot(schema: &Value, value: &mut Value) {
    let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
    if value.is_null() && !nullable {
        if let Some(default) = schema.get("default") {
            *value = default.clone();
        }
    }
}
