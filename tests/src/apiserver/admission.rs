//! Validating admission webhooks, called per the stored ValidatingWebhookConfigurations the
//! way the API server calls them: every matching webhook (rules, namespaceSelector,
//! objectSelector) gets an `admission.k8s.io/v1` AdmissionReview over HTTPS, trusting only
//! its `clientConfig.caBundle`; their warnings are collected; the first refusal, or call
//! failure under `failurePolicy: Fail`, becomes the API server's error.
//!
//! Wording follows kube-apiserver 1.32 (`webhook/errors.ToStatusErr`): a denial is
//! `admission webhook "<name>" denied the request: <message>` with the webhook's status code
//! (400 when it gives none or one below 400); a failed call is
//! `Internal error occurred: failed calling webhook "<name>": failed to call webhook: ...`.

mod matching;
mod review;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

pub use transport::ServiceRef;

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
    Connect,
}

impl Operation {
    /// The name used in AdmissionReview and webhook rules (`CREATE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    /// The kind of the options object the server sends along (`CreateOptions`, ...).
    fn options_kind(self) -> Option<&'static str> {
        match self {
            Operation::Create => Some("CreateOptions"),
            Operation::Update => Some("UpdateOptions"),
            Operation::Delete => Some("DeleteOptions"),
            Operation::Connect => None,
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
    /// `None` (or empty) for cluster-scoped resources.
    pub namespace: Option<String>,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    pub user: UserInfo,
    pub dry_run: bool,
    pub sub_resource: Option<String>,
}

impl AdmissionAttributes {
    fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    fn sub_resource(&self) -> &str {
        self.sub_resource.as_deref().unwrap_or_default()
    }
}

/// A webhook refused the request, or could not be called under `failurePolicy: Fail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionDenied {
    /// HTTP status of the API server's answer (the webhook's code, 400, or 500).
    pub code: u16,
    /// Status `reason` (`InternalError`, `BadRequest`, the webhook's own); empty when the
    /// webhook gave none, as the real server leaves it.
    pub reason: String,
    /// Status `message`, e.g. `admission webhook "x" denied the request: ...`.
    pub message: String,
    /// Warnings the other webhooks returned; the server sends them even with an error.
    pub warnings: Vec<String>,
}

impl AdmissionDenied {
    /// The `Status` object the API server answers with.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        status
    }

    fn internal(message: String) -> Self {
        Self {
            code: 500,
            reason: "InternalError".into(),
            message: format!("Internal error occurred: {message}"),
            warnings: Vec::new(),
        }
    }
}

impl std::fmt::Display for AdmissionDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for AdmissionDenied {}

/// Maps a webhook's `clientConfig.service` to the address to dial.
pub type ServiceResolver = Arc<dyn Fn(&ServiceRef) -> Result<SocketAddr, String> + Send + Sync>;

/// Calls validating webhooks.
pub struct Admission {
    resolver: ServiceResolver,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

impl Default for Admission {
    /// Webhooks given by `clientConfig.url` only; a `service` reference fails to resolve.
    fn default() -> Self {
        Self::new(|service: &ServiceRef| {
            Err(format!(
                "service \"{}\" has no known address (no service resolver)",
                service.name
            ))
        })
    }
}

/// How one webhook call ended.
enum Outcome {
    Skipped,
    Allowed(Vec<String>),
    Rejected(AdmissionDenied),
    CallFailed {
        webhook: String,
        reason: String,
        fail_closed: bool,
    },
}

impl Admission {
    /// `resolver` gives the address of `<name>.<namespace>.svc` for webhooks that name a
    /// service (the TLS server name stays `<name>.<namespace>.svc`).
    pub fn new(
        resolver: impl Fn(&ServiceRef) -> Result<SocketAddr, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            resolver: Arc::new(resolver),
        }
    }

    /// Runs every matching webhook of `configs`; returns their warnings, or the first
    /// refusal (in configuration order). Namespaces are known by their automatic
    /// `kubernetes.io/metadata.name` label only; see [`Self::review_source`].
    pub async fn review(
        &self,
        configs: &[Value],
        attrs: &AdmissionAttributes,
    ) -> Result<Vec<String>, AdmissionDenied> {
        let labels = matching::default_namespace_labels(attrs.namespace());
        self.dispatch(configs, attrs, &labels).await
    }

    /// [`Self::review`] with the configurations and the namespace's labels from the store.
    pub async fn review_source(
        &self,
        source: &dyn WebhookSource,
        attrs: &AdmissionAttributes,
    ) -> Result<Vec<String>, AdmissionDenied> {
        let configs = source.validating_webhook_configurations();
        let mut labels = matching::default_namespace_labels(attrs.namespace());
        if let Some(namespace) = attrs
            .namespace
            .as_deref()
            .and_then(|ns| source.namespace(ns))
        {
            labels.extend(matching::labels_of(&namespace));
        }
        self.dispatch(&configs, attrs, &labels).await
    }

    async fn dispatch(
        &self,
        configs: &[Value],
        attrs: &AdmissionAttributes,
        namespace_labels: &Map<String, Value>,
    ) -> Result<Vec<String>, AdmissionDenied> {
        let hooks: Vec<&Value> = configs
            .iter()
            .flat_map(|config| {
                config
                    .get("webhooks")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .collect();
        let calls = hooks
            .iter()
            .map(|hook| self.call_if_matching(hook, attrs, namespace_labels));
        let outcomes = futures::future::join_all(calls).await;
        settle(outcomes)
    }

    async fn call_if_matching(
        &self,
        hook: &Value,
        attrs: &AdmissionAttributes,
        namespace_labels: &Map<String, Value>,
    ) -> Outcome {
        match matching::should_call(hook, attrs, namespace_labels) {
            Ok(false) => Outcome::Skipped,
            Ok(true) => self.call(hook, attrs).await,
            Err(reason) => call_failed(hook, reason),
        }
    }

    async fn call(&self, hook: &Value, attrs: &AdmissionAttributes) -> Outcome {
        let name = hook_name(hook);
        if attrs.dry_run {
            match hook.get("sideEffects").and_then(Value::as_str) {
                None => return call_failed(hook, "Webhook SideEffects is nil".into()),
                Some("None" | "NoneOnDryRun") => {}
                Some(_) => return Outcome::Rejected(dry_run_unsupported(name)),
            }
        }
        if let Err(reason) = review::check_review_versions(hook) {
            return call_failed(hook, reason);
        }
        let (uid, request) = review::request(attrs);
        let timeout = timeout_of(hook);
        let endpoint = match transport::Endpoint::of(hook, timeout, &self.resolver) {
            Ok(endpoint) => endpoint,
            Err(reason) => return call_failed(hook, reason),
        };
        let response = match endpoint.post(&request, timeout).await {
            Ok(response) => response,
            Err(reason) => return call_failed(hook, format!("failed to call webhook: {reason}")),
        };
        match review::verify(&uid, &response) {
            Ok(verdict) if verdict.allowed => Outcome::Allowed(verdict.warnings),
            Ok(verdict) => Outcome::Rejected(review::denial(name, &verdict)),
            Err(reason) => {
                call_failed(hook, format!("received invalid webhook response: {reason}"))
            }
        }
    }
}

/// Warnings of every call, or the first error in configuration order.
fn settle(outcomes: Vec<Outcome>) -> Result<Vec<String>, AdmissionDenied> {
    let mut warnings = Vec::new();
    let mut first_error = None;
    for outcome in outcomes {
        match outcome {
            Outcome::Skipped => {}
            Outcome::Allowed(mut more) => warnings.append(&mut more),
            Outcome::Rejected(denied) => {
                first_error.get_or_insert(denied);
            }
            Outcome::CallFailed {
                webhook,
                reason,
                fail_closed,
            } => {
                let message = format!("failed calling webhook {webhook:?}: {reason}");
                if fail_closed {
                    tracing::warn!(%webhook, %reason, "failed calling webhook, failing closed");
                    first_error.get_or_insert(AdmissionDenied::internal(message));
                } else {
                    tracing::warn!(%webhook, %reason, "failed calling webhook, failing open");
                }
            }
        }
    }
    match first_error {
        None => Ok(warnings),
        Some(mut denied) => {
            denied.warnings = warnings;
            Err(denied)
        }
    }
}

fn call_failed(hook: &Value, reason: String) -> Outcome {
    let fail_closed = hook.get("failurePolicy").and_then(Value::as_str) != Some("Ignore");
    Outcome::CallFailed {
        webhook: hook_name(hook).to_string(),
        reason,
        fail_closed,
    }
}

fn dry_run_unsupported(name: &str) -> AdmissionDenied {
    AdmissionDenied {
        code: 400,
        reason: "BadRequest".into(),
        message: format!("admission webhook {name:?} does not support dry run"),
        warnings: Vec::new(),
    }
}

fn hook_name(hook: &Value) -> &str {
    hook.get("name").and_then(Value::as_str).unwrap_or_default()
}

/// `timeoutSeconds`: 10 by default, kept within the allowed 1-30.
fn timeout_of(hook: &Value) -> Duration {
    let seconds = hook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(10);
    Duration::from_secs(seconds.clamp(1, 30))
}

#[cfg(test)]
mod tests;
