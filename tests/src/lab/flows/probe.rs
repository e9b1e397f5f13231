//! Probing one flow: a few pings with a marker payload from the source namespace, while
//! tcpdump captures on the source node's underlay veth (inside `ke-lab`). Bounded: ping
//! sends 3 packets and waits at most 2 s for each; the capture stops after the ping.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::matrix::{addr_of, Endpoint, Flow};
use super::pcap::{self, Verdict};
use crate::lab::sys::{self, describe};
use crate::lab::topology::{Topology, EXT_NETNS, EXT_UNDERLAY_PEER, LAB_NETNS};

/// The probe's payload marker (`ping -p`): "ke-lab-probe".
pub const MARKER: &[u8] = b"ke-lab-probe";
const PINGS: u32 = 3;
const CAPTURE_LIMIT: &str = "2000";

/// What a probe saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub sent: u32,
    pub replies: u32,
    pub verdict: Verdict,
}

impl Observation {
    pub fn works(&self) -> bool {
        self.replies > 0
    }
}

/// Probing failed (not: the flow failed, which is an observation).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot run `{0}`: {1}")]
    Spawn(String, std::io::Error),
    #[error("tcpdump on {iface} did not start: {message}")]
    Capture { iface: String, message: String },
    #[error("reading the capture: {0}")]
    Pcap(#[from] pcap::PcapError),
}

/// The namespace traffic of `endpoint` starts in.
fn netns_of(topo: &Topology, endpoint: Endpoint) -> String {
    match endpoint {
        Endpoint::Pod(i, j) => topo.node(i).expect("planned node").pods[usize::from(j) - 1]
            .netns
            .clone(),
        Endpoint::Node(i) => topo.node(i).expect("planned node").netns.clone(),
        Endpoint::Ext => EXT_NETNS.to_string(),
    }
}

/// The `ke-lab` side of the veth the source's traffic enters the underlay through.
fn capture_iface(topo: &Topology, endpoint: Endpoint) -> String {
    match endpoint {
        Endpoint::Pod(i, _) | Endpoint::Node(i) => {
            topo.node(i).expect("planned node").underlay_peer.clone()
        }
        Endpoint::Ext => EXT_UNDERLAY_PEER.to_string(),
    }
}

/// Runs the probe of `flow`; `ports` are the WireGuard ports of the live config.
pub fn probe(topo: &Topology, flow: &Flow, ports: &[u16]) -> Result<Observation, ProbeError> {
    let iface = capture_iface(topo, flow.src);
    let capture = Capture::start(&iface)?;
    let dst = addr_of(topo, flow.dst, flow.family);
    let ping = ping(&netns_of(topo, flow.src), dst);
    let packets = pcap::parse(&capture.finish())?;
    let node_addrs: BTreeSet<IpAddr> = topo
        .nodes
        .iter()
        .flat_map(|n| topo.families().into_iter().map(move |f| n.addr(f)))
        .collect();
    let verdict = pcap::classify(&packets, &node_addrs, ports, MARKER);
    let (sent, replies) = ping?;
    Ok(Observation {
        sent,
        replies,
        verdict,
    })
}

fn marker_hex() -> String {
    MARKER.iter().map(|b| format!("{b:02x}")).collect()
}

/// `(sent, received)` of a bounded ping from `netns` to `dst`.
fn ping(netns: &str, dst: IpAddr) -> Result<(u32, u32), ProbeError> {
    let count = PINGS.to_string();
    let pattern = marker_hex();
    let dst = dst.to_string();
    let mut cmd = sys::in_netns(
        netns,
        &[
            "timeout", "10", "ping", "-n", "-c", &count, "-i", "0.2", "-W", "2", "-s", "64", "-p",
            &pattern, &dst,
        ],
    );
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ProbeError::Spawn(describe(&cmd), e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok((PINGS, received(&text)))
}

/// The "N received" of ping's summary (0 when absent).
fn received(text: &str) -> u32 {
    text.lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(',').find(|part| part.contains("received")))
        .and_then(|part| part.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A running tcpdump on an interface of the `ke-lab` namespace (a node's underlay veth);
/// stopped and reaped on `finish` or drop. Lab tests capture through it too.
pub struct Capture {
    child: Child,
    output: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Capture {
    /// Starts capturing IP packets on `iface` and returns once tcpdump is listening.
    pub fn start(iface: &str) -> Result<Self, ProbeError> {
        let mut cmd: Command = sys::in_netns(
            LAB_NETNS,
            &[
                "tcpdump",
                "-i",
                iface,
                "-n",
                "-U",
                "--immediate-mode",
                "-c",
                CAPTURE_LIMIT,
                "-w",
                "-",
                "ip or ip6",
            ],
        );
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ProbeError::Spawn(describe(&cmd), e))?;
        let mut stdout = child.stdout.take().expect("piped");
        let output = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.read_to_end(&mut bytes);
            bytes
        });
        let stderr = child.stderr.take().expect("piped");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = ready_tx.send(line);
            }
        });
        let mut capture = Self {
            child,
            output: Some(output),
        };
        capture.wait_listening(iface, &ready_rx)?;
        Ok(capture)
    }

    fn wait_listening(
        &mut self,
        iface: &str,
        lines: &mpsc::Receiver<String>,
    ) -> Result<(), ProbeError> {
        let mut seen = Vec::new();
        loop {
            match lines.recv_timeout(Duration::from_secs(5)) {
                Ok(line) if line.contains("listening on") => return Ok(()),
                Ok(line) => seen.push(line),
                Err(_) => {
                    return Err(ProbeError::Capture {
                        iface: iface.to_string(),
                        message: seen.join("; "),
                    });
                }
            }
        }
    }

    /// Stops tcpdump (after a moment for the last packets) and returns the pcap bytes.
    pub fn finish(mut self) -> Vec<u8> {
        std::thread::sleep(Duration::from_millis(300));
        self.stop();
        self.output
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        for _ in 0..30 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ping_summaries() {
        let cases = [
            (
                "3 packets transmitted, 3 received, 0% packet loss, time 402ms",
                3,
            ),
            (
                "3 packets transmitted, 1 received, +2 errors, 66.6667% packet loss",
                1,
            ),
            (
                "3 packets transmitted, 0 received, 100% packet loss, time 2040ms",
                0,
            ),
            ("ping: connect: Network is unreachable", 0),
        ];
        for (text, want) in cases {
            assert_eq!(
                received(&format!("PING x\n\n--- x ping statistics ---\n{text}\n")),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn the_marker_is_a_valid_ping_pattern() {
        let hex = marker_hex();
        assert!(hex.len() <= 32, "ping -p takes at most 16 bytes");
        assert_eq!(hex, "6b652d6c61622d70726f6265");
    }
}
