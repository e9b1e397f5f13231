//! Path MTU safety: pods have MTU 1500, the tunnel less (the underlay path is 1400, the
//! WireGuard interface 1340), and ICMP "fragmentation needed" is dropped, as filtering
//! firewalls do. Without the agent's MSS clamp a 1 MiB TCP transfer between pods on different
//! nodes stalls (full-size segments vanish); with it the transfer completes.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube_encrypt_api::crd::BackendKind;
use kube_encrypt_api::dataplane::FirewallSpec;
use wireguard_control::Key;

use super::encryption::assert_ok;
use super::lab::{try_run, Lab, PodNetns, Side};
use super::mesh::{public, Mesh};
use super::node::{run_step_in, Op};

/// Drops every ICMP "fragmentation needed" / ICMPv6 "packet too big" the node sends or
/// forwards: path MTU discovery cannot work through this node.
const DROP_PMTU_ICMP: &str = "table inet ket-test-no-pmtu {
  chain output {
    type filter hook output priority 0; policy accept;
    icmp type destination-unreachable icmp code frag-needed drop
    icmpv6 type packet-too-big drop
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    icmp type destination-unreachable icmp code frag-needed drop
    icmpv6 type packet-too-big drop
  }
}
";

#[test]
fn a_1mb_tcp_transfer_between_pods_works_with_pmtu_icmp_dropped() {
    let found = try_run("sh", &["-c", "command -v python3"])
        .status
        .success();
    assert!(
        found,
        "this test needs python3 on PATH (its TCP source and sink)"
    );
    let lab = Lab::new("mss");
    let mesh = Mesh {
        mtu: 1340,
        ..Mesh::v4(BackendKind::Userspace)
    };
    let keys = [Key::generate_private(), Key::generate_private()];
    let sides = [(&lab.a, "node-a"), (&lab.b, "node-b")];
    let mut pods = Vec::new();
    let mut specs = Vec::new();
    for (i, (side, _)) in sides.iter().enumerate() {
        side.ip(&["link", "set", "eth0", "mtu", "1400"]);
        pods.push(side.attach_pod_netns());
        load_nft(side, DROP_PMTU_ICMP);
        let (peer, peer_name) = sides[1 - i];
        let mut desired = mesh.dataplane(side, peer, public(&keys[1 - i]), peer_name);
        let clamped = desired.firewall.clone().unwrap();
        assert_eq!(clamped.clamp_mss, [mesh.interface], "as planned");
        desired.firewall = Some(FirewallSpec {
            clamp_mss: vec![],
            ..clamped.clone()
        });
        let built = run_step_in(
            side,
            "build-unclamped",
            mesh.step(side, &keys[i], vec![Op::Build(Box::new(desired))]),
        );
        assert_ok(&built, sides[i].1);
        specs.push(clamped);
    }
    let small = pods[0].exec(&["ping", "-c", "3", "-W", "2", &pods[1].v4.to_string()]);
    assert!(small.status.success(), "small packets cross the tunnel");

    assert!(
        !transfer(&pods, Duration::from_secs(8)),
        "control: without the clamp full-size segments are lost and the transfer stalls"
    );

    for (i, (side, name)) in sides.iter().enumerate() {
        let clamp = Op::ReplaceFirewall(Box::new(specs[i].clone()));
        let report = run_step_in(side, "clamp", mesh.step(side, &keys[i], vec![clamp]));
        assert_ok(&report, name);
    }
    assert!(
        transfer(&pods, Duration::from_secs(20)),
        "with the MSS clamped to the tunnel's MTU the transfer completes"
    );
}

fn load_nft(side: &Side, ruleset: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &side.netns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ruleset.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft -f in {}", side.netns);
}

/// Bytes sent from pod a to pod b.
const MEGABYTE: usize = 1 << 20;

/// Counts the bytes of one TCP connection on port 5201 until EOF, then prints the count.
const SINK: &str = include_str!("../../../tests/assets/tcp_sink.py");

/// Sends 1 MiB to `argv[1]`:5201, then closes its side and waits for the sink to close.
const SOURCE: &str = "import socket, sys
c = socket.create_connection((sys.argv[1], 5201), timeout=float(sys.argv[2]))
c.sendall(b'k' * 1048576)
c.shutdown(socket.SHUT_WR)
c.recv(1)
";

/// 1 MiB from pod a to pod b over one TCP connection, within `limit`; whether all of it
/// arrived.
fn transfer(pods: &[PodNetns], limit: Duration) -> bool {
    let seconds = limit.as_secs().to_string();
    let sink = Command::new("ip")
        .args(["netns", "exec", &pods[1].netns, "timeout"])
        .arg((limit.as_secs() + 5).to_string())
        .args(["python3", "-c", SINK, &seconds])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sink");
    let sink = Sink(Some(sink));
    let target = pods[1].v4.to_string();
    for _ in 0..50 {
        let source = pods[0].exec(&[
            "timeout", &seconds, "python3", "-c", SOURCE, &target, &seconds,
        ]);
        let refused = String::from_utf8_lossy(&source.stderr).contains("Connection refused");
        if refused {
            // The sink is not listening yet.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let received = sink.received();
        println!("source {}; sink received {received:?} bytes", source.status);
        return received == Some(MEGABYTE);
    }
    panic!("the sink in {} never listened", pods[1].netns);
}

/// The receiving end, stopped (by PID) if still running when dropped.
struct Sink(Option<Child>);

impl Sink {
    /// Waits for the sink to report (it is bounded by its own timeouts).
    fn received(mut self) -> Option<usize> {
        let output = self.0.take()?.wait_with_output().ok()?;
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // `ip netns exec` exec'ed into timeout, which passes the signal on to python.
            let _ = try_run("kill", &["-TERM", &child.id().to_string()]);
            let _ = child.wait();
        }
    }
}
