//! Convergence in a 3-node lab (`kube-encrypt-lab up --nodes 3`, real agents, userspace
//! WireGuard): from creating the EncryptionConfig to every node's NodeEncryption reporting
//! Encrypted with every configured peer handshaken (target ≤ 5 s), median of 3 runs
//! (disable/enable in between). Pods ping each other across nodes at 5/s during a run, as
//! live workloads would: WireGuard only handshakes when there is traffic (keepalive is off
//! by default). Also shown: Encrypted alone, and the handshakes as the devices see them.
//! Run as root: `cargo bench -p kube-encrypt-tests --bench convergence`.

#[allow(dead_code)]
mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use kube::Client;
use kube_encrypt_api::crd::EncryptionState;
use kube_encrypt_tests::lab::state::Paths;
use kube_encrypt_tests::lab::testing::{LabSession, RunningLab};

use common::agent::{agent_binary, INTERFACE};
use common::cluster;
use common::process::Spawned;
use common::report::{Goal, Row, Session};

const NODES: u8 = 3;
/// Runs: 3, or 1 in a tiny run.
fn run_count() -> usize {
    common::report::sized(3, 1)
}
const TARGET_S: f64 = 5.0;
/// Encrypted and the devices' handshakes must come within this, or the bench fails.
const FUNCTIONAL_LIMIT: Duration = Duration::from_secs(30);
/// How long a run waits for the status to report the handshakes (then: MISSED).
const STATUS_LIMIT: Duration = Duration::from_secs(15);
/// Ping pairs (from pod, to address) covering every pair of nodes.
const PINGS: [(&str, &str); 3] = [
    ("ke-pod-1-1", "198.18.2.2"),
    ("ke-pod-1-1", "198.18.3.2"),
    ("ke-pod-2-1", "198.18.3.2"),
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("convergence FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// When each milestone of one run was reached, since the config was created.
#[derive(Debug, Default)]
struct Run {
    encrypted: Option<Duration>,
    devices_handshaken: Option<Duration>,
    status_handshaken: Option<Duration>,
}

fn run() -> anyhow::Result<()> {
    let report_session = Session::begin("convergence");
    common::require_root("convergence")?;
    let agent = agent_binary()?;
    let waiting = Instant::now();
    let session = LabSession::acquire(env!("CARGO_BIN_EXE_kube-encrypt-lab"));
    println!(
        "convergence: waited {:.1} s for the lab (one lab at a time on this machine)",
        waiting.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let lab = session.up(&[
        "--nodes",
        &NODES.to_string(),
        "--agent-bin",
        &agent.display().to_string(),
    ]);
    println!(
        "convergence: lab with {NODES} nodes up in {:.1} s; load average {}",
        started.elapsed().as_secs_f64(),
        common::load_average()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(bench(&lab, report_session));
    if result.is_err() {
        for i in 1..=NODES {
            let log = lab.paths().log(&format!("agent-node-{i}"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "--- last lines of {}\n{}",
                log.display(),
                lines[lines.len().saturating_sub(15)..].join("\n")
            );
        }
    }
    result
}

async fn bench(lab: &RunningLab<'_>, report_session: Session) -> anyhow::Result<()> {
    common::watch_interrupts();
    let client = kube_encrypt_tests::lab::cluster::client(&lab.kubeconfig()).await?;
    cluster::create_pool(&client, "lab-pods", "198.18.0.0/16").await?;
    let mut runs = Vec::new();
    for i in 1..=run_count() {
        let run = one_run(&client, &lab.paths()).await?;
        println!(
            "run {i}: Encrypted {}, devices handshaken {}, status handshaken {}",
            seconds(run.encrypted),
            seconds(run.devices_handshaken),
            seconds(run.status_handshaken)
        );
        runs.push(run);
        let disabling = Instant::now();
        disable(&client, &lab.paths()).await?;
        println!(
            "run {i}: disabled again in {:.1} s",
            disabling.elapsed().as_secs_f64()
        );
    }
    report(&runs, report_session)
}

fn seconds(at: Option<Duration>) -> String {
    at.map(|d| format!("{:.2} s", d.as_secs_f64()))
        .unwrap_or_else(|| format!("> {} s", STATUS_LIMIT.as_secs()))
}

fn report(runs: &[Run], session: Session) -> anyhow::Result<()> {
    let median = |pick: fn(&Run) -> Option<Duration>, cap: Duration| {
        let values: Vec<f64> = runs
            .iter()
            .map(|r| pick(r).unwrap_or(cap).as_secs_f64())
            .collect();
        let missing = runs.iter().filter(|r| pick(r).is_none()).count();
        let listed: Vec<String> = runs.iter().map(|r| seconds(pick(r))).collect();
        let mut note = format!("runs {}", listed.join(", "));
        if missing > 0 {
            note.push_str(&format!("; {missing} run(s) capped at {} s", cap.as_secs()));
        }
        (common::median(&values), note)
    };
    let (status, status_note) = median(|r| r.status_handshaken, STATUS_LIMIT);
    let (devices, devices_note) = median(|r| r.devices_handshaken, FUNCTIONAL_LIMIT);
    let (encrypted, encrypted_note) = median(|r| r.encrypted, FUNCTIONAL_LIMIT);
    let rows = [
        Row::new(
            "config → all Encrypted + handshaken == configured (status)",
            status,
            "s",
            Goal::AtMost(TARGET_S),
        )
        .note(status_note),
        Row::new(
            "config → every peer handshaken (devices, wg show)",
            devices,
            "s",
            Goal::AtMost(TARGET_S),
        )
        .note(devices_note),
        Row::new(
            "config → all Encrypted (status)",
            encrypted,
            "s",
            Goal::Info,
        )
        .note(encrypted_note),
    ];
    session.publish(
        &format!(
            "convergence: {NODES}-node lab, median of {} runs (disable/enable between), load average {}",
            run_count(),
            common::load_average()
        ),
        &rows,
    )
}

async fn one_run(client: &Client, paths: &Paths) -> anyhow::Result<Run> {
    let started = Instant::now();
    cluster::create_config(client, &cluster::ipv4_config()).await?;
    let _pings = start_pings()?;
    let mut run = Run::default();
    loop {
        common::check_interrupted()?;
        let now = started.elapsed();
        let statuses = cluster::ipv4_statuses(client).await?;
        let all = |check: &dyn Fn(&kube_encrypt_api::crd::FamilyStatus) -> bool| {
            (1..=NODES).all(|i| {
                statuses
                    .iter()
                    .any(|(name, s)| *name == format!("node-{i}") && check(s))
            })
        };
        let peers = i64::from(NODES) - 1;
        if run.encrypted.is_none()
            && all(&|s| s.state == EncryptionState::Encrypted && s.peers.configured == peers)
        {
            run.encrypted = Some(now);
        }
        if run.status_handshaken.is_none()
            && all(&|s| {
                s.state == EncryptionState::Encrypted
                    && s.peers.configured == peers
                    && s.peers.handshaken == peers
            })
        {
            run.status_handshaken = Some(now);
        }
        if run.devices_handshaken.is_none() && devices_handshaken(paths, peers as usize) {
            run.devices_handshaken = Some(now);
        }
        let functional = run.encrypted.is_some() && run.devices_handshaken.is_some();
        if functional && (run.status_handshaken.is_some() || now >= STATUS_LIMIT) {
            return Ok(run);
        }
        if now >= FUNCTIONAL_LIMIT {
            bail!("not converged within {FUNCTIONAL_LIMIT:?}: {run:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Bounded pings (5/s, at most 30 s) between pods of every pair of nodes.
fn start_pings() -> anyhow::Result<Vec<Spawned>> {
    PINGS
        .iter()
        .map(|(pod, target)| {
            let mut command = std::process::Command::new("ip");
            command.args([
                "netns", "exec", pod, "ping", "-q", "-i", "0.2", "-c", "150", "-w", "30", target,
            ]);
            Spawned::start_quiet(&format!("ping {pod} → {target}"), &mut command)
        })
        .collect()
}

/// A command inside lab node `i`'s network and mount namespaces.
fn in_node(paths: &Paths, i: u8, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("nsenter");
    command
        .arg(format!(
            "--mount={}",
            paths.node_mntns(&format!("node-{i}")).display()
        ))
        .arg(format!("--net=/run/netns/ke-node-{i}"))
        .arg("--")
        .args(args);
    command
}

/// Every node's device has `peers` peers, each with a handshake.
fn devices_handshaken(paths: &Paths, peers: usize) -> bool {
    (1..=NODES).all(|i| {
        let Ok(output) =
            in_node(paths, i, &["wg", "show", INTERFACE, "latest-handshakes"]).output()
        else {
            return false;
        };
        let text = String::from_utf8_lossy(&output.stdout);
        let stamps: Vec<u64> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect();
        output.status.success() && stamps.len() == peers && stamps.iter().all(|t| *t > 0)
    })
}

/// Deletes the config and waits until no node has a WireGuard interface or reports Encrypted.
async fn disable(client: &Client, paths: &Paths) -> anyhow::Result<()> {
    cluster::delete_config(client).await?;
    common::poll(
        "every node disabled after deleting the config",
        FUNCTIONAL_LIMIT,
        Duration::from_millis(200),
        async || {
            let statuses = cluster::ipv4_statuses(client).await?;
            let encrypted = statuses
                .iter()
                .any(|(_, s)| s.state == EncryptionState::Encrypted);
            let links = (1..=NODES).any(|i| {
                in_node(paths, i, &["ip", "link", "show", INTERFACE])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
            Ok((!encrypted && !links).then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}
