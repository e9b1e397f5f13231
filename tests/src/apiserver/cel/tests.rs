use serde_json::{json, Value};

use super::*;

/// A root schema whose `spec` node carries `rules`, with `spec.value` of `value_type`.
fn schema_with(rules: Value, value_type: &str) -> Value {
    json!({
        "type": "object",
        "properties": { "spec": {
            "type": "object",
            "x-kubernetes-validations": rules,
            "properties": {
                "value": { "type": value_type },
                "items": { "type": "array", "items": { "type": "integer" } }
            }
        }}
    })
}

fn object(spec: Value) -> Value {
    json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" }, "spec": spec })
}

fn messages(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn the_kubernetes_functions_the_repo_uses_evaluate() {
    let cases: &[(&str, &str, Value, bool)] = &[
        (
            "self.value.matches('^[^/:\\\\s]{1,15}$')",
            "string",
            json!("wg-encrypt"),
            true,
        ),
        (
            "self.value.matches('^[^/:\\\\s]{1,15}$')",
            "string",
            json!("wg:1"),
            false,
        ),
        (
            "self.value.matches('^[^/:\\\\s]{1,15}$')",
            "string",
            json!("wg 1"),
            false,
        ),
        (
            "(self.value / 16384) % 2 == 0",
            "integer",
            json!(0x100000),
            true,
        ),
        (
            "(self.value / 16384) % 2 == 0",
            "integer",
            json!(0x4000),
            false,
        ),
        (
            "!(self.value in [253, 254, 255])",
            "integer",
            json!(254),
            false,
        ),
        (
            "!(self.value in [253, 254, 255])",
            "integer",
            json!(51820),
            true,
        ),
        (
            "self.value <= 4294967295",
            "integer",
            json!(4294967296u64),
            false,
        ),
        (
            "isCIDR(self.value) && cidr(self.value).masked() == cidr(self.value)",
            "string",
            json!("198.18.0.0/16"),
            true,
        ),
        (
            "isCIDR(self.value) && cidr(self.value).masked() == cidr(self.value)",
            "string",
            json!("198.18.1.7/24"),
            false,
        ),
        (
            "isCIDR(self.value) && cidr(self.value).masked() == cidr(self.value)",
            "string",
            json!("nonsense"),
            false,
        ),
        (
            "self.items.all(i, i > 0) && size(self.items) == 2",
            "integer",
            json!(1),
            true,
        ),
    ];
    for (rule, value_type, value, passes) in cases {
        let schema = schema_with(json!([{ "rule": rule }]), value_type);
        let errors = validate_rules(
            &schema,
            &object(json!({ "value": value, "items": [1, 2] })),
            None,
        );
        assert_eq!(
            errors.is_empty(),
            *passes,
            "{rule} on {value}: {:?}",
            messages(&errors)
        );
    }
}

#[test]
fn a_rule_without_message_reports_the_rule_and_reason_and_field_path_apply() {
    let schema = schema_with(
        json!([
            { "rule": "self.value > 1" },
            { "rule": "self.value > 2", "message": "must exceed two", "reason": "FieldValueForbidden", "fieldPath": ".value" }
        ]),
        "integer",
    );
    let errors = validate_rules(&schema, &object(json!({ "value": 1 })), None);
    assert_eq!(
        messages(&errors),
        [
            "spec: Invalid value: \"object\": failed rule: self.value > 1",
            "spec.value: Forbidden: must exceed two",
        ]
    );
    assert_eq!(errors[1].reason(), "FieldValueForbidden");
}

#[test]
fn transition_rules_run_only_on_updates() {
    let schema = schema_with(
        json!([{ "rule": "self.value == oldSelf.value", "message": "value is immutable" }]),
        "string",
    );
    let created = object(json!({ "value": "a" }));
    let changed = object(json!({ "value": "b" }));
    assert!(
        validate_rules(&schema, &created, None).is_empty(),
        "create skips oldSelf rules"
    );
    assert!(
        validate_rules(&schema, &created, Some(&created)).is_empty(),
        "unchanged update passes"
    );
    assert_eq!(
        messages(&validate_rules(&schema, &changed, Some(&created))),
        ["spec: Invalid value: \"object\": value is immutable"]
    );
    let without_spec =
        json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" } });
    assert!(
        validate_rules(&schema, &changed, Some(&without_spec)).is_empty(),
        "no old node, no transition rule"
    );
}

#[test]
fn root_rules_see_only_name_and_generate_name_of_metadata() {
    let schema = json!({
        "type": "object",
        "x-kubernetes-validations": [
            { "rule": "self.metadata.name == 'default'", "message": "must be named default" },
            { "rule": "!has(self.metadata.labels)", "message": "labels are not visible to rules" },
            { "rule": "self.kind == 'Widget' && self.apiVersion == 'example.com/v1'" }
        ],
        "properties": { "spec": { "type": "object" } }
    });
    let mut obj = object(json!({}));
    obj["metadata"] = json!({ "name": "default", "labels": { "a": "b" }, "creationTimestamp": "2024-01-01T00:00:00Z" });
    assert_eq!(
        messages(&validate_rules(&schema, &obj, None)),
        Vec::<String>::new()
    );
    obj["metadata"]["name"] = json!("other");
    assert_eq!(
        messages(&validate_rules(&schema, &obj, None)),
        ["<nil>: Invalid value: \"object\": must be named default"]
    );
}

#[test]
fn runtime_errors_are_reported_not_passed() {
    let schema = schema_with(
        json!([{ "rule": "cidr(self.value).prefixLength() > 8" }]),
        "string",
    );
    let errors = validate_rules(&schema, &object(json!({ "value": "nonsense" })), None);
    assert_eq!(errors.len(), 1, "{:?}", messages(&errors));
    assert!(
        errors[0]
            .message
            .ends_with("evaluating rule: cidr(self.value).prefixLength() > 8"),
        "{}",
        errors[0]
    );
}

#[test]
fn node_types_follow_the_path() {
    let schema = json!({ "type": "object", "properties": { "spec": { "type": "object", "properties": {
        "list": { "type": "array", "items": { "type": "object", "properties": { "n": { "type": "integer" } } } },
        "map": { "type": "object", "additionalProperties": { "type": "string" } } } } } });
    let cases = [
        ("", "object"),
        ("spec", "object"),
        ("spec.list", "array"),
        ("spec.list[3]", "object"),
        ("spec.list[3].n", "integer"),
        ("spec.map.key", "string"),
        ("spec.nothing", ""),
    ];
    for (path, expected) in cases {
        assert_eq!(node_type(&schema, path), expected, "{path}");
    }
}
