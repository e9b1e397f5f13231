//! Custom resources against their CRD's structural `openAPIV3Schema`, in the API server's
//! order: prune unknown fields (and nulls of non-nullable fields), apply `default`s, validate
//! the OpenAPI keywords, then run the `x-kubernetes-validations` CEL rules (see [`super::cel`]).
//!
//! Errors are [`FieldError`]s worded like the API server's `field.Error`s, and
//! [`invalid_status`] renders them as the 422 `Invalid` Status the server returns:
//! `EncryptionConfig.kube-encrypt.dev "x" is invalid: spec.ipv4.port: Invalid value: ...`.

mod defaults;
mod errors;
mod prune;
mod validate;

use serde_json::Value;

pub use errors::{invalid_message, invalid_status, FieldError, FieldErrorKind};

/// What preparing an object did besides validating it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Paths of the unknown fields that were pruned (`spec.foo`), in the order met; the
    /// server reports them as `unknown field "spec.foo"` under `fieldValidation=Warn|Strict`.
    pub pruned: Vec<String>,
}

/// Prunes, defaults and validates `obj` (a whole custom resource) against `version` of
/// `crd` (a whole CustomResourceDefinition object). `old` is the stored object on updates,
/// which enables the CEL transition rules (`oldSelf`).
pub fn prepare_custom_resource(
    crd: &Value,
    version: &str,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<(), Vec<FieldError>> {
    prepare(crd, version, obj, old).map(|_| ())
}

/// [`prepare_custom_resource`], also telling which unknown fields were pruned.
pub fn prepare(
    crd: &Value,
    version: &str,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Prepared, Vec<FieldError>> {
    let Some(schema) = version_schema(crd, version) else {
        return Err(vec![missing_schema_error(crd, version)]);
    };
    let mut prepared = Prepared::default();
    prune::prune_root(schema, obj, &mut prepared.pruned);
    defaults::apply(schema, obj);
    let mut errors = validate::validate_root(schema, obj);
    if let Some(blocking) = errors.iter().find(|e| e.blocks_cel()) {
        tracing::debug!(field = %blocking.field, "schema errors block the CEL rules");
        errors.push(FieldError::rules_not_checked());
    } else {
        errors.extend(super::cel::validate_rules(schema, obj, old));
    }
    if errors.is_empty() {
        Ok(prepared)
    } else {
        Err(errors)
    }
}

/// The `openAPIV3Schema` of `version` in a CRD (`spec.versions[].schema`).
pub fn version_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
        .pointer("/schema/openAPIV3Schema")
}

fn missing_schema_error(crd: &Value, version: &str) -> FieldError {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    FieldError::internal(format!(
        "CustomResourceDefinition {name} has no schema for version {version:?}; \
         add it to spec.versions[].schema.openAPIV3Schema"
    ))
}

/// Joins an object property onto a path (`spec` + `ipv4` = `spec.ipv4`).
fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Joins a list index onto a path (`spec.items[3]`).
fn index_path(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// Joins a map key onto a path (`spec.labels[app]`), as `field.Path.Key` does.
fn key_path(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

/// Whether the schema node keeps fields it does not declare.
fn preserves_unknown(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-preserve-unknown-fields")
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

/// The map-value schema of a map node: `additionalProperties` as a schema (`true` means any).
fn map_values_schema(schema: &Value) -> Option<&Value> {
    match schema.get("additionalProperties") {
        Some(Value::Bool(false)) | None => None,
        Some(other) => Some(other),
    }
}

/// Whether `key` of an object at this node is one the server keeps without a schema:
/// `apiVersion`, `kind`, `metadata` at the root and in embedded resources.
fn is_object_meta_key(schema: &Value, root: bool, key: &str) -> bool {
    (root || flag(schema, "x-kubernetes-embedded-resource"))
        && matches!(key, "apiVersion" | "kind" | "metadata")
}

#[cfg(test)]
mod tests;
