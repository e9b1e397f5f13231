//! Background processes of the lab: started detached, recorded by PID and start time, and
//! stopped by exactly that PID (never by name), so a reused PID is never signalled.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::sys::{self, describe, CommandError};

/// A process the lab started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessRecord {
    /// What it is: `apiserver`, `forward-lab`, `forward-host`, `supervisor`, `agent-node-1`.
    pub role: String,
    pub pid: u32,
    /// Field 22 of /proc/<pid>/stat: tells this process from a later one with the same PID.
    pub start_time: u64,
}

/// Why a background process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot open log {path}: {source}")]
    Log {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// Starts `cmd` detached from the terminal (own process group, so Ctrl-C on the lab command
/// does not reach it), output appended to `log`.
pub fn spawn_daemon(
    role: &str,
    cmd: &mut Command,
    log: &Path,
) -> Result<ProcessRecord, SpawnError> {
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| SpawnError::Log {
                path: log.display().to_string(),
                source,
            })
    };
    let command = describe(cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        .process_group(0)
        .spawn()
        .map_err(|source| SpawnError::Spawn { command, source })?;
    Ok(record(role, child.id()))
}

/// The record of a running process (start time 0 when it is already gone).
pub fn record(role: &str, pid: u32) -> ProcessRecord {
    ProcessRecord {
        role: role.to_string(),
        pid,
        start_time: start_time(pid).unwrap_or(0),
    }
}

/// `(state, start time)` from /proc/<pid>/stat.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?; // field 22 overall
    Some((state, start))
}

fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

impl ProcessRecord {
    /// Running, and the same process that was recorded (not a zombie, not a reused PID).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if state != 'Z' && state != 'X' && start == self.start_time)
    }

    /// SIGTERM, then SIGKILL after `grace`; returns once the process is gone (bounded).
    pub fn stop(&self, grace: Duration) {
        if !self.is_alive() {
            return;
        }
        let pid = Pid::from_raw(self.pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        if self.wait_gone(grace) {
            return;
        }
        tracing::warn!(role = %self.role, pid = self.pid, "did not stop on SIGTERM, sending SIGKILL");
        let _ = kill(pid, Signal::SIGKILL);
        self.wait_gone(Duration::from_secs(3));
    }

    fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.is_alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        !self.is_alive()
    }
}

/// The PIDs of the processes inside network namespace `netns` (`ip netns pids`).
pub fn netns_pids(netns: &str) -> Result<Vec<u32>, CommandError> {
    let output = sys::run(&mut sys::cmd("ip", ["netns", "pids", netns]))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_process_is_no_longer_alive() {
        let dir = std::env::temp_dir().join(format!("ke-lab-process-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("sleep.log");
        let rec = spawn_daemon("sleep", Command::new("sleep").arg("30"), &log).unwrap();
        assert!(rec.start_time > 0);
        assert!(rec.is_alive());
        rec.stop(Duration::from_secs(3));
        assert!(!rec.is_alive());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_reused_pid_is_not_the_recorded_process() {
        let me = record("me", std::process::id());
        assert!(me.is_alive());
        let impostor = ProcessRecord {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_alive());
        let gone = ProcessRecord {
            role: "gone".into(),
            pid: u32::MAX,
            start_time: 1,
        };
        assert!(!gone.is_alive());
    }
}
