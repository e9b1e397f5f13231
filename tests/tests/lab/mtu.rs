//! MTU (SPEC §4.3): the WireGuard interfaces get the underlay MTU minus 60 (IPv4) / 80 (IPv6),
//! a pod packet of exactly that size crosses to another node encrypted with DF set (filling
//! the underlay MTU), and one byte more is refused with the WireGuard MTU in the error.

use std::time::Duration;

use kube_encrypt_api::crd::EncryptionState;
use kube_encrypt_api::net::Family;
use kube_encrypt_tests::lab::testing::LabSession;

use super::capture::{self, Capture};
use super::inspect;
use super::support::*;

/// IPv4 + ICMP headers, IPv6 + ICMPv6 headers: ping's payload is the packet size minus these.
fn ping_headers(family: Family) -> u32 {
    match family {
        Family::V4 => 28,
        Family::V6 => 48,
    }
}

fn wireguard_overhead(family: Family) -> u32 {
    match family {
        Family::V4 => 60,
        Family::V6 => 80,
    }
}

fn pod_2_1(family: Family) -> &'static str {
    match family {
        Family::V4 => "198.18.2.2",
        Family::V6 => "2001:db8:1:2::2",
    }
}

/// A DF ping of `size`-byte packets from pod-1-1 to pod-2-1, with a capture on node-1.
fn df_ping(session: &LabSession, family: Family, size: u32) -> (std::process::Output, Capture) {
    let capture = Capture::start("node-1");
    let payload = (size - ping_headers(family)).to_string();
    let ping = capture::ping(
        session,
        "pod-1-1",
        pod_2_1(family),
        &[
            "-M", "do", "-s", &payload, "-c", "2", "-i", "0.3", "-W", "2",
        ],
    );
    (ping, capture)
}

/// The largest packet that crosses is exactly the WireGuard MTU; one byte more is refused.
fn assert_path_mtu(session: &LabSession, family: Family, wg_mtu: u32, underlay_mtu: u32) {
    let (ping, capture) = df_ping(session, family, wg_mtu);
    let packets = capture.finish();
    assert_eq!(
        capture::ping_counts(&stdout(&ping)),
        (2, 2),
        "{family}: a {wg_mtu}-byte DF packet crosses:\n{}",
        text(&ping)
    );
    let verdict = capture::verdict(&packets);
    assert!(
        verdict.encrypted(),
        "{family} {wg_mtu}-byte packets: {verdict:?}"
    );
    let largest = capture::largest_wireguard_packet(&packets);
    assert_eq!(
        largest as u32,
        wg_mtu + wireguard_overhead(family),
        "{family}: a full WireGuard packet fills the underlay MTU {underlay_mtu}"
    );

    let (ping, capture) = df_ping(session, family, wg_mtu + 1);
    drop(capture);
    let (_, received) = capture::ping_counts(&stdout(&ping));
    let said = text(&ping);
    // "Frag needed and DF set (mtu = 1440)", "Packet too big: mtu=1420", "mtu: 1420"
    let names_mtu = ["mtu = ", "mtu=", "mtu: "]
        .iter()
        .any(|p| said.contains(&format!("{p}{wg_mtu}")));
    assert!(
        received == 0 && names_mtu,
        "{family}: a {}-byte DF packet is refused naming MTU {wg_mtu}:\n{said}",
        wg_mtu + 1
    );
}

fn check_lab_mtu(underlay_mtu: u32, want: [(Family, u32); 2]) {
    let agent = agent_bin();
    let session = session();
    let mtu = underlay_mtu.to_string();
    let lab = session.up(&[
        "--nodes",
        "2",
        "--ipv6",
        "--mtu",
        &mtu,
        "--agent-bin",
        &agent,
    ]);
    let rt = runtime();
    let client = rt.block_on(client(&lab.kubeconfig()));
    rt.block_on(async {
        enable_encryption_for(&client, true).await;
        let encrypted = [
            ("node-1", EncryptionState::Encrypted),
            ("node-2", EncryptionState::Encrypted),
        ];
        for family in Family::ALL {
            wait_family_states(&client, family, &encrypted, Duration::from_secs(60)).await;
        }
    });
    for (family, wg_mtu) in want {
        for node in ["node-1", "node-2"] {
            assert_eq!(
                inspect::link_mtu(&session, node, inspect::interface(family)),
                Some(wg_mtu),
                "{node} {family} WireGuard MTU over a {underlay_mtu} underlay"
            );
        }
        assert_path_mtu(&session, family, wg_mtu, underlay_mtu);
    }
}

#[test]
fn wireguard_mtu_follows_a_1500_underlay_and_full_size_packets_cross() {
    check_lab_mtu(1500, [(Family::V4, 1440), (Family::V6, 1420)]);
}

#[test]
fn wireguard_mtu_follows_a_9000_underlay_and_full_size_packets_cross() {
    check_lab_mtu(9000, [(Family::V4, 8940), (Family::V6, 8920)]);
}
