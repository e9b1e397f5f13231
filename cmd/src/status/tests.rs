//! The status report and its four formats, from fixtures; the text formats against golden files
//! (`UPDATE_GOLDEN=1 cargo test -p kubectl-encrypt` rewrites them after a deliberate change).

use kube_encrypt_api::crd::EncryptionState;
use kube_encrypt_api::net::Family;

use super::model::{build, family_of};
use super::print;
use crate::cli::OutputFormat;
use crate::fixtures::{dual_stack_snapshot, healthy_snapshot, TestReport};
use crate::style::Style;
use crate::testing::{golden, ui};

fn render(output: OutputFormat, style: Style) -> String {
    let report = build(&dual_stack_snapshot());
    let mut out = Vec::new();
    print(&report, ui(output, style), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn table_wide_json_and_yaml_match_their_golden_files() {
    let cases = [
        (OutputFormat::Table, "status-table.txt"),
        (OutputFormat::Wide, "status-wide.txt"),
        (OutputFormat::Json, "status.json"),
        (OutputFormat::Yaml, "status.yaml"),
    ];
    for (output, file) in cases {
        golden(file, &render(output, Style::plain()));
    }
}

#[test]
fn the_table_shows_what_an_admin_needs() {
    let table = render(OutputFormat::Table, Style::plain());
    for expected in [
        "IPv6:      on (port 51821, MTU auto, interface wg-encrypt-v6)",
        "Encrypted: IPv4 2/3 nodes",
        "pool-v6   2001:db8:1::/48   IPv6     ✓",
        "node-3: IPv6 Unsupported: this node has no WireGuard",
        "IPv6 peer node-2 has never completed a handshake",
        "node-1   IPv4     node-3   publishes no IPv4 key",
        "Status: Degraded",
    ] {
        assert!(
            table.contains(expected),
            "missing {expected:?} in:\n{table}"
        );
    }
    assert!(
        !table.contains("MTU   PORT"),
        "MTU is a wide column:\n{table}"
    );
    assert!(render(OutputFormat::Wide, Style::plain())
        .contains("1440/1420   51820/51821   wg-encrypt/wg-encrypt-v6"));
}

#[test]
fn json_and_yaml_carry_everything_the_table_shows() {
    let json: serde_json::Value =
        serde_json::from_str(&render(OutputFormat::Json, Style::plain())).unwrap();
    let yaml: serde_json::Value =
        serde_yaml::from_str(&render(OutputFormat::Yaml, Style::plain())).unwrap();
    assert_eq!(json, yaml);
    assert_eq!(json["degraded"], true);
    assert_eq!(json["pools"][1]["natOutgoing"], true);
    assert_eq!(
        json["config"]["counts"][1],
        serde_json::json!({"family": "V6", "participating": 3, "encrypted": 2})
    );
    let node1 = &json["nodes"][0];
    assert_eq!(
        node1["ipv6"]["peers"],
        serde_json::json!({"configured": 1, "handshaken": 0, "ratio": "0/1"})
    );
    assert_eq!(node1["ipv4"]["mtu"], 1440);
    assert_eq!(node1["ipv4"]["oldestHandshakeSeconds"], 65);
    assert_eq!(json["skippedPeers"][0]["reason"], "publishes no IPv4 key");
    assert!(json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["node"] == "node-3" && w["degrades"] == true));
}

#[test]
fn plain_output_has_no_escape_codes_and_colour_has_them() {
    for output in [
        OutputFormat::Table,
        OutputFormat::Wide,
        OutputFormat::Json,
        OutputFormat::Yaml,
    ] {
        assert!(
            !render(output, Style::plain()).contains('\x1b'),
            "{output:?}"
        );
    }
    assert!(
        render(OutputFormat::Table, Style::colored()).contains("\x1b[31m"),
        "red for Unsupported nodes"
    );
}

/// A change to a healthy snapshot.
type Change = dyn Fn(&mut crate::cluster::Snapshot);

#[test]
fn degraded_follows_what_participating_nodes_report() {
    let unsupported = |s: &mut crate::cluster::Snapshot| {
        s.encryptions[1] = TestReport::new("node-2")
            .state(Family::V4, EncryptionState::Unsupported, "no WireGuard")
            .build();
    };
    let missing = |s: &mut crate::cluster::Snapshot| {
        s.encryptions.remove(1);
    };
    let agent_degraded = |s: &mut crate::cluster::Snapshot| {
        s.encryptions[0] = TestReport::new("node-1")
            .encrypted(Family::V4, 2, 2)
            .degraded("port-range: refused")
            .build();
    };
    let opted_out_missing = |s: &mut crate::cluster::Snapshot| {
        s.encryptions.remove(1);
        s.nodes[1] = crate::fixtures::node(2)
            .label("kube-encrypt.dev/encryption", "disabled")
            .build();
    };
    let stale_peer = |s: &mut crate::cluster::Snapshot| {
        s.encryptions[0] = TestReport::new("node-1")
            .encrypted(Family::V4, 2, 2)
            .worst_peer(Family::V4, "node-2", Some(600))
            .build();
    };
    let nat_off = |s: &mut crate::cluster::Snapshot| {
        s.pools[0].spec.nat_outgoing = false;
    };
    let cases: [(&str, &Change, bool); 7] = [
        ("healthy", &|_| {}, false),
        ("a node Unsupported", &unsupported, true),
        ("a node without report", &missing, true),
        ("an agent Degraded condition", &agent_degraded, true),
        (
            "an opted-out node without report",
            &opted_out_missing,
            false,
        ),
        ("a stale handshake is advice only", &stale_peer, false),
        ("a pool without NAT outgoing", &nat_off, true),
    ];
    for (name, change, degraded) in cases {
        let mut snapshot = healthy_snapshot(3);
        change(&mut snapshot);
        let report = build(&snapshot);
        assert_eq!(report.degraded, degraded, "{name}: {:#?}", report.warnings);
    }
}

#[test]
fn duplicate_keys_degrade_and_are_named() {
    let mut snapshot = healthy_snapshot(2);
    let key = kube_encrypt_api::fixtures::key("node-1", Family::V4).to_base64();
    snapshot.nodes[1] = crate::fixtures::node(2)
        .annotation("kube-encrypt.dev/public-key", &key)
        .build();
    let report = build(&snapshot);
    assert!(report.degraded);
    assert!(
        report.warnings.iter().any(|w| w
            .message
            .contains("nodes node-1, node-2 publish the same IPv4 key")),
        "{:#?}",
        report.warnings
    );
}

#[test]
fn without_a_config_nothing_is_expected_of_the_nodes() {
    let mut snapshot = healthy_snapshot(2);
    snapshot.config = None;
    snapshot.encryptions.clear();
    let report = build(&snapshot);
    assert!(!report.degraded && !report.config.present);
    assert!(family_of(&report.nodes[0], Family::V4).is_none());
}
