//! What an AdmissionRequest is about, decoded into the API crate's types: each object's name
//! and spec, which is all the rules read (status, labels, annotations and `managedFields` are
//! skipped unread). The EncryptionConfig an update replaces is kept as its JSON text and decoded
//! only when a finding asks whether the update changed the spec ([`OldConfig`]).

use kube::core::admission::Operation;
use kube_encrypt_api::crd::{EncryptionConfigSpec, IPPoolSpec};
use kube_encrypt_api::rules::{ConfigRef, NamedPool};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::review::{Kind, Request};

/// An object under review as the rules see it: its name and its spec (the API crate's type).
#[derive(Debug, Deserialize)]
pub struct Object<S> {
    #[serde(default)]
    pub metadata: Name,
    pub spec: S,
}

/// `metadata.name`.
#[derive(Debug, Default, Deserialize)]
pub struct Name {
    #[serde(default)]
    pub name: Option<String>,
}

/// An EncryptionConfig under review.
pub type ConfigObject = Object<EncryptionConfigSpec>;
/// An IPPool under review.
pub type PoolObject = Object<IPPoolSpec>;

/// The EncryptionConfig an update replaces, as the review carries it. No rule reads it: it
/// only tells whether an update leaves the spec as it was, which matters when a finding
/// does, so it is decoded then. An old object that no longer decodes (stored before a schema
/// change, say) counts as a changed spec and never blocks the update.
#[derive(Debug)]
pub struct OldConfig<'a>(&'a str);

impl<'a> OldConfig<'a> {
    /// The old object as its JSON text (checked to be JSON by whoever found it).
    pub(super) fn from_json(text: &'a str) -> Self {
        Self(text)
    }

    /// The old spec, when it decodes.
    pub fn spec(&self) -> Option<EncryptionConfigSpec> {
        serde_json::from_str::<ConfigObject>(self.0)
            .ok()
            .map(|old| old.spec)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for OldConfig<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&RawValue>::deserialize(deserializer).map(|raw| Self(raw.get()))
    }
}

impl<S> Object<S> {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

impl<'a> From<&'a ConfigObject> for ConfigRef<'a> {
    fn from(config: &'a ConfigObject) -> Self {
        ConfigRef {
            name: config.name(),
            spec: &config.spec,
        }
    }
}

impl From<&PoolObject> for NamedPool {
    fn from(pool: &PoolObject) -> Self {
        NamedPool::new(pool.name(), pool.spec.clone())
    }
}

/// The old object and object of a review, decoded as the type its kind names.
#[derive(Debug)]
pub enum Objects<'a> {
    Config(Option<OldConfig<'a>>, Option<Box<ConfigObject>>),
    Pool(Option<Box<PoolObject>>, Option<Box<PoolObject>>),
    /// Not a kind this webhook judges: not decoded.
    Other,
}

/// The API group of the resources this webhook judges.
pub const GROUP: &str = "kube-encrypt.dev";

/// The object(s) of one request, by kind.
#[derive(Debug)]
pub enum Subject<'a> {
    /// An EncryptionConfig being created or updated.
    Config {
        new: Box<ConfigObject>,
        old: Option<OldConfig<'a>>,
    },
    /// An IPPool being created (no old), updated or deleted (no new).
    Pool {
        old: Option<Box<PoolObject>>,
        new: Option<Box<PoolObject>>,
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
    resource_of(&request.kind)
}

/// The resource of objects of `kind`: `encryptionconfigs`, `ippools` or `other`.
pub fn resource_of(kind: &Kind) -> &'static str {
    match (&*kind.group, &*kind.kind) {
        (GROUP, "EncryptionConfig") => "encryptionconfigs",
        (GROUP, "IPPool") => "ippools",
        _ => "other",
    }
}

impl<'a> Subject<'a> {
    /// Decodes the objects of `request`, whose review is `body`.
    pub fn of(request: &Request, body: &'a [u8]) -> Result<Self, SubjectError> {
        Self::with_objects(request, || Objects::of(request, body))
    }

    /// The subject of `request`, whose objects `decode` yields when the request needs them.
    pub fn with_objects(
        request: &Request,
        decode: impl FnOnce() -> Result<Objects<'a>, SubjectError>,
    ) -> Result<Self, SubjectError> {
        if request
            .sub_resource
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            return Ok(Subject::Other);
        }
        let missing = |which| SubjectError::Missing {
            operation: operation_name(&request.operation),
            kind: request.kind.kind.to_string(),
            name: request.name.to_string(),
            which,
        };
        match (resource_name(request), &request.operation) {
            ("encryptionconfigs", Operation::Create | Operation::Update) => {
                let Objects::Config(old, new) = decode()? else {
                    return Err(SubjectError::wrong_kind("EncryptionConfig"));
                };
                let new = new.ok_or_else(|| missing("object"))?;
                Ok(Subject::Config { new, old })
            }
            (
                "ippools",
                operation @ (Operation::Create | Operation::Update | Operation::Delete),
            ) => {
                let Objects::Pool(old, new) = decode()? else {
                    return Err(SubjectError::wrong_kind("IPPool"));
                };
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

impl Subject<'_> {
    /// Whether this is an update that leaves the spec as it was.
    pub fn spec_unchanged(&self) -> bool {
        match self {
            Subject::Config { new, old } => old
                .as_ref()
                .and_then(OldConfig::spec)
                .is_some_and(|old| old == new.spec),
            Subject::Pool {
                old: Some(old),
                new: Some(new),
            } => old.spec == new.spec,
            _ => false,
        }
    }
}

impl<'a> Objects<'a> {
    /// The objects of `request`, decoded from its review `body` as the type its kind names.
    pub fn of(request: &Request, body: &'a [u8]) -> Result<Self, SubjectError> {
        match resource_name(request) {
            "encryptionconfigs" => {
                let (old, new) = objects(body, "EncryptionConfig")?;
                Ok(Objects::Config(old, new))
            }
            "ippools" => {
                let (old, new) = objects(body, "IPPool")?;
                Ok(Objects::Pool(old, new))
            }
            _ => Ok(Objects::Other),
        }
    }
}

impl SubjectError {
    fn wrong_kind(kind: &'static str) -> Self {
        SubjectError::Undecodable {
            kind,
            reason: "the objects were decoded as another kind".into(),
        }
    }
}

/// The review's old object as `Old` and object as `New`.
fn objects<'a, Old: Deserialize<'a>, New: Deserialize<'a>>(
    body: &'a [u8],
    kind: &'static str,
) -> Result<(Option<Old>, Option<New>), SubjectError> {
    let review: ObjectsOf<Old, New> =
        serde_json::from_slice(body).map_err(|e| SubjectError::Undecodable {
            kind,
            reason: e.to_string(),
        })?;
    Ok(review
        .request
        .map(|r| (r.old_object, r.object))
        .unwrap_or((None, None)))
}

/// A review read for its objects only (the rest of it is read by [`super::review::Review`]).
#[derive(Deserialize)]
struct ObjectsOf<Old, New> {
    request: Option<RequestObjects<Old, New>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestObjects<Old, New> {
    #[serde(default = "none")]
    object: Option<New>,
    #[serde(default = "none")]
    old_object: Option<Old>,
}

fn none<T>() -> Option<T> {
    None
}
