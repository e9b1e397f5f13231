//! The policy applied to the rules' findings: which deny the request, which come back as
//! warnings, which are ignored.

use kube_encrypt_api::rules::{Finding, Rule};

use crate::policy::{Action, Policy};

/// Why denials of this request are not enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leniency {
    /// Denials are enforced.
    None,
    /// The requester is exempt by the policy (`user "x"` / `group "y"`).
    Exempt(String),
    /// An update that leaves the spec as it is (labels, annotations, GitOps bookkeeping):
    /// what was already there is not blamed on it.
    SpecUnchanged,
}

/// What the request gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The findings that refuse the request; empty = admitted.
    pub denials: Vec<Finding>,
    /// Warnings shown to the user (`kubectl` prints them).
    pub warnings: Vec<String>,
    /// Every finding's rule and what was done with it (`deny`, `warn`, `off`, `exempt`,
    /// `unchanged`), for the metrics.
    pub actions: Vec<(Rule, &'static str)>,
}

impl Verdict {
    /// Applies `policy` to `findings`.
    pub fn judge(findings: Vec<Finding>, policy: &Policy, leniency: &Leniency) -> Self {
        let mut verdict = Verdict::default();
        for finding in findings {
            let rule = finding.rule;
            let action = match (policy.action(rule), leniency) {
                (Action::Off, _) => "off",
                (Action::Warn, _) => {
                    verdict.warnings.push(finding.to_string());
                    "warn"
                }
                (Action::Deny, Leniency::None) => {
                    verdict.denials.push(finding);
                    "deny"
                }
                (Action::Deny, Leniency::Exempt(who)) => {
                    verdict.warnings.push(format!(
                        "{finding} (not enforced: {who} is exempt by the webhook policy)"
                    ));
                    "exempt"
                }
                (Action::Deny, Leniency::SpecUnchanged) => {
                    verdict.warnings.push(format!(
                        "{finding} (not enforced on an update that leaves the spec unchanged)"
                    ));
                    "unchanged"
                }
            };
            verdict.actions.push((rule, action));
        }
        verdict
    }

    /// `allowed`, `warned` or `denied`.
    pub fn outcome(&self) -> &'static str {
        if !self.denials.is_empty() {
            "denied"
        } else if !self.warnings.is_empty() {
            "warned"
        } else {
            "allowed"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: Rule) -> Finding {
        Finding::new(rule, "spec.x", format!("{rule} is wrong; fix it"))
    }

    fn policy(text: &str) -> Policy {
        Policy::parse(text).unwrap()
    }

    /// Name, policy, leniency, denied rules, number of warnings, action per finding.
    type Row = (
        &'static str,
        Policy,
        Leniency,
        &'static [Rule],
        usize,
        &'static [&'static str],
    );

    #[test]
    fn policy_and_leniency_decide_each_finding() {
        use Rule::*;
        let findings = || {
            vec![
                finding(Ipv6NatOutgoing),
                finding(PoolOverlap),
                finding(HostEncryptionRouteSource),
            ]
        };
        let exempt = Leniency::Exempt("user \"alice\"".into());
        let rows: [Row; 5] = [
            ("defaults", Policy::default(), Leniency::None, &[Ipv6NatOutgoing, PoolOverlap], 1, &["deny", "deny", "warn"]),
            ("overlap warns", policy("rules: {pool-overlap: warn}"), Leniency::None, &[Ipv6NatOutgoing], 2, &["deny", "warn", "warn"]),
            ("all off", policy("rules: {pool-overlap: off, ipv6-nat-outgoing: off, host-encryption-route-source: off}"), Leniency::None, &[], 0, &["off", "off", "off"]),
            ("exempt", Policy::default(), exempt, &[], 3, &["exempt", "exempt", "warn"]),
            ("unchanged spec", Policy::default(), Leniency::SpecUnchanged, &[], 3, &["unchanged", "unchanged", "warn"]),
        ];
        for (name, policy, leniency, denied, warnings, actions) in rows {
            let verdict = Verdict::judge(findings(), &policy, &leniency);
            let rules: Vec<Rule> = verdict.denials.iter().map(|f| f.rule).collect();
            assert_eq!(rules, denied, "{name}");
            assert_eq!(
                verdict.warnings.len(),
                warnings,
                "{name}: {:?}",
                verdict.warnings
            );
            let got: Vec<&str> = verdict.actions.iter().map(|(_, a)| *a).collect();
            assert_eq!(got, actions, "{name}");
        }
    }

    #[test]
    fn warnings_name_rule_field_and_reason() {
        let exempt = Leniency::Exempt("group \"break-glass\"".into());
        let verdict = Verdict::judge(vec![finding(Rule::PortRange)], &Policy::default(), &exempt);
        assert_eq!(
            verdict.warnings,
            ["port-range: spec.x: port-range is wrong; fix it (not enforced: group \"break-glass\" is exempt by the webhook policy)"]
        );
        assert_eq!(verdict.outcome(), "warned");
        assert_eq!(Verdict::default().outcome(), "allowed");
    }
}
