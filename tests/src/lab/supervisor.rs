//! The agent supervisor: runs one `kube-encrypt-agent` per node inside the node's network and
//! mount namespaces, and restarts it (with backoff) when it dies, as a DaemonSet would.
//! The agent only gets its normal flags; it never learns that it runs in a lab.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::mounts::AGENT_STATE_DIR;
use super::process::{self, ProcessRecord};
use super::state::{Paths, Store};
use super::topology::NodePlan;

const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An agent that ran this long before dying is restarted without delay growth.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// The supervisor's record of a node's agent, read by `down` and by tests.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRecord {
    #[serde(flatten)]
    pub process: ProcessRecord,
    /// How often the agent was restarted since `up`.
    pub restarts: u32,
}

impl AgentRecord {
    pub fn load(paths: &Paths, node: &str) -> Option<Self> {
        let text = std::fs::read_to_string(paths.agent_pid_file(node)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Runs until SIGTERM/SIGINT, then stops every agent.
pub async fn supervise(paths: Paths) -> anyhow::Result<()> {
    let store = Store::load(&paths)?.context("no lab is up")?;
    let agent_bin = store
        .state
        .agent_bin
        .clone()
        .context("the lab was started without agents")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = store
        .state
        .topology()
        .nodes
        .into_iter()
        .map(|node| {
            tokio::spawn(keep_running(
                paths.clone(),
                node,
                agent_bin.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    wait_for_stop_signal().await?;
    tracing::info!("stopping agents");
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    Ok(())
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

/// The agent's command line: its normal flags and the DaemonSet's `HOST_IP` (the downward
/// API's `status.hostIP`), inside the node's namespaces.
fn agent_command(paths: &Paths, node: &NodePlan, agent_bin: &Path) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!(
        "--mount={}",
        paths.node_mntns(&node.name).display()
    ))
    .arg(format!("--net=/run/netns/{}", node.netns))
    .arg("--")
    .arg(agent_bin)
    .env("HOST_IP", node.v4.to_string())
    .args(["--node-name", &node.name])
    .arg("--kubeconfig")
    .arg(paths.node_kubeconfig(&node.name))
    .args(["--state-dir", AGENT_STATE_DIR]);
    if !node.wireguard {
        cmd.args(["--userspace-implementation", "none"]);
    }
    cmd
}

async fn keep_running(
    paths: Paths,
    node: NodePlan,
    agent_bin: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    let mut restarts = 0u32;
    loop {
        if !wait_while_held(&paths, &node.name, &mut stop).await {
            return;
        }
        let started = Instant::now();
        match spawn_agent(&paths, &node, &agent_bin, restarts) {
            Ok(mut child) => {
                tokio::select! {
                    status = child.wait() => tracing::warn!(node = %node.name, ?status, "agent exited"),
                    _ = stop.changed() => {
                        terminate(&mut child).await;
                        let _ = std::fs::remove_file(paths.agent_pid_file(&node.name));
                        return;
                    }
                }
            }
            Err(e) => tracing::error!(node = %node.name, error = %e, "cannot start agent"),
        }
        if started.elapsed() > HEALTHY_RUN {
            backoff = Duration::from_secs(1);
        }
        tracing::info!(node = %node.name, ?backoff, "restarting agent");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {},
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        restarts += 1;
    }
}

/// Waits while `reimage` holds the node's agent; false when the supervisor is stopping.
async fn wait_while_held(paths: &Paths, node: &str, stop: &mut watch::Receiver<bool>) -> bool {
    while paths.agent_hold_file(node).exists() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {},
            _ = stop.changed() => return false,
        }
    }
    true
}

fn spawn_agent(
    paths: &Paths,
    node: &NodePlan,
    agent_bin: &Path,
    restarts: u32,
) -> anyhow::Result<Child> {
    let log_path = paths.log(&format!("agent-{}", node.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let child = agent_command(paths, node, agent_bin)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", agent_bin.display()))?;
    let pid = child.id().context("agent exited at once")?;
    let record = AgentRecord {
        process: process::record(&format!("agent-{}", node.name), pid),
        restarts,
    };
    std::fs::write(
        paths.agent_pid_file(&node.name),
        serde_json::to_string(&record)?,
    )?;
    tracing::info!(node = %node.name, pid, restarts, "agent started");
    Ok(child)
}

async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}
