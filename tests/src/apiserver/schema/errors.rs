//! `field.Error` of the API server: kinds, wording and the 422 `Invalid` Status.

use serde_json::{json, Value};

/// The `field.ErrorType` of an error; decides its wording and its Status cause `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `FieldValueInvalid`, "Invalid value".
    Invalid,
    /// `FieldValueTypeInvalid`: a value of the wrong JSON type ("Invalid value").
    TypeInvalid,
    /// `FieldValueRequired`, "Required value".
    Required,
    /// `FieldValueNotSupported`: a value outside an `enum` ("Unsupported value").
    NotSupported,
    /// `FieldValueForbidden`, "Forbidden".
    Forbidden,
    /// `FieldValueTooLong`, "Too long".
    TooLong,
    /// `FieldValueTooMany`, "Too many".
    TooMany,
    /// `FieldValueDuplicate`, "Duplicate value".
    Duplicate,
    /// `InternalError`, "Internal error".
    Internal,
}

impl FieldErrorKind {
    /// The cause `reason` in a Status (`FieldValueInvalid`, ...).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Invalid => "FieldValueInvalid",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::Required => "FieldValueRequired",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Internal => "InternalError",
        }
    }

    /// The kind from a cause reason (as a CEL rule's `reason` names it); `Invalid` otherwise.
    pub fn from_reason(reason: &str) -> Self {
        match reason {
            "FieldValueTypeInvalid" => Self::TypeInvalid,
            "FieldValueRequired" => Self::Required,
            "FieldValueNotSupported" => Self::NotSupported,
            "FieldValueForbidden" => Self::Forbidden,
            "FieldValueTooLong" => Self::TooLong,
            "FieldValueTooMany" => Self::TooMany,
            "FieldValueDuplicate" => Self::Duplicate,
            "InternalError" => Self::Internal,
            _ => Self::Invalid,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::Required => "Required value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Duplicate => "Duplicate value",
            Self::Internal => "Internal error",
        }
    }

    /// Kinds whose wording never shows the bad value.
    fn hides_value(self) -> bool {
        matches!(
            self,
            Self::Required | Self::Forbidden | Self::TooLong | Self::Internal
        )
    }
}

/// One validation failure of one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Path as the API server prints it, e.g. `spec.ipv4.port`; empty for the object itself
    /// (printed `<nil>`).
    pub field: String,
    pub kind: FieldErrorKind,
    /// The detail after the value, e.g. `port-range: spec.ipv4.port must be 1-65535`.
    pub message: String,
    /// The bad value as printed (`70000`, `"wg:0"`, `"object"` for CEL rules).
    pub value: Option<Value>,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        kind: FieldErrorKind,
        value: Option<Value>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind,
            message: message.into(),
            value,
        }
    }

    pub fn required(field: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Required, None, "")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("", FieldErrorKind::Internal, None, message)
    }

    /// The error the server appends when schema errors kept the CEL rules from running.
    pub fn rules_not_checked() -> Self {
        Self::new(
            "",
            FieldErrorKind::Invalid,
            Some(Value::Null),
            "some validation rules were not checked because the object was invalid; \
             correct the existing errors to complete validation",
        )
    }

    /// The cause `reason` in a Status (`FieldValueInvalid`, ...).
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// Errors that keep the server from evaluating CEL rules (wrong types, bad enum values).
    pub fn blocks_cel(&self) -> bool {
        matches!(
            self.kind,
            FieldErrorKind::TypeInvalid | FieldErrorKind::NotSupported
        )
    }

    /// The field as printed: the path, or `<nil>` for the object itself.
    pub fn field_display(&self) -> &str {
        if self.field.is_empty() {
            "<nil>"
        } else {
            &self.field
        }
    }

    /// Everything after the field, e.g. `Invalid value: 70000: must be ...` (`ErrorBody`).
    pub fn body(&self) -> String {
        let mut body = self.kind.words().to_string();
        if !self.kind.hides_value() {
            if let Some(value) = &self.value {
                body.push_str(": ");
                body.push_str(&go_value(value));
            }
        }
        if !self.message.is_empty() {
            body.push_str(": ");
            body.push_str(&self.message);
        }
        body
    }

    /// The Status `details.causes` entry.
    pub fn cause(&self) -> Value {
        json!({ "reason": self.reason(), "message": self.body(), "field": self.field_display() })
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field_display(), self.body())
    }
}

impl std::error::Error for FieldError {}

/// A value as Go's `field.Error` prints it: numbers and booleans bare, strings quoted,
/// null as `"null"`, anything else as JSON.
pub(crate) fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "\"null\"".to_string(),
        Value::String(s) => go_quote(s),
        Value::Number(n) => go_number(n),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Go's `%v` of a JSON number: integers bare, whole floats without a fraction.
pub(crate) fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

/// Go's `%q` for the printable strings validation meets (JSON escaping is the same there).
pub(crate) fn go_quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The message of the 422: `<Kind>.<group> "<name>" is invalid: <errors>`, the errors
/// joined like a Go aggregate (one bare, several as `[a, b]`, duplicates dropped).
pub fn invalid_message(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> String {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut rendered: Vec<String> = Vec::new();
    for error in errors {
        let text = error.to_string();
        if !rendered.contains(&text) {
            rendered.push(text);
        }
    }
    match rendered.len() {
        0 => format!("{qualified} {} is invalid", go_quote(name)),
        1 => format!("{qualified} {} is invalid: {}", go_quote(name), rendered[0]),
        _ => format!(
            "{qualified} {} is invalid: [{}]",
            go_quote(name),
            rendered.join(", ")
        ),
    }
}

/// The whole 422 `Invalid` Status object the server answers with.
pub fn invalid_status(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": invalid_message(kind, group, name, errors),
        "reason": "Invalid",
        "details": {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": errors.iter().map(FieldError::cause).collect::<Vec<_>>(),
        },
        "code": 422,
    })
}
