//! The soak harness end to end for about a minute: it brings its own lab up and down, runs
//! every kind of disturbance at least once, finishes with the flow matrix as expected and
//! writes its report. Not the growth verdict: a minute is too short to judge growth. The
//! harness takes the lab test lock itself (it is what `make soak` runs), so this test does
//! not hold it.

use std::process::Command;

use serde_json::Value;

use super::support::*;

fn report_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ke-soak-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_one_minute_soak_finishes_with_every_flow_as_expected_and_writes_its_report() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the soak needs root: run the lab tests as root"
    );
    let out = report_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--minutes", "1", "--seed", "7", "--out"])
        .arg(&out)
        .args(["--lab-bin", env!("CARGO_BIN_EXE_kube-encrypt-lab")])
        .env("NO_COLOR", "1")
        .output()
        .expect("the soak harness runs");
    assert!(output.status.success(), "{}", text(&output));
    for file in [
        "soak.md",
        "soak.json",
        "soak-rss.svg",
        "soak-logs/webhook.log",
    ] {
        assert!(
            out.join(file).is_file(),
            "{file} missing:\n{}",
            text(&output)
        );
    }

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("soak.json")).unwrap()).unwrap();
    let ending = &report["ending"];
    assert_eq!(ending["converged"], true, "{ending:#}");
    let total = ending["flowsTotal"].as_u64().unwrap();
    assert!(
        total > 0 && ending["flowsAsExpected"] == total,
        "{ending:#}"
    );
    assert_eq!(
        report["failures"],
        serde_json::json!([]),
        "{}",
        text(&output)
    );
    for action in report["actions"].as_array().unwrap() {
        assert!(
            action["done"].as_u64().unwrap() + action["refused"].as_u64().unwrap() >= 1,
            "every kind of disturbance ran: {action}"
        );
    }
    let roles: Vec<&str> = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["samples"].as_u64().unwrap() > 0)
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["agent-node-1", "agent-node-2", "agent-node-3", "webhook"],
        "every agent and the webhook were sampled"
    );
    let killed = report["processes"][0]["pids"].as_array().unwrap().len();
    assert_eq!(
        killed, 2,
        "node-1's agent was killed once and followed to its new PID"
    );
    let markdown = std::fs::read_to_string(out.join("soak.md")).unwrap();
    assert!(markdown.contains("| agent-node-1 |"), "{markdown}");
    assert!(
        !std::path::Path::new(kube_encrypt_tests::lab::state::DEFAULT_STATE_DIR).exists(),
        "the soak took its lab down"
    );
    std::fs::remove_dir_all(out).unwrap();
}
