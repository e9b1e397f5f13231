//! Validating admission webhooks, called per the stored ValidatingWebhookConfigurations.
//!
//! Placeholder that admits everything until the webhook caller lands; the types are the
//! contract the request pipeline uses.

use serde_json::Value;

/// What the request pipeline lets admission read from the store.
pub trait WebhookSource: Send + Sync {
    /// Every stored `ValidatingWebhookConfiguration` (admissionregistration.k8s.io/v1).
    fn validating_webhook_configurations(&self) -> Vec<Value>;
    /// The stored Namespace object `name`, for `namespaceSelector`.
    fn namespace(&self, name: &str) -> Option<Value>;
}

/// Admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// The name used in AdmissionReview and webhook rules (`CREATE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersionKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersionResource {
    pub group: String,
    pub version: String,
    pub resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub groups: Vec<String>,
}

/// Everything a webhook is told about one request.
#[derive(Debug, Clone)]
pub struct AdmissionAttributes {
    pub operation: Operation,
    pub gvk: GroupVersionKind,
    pub gvr: GroupVersionResource,
    pub name: String,
    pub namespace: Option<String>,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    pub user: UserInfo,
    pub dry_run: bool,
    pub sub_resource: Option<String>,
}

/// A webhook refused the request (or failed with `failurePolicy: Fail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionDenied {
    pub status_code: u16,
    pub message: String,
}

/// Calls validating webhooks.
#[derive(Debug, Default)]
pub struct Admission {}

impl Admission {
    pub fn new() -> Self {
        Self {}
    }

    /// Runs every matching webhook; returns their warnings, or the first denial.
    pub async fn review(
        &self,
        _source: &dyn WebhookSource,
        _attrs: AdmissionAttributes,
    ) -> Result<Vec<String>, AdmissionDenied> {
        Ok(Vec::new())
    }
}
