//! The baseline of agent_scale: the same peers written by hand into the same userspace
//! WireGuard implementation, in the same bench node and the same run — `wg setconf` of one
//! file holding every peer, then `wg set` of one more peer. Nothing here knows about
//! Kubernetes: it is the least any tool must do to program those peers.

use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::net::{BenchNode, Workspace};
use super::userspace::Implementation;

/// The baseline's interface and port (the agent's are `wg-encrypt` and 51820).
const INTERFACE: &str = "wg-baseline";
const LISTEN_PORT: u16 = 51899;

/// A peer as an operator would write it: key, allowed IPs and endpoint.
#[derive(Clone, Debug)]
pub struct Peer {
    pub public_key_base64: String,
    pub allowed_ips: String,
    pub endpoint: String,
}

/// How long the hand-written configuration took.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// `wg setconf` of every peer at once.
    pub bulk: Duration,
    /// `wg set` of one more peer on top of them.
    pub one_more: Duration,
}

/// Starts `implementation` as [`INTERFACE`] in `node`, writes `peers` with `wg setconf`,
/// checks they all arrived, adds `extra` with `wg set`, then deletes the interface (the
/// daemon exits with it).
pub fn measure(
    ws: &Workspace,
    node: &BenchNode,
    implementation: &Implementation,
    (peers, extra): (&[Peer], &Peer),
) -> anyhow::Result<Timings> {
    implementation.start(node, INTERFACE)?;
    let result = timed_writes(ws, node, peers, extra);
    let removed = node.run(&["ip", "link", "del", INTERFACE]);
    let timings = result?;
    removed.context("delete the baseline interface")?;
    Ok(timings)
}

fn timed_writes(
    ws: &Workspace,
    node: &BenchNode,
    peers: &[Peer],
    extra: &Peer,
) -> anyhow::Result<Timings> {
    let private_key = node.stdout(&["wg", "genkey"])?;
    let file = ws.dir.join("baseline.conf");
    std::fs::write(&file, config_text(private_key.trim(), peers))
        .with_context(|| format!("write {}", file.display()))?;
    let path = file.display().to_string();
    let started = Instant::now();
    node.run(&["wg", "setconf", INTERFACE, &path])?;
    let bulk = started.elapsed();
    let listed = node.stdout(&["wg", "show", INTERFACE, "peers"])?;
    anyhow::ensure!(
        listed.lines().count() == peers.len(),
        "wg setconf programmed {} of {} peers",
        listed.lines().count(),
        peers.len()
    );
    let started = Instant::now();
    node.run(&[
        "wg",
        "set",
        INTERFACE,
        "peer",
        &extra.public_key_base64,
        "allowed-ips",
        &extra.allowed_ips,
        "endpoint",
        &extra.endpoint,
    ])?;
    Ok(Timings {
        bulk,
        one_more: started.elapsed(),
    })
}

/// The `wg setconf` file: the interface, then one section per peer.
fn config_text(private_key: &str, peers: &[Peer]) -> String {
    let mut text = format!("[Interface]\nPrivateKey = {private_key}\nListenPort = {LISTEN_PORT}\n");
    for peer in peers {
        let _ = write!(
            text,
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}\nEndpoint = {}\n",
            peer.public_key_base64, peer.allowed_ips, peer.endpoint
        );
    }
    text
}
