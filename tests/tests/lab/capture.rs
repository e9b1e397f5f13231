//! A bounded tcpdump on a node's underlay veth (the `ke-lab` side, where `flows` captures too),
//! and pings whose payload carries a marker, so a capture shows whether they crossed in clear.

use std::net::IpAddr;

use kube_encrypt_tests::lab::flows::pcap::{self, Packet, Verdict};
use kube_encrypt_tests::lab::flows::probe;

/// Ping payload marker of these tests ("ke-e2e-mark"), found in clear text by [`verdict`].
pub const MARKER: &[u8] = b"ke-e2e-mark";

pub fn marker_hex() -> String {
    MARKER.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running tcpdump on `node-<i>`'s underlay veth: the lab's own capture, as `flows` uses it.
pub struct Capture(probe::Capture);

impl Capture {
    /// Starts capturing IP packets entering the underlay from `node` (such as "node-1").
    pub fn start(node: &str) -> Self {
        let capture = probe::Capture::start(node)
            .unwrap_or_else(|e| panic!("tcpdump on {node} did not start: {e}"));
        Self(capture)
    }

    /// Stops the capture (after a moment for the last packets) and parses it.
    pub fn finish(self) -> Vec<Packet> {
        pcap::parse(&self.0.finish()).unwrap_or_else(|e| panic!("reading the capture: {e}"))
    }
}

/// WireGuard packets between lab nodes (UDP 51820/51821) and packets with the marker in clear.
pub fn verdict(packets: &[Packet]) -> Verdict {
    let nodes: std::collections::BTreeSet<IpAddr> = (1..=9u8)
        .flat_map(|i| {
            [
                format!("192.0.2.1{i}").parse().expect("valid"),
                format!("2001:db8::1{i}").parse().expect("valid"),
            ]
        })
        .collect();
    pcap::classify(packets, &nodes, &[51820, 51821], MARKER)
}

/// The largest WireGuard packet (IP length) in the capture.
pub fn largest_wireguard_packet(packets: &[Packet]) -> usize {
    packets
        .iter()
        .filter(|p| {
            p.udp_ports
                .is_some_and(|(s, d)| [s, d].iter().any(|port| [51820, 51821].contains(port)))
        })
        .map(|p| p.bytes.len())
        .max()
        .unwrap_or(0)
}

/// A bounded ping from `from` (a pod, node or `ext`) to `dst` with the marker as payload;
/// `args` are ping's options (count, interval, size …).
pub fn ping(
    session: &kube_encrypt_tests::lab::testing::LabSession,
    from: &str,
    dst: &str,
    args: &[&str],
) -> std::process::Output {
    let pattern = marker_hex();
    let mut command = vec![
        "exec", from, "--", "timeout", "30", "ping", "-n", "-p", &pattern,
    ];
    command.extend_from_slice(args);
    command.push(dst);
    session.run(&command)
}

/// `(transmitted, received)` from ping's summary line ((0, 0) when there is none).
pub fn ping_counts(output: &str) -> (u32, u32) {
    let Some(line) = output.lines().find(|l| l.contains("packets transmitted")) else {
        return (0, 0);
    };
    let number = |word: &str| {
        line.split(',')
            .find(|part| part.contains(word))
            .and_then(|part| part.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (number("transmitted"), number("received"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ping_summaries() {
        let cases = [
            ("5 packets transmitted, 5 received, 0% packet loss", (5, 5)),
            (
                "3 packets transmitted, 0 received, +3 errors, 100% packet loss",
                (3, 0),
            ),
            ("ping: sendmsg: Message too long", (0, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(ping_counts(&format!("PING x\n{text}\n")), want, "{text}");
        }
    }
}
