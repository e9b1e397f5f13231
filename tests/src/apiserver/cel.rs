//! CEL evaluation of `x-kubernetes-validations` rules, with kube-cel's schema-walking
//! [`Validator`]: every rule runs with `self` bound to its node, transition rules (those
//! naming `oldSelf`) only on updates where the old object has that node.
//!
//! As in the API server, the root node sees `self.apiVersion`, `self.kind` and
//! `self.metadata` with only `name` and `generateName`. Failures become [`FieldError`]s
//! worded like the server's: `spec.ipv4: Invalid value: "object": mtu-range: ...`, with
//! the rule's `message` (or `failed rule: <rule>`), `reason` and `fieldPath`.

use kube_cel::{ErrorKind, ValidationError, Validator};
use serde_json::{json, Value};

use super::schema::{FieldError, FieldErrorKind};

thread_local! {
    static VALIDATOR: Validator = Validator::new();
}

/// Runs every rule of `schema` (a version's `openAPIV3Schema`) against `obj`, an already
/// pruned and defaulted object; `old` is the stored object on updates.
pub fn validate_rules(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    if !has_rules(schema) {
        return Vec::new();
    }
    let schema = with_metadata_schema(schema);
    let view = rule_view(obj);
    let old_view = old.map(rule_view);
    let result = VALIDATOR.with(|validator| validator.validate(&schema, &view, old_view.as_ref()));
    match result {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_iter()
            .map(|e| to_field_error(&schema, e))
            .collect(),
    }
}

/// Whether any node of the schema carries rules.
fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            map.contains_key("x-kubernetes-validations") || map.values().any(has_rules)
        }
        Value::Array(items) => items.iter().any(has_rules),
        _ => false,
    }
}

/// The root schema with `metadata.name` / `metadata.generateName` declared as strings.
fn with_metadata_schema(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(root) = schema.as_object_mut() {
        let properties = root.entry("properties").or_insert_with(|| json!({}));
        if let Some(properties) = properties.as_object_mut() {
            properties.insert(
                "metadata".into(),
                json!({
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" },
                        "generateName": { "type": "string" }
                    }
                }),
            );
        }
    }
    schema
}

/// The object as rules see it: metadata reduced to `name` and `generateName`.
fn rule_view(obj: &Value) -> Value {
    let mut view = obj.clone();
    if let Some(metadata) = view.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.retain(|key, _| key == "name" || key == "generateName");
    }
    view
}

fn to_field_error(schema: &Value, error: ValidationError) -> FieldError {
    let node_type = node_type(schema, &error.field_path);
    let (kind, value) = match error.kind {
        ErrorKind::ValidationFailure => {
            let kind = error
                .reason
                .as_deref()
                .map_or(FieldErrorKind::Invalid, FieldErrorKind::from_reason);
            (kind, Some(json!(node_type)))
        }
        ErrorKind::EvaluationError | ErrorKind::InvalidResult | ErrorKind::UnsupportedReference => {
            (FieldErrorKind::Invalid, Some(json!(node_type)))
        }
        _ => (FieldErrorKind::Internal, None),
    };
    let message = match error.kind {
        ErrorKind::EvaluationError => format!("{} evaluating rule: {}", error.message, error.rule),
        _ => error.message,
    };
    FieldError::new(error.field_path, kind, value, message)
}

/// The schema `type` of the node at a kube-cel field path (`spec.items[2].name`).
fn node_type(schema: &Value, path: &str) -> String {
    let mut node = schema;
    for segment in path_segments(path) {
        let next = match segment {
            Segment::Index => node.get("items"),
            Segment::Name(name) => node
                .get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| node.get("additionalProperties")),
        };
        match next {
            Some(next) => node = next,
            None => return String::new(),
        }
    }
    node.get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

enum Segment<'a> {
    Name(&'a str),
    Index,
}

fn path_segments(path: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = part
            .split_once('[')
            .map_or((part, ""), |(n, rest)| (n, rest));
        if !name.is_empty() {
            segments.push(Segment::Name(name));
        }
        segments.extend(
            indexes
                .split('[')
                .filter(|i| !i.is_empty())
                .map(|_| Segment::Index),
        );
    }
    segments
}

#[cfg(test)]
mod tests;
