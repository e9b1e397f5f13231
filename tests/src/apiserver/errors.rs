//! API errors rendered as `Status` objects in the API server's own wording.

use serde_json::{json, Value};

use super::registry::ResourceType;
use super::schema::{self, FieldError};

/// A failed request: HTTP code, `reason` and message of the `Status` object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `nodes "x" not found`
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", rt.qualified_resource()),
        )
        .with_details(named_details(rt, name))
    }

    /// `the server could not find the requested resource`
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// `encryptionconfigs.kube-encrypt.dev "default" already exists`
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", rt.qualified_resource()),
        )
        .with_details(named_details(rt, name))
    }

    /// Optimistic concurrency failure on a stale resourceVersion.
    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self::conflict_with(rt, name, "the object has been modified; please apply your changes to the latest version and try again")
    }

    pub fn conflict_with(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                rt.qualified_resource()
            ),
        )
        .with_details(named_details(rt, name))
    }

    /// 422 with one cause per field error.
    pub fn invalid(rt: &ResourceType, name: &str, errors: &[FieldError]) -> Self {
        let status = schema::invalid_status(&rt.kind, &rt.group, name, errors);
        Self::new(
            422,
            "Invalid",
            status["message"].as_str().unwrap_or_default(),
        )
        .with_details(status["details"].clone())
    }

    /// One invalid field.
    pub fn invalid_field(rt: &ResourceType, name: &str, error: FieldError) -> Self {
        Self::invalid(rt, name, &[error])
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 410 for a watch or list from a compacted resourceVersion.
    pub fn gone(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty() {
            status.as_object_mut().expect("object").remove("reason");
        }
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

fn named_details(rt: &ResourceType, name: &str) -> Value {
    let mut details = json!({"name": name, "kind": rt.resource});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::builtin_types;
    use crate::apiserver::schema::FieldErrorKind;

    fn rt(resource: &str) -> ResourceType {
        builtin_types()
            .into_iter()
            .find(|t| t.resource == resource)
            .unwrap()
    }

    #[test]
    fn messages_match_the_api_server() {
        let cases = [
            (ApiError::not_found(&rt("nodes"), "x"), 404, "nodes \"x\" not found"),
            (
                ApiError::already_exists(&rt("deployments"), "d"),
                409,
                "deployments.apps \"d\" already exists",
            ),
            (
                ApiError::conflict(&rt("configmaps"), "c"),
                409,
                "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again",
            ),
            (
                ApiError::invalid_field(&rt("configmaps"), "c", FieldError::required("metadata.name")),
                422,
                "ConfigMap \"c\" is invalid: metadata.name: Required value",
            ),
            (
                ApiError::invalid_field(
                    &rt("deployments"),
                    "d",
                    FieldError::new("spec.replicas", FieldErrorKind::Invalid, Some(serde_json::json!(-1)), ""),
                ),
                422,
                "Deployment.apps \"d\" is invalid: spec.replicas: Invalid value: -1",
            ),
        ];
        for (err, code, message) in cases {
            assert_eq!(err.code, code);
            assert_eq!(err.message, message);
            assert_eq!(err.status()["code"], code);
        }
    }
}
