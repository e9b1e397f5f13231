//! Traffic between the bench's namespaces: `ping` for connectivity and `iperf3` TCP runs with
//! one or more parallel streams, each client in its namespace through `nsenter`.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

use super::process::Spawned;

pub const PORT: &str = "5201";

/// One measured path: where the client runs, what it connects to, and from which address.
pub struct Probe {
    pub label: String,
    pub client_netns: String,
    pub target: &'static str,
    pub source: Option<&'static str>,
}

/// How long each iperf3 run lasts.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub seconds: u32,
    /// Seconds at the start left out of the result (TCP slow start).
    pub omit: u32,
}

fn in_netns(netns: &str, args: &[&str]) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{netns}"))
        .arg("--")
        .args(args);
    command.kill_on_drop(true);
    command
}

/// An iperf3 server in `netns`, stopped when dropped.
pub fn server(netns: &str) -> anyhow::Result<Spawned> {
    let mut command = std::process::Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{netns}"))
        .args(["--", "iperf3", "-s", "-p", PORT]);
    Spawned::start_quiet(&format!("iperf3 server in {netns}"), &mut command)
}

/// Five pings along `probe`; an error with ping's output when they do not all come back.
pub async fn ping(probe: &Probe) -> anyhow::Result<()> {
    let mut args = vec!["ping", "-c", "5", "-i", "0.2", "-W", "2"];
    if let Some(source) = probe.source {
        args.extend(["-I", source]);
    }
    args.push(probe.target);
    let output = tokio::time::timeout(
        Duration::from_secs(15),
        in_netns(&probe.client_netns, &args).output(),
    )
    .await
    .context("ping did not finish")??;
    if !output.status.success() {
        bail!(
            "ping {} from {} failed:\n{}",
            probe.target,
            probe.client_netns,
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(())
}

/// Attempts of one measurement: a server still finishing the previous test (on a loaded
/// machine) refuses the next one ("busy", or a reset connection) for a moment.
const ATTEMPTS: usize = 3;

/// One iperf3 TCP run with `streams` parallel connections; the receiver's total in Gbit/s.
/// A refusal by a server still busy with the previous test is retried after 2 s.
pub async fn run(probe: &Probe, streams: u32, timing: Timing) -> anyhow::Result<f64> {
    let mut attempt = 1;
    loop {
        match run_once(probe, streams, timing).await {
            Err(e) if attempt < ATTEMPTS && server_was_busy(&e) => {
                println!(
                    "iperf3 over {} (attempt {attempt}): {e:#}; again in 2 s",
                    probe.label
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

fn server_was_busy(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    text.contains("the server is busy") || text.contains("unable to connect to server")
}

async fn run_once(probe: &Probe, streams: u32, timing: Timing) -> anyhow::Result<f64> {
    let (seconds, omit, streams) = (
        timing.seconds.to_string(),
        timing.omit.to_string(),
        streams.to_string(),
    );
    let mut args = vec![
        "iperf3",
        "-c",
        probe.target,
        "-p",
        PORT,
        "-t",
        &seconds,
        "-O",
        &omit,
        "-P",
        &streams,
        "-J",
        "--connect-timeout",
        "3000",
    ];
    if let Some(source) = probe.source {
        args.extend(["-B", source]);
    }
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        in_netns(&probe.client_netns, &args).output(),
    )
    .await
    .context("iperf3 did not finish within 30 s")??;
    received_gbps(&output.stdout, &output.stderr)
}

fn received_gbps(stdout: &[u8], stderr: &[u8]) -> anyhow::Result<f64> {
    let report: serde_json::Value = serde_json::from_slice(stdout).with_context(|| {
        format!(
            "iperf3 printed no JSON: {}",
            String::from_utf8_lossy(stderr)
        )
    })?;
    if let Some(error) = report.get("error") {
        bail!("iperf3: {error}");
    }
    report
        .pointer("/end/sum_received/bits_per_second")
        .and_then(|v| v.as_f64())
        .map(|bps| bps / 1e9)
        .context("iperf3 JSON without end.sum_received.bits_per_second")
}
