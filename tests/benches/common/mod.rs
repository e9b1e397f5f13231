//! Shared pieces of the agent benchmarks (`agent_scale`, `mesh_throughput`, `convergence`):
//! network namespaces the bench creates and always removes, the API emulator in-process,
//! the real `kube-encrypt-agent` binary, and report lines with value, target and ratio.
//!
//! ```text
//!  keb-<pid>-hub: bridge br0 192.0.2.1/24, the API emulator (this process, after setns)
//!    ├── veth n<i> ── keb-<pid>-n<i>: eth0 192.0.2.1<i>/24, own mount namespace
//!    │                  (tmpfs on /var/run/wireguard), kube-encrypt-agent, pod0 198.18.<i>.1/24
//!    │                    └── veth ── keb-<pid>-p<i>: eth0 198.18.<i>.2/24
//! ```
//!
//! Every bench is bounded in time, sends traffic only between its own namespaces on
//! documentation ranges, stops only the processes it started (by PID) and exits non-zero
//! only on a functional failure; a missed target prints MISSED.

pub mod agent;
pub mod cluster;
pub mod iperf;
pub mod net;
pub mod process;
pub mod report;
pub mod setconf;
pub mod userspace;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Fails loudly (never skips silently) when not root.
pub fn require_root(bench: &str) -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("{bench} needs root (network namespaces, mounts, WireGuard): run it as root, e.g. `sudo -E cargo bench -p kube-encrypt-tests --bench {bench}`");
    }
    Ok(())
}

/// Turns Ctrl-C / SIGTERM into an error at the next wait, so the cleanup guards run.
pub fn watch_interrupts() {
    tokio::spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("interrupted: cleaning up");
        INTERRUPTED.store(true, Ordering::SeqCst);
    });
}

/// Errors when the bench was interrupted.
pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Polls `probe` every `every` until it returns `Some`, or fails with `what` after `limit`.
pub async fn poll<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        check_interrupted()?;
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("{what}: not reached within {limit:?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// The load average, printed with results measured on a shared machine.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// The median of a few samples (upper median for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
