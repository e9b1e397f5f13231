//! The supervisor runs one agent per node inside the node's namespaces and restarts it when
//! it dies, as a DaemonSet would; `down` stops them all.

use std::time::{Duration, Instant};

use kube_encrypt_tests::lab::state::{Paths, DEFAULT_STATE_DIR};
use kube_encrypt_tests::lab::supervisor::AgentRecord;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::support::*;

fn wait_for_agent(
    paths: &Paths,
    node: &str,
    older_than: Option<u32>,
    timeout: Duration,
) -> AgentRecord {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(record) = AgentRecord::load(paths, node) {
            if record.process.is_alive() && Some(record.process.pid) != older_than {
                return record;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no (new) agent on {node} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_agent_is_restarted_and_down_stops_every_agent() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&[
        "--nodes",
        "2",
        "--no-wireguard",
        "node-2",
        "--agent-bin",
        &agent,
    ]);
    let paths = Paths::new(DEFAULT_STATE_DIR);
    let first = wait_for_agent(&paths, "node-1", None, Duration::from_secs(10));
    // The supervisor records nsenter's PID, which then execs the agent: its command line is
    // the agent's once the exec is done.
    wait_until(
        "node-1's agent runs with its node name",
        Duration::from_secs(10),
        || {
            let cmdline =
                std::fs::read(format!("/proc/{}/cmdline", first.process.pid)).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).to_string())
                .collect();
            let named =
                args.contains(&"--node-name".to_string()) && args.contains(&"node-1".to_string());
            named.then_some(()).ok_or_else(|| format!("{args:?}"))
        },
    );
    let _ = kill(Pid::from_raw(first.process.pid as i32), Signal::SIGKILL);
    let second = wait_for_agent(
        &paths,
        "node-1",
        Some(first.process.pid),
        Duration::from_secs(20),
    );
    assert!(
        second.restarts > first.restarts,
        "restart counted: {first:?} → {second:?}"
    );
    let node2 = wait_for_agent(&paths, "node-2", None, Duration::from_secs(20));
    let cmdline = String::from_utf8_lossy(
        &std::fs::read(format!("/proc/{}/cmdline", node2.process.pid)).unwrap_or_default(),
    )
    .replace('\0', " ");
    assert!(
        cmdline.contains("--userspace-implementation none"),
        "node-2 has no WireGuard: {cmdline}"
    );
    let processes = recorded_processes();
    drop(lab);
    assert_no_residue(&processes);
}
