use serde_json::{json, Value};

use super::*;

fn crd(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).expect("CRD manifest parses")
}

fn encryption_config_crd() -> Value {
    crd(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/crds/encryptionconfigs.yaml"
    )))
}

fn ippool_crd() -> Value {
    crd(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/crds/ippools.yaml"
    )))
}

fn config(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "kube-encrypt.dev/v1alpha1",
        "kind": "EncryptionConfig",
        "metadata": { "name": name, "uid": "5b0c", "labels": { "team": "net" }, "resourceVersion": "7" },
        "spec": spec,
    })
}

fn pool(cidr: Value) -> Value {
    json!({
        "apiVersion": "kube-encrypt.dev/v1alpha1",
        "kind": "IPPool",
        "metadata": { "name": "pods" },
        "spec": { "cidr": cidr },
    })
}

fn rendered(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn an_empty_spec_gets_every_default() {
    let mut obj = config("default", json!({}));
    prepare_custom_resource(&encryption_config_crd(), "v1alpha1", &mut obj, None).expect("valid");
    let spec = &obj["spec"];
    let expected = [
        (
            "/ipv4",
            json!({ "enabled": false, "interfaceName": "wg-encrypt", "mtu": 0, "port": 51820 }),
        ),
        (
            "/ipv6",
            json!({ "enabled": false, "interfaceName": "wg-encrypt-v6", "mtu": 0, "port": 51821 }),
        ),
        ("/routingTable", json!(51820)),
        ("/routingRulePriority", json!(99)),
        ("/firewallMark", json!(0x100000)),
        ("/persistentKeepalive", json!(0)),
        ("/hostEncryption", json!(false)),
        ("/routeSource", json!("PodCIDRs")),
        ("/backend", json!("Auto")),
    ];
    for (pointer, value) in expected {
        assert_eq!(spec.pointer(pointer), Some(&value), "spec{pointer}");
    }
    assert_eq!(spec.get("nodeSelector"), None, "no default, stays absent");
    assert_eq!(
        obj["metadata"]["labels"]["team"], "net",
        "metadata is left alone"
    );
}

#[test]
fn a_partial_object_gets_the_defaults_of_its_missing_fields() {
    let mut obj = config(
        "default",
        json!({ "ipv4": { "enabled": true }, "ipv6": { "port": 51900 } }),
    );
    prepare_custom_resource(&encryption_config_crd(), "v1alpha1", &mut obj, None).expect("valid");
    assert_eq!(
        obj["spec"]["ipv4"],
        json!({ "enabled": true, "interfaceName": "wg-encrypt", "mtu": 0, "port": 51820 })
    );
    assert_eq!(obj["spec"]["ipv6"]["port"], 51900);
    assert_eq!(obj["spec"]["ipv6"]["interfaceName"], "wg-encrypt-v6");
}

#[test]
fn a_null_non_nullable_field_takes_its_default_and_a_nullable_one_stays_null() {
    let mut obj = config("default", json!({ "ipv4": null, "nodeSelector": null }));
    prepare_custom_resource(&encryption_config_crd(), "v1alpha1", &mut obj, None).expect("valid");
    assert_eq!(obj["spec"]["ipv4"]["port"], 51820);
    assert_eq!(obj["spec"].get("nodeSelector"), Some(&Value::Null));
}

#[test]
fn unknown_fields_are_pruned_and_reported() {
    let mut obj = config(
        "default",
        json!({ "ipv4": { "enabled": true, "colour": "red" }, "extra": 1 }),
    );
    obj["status"] = json!({ "nodes": { "total": 1, "encrypted": 1, "disabled": 0, "unsupported": 0, "error": 0, "bogus": 2 } });
    obj["topLevel"] = json!(true);
    let prepared = prepare(&encryption_config_crd(), "v1alpha1", &mut obj, None).expect("valid");
    assert_eq!(
        prepared.pruned,
        [
            "spec.extra",
            "spec.ipv4.colour",
            "status.nodes.bogus",
            "topLevel"
        ]
    );
    assert_eq!(obj["spec"]["ipv4"].get("colour"), None);
    assert_eq!(obj.get("topLevel"), None);
    assert_eq!(
        obj["apiVersion"], "kube-encrypt.dev/v1alpha1",
        "apiVersion, kind, metadata stay"
    );
    assert_eq!(obj["metadata"]["uid"], "5b0c");
}

#[test]
fn invalid_encryption_configs_are_rejected_with_the_servers_wording() {
    let cases: &[(&str, Value, &str)] = &[
        ("default", json!({ "ipv4": { "port": 70000 } }),
         "spec.ipv4.port: Invalid value: \"integer\": port-range: spec.ipv4.port must be 1-65535"),
        ("default", json!({ "ipv6": { "port": 0 } }),
         "spec.ipv6.port: Invalid value: \"integer\": port-range: spec.ipv6.port must be 1-65535"),
        ("default", json!({ "ipv4": { "mtu": 500 } }),
         "spec.ipv4: Invalid value: \"object\": mtu-range: spec.ipv4.mtu must be 0 (auto) or 576-9000"),
        ("default", json!({ "ipv6": { "mtu": 1000 } }),
         "spec.ipv6: Invalid value: \"object\": mtu-range: spec.ipv6.mtu must be 0 (auto) or 1280-9000"),
        ("default", json!({ "ipv4": { "interfaceName": "wg:0" } }),
         "spec.ipv4.interfaceName: Invalid value: \"string\": interface-name: spec.ipv4.interfaceName must be 1-15"),
        ("default", json!({ "ipv4": { "interfaceName": "wg/0" } }), "interface-name: spec.ipv4.interfaceName"),
        ("default", json!({ "ipv6": { "interfaceName": ".." } }), "interface-name: spec.ipv6.interfaceName"),
        ("default", json!({ "ipv4": { "interfaceName": "" } }), "interface-name: spec.ipv4.interfaceName"),
        ("default", json!({ "ipv6": { "interfaceName": "a-very-long-name0" } }),
         "spec.ipv6.interfaceName: Invalid value: \"string\": interface-name:"),
        ("default", json!({ "ipv4": { "interfaceName": "wg enc" } }), "interface-name: spec.ipv4.interfaceName"),
        ("default", json!({ "ipv4": { "interfaceName": "same" }, "ipv6": { "interfaceName": "same" } }),
         "spec: Invalid value: \"object\": interface-name: spec.ipv4.interfaceName and spec.ipv6.interfaceName must differ"),
        ("default", json!({ "ipv4": { "enabled": true, "port": 5000 }, "ipv6": { "enabled": true, "port": 5000 } }),
         "spec: Invalid value: \"object\": port-conflict:"),
        ("default", json!({ "routingTable": 254 }), "spec.routingTable: Invalid value: \"integer\": routing-table:"),
        ("default", json!({ "routingTable": 0 }), "routing-table:"),
        ("default", json!({ "routingRulePriority": 32766 }), "spec.routingRulePriority: Invalid value: \"integer\": rule-priority:"),
        ("default", json!({ "firewallMark": 0x4000 }), "spec.firewallMark: Invalid value: \"integer\": firewall-mark:"),
        ("default", json!({ "firewallMark": 0x18000 }), "firewall-mark:"),
        ("default", json!({ "firewallMark": 0 }), "firewall-mark:"),
        ("default", json!({ "persistentKeepalive": -1 }), "persistent-keepalive:"),
        ("default", json!({ "backend": "Fast" }),
         "spec.backend: Unsupported value: \"Fast\": supported values: \"Kernel\", \"Userspace\", \"Auto\""),
        ("default", json!({ "ipv4": { "port": "51820" } }),
         "spec.ipv4.port: Invalid value: \"string\": spec.ipv4.port in body must be of type integer: \"string\""),
        ("other", json!({}),
         "<nil>: Invalid value: \"object\": singleton-name: the EncryptionConfig must be named 'default'"),
    ];
    for (name, spec, expected) in cases {
        let mut obj = config(name, spec.clone());
        let errors = prepare_custom_resource(&encryption_config_crd(), "v1alpha1", &mut obj, None)
            .expect_err(&format!("{spec} must be rejected"));
        let texts = rendered(&errors);
        assert!(
            texts.iter().any(|t| t.contains(expected)),
            "{spec}: want {expected:?}, got {texts:#?}"
        );
    }
}

#[test]
fn valid_encryption_configs_are_accepted() {
    let specs = [
        json!({ "ipv4": { "enabled": true, "port": 1, "mtu": 576 }, "ipv6": { "enabled": true, "port": 65535, "mtu": 9000 } }),
        json!({ "ipv4": { "enabled": true, "port": 5000 }, "ipv6": { "enabled": false, "port": 5000 } }),
        json!({ "firewallMark": 0x10000, "routingTable": 4294967295u64, "routingRulePriority": 32765 }),
        json!({ "nodeSelector": { "matchLabels": { "kube-encrypt.dev/pool": "a" } }, "routeSource": "WorkloadIPs" }),
    ];
    for spec in specs {
        let mut obj = config("default", spec.clone());
        let result = prepare_custom_resource(&encryption_config_crd(), "v1alpha1", &mut obj, None);
        assert_eq!(result, Ok(()), "{spec}");
    }
}

#[test]
fn type_errors_keep_the_rules_from_running_like_the_server() {
    let mut obj = config("other", json!({ "ipv4": { "port": "x" } }));
    let errors =
        prepare_custom_resource(&encryption_config_crd(), "v1alpha1", &mut obj, None).unwrap_err();
    assert_eq!(
        invalid_message("EncryptionConfig", "kube-encrypt.dev", "other", &errors),
        "EncryptionConfig.kube-encrypt.dev \"other\" is invalid: [spec.ipv4.port: Invalid value: \"string\": \
         spec.ipv4.port in body must be of type integer: \"string\", <nil>: Invalid value: \"null\": some validation \
         rules were not checked because the object was invalid; correct the existing errors to complete validation]"
    );
}

#[test]
fn the_invalid_status_carries_message_and_causes() {
    let mut obj = config("default", json!({ "ipv4": { "port": 70000 } }));
    let errors =
        prepare_custom_resource(&encryption_config_crd(), "v1alpha1", &mut obj, None).unwrap_err();
    let status = invalid_status("EncryptionConfig", "kube-encrypt.dev", "default", &errors);
    assert_eq!(status["code"], 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "EncryptionConfig.kube-encrypt.dev \"default\" is invalid: spec.ipv4.port: Invalid value: \"integer\": \
         port-range: spec.ipv4.port must be 1-65535"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "spec.ipv4.port");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueInvalid"
    );
}

#[test]
fn ip_pools_need_a_network_address_in_cidr_notation() {
    let cases = [
        (json!("198.18.0.0/16"), None),
        (json!("2001:db8:1::/48"), None),
        (json!("nonsense"), Some("spec.cidr: Invalid value: \"string\": pool-cidr:")),
        (json!("198.18.1.7/24"), Some("spec.cidr: Invalid value: \"string\": pool-cidr:")),
        (json!("2001:db8:1::1/48"), Some("pool-cidr:")),
        (json!(""), Some("pool-cidr:")),
        (json!(7), Some("spec.cidr: Invalid value: \"integer\": spec.cidr in body must be of type string: \"integer\"")),
    ];
    for (cidr, expected) in cases {
        let mut obj = pool(cidr.clone());
        let result = prepare_custom_resource(&ippool_crd(), "v1alpha1", &mut obj, None);
        match expected {
            None => {
                assert_eq!(result, Ok(()), "{cidr}");
                assert_eq!(
                    obj["spec"],
                    json!({ "cidr": cidr, "natOutgoing": false, "disabled": false })
                );
            }
            Some(expected) => {
                let texts = rendered(&result.expect_err(&format!("{cidr} must be rejected")));
                assert!(
                    texts.iter().any(|t| t.contains(expected)),
                    "{cidr}: want {expected:?}, got {texts:#?}"
                );
            }
        }
    }
}

#[test]
fn required_fields_are_required() {
    let mut missing_cidr = pool(json!("198.18.0.0/16"));
    missing_cidr["spec"] = json!({ "natOutgoing": true });
    let errors =
        prepare_custom_resource(&ippool_crd(), "v1alpha1", &mut missing_cidr, None).unwrap_err();
    assert_eq!(rendered(&errors), ["spec.cidr: Required value"]);

    let mut missing_spec = json!({ "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "IPPool", "metadata": { "name": "p" } });
    let errors =
        prepare_custom_resource(&ippool_crd(), "v1alpha1", &mut missing_spec, None).unwrap_err();
    assert_eq!(rendered(&errors), ["spec: Required value"]);
}

#[test]
fn an_unknown_version_is_an_internal_error_naming_the_fix() {
    let mut obj = pool(json!("198.18.0.0/16"));
    let errors = prepare_custom_resource(&ippool_crd(), "v9", &mut obj, None).unwrap_err();
    assert_eq!(errors[0].kind, FieldErrorKind::Internal);
    assert!(
        errors[0]
            .message
            .contains("ippools.kube-encrypt.dev has no schema for version \"v9\""),
        "{}",
        errors[0]
    );
}

/// A CRD with one version whose spec schema is `spec`.
fn synthetic_crd(spec: Value) -> Value {
    json!({
        "metadata": { "name": "widgets.example.com" },
        "spec": { "versions": [{ "name": "v1", "schema": { "openAPIV3Schema": {
            "type": "object",
            "properties": { "spec": spec }
        }}}]}
    })
}

fn check_spec(spec_schema: &Value, spec: Value) -> Result<Value, Vec<String>> {
    let mut obj = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" }, "spec": spec });
    prepare_custom_resource(&synthetic_crd(spec_schema.clone()), "v1", &mut obj, None)
        .map(|()| obj["spec"].clone())
        .map_err(|errors| rendered(&errors))
}

#[test]
fn each_openapi_keyword_is_enforced() {
    let schema = json!({
        "type": "object",
        "properties": {
            "count": { "type": "integer", "format": "int32", "minimum": 1, "maximum": 10 },
            "ratio": { "type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1, "exclusiveMaximum": true },
            "step": { "type": "integer", "multipleOf": 5 },
            "name": { "type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$" },
            "tags": { "type": "array", "minItems": 1, "maxItems": 2, "items": { "type": "string" }, "x-kubernetes-list-type": "set" },
            "ports": { "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                       "items": { "type": "object", "required": ["name"], "properties": {
                           "name": { "type": "string" }, "number": { "type": "integer" } } } },
            "labels": { "type": "object", "additionalProperties": { "type": "string", "maxLength": 3 } },
            "mode": { "type": "string", "enum": ["a", "b"] },
            "flag": { "type": "boolean" },
            "maybe": { "type": "string", "nullable": true },
            "size": { "x-kubernetes-int-or-string": true },
            "free": { "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                      "properties": { "known": { "type": "integer" } } }
        }
    });
    let rejected: &[(Value, &str)] = &[
        (json!({ "count": 0 }), "spec.count: Invalid value: 0: spec.count in body should be greater than or equal to 1"),
        (json!({ "count": 11 }), "spec.count: Invalid value: 11: spec.count in body should be less than or equal to 10"),
        (json!({ "count": 3000000000u64 }), "spec.count: Invalid value: \"int64\": spec.count in body must be of type int32: \"int64\""),
        (json!({ "count": 1.5 }), "spec.count: Invalid value: \"number\": spec.count in body must be of type integer: \"number\""),
        (json!({ "ratio": 0 }), "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0"),
        (json!({ "ratio": 1 }), "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"),
        (json!({ "step": 7 }), "spec.step: Invalid value: 7: spec.step in body should be a multiple of 5"),
        (json!({ "name": "a" }), "spec.name: Invalid value: \"a\": spec.name in body should be at least 2 chars long"),
        (json!({ "name": "abcdef" }), "spec.name: Too long: may not be more than 5 bytes"),
        (json!({ "name": "ab1" }), "spec.name: Invalid value: \"ab1\": spec.name in body should match '^[a-z]+$'"),
        (json!({ "tags": [] }), "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"),
        (json!({ "tags": ["a", "b", "c"] }), "spec.tags: Too many: 3: must have at most 2 items"),
        (json!({ "tags": ["a", "a"] }), "spec.tags[1]: Duplicate value: \"a\""),
        (json!({ "tags": [1] }), "spec.tags[0]: Invalid value: \"integer\": spec.tags[0] in body must be of type string: \"integer\""),
        (json!({ "ports": [{ "name": "x" }, { "name": "x", "number": 2 }] }), "spec.ports[1]: Duplicate value: {\"name\":\"x\"}"),
        (json!({ "ports": [{ "number": 2 }] }), "spec.ports[0].name: Required value"),
        (json!({ "labels": { "app": "long" } }), "spec.labels[app]: Too long: may not be more than 3 bytes"),
        (json!({ "mode": "c" }), "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\""),
        (json!({ "flag": "yes" }), "spec.flag: Invalid value: \"string\": spec.flag in body must be of type boolean: \"string\""),
        (json!({ "size": true }), "spec.size: Invalid value: \"boolean\": spec.size in body must be of type integer,string: \"boolean\""),
        (json!({ "free": { "known": "x" } }), "spec.free.known: Invalid value: \"string\": spec.free.known in body must be of type integer"),
        (json!([]), "spec: Invalid value: \"array\": spec in body must be of type object: \"array\""),
    ];
    for (spec, expected) in rejected {
        let texts =
            check_spec(&schema, spec.clone()).expect_err(&format!("{spec} must be rejected"));
        assert!(
            texts.iter().any(|t| t.starts_with(expected)),
            "{spec}: want {expected:?}, got {texts:#?}"
        );
    }
    let accepted = [
        json!({ "count": 10, "ratio": 0.5, "step": 15, "name": "abc", "tags": ["a", "b"], "mode": "b", "flag": true }),
        json!({ "maybe": null, "size": "50%", "labels": { "app": "web" } }),
        json!({ "size": 3, "ports": [{ "name": "a" }, { "name": "b" }] }),
        json!({ "free": { "known": 1, "anything": { "goes": [1, "two"] } } }),
    ];
    for spec in accepted {
        assert_eq!(
            check_spec(&schema, spec.clone()),
            Ok(spec.clone()),
            "{spec}"
        );
    }
}

#[test]
fn defaults_apply_inside_items_maps_and_defaulted_objects() {
    let schema = json!({
        "type": "object",
        "properties": {
            "outer": { "type": "object", "default": {}, "properties": {
                "inner": { "type": "integer", "default": 7 } } },
            "list": { "type": "array", "items": { "type": "object", "properties": {
                "weight": { "type": "integer", "default": 1 } } } },
            "byName": { "type": "object", "additionalProperties": { "type": "object", "properties": {
                "on": { "type": "boolean", "default": true } } } }
        }
    });
    let spec = check_spec(
        &schema,
        json!({ "list": [{}, { "weight": 3 }], "byName": { "a": {} } }),
    )
    .expect("valid");
    assert_eq!(
        spec,
        json!({ "outer": { "inner": 7 }, "list": [{ "weight": 1 }, { "weight": 3 }], "byName": { "a": { "on": true } } })
    );
}

#[test]
fn values_print_like_go() {
    let cases = [
        (json!(70000), "70000"),
        (json!(1.5), "1.5"),
        (json!(2.0), "2"),
        (json!("wg:0"), "\"wg:0\""),
        (json!(true), "true"),
        (Value::Null, "\"null\""),
        (json!({ "a": 1 }), "{\"a\":1}"),
    ];
    for (value, expected) in cases {
        assert_eq!(errors::go_value(&value), expected);
    }
}
