//! One row per rule and operation: the cluster the caches hold, the review, the policy, and
//! exactly which rules deny and which warn.

use kube_encrypt_api::crd::IPPoolSpec;
use kube_encrypt_api::rules::Rule;
use serde_json::{json, Value};

use super::{answer, v4_pool, v6_pool, Cluster, Review};
use crate::policy::Policy;

struct Row {
    name: &'static str,
    cluster: Cluster,
    review: Review,
    policy: &'static str,
    denied: &'static [&'static str],
    warned: &'static [&'static str],
}

fn row(name: &'static str, cluster: Cluster, review: Review) -> Row {
    Row {
        name,
        cluster,
        review,
        policy: "",
        denied: &[],
        warned: &[],
    }
}

impl Row {
    fn denies(mut self, rules: &'static [&'static str]) -> Self {
        self.denied = rules;
        self
    }

    fn warns(mut self, rules: &'static [&'static str]) -> Self {
        self.warned = rules;
        self
    }

    fn policy(mut self, policy: &'static str) -> Self {
        self.policy = policy;
        self
    }
}

/// Pools with NAT for both families.
fn dual_stack() -> Cluster {
    Cluster::new().pool("v4", v4_pool()).pool("v6", v6_pool())
}

fn v6_on() -> Cluster {
    dual_stack().config(json!({"ipv6": {"enabled": true}}))
}

fn create(spec: Value) -> Review {
    Review::create_config("default", spec)
}

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    vec![
        // EncryptionConfig CREATE: one row per rule
        row("valid config", dual_stack(), create(json!({"ipv4": {"enabled": true}, "ipv6": {"enabled": true}}))),
        row("singleton-name", dual_stack(), Review::create_config("cluster", json!({}))).denies(&["singleton-name"]),
        row("ipv4-nat-outgoing", Cluster::new().pool("v4", v4_pool().without_nat()), create(json!({"ipv4": {"enabled": true}}))).denies(&["ipv4-nat-outgoing"]),
        row("ipv6-nat-outgoing, no v6 pool", Cluster::new().pool("v4", v4_pool()), create(json!({"ipv6": {"enabled": true}}))).denies(&["ipv6-nat-outgoing"]),
        row("ipv6-nat-outgoing, pool without NAT", Cluster::new().pool("v6", v6_pool().without_nat()), create(json!({"ipv6": {"enabled": true}}))).denies(&["ipv6-nat-outgoing"]),
        row("port-range", dual_stack(), create(json!({"ipv4": {"enabled": true, "port": 70000}}))).denies(&["port-range"]),
        row("port-conflict", dual_stack(), create(json!({"ipv4": {"enabled": true}, "ipv6": {"enabled": true, "port": 51820}}))).denies(&["port-conflict"]),
        row("mtu-range", dual_stack(), create(json!({"ipv6": {"mtu": 1000}}))).denies(&["mtu-range"]),
        row("interface-name", dual_stack(), create(json!({"ipv4": {"interfaceName": "wg/0"}}))).denies(&["interface-name"]),
        row("routing-table", dual_stack(), create(json!({"routingTable": 254}))).denies(&["routing-table"]),
        row("rule-priority", dual_stack(), create(json!({"routingRulePriority": 0}))).denies(&["rule-priority"]),
        row("firewall-mark", dual_stack(), create(json!({"firewallMark": 0x4000}))).denies(&["firewall-mark"]),
        row("persistent-keepalive", dual_stack(), create(json!({"persistentKeepalive": -1}))).denies(&["persistent-keepalive"]),
        row("host-encryption-route-source warns", dual_stack(), create(json!({"ipv4": {"enabled": true}, "hostEncryption": true}))).warns(&["host-encryption-route-source"]),
        row("every failing rule in one answer", Cluster::new().pool("v4", v4_pool()), create(json!({"ipv4": {"enabled": true, "port": 0}, "ipv6": {"enabled": true, "mtu": 9001}, "hostEncryption": true})))
            .denies(&["ipv6-nat-outgoing", "port-range", "mtu-range"]).warns(&["host-encryption-route-source"]),
        // EncryptionConfig UPDATE
        row("update enabling v6 without NAT", Cluster::new().pool("v6", v6_pool().without_nat()).config(json!({})), Review::update_config(json!({}), json!({"ipv6": {"enabled": true}}))).denies(&["ipv6-nat-outgoing"]),
        row("update changing only metadata keeps an old problem a warning", Cluster::new().config(json!({"ipv6": {"enabled": true}})), Review::update_config(json!({"ipv6": {"enabled": true}}), json!({"ipv6": {"enabled": true}}))).warns(&["ipv6-nat-outgoing"]),
        row("update whose stored config no longer decodes counts as a change", Cluster::new().config(json!({})), Review::update_config(json!({"ipv6": {"enabled": true, "port": "high"}}), json!({"ipv6": {"enabled": true}}))).denies(&["ipv6-nat-outgoing"]),
        row("dry-run create is judged alike", Cluster::new(), create(json!({"ipv6": {"enabled": true}})).dry_run()).denies(&["ipv6-nat-outgoing"]),
        // IPPool CREATE / UPDATE / DELETE
        row("pool-cidr", dual_stack(), Review::create_pool("bad", IPPoolSpec::test("198.19.0.1/16"))).denies(&["pool-cidr"]),
        row("pool-overlap", dual_stack(), Review::create_pool("inner", IPPoolSpec::test("198.18.7.0/24"))).denies(&["pool-overlap"]),
        row("new v6 pool without NAT, v6 on", v6_on(), Review::create_pool("v6-b", IPPoolSpec::test("2001:db8:2::/48").without_nat())).denies(&["ipv6-nat-outgoing"]),
        row("new v6 pool with NAT, v6 on", v6_on(), Review::create_pool("v6-b", IPPoolSpec::test("2001:db8:2::/48"))),
        row("NAT outgoing switched off, v6 on", v6_on(), Review::update_pool("v6", v6_pool(), v6_pool().without_nat())).denies(&["ipv6-nat-outgoing"]),
        row("last v6 pool disabled, v6 on", v6_on(), Review::update_pool("v6", v6_pool(), v6_pool().disabled())).denies(&["ipv6-nat-outgoing"]),
        row("last v6 pool deleted, v6 on", v6_on(), Review::delete_pool("v6", v6_pool())).denies(&["ipv6-nat-outgoing"]),
        row("last v6 pool deleted, dry-run", v6_on(), Review::delete_pool("v6", v6_pool()).dry_run()).denies(&["ipv6-nat-outgoing"]),
        row("last v6 pool deleted, v6 off", dual_stack().config(json!({"ipv4": {"enabled": true}})), Review::delete_pool("v6", v6_pool())),
        row("v4 NAT off, v4 on", dual_stack().config(json!({"ipv4": {"enabled": true}})), Review::update_pool("v4", v4_pool(), v4_pool().without_nat())).denies(&["ipv4-nat-outgoing"]),
        row("pool relabelled, overlap already there", dual_stack().pool("inner", IPPoolSpec::test("198.18.7.0/24")), Review::update_pool("inner", IPPoolSpec::test("198.18.7.0/24"), IPPoolSpec::test("198.18.7.0/24"))).warns(&["pool-overlap"]),
        // the policy
        row("policy: ipv6-nat-outgoing warn", v6_on(), Review::delete_pool("v6", v6_pool())).policy("rules: {ipv6-nat-outgoing: warn}").warns(&["ipv6-nat-outgoing"]),
        row("policy: ipv6-nat-outgoing off", v6_on(), Review::delete_pool("v6", v6_pool())).policy("rules: {ipv6-nat-outgoing: off}"),
        row("policy: host-encryption-route-source deny", dual_stack(), create(json!({"hostEncryption": true}))).policy("rules: {host-encryption-route-source: deny}").denies(&["host-encryption-route-source"]),
        row("policy: exempt user", v6_on(), Review::delete_pool("v6", v6_pool()).by("migrator", &["dev"])).policy("exempt: {users: [migrator]}").warns(&["ipv6-nat-outgoing"]),
        row("policy: exempt group", v6_on(), Review::delete_pool("v6", v6_pool()).by("bob", &["break-glass"])).policy("exempt: {groups: [break-glass]}").warns(&["ipv6-nat-outgoing"]),
        row("policy: other users stay bound", v6_on(), Review::delete_pool("v6", v6_pool()).by("bob", &["dev"])).policy("exempt: {groups: [break-glass]}").denies(&["ipv6-nat-outgoing"]),
        // not this webhook's business
        row("config deletion", v6_on(), Review::of("EncryptionConfig", "encryptionconfigs", "DELETE", "default").old(super::config_object("default", json!({"ipv6": {"enabled": true}})))),
        row("status subresource", Cluster::new(), create(json!({"ipv6": {"enabled": true}})).sub_resource("status")),
    ]
}

/// Rule ids of the findings that denied, from the response's causes.
fn denied_rules(response: &Value) -> Vec<String> {
    let causes = response["status"]["details"]["causes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    causes
        .iter()
        .map(|c| c["reason"].as_str().unwrap().to_owned())
        .collect()
}

/// Rule ids the warnings start with.
fn warned_rules(response: &Value) -> Vec<String> {
    let warnings = response["warnings"].as_array().cloned().unwrap_or_default();
    warnings
        .iter()
        .map(|w| w.as_str().unwrap().split(':').next().unwrap().to_owned())
        .collect()
}

fn sorted(rules: &[&str]) -> Vec<String> {
    let mut rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
    rules.sort();
    rules
}

fn sorted_owned(mut rules: Vec<String>) -> Vec<String> {
    rules.sort();
    rules
}

#[test]
fn every_rule_and_operation() {
    for row in rows() {
        let (admission, _) = row.cluster.admission(Policy::parse(row.policy).unwrap());
        let response = answer(&admission, &row.review);
        let name = row.name;
        assert_eq!(
            response["allowed"],
            row.denied.is_empty(),
            "{name}: {response:#}"
        );
        assert_eq!(
            sorted_owned(denied_rules(&response)),
            sorted(row.denied),
            "{name}: {response:#}"
        );
        assert_eq!(
            sorted_owned(warned_rules(&response)),
            sorted(row.warned),
            "{name}: {response:#}"
        );
        if !row.denied.is_empty() {
            assert_eq!(response["status"]["code"], 403, "{name}");
            let message = response["status"]["message"].as_str().unwrap();
            for rule in row.denied {
                assert!(
                    message.contains(&format!("\n- {rule}: ")),
                    "{name}: {message}"
                );
            }
        }
    }
}

#[test]
fn every_rule_has_a_row() {
    let covered: Vec<String> = rows()
        .iter()
        .flat_map(|r| r.denied.iter().chain(r.warned).map(|s| s.to_string()))
        .collect();
    for rule in Rule::ALL {
        assert!(
            covered.contains(&rule.to_string()),
            "no row exercises {rule}"
        );
    }
}

#[test]
fn denial_says_what_to_change_for_each_rule() {
    let cluster = Cluster::new().pool("v4", v4_pool());
    let (admission, _) = cluster.admission(Policy::default());
    let review = create(json!({"ipv6": {"enabled": true}, "routingTable": 255}));
    let response = answer(&admission, &review);
    let message = response["status"]["message"].as_str().unwrap();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines[0], "EncryptionConfig \"default\" is refused by 2 kube-encrypt rules:",
        "{message}"
    );
    assert!(
        lines[1].starts_with("- ipv6-nat-outgoing: spec.ipv6.enabled: "),
        "{message}"
    );
    assert!(
        lines[1].contains("create one with natOutgoing: true"),
        "{message}"
    );
    assert!(
        lines[2].starts_with("- routing-table: spec.routingTable: "),
        "{message}"
    );
    assert!(lines[2].contains("pick an unused table"), "{message}");
    let causes = &response["status"]["details"]["causes"];
    assert_eq!(causes[0]["field"], "spec.ipv6.enabled");
    assert_eq!(response["status"]["details"]["kind"], "EncryptionConfig");
    assert_eq!(response["status"]["reason"], "Forbidden");
}

#[test]
fn undecodable_objects_are_refused_with_the_reason() {
    let cluster = dual_stack();
    let (admission, metrics) = cluster.admission(Policy::default());
    let cases = [
        (
            "a port that is not a number",
            create(json!({"ipv4": {"port": "high"}})),
            "the review's objects are not valid EncryptionConfigs",
        ),
        (
            "a pool without a cidr",
            Review::of("IPPool", "ippools", "CREATE", "p")
                .object(json!({"metadata": {"name": "p"}, "spec": {}})),
            "missing field `cidr`",
        ),
        (
            "a deletion without oldObject",
            Review::of("IPPool", "ippools", "DELETE", "v6"),
            "carries no oldObject",
        ),
        (
            "an update without object",
            Review::of("IPPool", "ippools", "UPDATE", "v6")
                .old(super::pool_object("v6", &v6_pool())),
            "carries no object",
        ),
    ];
    for (name, review, reason) in cases {
        let response = answer(&admission, &review);
        assert_eq!(response["allowed"], false, "{name}");
        assert_eq!(response["status"]["code"], 400, "{name}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{name}: {message}");
    }
    assert!(metrics.encode().contains(r#"outcome="invalid"} "#));
}

#[test]
fn metrics_count_requests_and_findings() {
    let (admission, metrics) = v6_on().admission(Policy::default());
    answer(&admission, &Review::delete_pool("v6", v6_pool()));
    answer(
        &admission,
        &Review::create_pool("v6-b", IPPoolSpec::test("2001:db8:2::/48")),
    );
    let text = metrics.encode();
    for line in [
        r#"admission_requests_total{resource="ippools",operation="DELETE",outcome="denied"} 1"#,
        r#"admission_requests_total{resource="ippools",operation="CREATE",outcome="allowed"} 1"#,
        r#"rule_findings_total{rule="ipv6-nat-outgoing",action="deny"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[test]
fn other_kinds_are_admitted_untouched() {
    let (admission, _) = Cluster::new().admission(Policy::default());
    let mut review = Review::of("ConfigMap", "configmaps", "CREATE", "x")
        .object(json!({"metadata": {"name": "x"}}));
    review.kind = "ConfigMap";
    let mut body = review.json();
    body["request"]["kind"]["group"] = json!("");
    let answer: Value = serde_json::from_slice(
        &admission
            .review(&serde_json::to_vec(&body).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("warnings").is_none());
}
