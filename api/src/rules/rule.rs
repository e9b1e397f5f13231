//! The rule ids of SPEC §3 and their default severities.

use std::fmt;
use std::str::FromStr;

/// One admission rule. The id (`as_str`) is what the webhook policy file, the CRD CEL messages
/// and the findings use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    SingletonName,
    Ipv4NatOutgoing,
    Ipv6NatOutgoing,
    PortRange,
    PortConflict,
    MtuRange,
    InterfaceName,
    RoutingTable,
    RulePriority,
    FirewallMark,
    PersistentKeepalive,
    PoolCidr,
    PoolOverlap,
    HostEncryptionRouteSource,
}

/// What a finding does to the request unless the webhook policy says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Reject the request.
    Deny,
    /// Admit it, with a warning shown to the user.
    Warning,
}

impl Rule {
    pub const ALL: [Rule; 14] = [
        Rule::SingletonName,
        Rule::Ipv4NatOutgoing,
        Rule::Ipv6NatOutgoing,
        Rule::PortRange,
        Rule::PortConflict,
        Rule::MtuRange,
        Rule::InterfaceName,
        Rule::RoutingTable,
        Rule::RulePriority,
        Rule::FirewallMark,
        Rule::PersistentKeepalive,
        Rule::PoolCidr,
        Rule::PoolOverlap,
        Rule::HostEncryptionRouteSource,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::SingletonName => "singleton-name",
            Rule::Ipv4NatOutgoing => "ipv4-nat-outgoing",
            Rule::Ipv6NatOutgoing => "ipv6-nat-outgoing",
            Rule::PortRange => "port-range",
            Rule::PortConflict => "port-conflict",
            Rule::MtuRange => "mtu-range",
            Rule::InterfaceName => "interface-name",
            Rule::RoutingTable => "routing-table",
            Rule::RulePriority => "rule-priority",
            Rule::FirewallMark => "firewall-mark",
            Rule::PersistentKeepalive => "persistent-keepalive",
            Rule::PoolCidr => "pool-cidr",
            Rule::PoolOverlap => "pool-overlap",
            Rule::HostEncryptionRouteSource => "host-encryption-route-source",
        }
    }

    /// Deny for every rule except `host-encryption-route-source`, which only warns.
    pub fn default_severity(self) -> Severity {
        match self {
            Rule::HostEncryptionRouteSource => Severity::Warning,
            _ => Severity::Deny,
        }
    }

    /// Whether a config breaking the rule cannot be applied safely, or at all: such a config
    /// never reaches the dataplane, whatever admission let through (webhook off, failing open,
    /// policy `warn`/`off`, or the object older than the rule). The other rules are admission
    /// policy; the agent reports their findings as warnings and applies the config.
    pub fn guards_dataplane(self) -> bool {
        matches!(
            self,
            Rule::PortRange
                | Rule::PortConflict
                | Rule::MtuRange
                | Rule::InterfaceName
                | Rule::RoutingTable
                | Rule::RulePriority
                | Rule::FirewallMark
                | Rule::PersistentKeepalive
        )
    }

    /// Whether the rule also lives in the CRD schema as a CEL `x-kubernetes-validations` rule
    /// (single-object denials), so a cluster without the webhook still enforces it.
    pub fn in_crd_schema(self) -> bool {
        !matches!(
            self,
            Rule::Ipv4NatOutgoing
                | Rule::Ipv6NatOutgoing
                | Rule::PoolOverlap
                | Rule::HostEncryptionRouteSource
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule id that is not one of [`Rule::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule {0:?}; known rules: {known}", known = known_ids())]
pub struct UnknownRule(pub String);

fn known_ids() -> String {
    Rule::ALL.map(Rule::as_str).join(", ")
}

impl FromStr for Rule {
    type Err = UnknownRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRule(s.to_owned()))
    }
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Deny => "deny",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
