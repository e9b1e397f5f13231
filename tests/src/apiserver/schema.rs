//! Custom resource schemas: defaulting, pruning and validation against a CRD's
//! `openAPIV3Schema` (including `x-kubernetes-validations`).
//!
//! Placeholder pass-through until the schema implementation lands; the signature is the
//! contract the request pipeline calls.

use serde_json::Value;

/// One validation failure, rendered by the server as `<field>: <message>` inside a 422
/// `Invalid` Status and as a `details.causes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path as the API server prints it, e.g. `spec.ipv4.port`.
    pub field: String,
    /// Cause type, e.g. `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`.
    pub reason: String,
    /// Text after the field, e.g. `Invalid value: 70000: must be less than or equal to 65535`.
    pub message: String,
}

/// Applies defaults, prunes unknown fields and validates `obj` against `version` of `crd`.
/// `old` is the stored object on updates (for transition rules).
pub fn prepare_custom_resource(
    _crd: &Value,
    _version: &str,
    _obj: &mut Value,
    _old: Option<&Value>,
) -> Result<(), Vec<FieldError>> {
    Ok(())
}
