//! The webhook policy: what each rule's findings do, and who is exempt.
//!
//! The policy is a YAML file, normally mounted from the ConfigMap
//! `manifests/webhook/policy.yaml`, and reloaded without a restart when its contents change
//! (also through a ConfigMap's symlink swap):
//!
//! ```yaml
//! # Per rule id: deny (refuse the request), warn (admit it; kubectl prints the warning)
//! # or off (ignore the rule). Rules left out keep their default: deny, except
//! # host-encryption-route-source, which warns.
//! rules:
//!   ipv6-nat-outgoing: deny
//!   host-encryption-route-source: warn
//!   pool-overlap: off
//! # Requests by these users, or by a member of these groups, are never refused: their
//! # findings come back as warnings (break-glass accounts, migration jobs).
//! exempt:
//!   users: ["system:serviceaccount:kube-system:cluster-bootstrap"]
//!   groups: ["kube-encrypt:break-glass"]
//! ```
//!
//! Rule ids are those of [`Rule::ALL`]; an unknown id, an unknown action or an unknown key
//! refuses the whole file (a typo must not silently switch a rule off). An empty file means
//! the defaults. A refused file leaves the last good policy in force; see [`reload`].
//!
//! ```
//! use kube_encrypt_api::rules::Rule;
//! use kube_encrypt_webhook::policy::{Action, Policy};
//!
//! let policy = Policy::parse("rules:\n  pool-overlap: warn\n").unwrap();
//! assert_eq!(policy.action(Rule::PoolOverlap), Action::Warn);
//! assert_eq!(policy.action(Rule::Ipv6NatOutgoing), Action::Deny);
//! assert_eq!(policy.action(Rule::HostEncryptionRouteSource), Action::Warn);
//! ```

pub mod reload;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use kube_encrypt_api::rules::{Rule, Severity, UnknownRule};
use serde::Deserialize;

use crate::admission::Text;

/// What the webhook does with a rule's findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Refuse the request.
    Deny,
    /// Admit it with an AdmissionReview warning.
    Warn,
    /// Ignore the finding.
    Off,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::Off => "off",
        }
    }

    fn default_for(rule: Rule) -> Self {
        match rule.default_severity() {
            Severity::Deny => Action::Deny,
            Severity::Warning => Action::Warn,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deny" => Ok(Action::Deny),
            "warn" => Ok(Action::Warn),
            "off" => Ok(Action::Off),
            other => Err(format!("{other:?} is not an action; use deny, warn or off")),
        }
    }
}

/// The policy in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Rules whose action differs from, or restates, the default.
    actions: BTreeMap<Rule, Action>,
    exempt_users: BTreeSet<String>,
    exempt_groups: BTreeSet<String>,
}

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy is not valid YAML of the expected shape: {0}")]
    Syntax(String),
    #[error("rules: {0}")]
    UnknownRule(#[from] UnknownRule),
    #[error("rules.{rule}: {reason}")]
    BadAction { rule: String, reason: String },
    #[error("exempt.{list} has an empty name; remove it")]
    EmptyName { list: &'static str },
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    rules: BTreeMap<String, String>,
    #[serde(default)]
    exempt: ExemptFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemptFile {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// The requesting user, as the AdmissionReview names it.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    pub username: &'a str,
    pub groups: &'a [Text<'a>],
}

impl Policy {
    /// Parses a policy file's text; see the module doc for the format.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: Option<PolicyFile> =
            serde_yaml::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        let file = file.unwrap_or_default();
        let mut actions = BTreeMap::new();
        for (id, action) in file.rules {
            let rule = Rule::from_str(&id)?;
            let action = action
                .parse()
                .map_err(|reason| PolicyError::BadAction { rule: id, reason })?;
            actions.insert(rule, action);
        }
        Ok(Self {
            actions,
            exempt_users: names("users", file.exempt.users)?,
            exempt_groups: names("groups", file.exempt.groups)?,
        })
    }

    /// What `rule`'s findings do: the file's setting, else the rule's default severity.
    pub fn action(&self, rule: Rule) -> Action {
        self.actions
            .get(&rule)
            .copied()
            .unwrap_or_else(|| Action::default_for(rule))
    }

    /// Why `who` is exempt, if it is: `user "x"` or `group "y"`.
    pub fn exemption(&self, who: Requester<'_>) -> Option<String> {
        if self.exempt_users.contains(who.username) {
            return Some(format!("user {:?}", who.username));
        }
        who.groups
            .iter()
            .find(|g| self.exempt_groups.contains(g.as_str()))
            .map(|g| format!("group {g:?}"))
    }
}

fn names(list: &'static str, names: Vec<String>) -> Result<BTreeSet<String>, PolicyError> {
    names
        .into_iter()
        .map(|n| {
            let n = n.trim().to_owned();
            if n.is_empty() {
                Err(PolicyError::EmptyName { list })
            } else {
                Ok(n)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(names: &[&'static str]) -> Vec<Text<'static>> {
        names.iter().map(|s| Text((*s).into())).collect()
    }

    #[test]
    fn defaults_follow_each_rules_severity() {
        for text in ["", "# only a comment\n", "rules: {}\n", "{}"] {
            let policy = Policy::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            for rule in Rule::ALL {
                let want = match rule {
                    Rule::HostEncryptionRouteSource => Action::Warn,
                    _ => Action::Deny,
                };
                assert_eq!(policy.action(rule), want, "{text:?} {rule}");
            }
        }
    }

    #[test]
    fn every_rule_takes_every_action() {
        for rule in Rule::ALL {
            for action in [Action::Deny, Action::Warn, Action::Off] {
                let text = format!("rules:\n  {rule}: {action}\n");
                let policy = Policy::parse(&text).unwrap();
                assert_eq!(policy.action(rule), action, "{text}");
            }
        }
    }

    #[test]
    fn unquoted_off_is_the_action_not_a_boolean() {
        let policy = Policy::parse("rules:\n  pool-overlap: off\n  port-range: 'warn'\n").unwrap();
        assert_eq!(policy.action(Rule::PoolOverlap), Action::Off);
        assert_eq!(policy.action(Rule::PortRange), Action::Warn);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let cases = [
            (
                "rules:\n  pool-overlapp: off\n",
                "unknown rule \"pool-overlapp\"",
            ),
            (
                "rules:\n  pool-overlap: ignore\n",
                "rules.pool-overlap: \"ignore\" is not an action",
            ),
            ("rule:\n  pool-overlap: off\n", "unknown field `rule`"),
            ("exempt:\n  user: [a]\n", "unknown field `user`"),
            (
                "exempt:\n  users: ['  ']\n",
                "exempt.users has an empty name",
            ),
            ("rules: [deny]\n", "not valid YAML of the expected shape"),
            ("rules:\n  pool-overlap: [deny\n", "not valid YAML"),
        ];
        for (text, want) in cases {
            let err = Policy::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn exemptions_by_user_or_group() {
        let policy =
            Policy::parse("exempt:\n  users: [alice]\n  groups: [break-glass, 'system:masters']\n")
                .unwrap();
        let cases = [
            ("alice", groups(&[]), Some("user \"alice\"")),
            (
                "bob",
                groups(&["dev", "break-glass"]),
                Some("group \"break-glass\""),
            ),
            (
                "bob",
                groups(&["system:masters"]),
                Some("group \"system:masters\""),
            ),
            ("bob", groups(&["dev"]), None),
            ("Alice", groups(&[]), None),
        ];
        for (username, groups, want) in cases {
            let who = Requester {
                username,
                groups: &groups,
            };
            assert_eq!(
                policy.exemption(who).as_deref(),
                want,
                "{username} {groups:?}"
            );
        }
    }

    #[test]
    fn example_manifest_is_a_valid_policy() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../manifests/webhook/policy.yaml"
        );
        let text = std::fs::read_to_string(path).expect("manifests/webhook/policy.yaml");
        let policy = Policy::parse(&text).unwrap();
        for rule in Rule::ALL {
            assert_eq!(policy.action(rule), Action::default_for(rule), "{rule}");
        }
    }
}
