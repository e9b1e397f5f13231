//! Rule ids, severities and their place in the CRDs.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::crd;
use crate::rules::{Finding, Rule, Severity};

#[test]
fn every_rule_id_parses_back() {
    for rule in Rule::ALL {
        assert_eq!(rule.as_str().parse::<Rule>(), Ok(rule));
        assert_eq!(rule.to_string(), rule.as_str());
    }
    let ids: BTreeSet<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(ids.len(), Rule::ALL.len(), "duplicate rule ids");
}

#[test]
fn unknown_rule_lists_the_known_ones() {
    let err = "ipv6-nat".parse::<Rule>().unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("unknown rule \"ipv6-nat\"; known rules: singleton-name,"),
        "{text}"
    );
    assert!(text.contains("ipv6-nat-outgoing"), "{text}");
}

#[test]
fn only_host_encryption_route_source_warns() {
    let warnings: Vec<Rule> = Rule::ALL
        .into_iter()
        .filter(|r| r.default_severity() == Severity::Warning)
        .collect();
    assert_eq!(warnings, [Rule::HostEncryptionRouteSource]);
}

#[test]
fn finding_display_is_rule_field_message() {
    let f = Finding::new(Rule::PortRange, "spec.ipv4.port", "use 1-65535");
    assert_eq!(f.to_string(), "port-range: spec.ipv4.port: use 1-65535");
    assert_eq!(f.severity, Severity::Deny);
    let whole = Finding::new(Rule::Ipv6NatOutgoing, "", "keep it");
    assert_eq!(whole.to_string(), "ipv6-nat-outgoing: keep it");
}

fn cel_messages(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                out.extend(
                    rules
                        .iter()
                        .filter_map(|r| r["message"].as_str().map(str::to_owned)),
                );
            }
            map.values().for_each(|v| cel_messages(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| cel_messages(v, out)),
        _ => {}
    }
}

#[test]
fn crd_cel_rules_are_exactly_the_single_object_rules() {
    let mut messages = Vec::new();
    for (_, crd) in crd::all() {
        cel_messages(&serde_json::to_value(crd).unwrap(), &mut messages);
    }
    let mut in_crds = BTreeSet::new();
    for message in &messages {
        let id = message.split(':').next().unwrap();
        let rule: Rule = id
            .parse()
            .unwrap_or_else(|e| panic!("CEL message {message:?}: {e}"));
        assert!(
            rule.in_crd_schema(),
            "{rule} is in a CRD but in_crd_schema() says no"
        );
        in_crds.insert(rule);
    }
    let expected: BTreeSet<Rule> = Rule::ALL
        .into_iter()
        .filter(|r| r.in_crd_schema())
        .collect();
    assert_eq!(in_crds, expected);
}

#[test]
fn the_range_and_name_rules_guard_the_dataplane() {
    let guarding: Vec<Rule> = Rule::ALL
        .into_iter()
        .filter(|r| r.guards_dataplane())
        .collect();
    assert_eq!(
        guarding,
        [
            Rule::PortRange,
            Rule::PortConflict,
            Rule::MtuRange,
            Rule::InterfaceName,
            Rule::RoutingTable,
            Rule::RulePriority,
            Rule::FirewallMark,
            Rule::PersistentKeepalive,
        ]
    );
}

#[test]
fn the_agent_refuses_on_guards_and_warns_on_policy() {
    use crate::rules::{dataplane_blockers, evaluate_for_agent};
    let spec = super::spec(serde_json::json!({
        "ipv4": {"enabled": true, "port": 0},
        "ipv6": {"enabled": true},
        "hostEncryption": true,
    }));
    let pools = [super::pool("v4", "198.18.0.0/16", false)];
    let seen: Vec<(Rule, Severity)> = evaluate_for_agent(&spec, &pools)
        .iter()
        .map(|f| (f.rule, f.severity))
        .collect();
    assert_eq!(
        seen,
        [
            (Rule::Ipv4NatOutgoing, Severity::Warning),
            (Rule::Ipv6NatOutgoing, Severity::Warning),
            (Rule::PortRange, Severity::Deny),
            (Rule::HostEncryptionRouteSource, Severity::Warning),
        ]
    );
    let blockers: Vec<Rule> = dataplane_blockers(&spec).iter().map(|f| f.rule).collect();
    assert_eq!(blockers, [Rule::PortRange]);
}
