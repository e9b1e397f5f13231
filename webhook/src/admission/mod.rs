//! The AdmissionReview adapter: decode the review, run the shared rules of
//! `kube_encrypt_api::rules` against the cached cluster, apply the policy, answer. No rule is
//! written here.
//!
//! ```text
//!  body ─► AdmissionReview (admission.k8s.io/v1) ─► Subject (EncryptionConfig / IPPool, old + new)
//!        ─► rules::evaluate_config / evaluate_pool_change (cluster snapshot) ─► findings
//!        ─► Verdict (policy: deny / warn / off, exemptions) ─► AdmissionResponse
//! ```
//!
//! A denial names every failing rule in one answer (rule id, field, what to change), with a
//! `StatusCause` per finding for programs; warnings land in `response.warnings`. Dry-run
//! requests are judged like any other (the webhook has no side effects). A body that is not
//! an AdmissionReview is refused with [`BadReview`] (HTTP 400); a review whose object cannot
//! be decoded is denied with code 400 and the reason.

mod decode;
mod response;
mod review;
mod skim;
mod subject;
mod verdict;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use kube::core::admission::Operation;
use kube_encrypt_api::rules::{self, ConfigRef, Finding, NamedPool, PoolChange};

use crate::cluster::{ClusterSnapshot, SharedCluster};
use crate::metrics::Metrics;
use crate::policy::reload::PolicyHandle;
use crate::policy::Requester;

pub use review::{Answer, Kind, Request, Response, Review, Text, UserInfo, API_VERSION};
pub use subject::{
    ConfigObject, Name, Object, Objects, OldConfig, PoolObject, Subject, SubjectError, GROUP,
};
pub use verdict::{Leniency, Verdict};

/// Why a body got no AdmissionReview answer.
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    #[error("the body is not an AdmissionReview: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Judges AdmissionReviews.
#[derive(Debug, Clone)]
pub struct Admission {
    cluster: Arc<SharedCluster>,
    policy: Arc<PolicyHandle>,
    metrics: Arc<Metrics>,
}

impl Admission {
    pub fn new(
        cluster: Arc<SharedCluster>,
        policy: Arc<PolicyHandle>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cluster,
            policy,
            metrics,
        }
    }

    /// The JSON AdmissionReview answering the review in `body`.
    pub fn review(&self, body: &[u8]) -> Result<Vec<u8>, BadReview> {
        let decoded = decode::decode(body).inspect_err(|_| {
            self.metrics.count_request("unknown", "unknown", "invalid");
        })?;
        let answer = self.answer(&decoded.request, decoded.subject);
        Ok(answer.into_answer(&decoded.api_version).to_json())
    }

    fn answer<'a>(
        &self,
        request: &'a Request,
        subject: Result<Subject<'_>, SubjectError>,
    ) -> Response<'a> {
        let resource = subject::resource_name(request);
        let operation = subject::operation_name(&request.operation);
        let (response, outcome) = match subject {
            Ok(subject) => {
                let verdict = self.judge(request, subject);
                for (rule, action) in &verdict.actions {
                    self.metrics.count_finding(rule.as_str(), action);
                }
                let outcome = verdict.outcome();
                (response::of_verdict(request, verdict), outcome)
            }
            Err(e) => {
                tracing::warn!(uid = %request.uid, error = %e, "refusing an undecodable review");
                (response::undecodable(request, &e), "invalid")
            }
        };
        self.metrics.count_request(resource, operation, outcome);
        response
    }

    fn judge(&self, request: &Request, subject: Subject<'_>) -> Verdict {
        let cluster = self.cluster.snapshot();
        let findings = match &subject {
            Subject::Config { new, .. } => config_findings(new, &cluster),
            Subject::Pool { old, new } => pool_findings(old.as_deref(), new.as_deref(), &cluster),
            Subject::Other => return Verdict::default(),
        };
        let policy = self.policy.current();
        let requester = Requester {
            username: request.user_info.username.as_deref().unwrap_or_default(),
            groups: request.user_info.groups.as_deref().unwrap_or_default(),
        };
        let leniency = match policy.exemption(requester) {
            Some(who) => Leniency::Exempt(who),
            None if request.operation == Operation::Update
                && !findings.is_empty()
                && subject.spec_unchanged() =>
            {
                Leniency::SpecUnchanged
            }
            None => Leniency::None,
        };
        Verdict::judge(findings, &policy, &leniency)
    }
}

/// The rules' findings about a config, given the cached pools.
fn config_findings(config: &ConfigObject, cluster: &ClusterSnapshot) -> Vec<Finding> {
    let config = ConfigRef::from(config);
    rules::evaluate_config_against(config.name, config.spec, &cluster.pools)
}

/// The rules' findings about a pool change, given the cached config and pools.
fn pool_findings(
    old: Option<&PoolObject>,
    new: Option<&PoolObject>,
    cluster: &ClusterSnapshot,
) -> Vec<Finding> {
    let change = match (old, new) {
        (None, Some(new)) => PoolChange::Create(NamedPool::from(new)),
        (Some(old), Some(new)) => PoolChange::Update {
            old: NamedPool::from(old),
            new: NamedPool::from(new),
        },
        (Some(old), None) => PoolChange::Delete(NamedPool::from(old)),
        (None, None) => return Vec::new(),
    };
    let config = cluster.config.as_deref().map(ConfigRef::from);
    rules::evaluate_pool_change_against(change, config, &cluster.pools)
}
