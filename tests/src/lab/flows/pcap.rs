//! Reading tcpdump's pcap output and deciding whether a flow crossed the underlay encrypted.
//! Encrypted: WireGuard UDP between node addresses and no probe payload in clear text.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One captured IP packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol / IPv6 next header.
    pub protocol: u8,
    /// UDP source and destination ports.
    pub udp_ports: Option<(u16, u16)>,
    /// The IP packet from its header on.
    pub bytes: Vec<u8>,
}

const UDP: u8 = 17;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const LINKTYPE_ETHERNET: u32 = 1;

/// The capture is not a pcap of Ethernet frames.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PcapError {
    #[error("capture too short for a pcap header ({0} bytes)")]
    Short(usize),
    #[error("not a pcap file (magic {0:#010x})")]
    Magic(u32),
    #[error("capture link type {0} is not Ethernet")]
    LinkType(u32),
}

/// The IP packets of a pcap capture (a truncated last record is ignored).
pub fn parse(data: &[u8]) -> Result<Vec<Packet>, PcapError> {
    if data.len() < 24 {
        return Err(PcapError::Short(data.len()));
    }
    let magic = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes"));
    let little = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        other => return Err(PcapError::Magic(other)),
    };
    let read_u32 = |at: usize| {
        let bytes: [u8; 4] = data[at..at + 4].try_into().expect("4 bytes");
        if little {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        }
    };
    let link = read_u32(20);
    if link != LINKTYPE_ETHERNET {
        return Err(PcapError::LinkType(link));
    }
    let mut packets = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let len = read_u32(at + 8) as usize;
        let start = at + 16;
        let Some(frame) = data.get(start..start + len) else {
            break;
        };
        packets.extend(ip_packet(frame));
        at = start + len;
    }
    Ok(packets)
}

fn ip_packet(frame: &[u8]) -> Option<Packet> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(14..)?;
    let (src, dst, protocol, payload_at): (IpAddr, IpAddr, u8, usize) = match ethertype {
        ETHERTYPE_IPV4 if ip.len() >= 20 => {
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(&ip[12..16]).ok()?);
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&ip[16..20]).ok()?);
            (src.into(), dst.into(), ip[9], usize::from(ip[0] & 0x0f) * 4)
        }
        ETHERTYPE_IPV6 if ip.len() >= 40 => {
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?);
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).ok()?);
            (src.into(), dst.into(), ip[6], 40)
        }
        _ => return None,
    };
    let udp_ports = (protocol == UDP)
        .then(|| ip.get(payload_at..payload_at + 4))
        .flatten()
        .map(|p| {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )
        });
    Some(Packet {
        src,
        dst,
        protocol,
        udp_ports,
        bytes: ip.to_vec(),
    })
}

/// WireGuard's transport data message type (the first byte of the UDP payload).
const WG_TRANSPORT_DATA: u8 = 4;
/// A transport data message without data (16-byte header + 16-byte tag): a keepalive.
const WG_KEEPALIVE_LEN: usize = 32;

impl Packet {
    /// The UDP payload, when the packet is UDP.
    fn udp_payload(&self) -> Option<&[u8]> {
        self.udp_ports?;
        let header = match self.src {
            IpAddr::V4(_) => usize::from(self.bytes.first()? & 0x0f) * 4,
            IpAddr::V6(_) => 40,
        };
        self.bytes.get(header + 8..)
    }

    /// A WireGuard transport message carrying data: not a handshake, cookie or keepalive,
    /// which the tunnel sends on its own (a passive keepalive follows received data by 10 s)
    /// and so prove nothing about the probe.
    fn carries_wireguard_data(&self) -> bool {
        self.udp_payload()
            .is_some_and(|p| p.first() == Some(&WG_TRANSPORT_DATA) && p.len() > WG_KEEPALIVE_LEN)
    }
}

/// What the underlay showed of one flow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// WireGuard packets carrying data between node addresses.
    pub wireguard: usize,
    /// Packets carrying the probe's payload in clear text.
    pub plaintext: usize,
}

impl Verdict {
    /// Crossed the underlay, and only inside WireGuard.
    pub fn encrypted(&self) -> bool {
        self.wireguard > 0 && self.plaintext == 0
    }
}

/// Counts WireGuard data packets (UDP between two `node_addrs` with a port in `ports`;
/// handshakes and keepalives are left out) and packets whose bytes hold `marker` in clear text.
pub fn classify(
    packets: &[Packet],
    node_addrs: &BTreeSet<IpAddr>,
    ports: &[u16],
    marker: &[u8],
) -> Verdict {
    let mut verdict = Verdict::default();
    for packet in packets {
        let between_nodes = node_addrs.contains(&packet.src) && node_addrs.contains(&packet.dst);
        let wireguard_port = packet
            .udp_ports
            .is_some_and(|(s, d)| ports.contains(&s) || ports.contains(&d));
        if between_nodes && wireguard_port {
            if packet.carries_wireguard_data() {
                verdict.wireguard += 1;
            }
        } else if contains(&packet.bytes, marker) {
            verdict.plaintext += 1;
        }
    }
    verdict
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pcap file (little endian, Ethernet) holding `frames`.
    pub fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(0xa1b2_c3d4u32.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend([0u8; 8]);
        out.extend(262_144u32.to_le_bytes());
        out.extend(LINKTYPE_ETHERNET.to_le_bytes());
        for frame in frames {
            out.extend([0u8; 8]);
            out.extend((frame.len() as u32).to_le_bytes());
            out.extend((frame.len() as u32).to_le_bytes());
            out.extend(frame);
        }
        out
    }

    /// An Ethernet frame with an IP packet of `protocol` carrying `payload` (UDP: ports first).
    pub fn frame(src: &str, dst: &str, protocol: u8, payload: &[u8]) -> Vec<u8> {
        let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let mut f = vec![0u8; 12];
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend(ETHERTYPE_IPV4.to_be_bytes());
                let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0];
                h.extend(s.octets());
                h.extend(d.octets());
                f.extend(h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend(ETHERTYPE_IPV6.to_be_bytes());
                let mut h = vec![0x60, 0, 0, 0, 0, 0, protocol, 64];
                h.extend(s.octets());
                h.extend(d.octets());
                f.extend(h);
            }
            _ => panic!("mixed families"),
        }
        f.extend(payload);
        f
    }

    fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let mut p = sport.to_be_bytes().to_vec();
        p.extend(dport.to_be_bytes());
        p.extend([0, 0, 0, 0]);
        p.extend(data);
        p
    }

    #[test]
    fn parses_both_families_and_udp_ports() {
        let data = pcap(&[
            frame("192.0.2.11", "192.0.2.12", UDP, &udp(51820, 51820, b"x")),
            frame("2001:db8:1:1::2", "2001:db8:1:2::2", 58, b"ping"),
            vec![0u8; 10],
        ]);
        let packets = parse(&data).unwrap();
        assert_eq!(packets.len(), 2, "the short frame is skipped");
        assert_eq!(packets[0].udp_ports, Some((51820, 51820)));
        assert_eq!(packets[1].src.to_string(), "2001:db8:1:1::2");
        assert_eq!(packets[1].protocol, 58);
    }

    #[test]
    fn rejects_what_is_not_an_ethernet_pcap() {
        assert_eq!(parse(&[0; 5]), Err(PcapError::Short(5)));
        assert_eq!(parse(&[0; 24]), Err(PcapError::Magic(0)));
        let mut raw = pcap(&[]);
        raw[20] = 101;
        assert_eq!(parse(&raw), Err(PcapError::LinkType(101)));
    }

    #[test]
    fn classification() {
        let nodes: BTreeSet<IpAddr> = ["192.0.2.11", "192.0.2.12"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let marker = b"ke-lab-probe";
        let wireguard =
            |message: &[u8]| frame("192.0.2.11", "192.0.2.12", UDP, &udp(51820, 51820, message));
        let data = [&[4u8, 0, 0, 0][..], &[0x5a; 60]].concat();
        let wg = wireguard(&data);
        let keepalive = wireguard(&[&[4u8, 0, 0, 0][..], &[0; 28]].concat());
        let handshake = wireguard(&[&[1u8, 0, 0, 0][..], &[0x5a; 144]].concat());
        let plain = frame(
            "198.18.1.2",
            "198.18.2.2",
            1,
            b"\x08\0\0\0ke-lab-probeke-lab-probe",
        );
        let nat = frame("192.0.2.11", "192.0.2.200", 1, b"\x08\0ke-lab-probe");
        let other_udp = frame(
            "192.0.2.11",
            "192.0.2.12",
            UDP,
            &udp(53, 53, b"ke-lab-probe"),
        );
        let unrelated = frame("192.0.2.11", "192.0.2.12", 6, b"nothing");
        type Case<'a> = (&'a str, Vec<Vec<u8>>, usize, usize, bool);
        let cases: Vec<Case> = vec![
            ("only WireGuard", vec![wg.clone(), wg.clone()], 2, 0, true),
            ("plaintext pod traffic", vec![plain.clone()], 0, 1, false),
            ("WireGuard and a leak", vec![wg.clone(), plain], 1, 1, false),
            ("NAT to the outside", vec![nat], 0, 1, false),
            (
                "UDP on another port is not WireGuard",
                vec![other_udp],
                0,
                1,
                false,
            ),
            ("nothing on the wire", vec![unrelated], 0, 0, false),
            (
                "a keepalive or handshake carries no probe",
                vec![keepalive, handshake],
                0,
                0,
                false,
            ),
        ];
        for (name, frames, wireguard, plaintext, encrypted) in cases {
            let packets = parse(&pcap(&frames)).unwrap();
            let verdict = classify(&packets, &nodes, &[51820, 51821], marker);
            assert_eq!(
                verdict,
                Verdict {
                    wireguard,
                    plaintext
                },
                "{name}"
            );
            assert_eq!(verdict.encrypted(), encrypted, "{name}");
        }
    }
}
