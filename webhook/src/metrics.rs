//! Prometheus metrics of the webhook, served at `/metrics`:
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `kube_encrypt_webhook_admission_requests_total` | `resource`, `operation`, `outcome` | reviews answered: `allowed`, `warned`, `denied`, `invalid` |
//! | `kube_encrypt_webhook_rule_findings_total` | `rule`, `action` | findings by rule and what the policy made of them: `deny`, `warn`, `off`, `exempt` |
//! | `kube_encrypt_webhook_admission_duration_seconds` | | time from the request's headers to its answer |
//! | `kube_encrypt_webhook_http_rejections_total` | `reason` | requests refused before review: `too_large`, `timeout`, `malformed`, `not_found` |
//! | `kube_encrypt_webhook_policy_reloads_total` / `_policy_reload_errors_total` | | policy file loads that took effect / were refused |
//! | `kube_encrypt_webhook_policy_valid` | | 1 while the policy file on disk is the one in force, 0 after a refused load |
//! | `kube_encrypt_webhook_certificate_reloads_total` / `_certificate_reload_errors_total` | | serving certificate loads |
//! | `kube_encrypt_webhook_leader` | | 1 while this replica holds the Lease and writes status |
//! | `kube_encrypt_webhook_status_writes_total` / `_status_write_errors_total` | | `EncryptionConfig.status` writes |

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    resource: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

/// The labels of every request the webhook counts, in the order of [`RequestCounters::known`].
const RESOURCES: [&str; 4] = ["encryptionconfigs", "ippools", "other", "unknown"];
const OPERATIONS: [&str; 5] = ["CREATE", "UPDATE", "DELETE", "CONNECT", "unknown"];
const OUTCOMES: [&str; 4] = ["allowed", "warned", "denied", "invalid"];
const KNOWN_REQUESTS: usize = RESOURCES.len() * OPERATIONS.len() * OUTCOMES.len();

/// `admission_requests_total`. Each series' counter is also kept by the index of its labels
/// once the series exists, so a review is counted without hashing its labels (which cost 2 %
/// of a review). A series shows in `/metrics` from its first count, as in any family.
#[derive(Debug)]
struct RequestCounters {
    family: Family<RequestLabels, Counter>,
    known: [OnceLock<Counter>; KNOWN_REQUESTS],
}

impl RequestCounters {
    fn new(family: Family<RequestLabels, Counter>) -> Self {
        Self {
            family,
            known: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn count(&self, labels: RequestLabels) {
        let at = |set: &[&str], label: &str| set.iter().position(|l| *l == label);
        let index = match (
            at(&RESOURCES, labels.resource),
            at(&OPERATIONS, labels.operation),
            at(&OUTCOMES, labels.outcome),
        ) {
            (Some(r), Some(op), Some(out)) => (r * OPERATIONS.len() + op) * OUTCOMES.len() + out,
            _ => {
                self.family.get_or_create(&labels).inc();
                return;
            }
        };
        self.known[index]
            .get_or_init(|| self.family.get_or_create(&labels).clone())
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    rule: &'static str,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Every metric of the webhook, with its registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: RequestCounters,
    findings: Family<FindingLabels, Counter>,
    latency: Histogram,
    rejections: Family<ReasonLabel, Counter>,
    policy_reloads: Counter,
    policy_reload_errors: Counter,
    policy_valid: Gauge,
    certificate_reloads: Counter,
    certificate_reload_errors: Counter,
    leader: Gauge,
    status_writes: Counter,
    status_write_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kube_encrypt_webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "AdmissionReviews answered, by resource, operation and outcome",
            requests.clone(),
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "rule_findings",
            "Rule findings, by rule and the action the policy took",
            findings.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "admission_duration_seconds",
            "Time to answer one /validate request",
            latency.clone(),
        );
        let rejections = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "http_rejections",
            "Requests refused before review, by reason",
            rejections.clone(),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let policy_reloads = counter(
            &mut registry,
            "policy_reloads",
            "Policy loads that took effect",
        );
        let policy_reload_errors = counter(
            &mut registry,
            "policy_reload_errors",
            "Policy loads refused (the last good policy stays in force)",
        );
        let policy_valid = gauge(
            &mut registry,
            "policy_valid",
            "1 while the policy on disk is in force, 0 after a refused load",
        );
        policy_valid.set(1);
        let certificate_reloads = counter(
            &mut registry,
            "certificate_reloads",
            "Serving certificate loads that took effect",
        );
        let certificate_reload_errors = counter(
            &mut registry,
            "certificate_reload_errors",
            "Serving certificate loads refused (the last good one stays in use)",
        );
        let leader = gauge(
            &mut registry,
            "leader",
            "1 while this replica holds the Lease and writes EncryptionConfig status",
        );
        let status_writes = counter(
            &mut registry,
            "status_writes",
            "EncryptionConfig status writes",
        );
        let status_write_errors = counter(
            &mut registry,
            "status_write_errors",
            "EncryptionConfig status writes that failed",
        );
        Self {
            registry,
            requests: RequestCounters::new(requests),
            findings,
            latency,
            rejections,
            policy_reloads,
            policy_reload_errors,
            policy_valid,
            certificate_reloads,
            certificate_reload_errors,
            leader,
            status_writes,
            status_write_errors,
        }
    }

    pub fn count_request(
        &self,
        resource: &'static str,
        operation: &'static str,
        outcome: &'static str,
    ) {
        self.requests.count(RequestLabels {
            resource,
            operation,
            outcome,
        });
    }

    pub fn count_finding(&self, rule: &'static str, action: &'static str) {
        self.findings
            .get_or_create(&FindingLabels { rule, action })
            .inc();
    }

    pub fn observe_latency(&self, took: Duration) {
        self.latency.observe(took.as_secs_f64());
    }

    pub fn count_rejection(&self, reason: &'static str) {
        self.rejections.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn policy_loaded(&self, ok: bool) {
        if ok {
            self.policy_reloads.inc();
        } else {
            self.policy_reload_errors.inc();
        }
        self.policy_valid.set(i64::from(ok));
    }

    pub fn certificate_loaded(&self, ok: bool) {
        if ok {
            self.certificate_reloads.inc();
        } else {
            self.certificate_reload_errors.inc();
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn status_written(&self, ok: bool) {
        if ok {
            self.status_writes.inc();
        } else {
            self.status_write_errors.inc();
        }
    }

    /// The Prometheus (OpenMetrics) text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_named_and_labelled() {
        let metrics = Metrics::new();
        metrics.count_request("ippools", "DELETE", "denied");
        metrics.count_finding("ipv6-nat-outgoing", "deny");
        metrics.observe_latency(Duration::from_micros(300));
        metrics.count_rejection("too_large");
        metrics.policy_loaded(false);
        metrics.set_leader(true);
        let text = metrics.encode();
        let expected = [
            r#"kube_encrypt_webhook_admission_requests_total{resource="ippools",operation="DELETE",outcome="denied"} 1"#,
            r#"kube_encrypt_webhook_rule_findings_total{rule="ipv6-nat-outgoing",action="deny"} 1"#,
            "kube_encrypt_webhook_admission_duration_seconds_count 1",
            r#"kube_encrypt_webhook_http_rejections_total{reason="too_large"} 1"#,
            "kube_encrypt_webhook_policy_reload_errors_total 1",
            "kube_encrypt_webhook_policy_valid 0",
            "kube_encrypt_webhook_leader 1",
        ];
        for line in expected {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn requests_are_counted_in_their_own_series() {
        let metrics = Metrics::new();
        metrics.count_request("ippools", "DELETE", "denied");
        metrics.count_request("ippools", "DELETE", "denied");
        metrics.count_request("ippools", "DELETE", "allowed");
        metrics.count_request("encryptionconfigs", "UPDATE", "allowed");
        metrics.count_request("ippools", "PATCH", "allowed");
        metrics.count_request("ippools", "PATCH", "allowed");
        let text = metrics.encode();
        let series = |labels: &str| {
            let prefix = format!("kube_encrypt_webhook_admission_requests_total{{{labels}}} ");
            text.lines()
                .filter_map(|line| line.strip_prefix(&prefix))
                .collect::<Vec<_>>()
        };
        let rows = [
            (
                r#"resource="ippools",operation="DELETE",outcome="denied""#,
                "2",
            ),
            (
                r#"resource="ippools",operation="DELETE",outcome="allowed""#,
                "1",
            ),
            (
                r#"resource="encryptionconfigs",operation="UPDATE",outcome="allowed""#,
                "1",
            ),
            (
                r#"resource="ippools",operation="PATCH",outcome="allowed""#,
                "2",
            ),
        ];
        for (labels, count) in rows {
            assert_eq!(series(labels), [count], "{labels} in\n{text}");
        }
        assert_eq!(
            text.matches("admission_requests_total{").count(),
            rows.len()
        );
    }
}
