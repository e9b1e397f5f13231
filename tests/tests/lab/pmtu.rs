//! Path MTU safety in the lab: pods have MTU 1500, the WireGuard interfaces 1440, and both
//! nodes drop every ICMP "fragmentation needed" they would send or forward, as filtering
//! firewalls do — so a pod never learns the tunnel's MTU. A 1 MiB TCP transfer between pods
//! on different nodes completes anyway, because the agents clamp the TCP MSS of connections
//! entering the tunnel (the root test `agent/tests/dataplane/mss.rs` shows the same transfer
//! stalling without the clamp).

use std::process::{Child, Stdio};
use std::time::Duration;

use kube_encrypt_api::net::Family;
use kube_encrypt_tests::lab::testing::LabSession;

use super::capture::{self, Capture};
use super::inspect;
use super::support::*;

/// Drops the ICMP that path MTU discovery needs, in a node's own table.
const DROP_PMTU_ICMP: &str = "table inet ket-test-no-pmtu {
  chain output {
    type filter hook output priority 0; policy accept;
    icmp type destination-unreachable icmp code frag-needed drop
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    icmp type destination-unreachable icmp code frag-needed drop
  }
}";

const MEGABYTE: usize = 1 << 20;
/// How long the transfer may take (it takes well under a second when it works).
const LIMIT_SECONDS: u64 = 20;

/// Counts the bytes of one TCP connection on port 5201 until EOF, then prints the count.
const SINK: &str = include_str!("../../assets/tcp_sink.py");

/// Sends 1 MiB of the capture's marker to `argv[1]`:5201, closes its side and waits for the
/// sink to close.
const SOURCE: &str = "import socket, sys
c = socket.create_connection((sys.argv[1], 5201), timeout=float(sys.argv[2]))
c.sendall((b'ke-e2e-mark' * 95326)[:1048576])
c.shutdown(socket.SHUT_WR)
c.recv(1)
";

#[test]
fn a_1mb_tcp_transfer_crosses_the_mesh_with_pmtu_icmp_dropped() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&["--nodes", "2", "--agent-bin", &agent]);
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    rt.block_on(async {
        enable_encryption_for(&client, false).await;
        wait_ipv4_encrypted(&client, &["node-1", "node-2"]).await;
    });
    for node in ["node-1", "node-2"] {
        assert_eq!(
            inspect::link_mtu(&session, node, inspect::interface(Family::V4)),
            Some(1440)
        );
        let load = format!("printf '%s' '{DROP_PMTU_ICMP}' | nft -f -");
        inspect::exec_ok(&session, node, &["sh", "-c", &load]);
    }

    let capture = Capture::start("node-1");
    let received = transfer(&session, "pod-2-1", "198.18.2.2");
    let verdict = capture::verdict(&capture.finish());
    assert_eq!(
        received,
        Some(MEGABYTE),
        "1 MiB crosses although no node may send 'fragmentation needed'"
    );
    assert!(
        verdict.encrypted(),
        "the transfer was encrypted: {verdict:?}"
    );
}

/// 1 MiB from pod-1-1 to `sink_pod` at `address`; the bytes the sink received.
fn transfer(session: &LabSession, sink_pod: &str, address: &str) -> Option<usize> {
    let seconds = LIMIT_SECONDS.to_string();
    let bound = (LIMIT_SECONDS + 5).to_string();
    let sink = session
        .command(&[
            "exec", sink_pod, "--", "timeout", &bound, "python3", "-c", SINK, &seconds,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sink");
    let sink = Sink(Some(sink));
    for _ in 0..50 {
        let source = inspect::exec(
            session,
            "pod-1-1",
            &[
                "timeout", &seconds, "python3", "-c", SOURCE, address, &seconds,
            ],
        );
        if stderr(&source).contains("Connection refused") {
            // The sink is not listening yet.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        return sink.received();
    }
    panic!("the sink in {sink_pod} never listened");
}

/// The receiving end; waited for when dropped (it is bounded by `timeout` and its sockets'
/// own timeouts).
struct Sink(Option<Child>);

impl Sink {
    fn received(mut self) -> Option<usize> {
        let output = self.0.take()?.wait_with_output().ok()?;
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.wait();
        }
    }
}
