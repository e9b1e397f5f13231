//! The health checks on fixtures: each failure names the nodes and the fix.

use kube_encrypt_api::crd::{EncryptionConfigSpec, IPPoolSpec};
use kube_encrypt_api::net::Family;

use super::health::checks;
use super::{write_table, CheckReport, CheckResult, Outcome};
use crate::fixtures::{dual_stack_snapshot, healthy_snapshot, pool, TestReport};
use crate::style::Style;
use crate::testing::golden;

fn find<'a>(checks: &'a [CheckResult], name: &str) -> &'a CheckResult {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {checks:#?}"))
}

#[test]
fn a_healthy_cluster_passes_every_check() {
    let results = checks(&healthy_snapshot(3));
    let failing: Vec<&CheckResult> = results
        .iter()
        .filter(|c| c.outcome != Outcome::Pass)
        .collect();
    assert!(failing.is_empty(), "{failing:#?}");
}

#[test]
fn each_problem_fails_its_check_with_a_fix() {
    let results = checks(&dual_stack_snapshot());
    let cases = [
        ("nodes encrypted", Outcome::Fail, "node-3 IPv4 Unsupported"),
        (
            "nodes have keys",
            Outcome::Fail,
            "node-3 IPv4 (Unsupported)",
        ),
        (
            "handshakes fresh",
            Outcome::Warn,
            "node-1 → node-2 (IPv6, never)",
        ),
        ("IPv4 MTU consistent", Outcome::Pass, "every node uses 1440"),
        ("IPv6 NAT outgoing", Outcome::Pass, "1 enabled IPv6 pool(s)"),
    ];
    for (name, outcome, detail) in cases {
        let check = find(&results, name);
        assert_eq!(check.outcome, outcome, "{check:#?}");
        assert!(check.detail.contains(detail), "{check:#?}");
        assert_eq!(check.fix.is_some(), outcome != Outcome::Pass, "{check:#?}");
    }
}

#[test]
fn mtu_mismatch_names_both_groups() {
    let mut snapshot = healthy_snapshot(3);
    snapshot.encryptions[2] = TestReport::new("node-3")
        .encrypted(Family::V4, 2, 2)
        .mtu(Family::V4, 1380)
        .build();
    let check = find(&checks(&snapshot), "IPv4 MTU consistent").clone();
    assert_eq!(check.outcome, Outcome::Fail);
    assert_eq!(check.detail, "1380 on node-3; 1440 on node-1, node-2");
    assert!(check.fix.unwrap().contains("spec.ipv4.mtu"));
}

#[test]
fn nat_outgoing_of_a_family_not_enabled_is_a_preflight_warning() {
    let mut snapshot = healthy_snapshot(2);
    snapshot.pools.push(pool(
        "pool-v6",
        IPPoolSpec::test("2001:db8:1::/48").without_nat(),
    ));
    let check = find(&checks(&snapshot), "IPv6 NAT outgoing").clone();
    assert_eq!(check.outcome, Outcome::Warn);
    assert!(
        check.detail.contains("needed before enabling IPv6")
            && check.detail.contains("\"pool-v6\""),
        "{check:#?}"
    );
    assert_eq!(
        check.fix.as_deref(),
        Some("kubectl encrypt enable --ipv6 --fix-nat-outgoing")
    );

    snapshot.config = Some(crate::fixtures::config(
        EncryptionConfigSpec::test().with_ipv6(),
    ));
    assert_eq!(
        find(&checks(&snapshot), "IPv6 NAT outgoing").outcome,
        Outcome::Fail
    );
}

#[test]
fn the_check_table_matches_its_golden_file() {
    let mut results = vec![
        CheckResult::pass("CRDs installed", "3 CRDs established"),
        CheckResult::fail(
            "agents installed",
            "DaemonSet kube-encrypt/kube-encrypt-agent not found",
            "kubectl encrypt install",
        ),
    ];
    results.extend(checks(&dual_stack_snapshot()));
    let report = CheckReport::new(results);
    assert!(!report.passed);
    let mut out = Vec::new();
    write_table(&report, Style::plain(), &mut out).unwrap();
    golden("check-table.txt", &String::from_utf8(out).unwrap());
}
