//! What an AdmissionRequest is about, decoded into the API crate's types.

use kube::core::admission::Operation;
use kube_encrypt_api::crd::{EncryptionConfig, IPPool};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::review::Request;

/// The API group of the resources this webhook judges.
pub const GROUP: &str = "kube-encrypt.dev";

/// The object(s) of one request, by kind.
#[derive(Debug)]
pub enum Subject {
    /// An EncryptionConfig being created or updated.
    Config {
        new: EncryptionConfig,
        old: Option<EncryptionConfig>,
    },
    /// An IPPool being created (no old), updated or deleted (no new).
    Pool {
        old: Option<IPPool>,
        new: Option<IPPool>,
    },
    /// Anything else: not this webhook's business (a deletion of the config, a subresource,
    /// another kind the ValidatingWebhookConfiguration should not send).
    Other,
}

/// Why the request's objects cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the {which} is not a valid {kind}: {reason}")]
    Undecodable {
        which: &'static str,
        kind: &'static str,
        reason: String,
    },
    #[error("the {operation} review of {kind} {name:?} carries no {which}; the API server must send admission.k8s.io/v1 reviews")]
    Missing {
        operation: &'static str,
        kind: &'static str,
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
pub fn resource_name(request: &Request<'_>) -> &'static str {
    match (request.kind.group.as_str(), request.kind.kind.as_str()) {
        (GROUP, "EncryptionConfig") => "encryptionconfigs",
        (GROUP, "IPPool") => "ippools",
        _ => "other",
    }
}

impl Subject {
    /// Decodes the request's object and old object.
    pub fn of(request: &Request<'_>) -> Result<Self, SubjectError> {
        if request.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
            return Ok(Subject::Other);
        }
        let objects = Objects { request };
        match (resource_name(request), &request.operation) {
            ("encryptionconfigs", Operation::Create | Operation::Update) => Ok(Subject::Config {
                new: objects.required("object", "EncryptionConfig")?,
                old: objects.old("EncryptionConfig")?,
            }),
            ("ippools", Operation::Create) => Ok(Subject::Pool {
                old: None,
                new: Some(objects.required("object", "IPPool")?),
            }),
            ("ippools", Operation::Update) => Ok(Subject::Pool {
                old: Some(objects.required("oldObject", "IPPool")?),
                new: Some(objects.required("object", "IPPool")?),
            }),
            ("ippools", Operation::Delete) => Ok(Subject::Pool {
                old: Some(objects.required("oldObject", "IPPool")?),
                new: None,
            }),
            _ => Ok(Subject::Other),
        }
    }
}

struct Objects<'a> {
    request: &'a Request<'a>,
}

impl Objects<'_> {
    fn required<K: DeserializeOwned>(
        &self,
        which: &'static str,
        kind: &'static str,
    ) -> Result<K, SubjectError> {
        let object = match which {
            "object" => self.request.object,
            _ => self.request.old_object,
        };
        let Some(object) = object else {
            return Err(SubjectError::Missing {
                operation: operation_name(&self.request.operation),
                kind,
                name: self.request.name.clone(),
                which,
            });
        };
        decode(object, which, kind)
    }

    fn old<K: DeserializeOwned>(&self, kind: &'static str) -> Result<Option<K>, SubjectError> {
        self.request
            .old_object
            .map(|o| decode(o, "oldObject", kind))
            .transpose()
    }
}

fn decode<K: DeserializeOwned>(
    object: &RawValue,
    which: &'static str,
    kind: &'static str,
) -> Result<K, SubjectError> {
    serde_json::from_str(object.get()).map_err(|e| SubjectError::Undecodable {
        which,
        kind,
        reason: e.to_string(),
    })
}
