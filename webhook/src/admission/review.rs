//! The AdmissionReview wire format (`admission.k8s.io/v1`). [`super::decode`] reads a review
//! in one pass when its kind precedes its objects; otherwise in two: the envelope with the
//! objects skipped (which kind, which operation), then the whole review with the objects
//! decoded straight into the API crate's type for that kind (the old EncryptionConfig of an
//! update is only kept as its text, see [`super::OldConfig`]). Strings are borrowed from the
//! body unless they hold an escape. (kube's generic
//! `AdmissionReview<DynamicObject>` buffers the whole body through `serde(flatten)` and
//! decodes each object twice, which cost more than the rules.)

use std::borrow::Cow;

use kube::core::admission::Operation;
use kube::core::Status;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// `apiVersion` of the reviews this webhook answers (and of its answers).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// An incoming review whose objects are of type `T` ([`IgnoredAny`]: skipped). Its text is
/// borrowed from the body where it has no escapes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review<'a, T = IgnoredAny> {
    #[serde(borrow, default)]
    pub api_version: Cow<'a, str>,
    #[serde(borrow)]
    pub request: Option<Request<'a, T>>,
}

/// The request of a review: who does what to which object.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a, T = IgnoredAny> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Kind<'a>,
    #[serde(borrow, default)]
    pub sub_resource: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    pub operation: Operation,
    #[serde(borrow, default)]
    pub user_info: UserInfo<'a>,
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

/// The request's `kind`: group, version and kind of the object.
#[derive(Debug, Deserialize)]
pub struct Kind<'a> {
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
}

/// Who sent the request (the policy's exemptions read it).
#[derive(Debug, Default, Deserialize)]
pub struct UserInfo<'a> {
    #[serde(borrow, default)]
    pub username: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub groups: Option<Vec<Text<'a>>>,
}

/// A string of the review, borrowed from the body unless it has escapes (serde borrows a
/// `Cow` only where it is a field itself, not inside an `Option` or a `Vec`).
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl std::fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// An outgoing review carrying the response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer<'a> {
    pub api_version: &'a str,
    pub kind: &'static str,
    pub response: Response<'a>,
}

impl Answer<'_> {
    /// The answer as JSON. A plain admission (no warnings, no status), the answer to nearly
    /// every review, is written straight from its two strings, byte for byte what serde writes
    /// (a test compares them); any other answer goes through serde.
    pub fn to_json(&self) -> Vec<u8> {
        let response = &self.response;
        if response.allowed && response.status.is_none() && response.warnings.is_empty() {
            if let (Some(api_version), Some(uid)) =
                (verbatim(self.api_version), verbatim(response.uid))
            {
                return [
                    r#"{"apiVersion":""#,
                    api_version,
                    r#"","kind":"AdmissionReview","response":{"uid":""#,
                    uid,
                    r#"","allowed":true}}"#,
                ]
                .concat()
                .into_bytes();
            }
        }
        // An admission fits (a denial grows the buffer once or twice).
        let mut json = Vec::with_capacity(256);
        serde_json::to_writer(&mut json, self).expect("an AdmissionReview always serializes");
        json
    }
}

/// `text` when JSON writes it as it is: without a quote, a backslash or a control character.
fn verbatim(text: &str) -> Option<&str> {
    let escaped = text.bytes().fold(false, |escaped, b| {
        escaped | (b < 0x20 || b == b'"' || b == b'\\')
    });
    (!escaped).then_some(text)
}

/// The verdict on one request.
#[derive(Debug, Default, Serialize)]
pub struct Response<'a> {
    pub uid: &'a str,
    pub allowed: bool,
    /// Why a request is refused (ignored by the API server when allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Shown to the user (`kubectl` prints them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl<'a> Response<'a> {
    /// Admits `request`.
    pub fn allow<T>(request: &'a Request<'_, T>) -> Self {
        Self {
            uid: &request.uid,
            allowed: true,
            ..Default::default()
        }
    }

    /// Wraps the response into a review of the request's API version.
    pub fn into_answer(self, api_version: &'a str) -> Answer<'a> {
        let api_version = match api_version {
            "" => API_VERSION,
            given => given,
        };
        Answer {
            api_version,
            kind: "AdmissionReview",
            response: self,
        }
    }
}
