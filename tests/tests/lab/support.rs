//! Helpers: the lab binary, residue checks.

use std::process::Output;

use kube_encrypt_tests::lab::process::ProcessRecord;
use kube_encrypt_tests::lab::state::{Paths, Store, DEFAULT_STATE_DIR};
use kube_encrypt_tests::lab::supervisor::AgentRecord;
use kube_encrypt_tests::lab::testing::LabSession;
use kube_encrypt_tests::lab::topology::{LabSpec, Topology, MAX_NODES};

pub use kube_encrypt_tests::lab::testing::text;

pub fn session() -> LabSession {
    LabSession::acquire(env!("CARGO_BIN_EXE_kube-encrypt-lab"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Every process the lab recorded (services and agents), read while it is up.
pub fn recorded_processes() -> Vec<ProcessRecord> {
    let paths = Paths::new(DEFAULT_STATE_DIR);
    let store = Store::load(&paths).unwrap().expect("a lab is up");
    let mut processes = store.state.processes.clone();
    for node in store.state.topology().nodes {
        processes.extend(AgentRecord::load(&paths, &node.name).map(|a| a.process));
    }
    processes
}

/// Every network namespace name a lab of the largest size could have.
fn lab_netns_names() -> Vec<String> {
    Topology::new(LabSpec::new(MAX_NODES, false, 1500, &[]).unwrap()).netns_names()
}

/// Fails when anything of a lab is left: namespaces, mounts, state, the given processes.
pub fn assert_no_residue(processes: &[ProcessRecord]) {
    let listed = String::from_utf8(
        std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let names = lab_netns_names();
    let left: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| names.iter().any(|name| name == n))
        .collect();
    assert!(left.is_empty(), "lab namespaces left: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let lab_mounts: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(DEFAULT_STATE_DIR))
        .collect();
    assert!(lab_mounts.is_empty(), "lab mounts left: {lab_mounts:?}");
    assert!(
        !std::path::Path::new(DEFAULT_STATE_DIR).exists(),
        "{DEFAULT_STATE_DIR} left"
    );
    let alive: Vec<_> = processes.iter().filter(|p| p.is_alive()).collect();
    assert!(alive.is_empty(), "lab processes left: {alive:?}");
}

/// The report line of the `family` flow from `src` to `dst` (such as "IPv4", "pod-1-1", "pod-2-1").
pub fn flow_line<'a>(report: &'a str, family: &str, src: &str, dst: &str) -> &'a str {
    let route = format!("{src} → {dst} ");
    report
        .lines()
        .find(|l| l.contains(&format!(" {family} ")) && l.contains(&route))
        .unwrap_or_else(|| panic!("no {family} flow {src} → {dst} in:\n{report}"))
}
