//! The CRDs' CEL `x-kubernetes-validations` and the Rust rules agree, row by row: the
//! single-object tables of `fields.rs` run through both (kube-cel evaluates the CEL, with the
//! schema defaults applied first as the API server does).

use kube::CustomResourceExt;
use kube_cel::{apply_defaults, ErrorKind, Validator};
use serde_json::{json, Value};

use super::fields::{cidr_rows, config_rows, KUBE_CEL_ACCEPTS};
use super::sorted;
use crate::crd::{EncryptionConfig, EncryptionConfigSpec, IPPool};
use crate::rules::{evaluate_config_fields, evaluate_pool_fields, NamedPool, Rule};

fn schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has a schema");
    serde_json::to_value(schema).unwrap()
}

/// The rule ids the CEL rules of `schema` report for `object` (defaults applied), one per
/// failed rule. Panics on anything but a clean rule failure (a CEL rule kube-cel cannot
/// compile or evaluate is a broken rule).
fn cel_rules(schema: &Value, object: &Value) -> (Value, Vec<Rule>) {
    let object = apply_defaults(schema, object);
    let errors = match Validator::new().validate(schema, &object, None) {
        Ok(()) => return (object, Vec::new()),
        Err(errors) => errors.into_vec(),
    };
    let mut rules: Vec<Rule> = errors
        .iter()
        .map(|e| {
            assert_eq!(
                e.kind,
                ErrorKind::ValidationFailure,
                "CEL rule {:?} broke: {e}",
                e.rule
            );
            let id = e.message.split(':').next().unwrap();
            id.parse()
                .unwrap_or_else(|err| panic!("CEL message {:?}: {err}", e.message))
        })
        .collect();
    rules.sort();
    (object, rules)
}

fn crd_rules_only(rules: &[Rule]) -> Vec<Rule> {
    sorted(
        &rules
            .iter()
            .copied()
            .filter(|r| r.in_crd_schema())
            .collect::<Vec<_>>(),
    )
}

#[test]
fn config_cel_rules_agree_with_rust_rules() {
    let schema = schema::<EncryptionConfig>();
    for row in config_rows() {
        let object = json!({
            "apiVersion": "kube-encrypt.dev/v1alpha1",
            "kind": "EncryptionConfig",
            "metadata": {"name": row.object_name},
            "spec": row.spec,
        });
        let (defaulted, cel) = cel_rules(&schema, &object);
        let spec: EncryptionConfigSpec = serde_json::from_value(defaulted["spec"].clone())
            .expect("a defaulted spec deserializes");
        let rust: Vec<Rule> = evaluate_config_fields(row.object_name, &spec)
            .iter()
            .map(|f| f.rule)
            .collect();
        let label = format!("{}: {} {}", row.name, row.object_name, row.spec);
        assert_eq!(cel, crd_rules_only(&rust), "row {label:?}: CEL vs Rust");
        assert_eq!(
            cel,
            crd_rules_only(row.expect),
            "row {label:?}: CEL vs table"
        );
    }
}

#[test]
fn schema_defaults_match_serde_defaults() {
    let schema = schema::<EncryptionConfig>();
    let defaulted = apply_defaults(&schema, &json!({"spec": {}}));
    let spec: EncryptionConfigSpec = serde_json::from_value(defaulted["spec"].clone()).unwrap();
    assert_eq!(spec, EncryptionConfigSpec::default());
}

#[test]
fn pool_cel_rules_agree_with_rust_rules() {
    let schema = schema::<IPPool>();
    for (cidr, valid) in cidr_rows() {
        let object = json!({
            "apiVersion": "kube-encrypt.dev/v1alpha1",
            "kind": "IPPool",
            "metadata": {"name": "p"},
            "spec": {"cidr": cidr},
        });
        let (defaulted, cel) = cel_rules(&schema, &object);
        let pool = NamedPool::new(
            "p",
            serde_json::from_value(defaulted["spec"].clone()).unwrap(),
        );
        let rust: Vec<Rule> = evaluate_pool_fields(&pool).iter().map(|f| f.rule).collect();
        let expect: &[Rule] = if valid { &[] } else { &[Rule::PoolCidr] };
        assert_eq!(rust, expect, "cidr {cidr:?}: Rust vs table");
        if KUBE_CEL_ACCEPTS.contains(&cidr) {
            assert_eq!(
                cel,
                [],
                "kube-cel now rejects {cidr:?}: drop it from KUBE_CEL_ACCEPTS"
            );
        } else {
            assert_eq!(cel, rust, "cidr {cidr:?}: CEL vs Rust");
        }
    }
}
