//! The AdmissionReview wire format (`admission.k8s.io/v1`), decoded in one pass: the objects
//! stay raw JSON until the kind is known and are then decoded straight into the API crate's
//! types (kube's generic `AdmissionReview<DynamicObject>` buffers the whole body through
//! `serde(flatten)` and decodes each object twice, which cost more than the rules).

use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::Operation;
use kube::core::{GroupVersionKind, Status};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `apiVersion` of the reviews this webhook answers (and of its answers).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// An incoming review.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review<'a> {
    #[serde(default)]
    pub api_version: String,
    #[serde(borrow)]
    pub request: Option<Request<'a>>,
}

/// The request of a review: who does what to which object.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: String,
    pub operation: Operation,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(borrow, default)]
    pub object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub old_object: Option<&'a RawValue>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// An outgoing review carrying the response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub api_version: String,
    pub kind: &'static str,
    pub response: Response,
}

/// The verdict on one request.
#[derive(Debug, Default, Serialize)]
pub struct Response {
    pub uid: String,
    pub allowed: bool,
    /// Why a request is refused (ignored by the API server when allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Shown to the user (`kubectl` prints them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Response {
    /// Admits `request`.
    pub fn allow(request: &Request<'_>) -> Self {
        Self {
            uid: request.uid.clone(),
            allowed: true,
            ..Default::default()
        }
    }

    /// Wraps the response into a review of the request's API version.
    pub fn into_answer(self, api_version: &str) -> Answer {
        let api_version = match api_version {
            "" => API_VERSION,
            given => given,
        };
        Answer {
            api_version: api_version.to_owned(),
            kind: "AdmissionReview",
            response: self,
        }
    }
}
