//! up → plaintext works → flows with encryption off → down leaves nothing; bad input.

use super::support::*;
use kube_encrypt_tests::lab::exit;
use kube_encrypt_tests::lab::up::{FAILED_UP_LOGS, FAIL_AT_ENV};

#[test]
fn up_ping_flows_down_leaves_nothing() {
    let session = session();
    let lab = session.up(&["--nodes", "2", "--no-agents"]);
    for ns in [
        "ke-lab",
        "ke-ext",
        "ke-node-1",
        "ke-node-2",
        "ke-pod-1-1",
        "ke-pod-2-2",
    ] {
        assert!(
            std::path::Path::new("/run/netns").join(ns).exists(),
            "{ns} missing"
        );
    }
    let ping = session.run(&[
        "exec",
        "pod-1-1",
        "--",
        "ping",
        "-c",
        "2",
        "-W",
        "2",
        "198.18.2.2",
    ]);
    assert!(
        ping.status.success(),
        "pod-1-1 → pod-2-1 in plaintext:\n{}",
        text(&ping)
    );
    let flows = session.run(&["flows"]);
    assert!(
        flows.status.success(),
        "flows with encryption off:\n{}",
        text(&flows)
    );
    let report = stdout(&flows);
    assert!(report.contains("6 flows, all as expected"), "{report}");
    assert!(
        report.contains("pod → outside") && report.contains("works no"),
        "no route from ke-ext to pods:\n{report}"
    );

    let again = session.run(&["up", "--nodes", "2", "--no-agents"]);
    assert_eq!(
        again.status.code(),
        Some(i32::from(exit::LAB_STATE)),
        "{}",
        text(&again)
    );
    assert!(stderr(&again).contains("already up"), "{}", text(&again));

    let processes = recorded_processes();
    assert!(
        processes.len() >= 3,
        "emulator and forwarders are recorded: {processes:?}"
    );
    drop(lab);
    assert_no_residue(&processes);

    let twice = session.run(&["down"]);
    assert_eq!(
        twice.status.code(),
        Some(i32::from(exit::OK)),
        "{}",
        text(&twice)
    );
    assert!(stdout(&twice).contains("no lab is up"), "{}", text(&twice));
}

#[test]
fn commands_that_need_a_lab_say_there_is_none() {
    let session = session();
    let cases: [&[&str]; 4] = [
        &["flows"],
        &["status"],
        &["exec", "node-1", "--", "true"],
        &["apiserver", "stop"],
    ];
    for args in cases {
        let output = session.run(args);
        assert_eq!(
            output.status.code(),
            Some(i32::from(exit::LAB_STATE)),
            "{args:?}: {}",
            text(&output)
        );
        assert!(
            stderr(&output).contains("no lab is up"),
            "{args:?}: {}",
            text(&output)
        );
    }
}

#[test]
fn bad_input_is_refused_before_anything_is_made() {
    let session = session();
    let cases: [(&[&str], &str); 4] = [
        (&["up", "--nodes", "0"], "--nodes must be"),
        (&["up", "--mtu", "100"], "--mtu must be"),
        (
            &["up", "--nodes", "2", "--no-wireguard", "node-3"],
            "no such node",
        ),
        (
            &[
                "up",
                "--nodes",
                "2",
                "--agent-bin",
                "/nonexistent/kube-encrypt-agent",
            ],
            "agent binary",
        ),
    ];
    for (args, message) in cases {
        let output = session.run(args);
        assert_eq!(
            output.status.code(),
            Some(i32::from(exit::ERROR)),
            "{args:?}: {}",
            text(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            text(&output)
        );
        assert_no_residue(&[]);
    }
}

#[test]
fn up_as_a_user_says_it_needs_root() {
    let session = session();
    let lab = env!("CARGO_BIN_EXE_kube-encrypt-lab");
    let output = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            lab,
            "up",
        ])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::ERROR)),
        "{}",
        text(&output)
    );
    assert!(
        stderr(&output).contains("must run as root"),
        "{}",
        text(&output)
    );
    assert_no_residue(&[]);
    drop(session);
}

#[test]
fn a_failed_up_is_rolled_back() {
    let session = session();
    for step in ["network", "mounts", "apiserver"] {
        let output = session
            .command(&["up", "--nodes", "2", "--no-agents"])
            .env(FAIL_AT_ENV, step)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(i32::from(exit::ERROR)),
            "{step}: {}",
            text(&output)
        );
        assert!(
            stderr(&output).contains("rolling back"),
            "{step}: {}",
            text(&output)
        );
        assert!(
            stderr(&output).contains(FAILED_UP_LOGS),
            "{step}: the logs are kept: {}",
            text(&output)
        );
        assert_no_residue(&[]);
    }
}

#[test]
fn down_cleans_up_after_a_crashed_up() {
    let session = session();
    let state = std::path::Path::new("/run/kube-encrypt-lab/state.json");
    // Crash while making namespaces, after the last pod, and once the emulator runs.
    for wait_for in [
        "/run/netns/ke-pod-1-1",
        "/run/netns/ke-pod-2-2",
        "/run/kube-encrypt-lab/apiserver.port",
    ] {
        let mut up = session
            .command(&["up", "--nodes", "2", "--no-agents"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !std::path::Path::new(wait_for).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "up never made {wait_for}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        up.kill().unwrap(); // SIGKILL: no rollback runs
        up.wait().unwrap();
        assert!(state.exists(), "the crashed up left its state for down");
        let processes = recorded_processes();
        if wait_for.ends_with("apiserver.port") {
            assert!(
                processes.len() >= 3,
                "emulator and forwarders ran: {processes:?}"
            );
        }
        let down = session.run(&["down"]);
        assert!(down.status.success(), "{}", text(&down));
        assert_no_residue(&processes);
    }
}
