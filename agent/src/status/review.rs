//! What the admission rules say about the config as this agent sees it, as the status shows
//! it: the `Degraded` condition and the findings.

use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_encrypt_api::crd::ConfigFinding;
use kube_encrypt_api::rules::{Finding, Severity};

use super::whole_seconds;

/// The condition type saying the agent refuses (part of) the config or cannot apply it.
pub const DEGRADED: &str = "Degraded";
/// Reason of `Degraded=True` when a rule guarding the dataplane denies the config.
pub const INVALID_CONFIG: &str = "InvalidConfig";

/// What the admission rules say about the config as this agent sees it
/// ([`kube_encrypt_api::rules::evaluate_for_agent`]), and whether the agent refused it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigReview {
    /// Denials (rules guarding the dataplane) and warnings (admission policy), sorted.
    pub findings: Vec<Finding>,
    /// A denial kept the config off the dataplane: it is kept as it was.
    pub refused: bool,
}

/// `Degraded`: `True` (`InvalidConfig`) while the config is refused, naming the rules and what
/// to change; `False` otherwise.
pub(super) fn degraded(review: &ConfigReview, now: SystemTime) -> Condition {
    let ids = |severity: Severity| {
        let ids: Vec<&str> = review
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .map(|f| f.rule.as_str())
            .collect();
        ids.join(", ")
    };
    let (status, reason, message) = if review.refused {
        let denials: Vec<String> = review
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Deny)
            .map(ToString::to_string)
            .collect();
        let message = format!(
            "the EncryptionConfig breaks {} and is not applied; the dataplane is kept as it was \
             until the config is fixed: {}",
            ids(Severity::Deny),
            denials.join("; ")
        );
        ("True", INVALID_CONFIG, message)
    } else {
        let warnings = ids(Severity::Warning);
        let message = if warnings.is_empty() {
            String::new()
        } else {
            format!("the EncryptionConfig is applied; warnings: {warnings} (see findings)")
        };
        ("False", "AsExpected", message)
    };
    Condition {
        type_: DEGRADED.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time: Time(whole_seconds(now)),
        observed_generation: None,
    }
}

pub(super) fn config_finding(finding: &Finding) -> ConfigFinding {
    ConfigFinding {
        rule: finding.rule.as_str().to_owned(),
        severity: finding.severity.as_str().to_owned(),
        field: finding.field.clone(),
        message: finding.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_encrypt_api::rules::Rule;

    fn finding(rule: Rule, severity: Severity, field: &str, message: &str) -> Finding {
        Finding {
            severity,
            ..Finding::new(rule, field, message)
        }
    }

    fn findings() -> Vec<Finding> {
        vec![
            finding(
                Rule::Ipv6NatOutgoing,
                Severity::Warning,
                "spec.ipv6.enabled",
                "add a pool",
            ),
            finding(
                Rule::PortRange,
                Severity::Deny,
                "spec.ipv4.port",
                "use 1-65535",
            ),
        ]
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    #[test]
    fn a_refused_config_is_degraded_with_the_rules_and_the_fix() {
        let refused = ConfigReview {
            findings: findings(),
            refused: true,
        };
        let condition = degraded(&refused, at(1_800_000_000));
        assert_eq!(
            (
                condition.type_.as_str(),
                condition.status.as_str(),
                condition.reason.as_str()
            ),
            ("Degraded", "True", "InvalidConfig")
        );
        assert_eq!(
            condition.message,
            "the EncryptionConfig breaks port-range and is not applied; the dataplane is kept as \
             it was until the config is fixed: port-range: spec.ipv4.port: use 1-65535"
        );
        assert_eq!(
            condition.last_transition_time.0.to_string(),
            "2027-01-15T08:00:00Z"
        );
    }

    #[test]
    fn an_applied_config_is_not_degraded_and_names_its_warnings() {
        let warned = ConfigReview {
            findings: findings()[..1].to_vec(),
            refused: false,
        };
        let condition = degraded(&warned, at(0));
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "AsExpected")
        );
        assert_eq!(
            condition.message,
            "the EncryptionConfig is applied; warnings: ipv6-nat-outgoing (see findings)"
        );
        let clean = degraded(&ConfigReview::default(), at(0));
        assert_eq!(
            (clean.status.as_str(), clean.message.as_str()),
            ("False", "")
        );
    }

    #[test]
    fn findings_keep_rule_severity_field_and_message() {
        let shown: Vec<ConfigFinding> = findings().iter().map(config_finding).collect();
        assert_eq!(
            shown[1],
            ConfigFinding {
                rule: "port-range".into(),
                severity: "deny".into(),
                field: "spec.ipv4.port".into(),
                message: "use 1-65535".into(),
            }
        );
        assert_eq!(shown[0].severity, "warning");
    }
}
