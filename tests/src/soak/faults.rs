//! The soak's faults of the control plane: an agent killed by PID (the lab's supervisor
//! restarts it, as a DaemonSet would) and the API server stopped and started again through
//! `kube-encrypt-lab apiserver stop|start`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::lab::state::Paths;
use crate::lab::supervisor::AgentRecord;
use crate::lab::testing::{text, LabSession};

/// How long the API server stays down in a restart.
pub const APISERVER_DOWN: Duration = Duration::from_secs(8);
/// How long the supervisor may take to restart a killed agent (its backoff is at most 10 s).
const AGENT_RESTART: Duration = Duration::from_secs(30);

/// SIGKILLs `node`'s agent and waits until the supervisor has started a new one.
pub fn kill_agent(paths: &Paths, node: &str) -> anyhow::Result<String> {
    let old = AgentRecord::load(paths, node)
        .filter(|r| r.process.is_alive())
        .with_context(|| format!("{node} has no running agent to kill"))?;
    kill(Pid::from_raw(old.process.pid as i32), Signal::SIGKILL)
        .with_context(|| format!("kill {node}'s agent (pid {})", old.process.pid))?;
    let deadline = Instant::now() + AGENT_RESTART;
    loop {
        match AgentRecord::load(paths, node) {
            Some(new) if new.process.pid != old.process.pid && new.process.is_alive() => {
                return Ok(format!(
                    "{node}: agent pid {} killed, pid {} started",
                    old.process.pid, new.process.pid
                ));
            }
            _ if Instant::now() >= deadline => bail!(
                "the supervisor did not restart {node}'s agent within {AGENT_RESTART:?}; see {}",
                paths.log("supervisor").display()
            ),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// `apiserver stop`, [`APISERVER_DOWN`], `apiserver start` (which waits until it answers).
pub fn restart_apiserver(session: &LabSession) -> anyhow::Result<String> {
    lab_command(session, &["apiserver", "stop"])?;
    std::thread::sleep(APISERVER_DOWN);
    let started = Instant::now();
    lab_command(session, &["apiserver", "start"])?;
    Ok(format!(
        "down {APISERVER_DOWN:?}, answering again {:.1} s after start",
        started.elapsed().as_secs_f64()
    ))
}

fn lab_command(session: &LabSession, args: &[&str]) -> anyhow::Result<()> {
    let output = session.run(args);
    if !output.status.success() {
        bail!(
            "`kube-encrypt-lab {}` failed:\n{}",
            args.join(" "),
            text(&output)
        );
    }
    Ok(())
}
