//! The real `kube-encrypt-agent` in a bench node, and what the bench reads from outside it:
//! memory and CPU from /proc, the WireGuard device through its UAPI socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use kube_encrypt_tests::procfs;

use super::net::{BenchNode, WIREGUARD_RUN_DIR};
use super::process::Spawned;

/// The agent's interface for IPv4 (the EncryptionConfig default).
pub const INTERFACE: &str = "wg-encrypt";
/// The agent's default metrics port.
pub const METRICS_PORT: u16 = 9105;

/// The agent binary: `KEB_AGENT_BIN`, else next to the lab binary this bench was built with
/// (the same target directory and profile).
pub fn agent_binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("KEB_AGENT_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            Path::new(env!("CARGO_BIN_EXE_kube-encrypt-lab")).with_file_name("kube-encrypt-agent")
        }
    };
    if !path.is_file() {
        bail!(
            "agent binary {} not found: build it first with `cargo build --release -p kube-encrypt-agent` \
             (same CARGO_TARGET_DIR as the bench), or set KEB_AGENT_BIN=/path/to/kube-encrypt-agent",
            path.display()
        );
    }
    Ok(path)
}

/// A running agent in its node's network and mount namespaces.
#[derive(Debug)]
pub struct Agent {
    pub node_name: String,
    process: Spawned,
}

impl Agent {
    /// Starts the agent with its normal flags; state and log under `dir`.
    pub fn start(
        binary: &Path,
        node: &BenchNode,
        node_name: &str,
        kubeconfig: &Path,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        Self::start_with(binary, node, (node_name, kubeconfig, dir), &[])
    }

    /// [`Agent::start`] with `extra` flags after the normal ones.
    pub fn start_with(
        binary: &Path,
        node: &BenchNode,
        (node_name, kubeconfig, dir): (&str, &Path, &Path),
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let state_dir = dir.join(format!("state-{node_name}"));
        let log = dir.join(format!("agent-{node_name}.log"));
        let binary = binary.display().to_string();
        let kubeconfig = kubeconfig.display().to_string();
        let state = state_dir.display().to_string();
        // nsenter execs the agent, so the child's PID is the agent's.
        let mut args = vec![
            binary.as_str(),
            "--node-name",
            node_name,
            "--kubeconfig",
            &kubeconfig,
            "--state-dir",
            &state,
            "--log-format",
            "text",
        ];
        args.extend(extra);
        let mut command = node.command(&args);
        let process = Spawned::start_logged(&format!("agent {node_name}"), &mut command, &log)?;
        Ok(Self {
            node_name: node_name.into(),
            process,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.process.check_alive()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.process.log_path()
    }

    /// Resident memory of the agent process (not its WireGuard daemon), in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<(u64, u64)> {
        Ok(procfs::rss_kib(self.pid())?)
    }

    /// User + system CPU time the agent used so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        Ok(procfs::cpu_time(self.pid())?)
    }

    /// The hex public keys of the peers programmed in the agent's WireGuard device.
    pub fn device_peers(&self) -> anyhow::Result<Vec<String>> {
        uapi_peers(&self.socket_path())
    }

    /// The UAPI socket in the agent's mount namespace, reached through /proc/<pid>/root.
    pub fn socket_path(&self) -> PathBuf {
        let dir = std::fs::canonicalize(WIREGUARD_RUN_DIR)
            .unwrap_or_else(|_| PathBuf::from(WIREGUARD_RUN_DIR));
        let relative = dir.strip_prefix("/").unwrap_or(&dir).to_path_buf();
        PathBuf::from(format!("/proc/{}/root", self.pid()))
            .join(relative)
            .join(format!("{INTERFACE}.sock"))
    }
}

/// `get=1` on a WireGuard UAPI socket; returns the peers' public keys (hex).
pub fn uapi_peers(socket: &Path) -> anyhow::Result<Vec<String>> {
    let mut stream =
        UnixStream::connect(socket).with_context(|| format!("connect to {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"get=1\n\n")?;
    let mut peers = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        if let Some(key) = line.strip_prefix("public_key=") {
            peers.push(key.to_string());
        } else if let Some(errno) = line.strip_prefix("errno=") {
            if errno != "0" {
                bail!("UAPI get on {} failed: errno {errno}", socket.display());
            }
        }
    }
    Ok(peers)
}

/// A key as the UAPI spells it (lowercase hex).
pub fn hex_key(key: &kube_encrypt_api::key::WireGuardKey) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// `(count, sum)` of the agent's `kube_encrypt_reconcile_duration_seconds`, read from
/// `/metrics` at `addr` (the node's address: the bench reaches it over the underlay).
pub async fn reconcile_totals(addr: &str) -> anyhow::Result<(f64, f64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .with_context(|| format!("connect to the agent's metrics at {addr}"))??;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text))
        .await
        .context("reading the agent's metrics")??;
    let value = |name: &str| -> anyhow::Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .with_context(|| format!("no {name} in the agent's /metrics"))
    };
    Ok((
        value("kube_encrypt_reconcile_duration_seconds_count")?,
        value("kube_encrypt_reconcile_duration_seconds_sum")?,
    ))
}
