//! What an AdmissionRequest is about, decoded into the API crate's types.

use kube::core::admission::Operation;
use kube_encrypt_api::crd::{EncryptionConfig, IPPool};
use serde::de::DeserializeOwned;

use super::review::{Request, Review};

/// The API group of the resources this webhook judges.
pub const GROUP: &str = "kube-encrypt.dev";

/// The object(s) of one request, by kind.
#[derive(Debug)]
pub enum Subject {
    /// An EncryptionConfig being created or updated.
    Config {
        new: Box<EncryptionConfig>,
        old: Option<Box<EncryptionConfig>>,
    },
    /// An IPPool being created (no old), updated or deleted (no new).
    Pool {
        old: Option<Box<IPPool>>,
        new: Option<Box<IPPool>>,
    },
    /// Anything else: not this webhook's business (a deletion of the config, a subresource,
    /// another kind the ValidatingWebhookConfiguration should not send).
    Other,
}

/// Why the request's objects cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the review's objects are not valid {kind}s: {reason}")]
    Undecodable { kind: &'static str, reason: String },
    #[error("the {operation} review of {kind} {name:?} carries no {which}; the API server must send admission.k8s.io/v1 reviews")]
    Missing {
        operation: &'static str,
        kind: String,
        name: String,
        which: &'static str,
    },
}

/// The metric label of an operation.
pub fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// The metric label of the request's resource.
pub fn resource_name(request: &Request) -> &'static str {
    match (request.kind.group.as_str(), request.kind.kind.as_str()) {
        (GROUP, "EncryptionConfig") => "encryptionconfigs",
        (GROUP, "IPPool") => "ippools",
        _ => "other",
    }
}

impl Subject {
    /// Decodes the objects of `request`, whose review is `body`.
    pub fn of(request: &Request, body: &[u8]) -> Result<Self, SubjectError> {
        if request
            .sub_resource
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            return Ok(Subject::Other);
        }
        let missing = |which| SubjectError::Missing {
            operation: operation_name(&request.operation),
            kind: request.kind.kind.clone(),
            name: request.name.clone(),
            which,
        };
        match (resource_name(request), &request.operation) {
            ("encryptionconfigs", Operation::Create | Operation::Update) => {
                let (old, new) = objects::<Box<EncryptionConfig>>(body, "EncryptionConfig")?;
                let new = new.ok_or_else(|| missing("object"))?;
                Ok(Subject::Config { new, old })
            }
            (
                "ippools",
                operation @ (Operation::Create | Operation::Update | Operation::Delete),
            ) => {
                let (old, new) = objects::<Box<IPPool>>(body, "IPPool")?;
                let needs_old = *operation != Operation::Create;
                let needs_new = *operation != Operation::Delete;
                let old = match needs_old {
                    true => Some(old.ok_or_else(|| missing("oldObject"))?),
                    false => None,
                };
                let new = match needs_new {
                    true => Some(new.ok_or_else(|| missing("object"))?),
                    false => None,
                };
                Ok(Subject::Pool { old, new })
            }
            _ => Ok(Subject::Other),
        }
    }
}

/// The review's old object and object, decoded as `K`.
fn objects<K: DeserializeOwned>(
    body: &[u8],
    kind: &'static str,
) -> Result<(Option<K>, Option<K>), SubjectError> {
    let review: Review<K> =
        serde_json::from_slice(body).map_err(|e| SubjectError::Undecodable {
            kind,
            reason: e.to_string(),
        })?;
    Ok(review
        .request
        .map(|r| (r.old_object, r.object))
        .unwrap_or((None, None)))
}
