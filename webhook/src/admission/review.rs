//! The AdmissionReview wire format (`admission.k8s.io/v1`). [`super::decode`] reads a review
//! in one pass when its kind precedes its objects; otherwise in two: the envelope with the
//! objects skipped (which kind, which operation), then the whole review with the objects
//! decoded straight into the API crate's type for that kind. (kube's generic
//! `AdmissionReview<DynamicObject>` buffers the whole body through `serde(flatten)` and
//! decodes each object twice, which cost more than the rules.)

use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::Operation;
use kube::core::{GroupVersionKind, Status};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// `apiVersion` of the reviews this webhook answers (and of its answers).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// An incoming review whose objects are of type `T` ([`IgnoredAny`]: skipped).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review<T = IgnoredAny> {
    #[serde(default)]
    pub api_version: String,
    pub request: Option<Request<T>>,
}

/// The request of a review: who does what to which object.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<T = IgnoredAny> {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: String,
    pub operation: Operation,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(default = "none")]
    pub object: Option<T>,
    #[serde(default = "none")]
    pub old_object: Option<T>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

fn none<T>() -> Option<T> {
    None
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
    pub fn allow<T>(request: &Request<T>) -> Self {
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
