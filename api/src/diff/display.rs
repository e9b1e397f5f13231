//! One readable log line per [`Change`], close to the `ip` / `wg` command it stands for:
//!
//! ```text
//! IPv4 add peer node-3 (key YFtnIPi7…) endpoint 192.0.2.13:51820 allowed-ips 198.18.3.0/24
//! IPv4 add route 198.18.2.0/24 dev wg-encrypt table 51820
//! IPv4 add rule priority 99 not fwmark 0x100000/0x100000 lookup 51820
//! ```
//! Private keys never appear (the plan does not hold them); public keys are shortened.

use std::fmt::{self, Display, Formatter};

use ipnet::IpNet;

use crate::crd::BackendKind;
use crate::dataplane::{FirewallSpec, InterfaceSpec, PeerSpec, Route, RouteKind, RuleSpec};
use crate::key::WireGuardKey;

use super::Change;

/// Characters of a public key shown in logs.
const KEY_PREFIX_LEN: usize = 8;

impl Display for Change {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateInterface { family, spec } => {
                write!(f, "{family} create interface {}", InterfaceLine(spec))
            }
            Change::UpdateInterface { family, from, to } => {
                write!(f, "{family} update interface {}: ", to.name)?;
                interface_delta(f, from, to)
            }
            Change::DeleteInterface { family, name } => {
                write!(f, "{family} delete interface {name}")
            }
            Change::AddPeer { family, peer, .. } => {
                write!(
                    f,
                    "{family} add peer {} ",
                    Who(&peer.node, &peer.public_key)
                )?;
                peer_line(f, peer)
            }
            Change::UpdatePeer {
                family, from, to, ..
            } => {
                write!(f, "{family} update peer {} ", Who(&to.node, &to.public_key))?;
                peer_delta(f, from, to)
            }
            Change::RemovePeer {
                family,
                public_key,
                node,
                ..
            } => {
                write!(f, "{family} remove peer {}", Who(node, public_key))
            }
            Change::AddRoute { family, route } => {
                write!(f, "{family} add route {}", RouteLine(route))
            }
            Change::DeleteRoute { family, route } => {
                write!(f, "{family} delete route {}", RouteLine(route))
            }
            Change::AddRule(rule) => write!(f, "{} add rule {}", rule.family, RuleLine(rule)),
            Change::DeleteRule(rule) => write!(f, "{} delete rule {}", rule.family, RuleLine(rule)),
            Change::ReplaceFirewall(spec) => write!(f, "replace firewall: {}", FirewallLine(spec)),
            Change::DeleteFirewall => f.write_str("delete firewall table"),
            Change::SetSysctl(s) => write!(f, "set sysctl {} = {}", s.key, s.value),
            Change::RestoreSysctl { key } => write!(f, "restore sysctl {key}"),
        }
    }
}

/// `node-3 (key YFtnIPi7…)`.
struct Who<'a>(&'a str, &'a WireGuardKey);

impl Display for Who<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let key = self.1.to_base64();
        write!(f, "{} (key {}…)", self.0, &key[..KEY_PREFIX_LEN])
    }
}

fn backend(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Kernel => "kernel",
        BackendKind::Userspace => "userspace",
    }
}

/// `198.18.1.0/24,198.18.1.254/32`, or `none`.
struct Nets<'a>(&'a [IpNet]);

impl Display for Nets<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

fn keepalive(seconds: Option<u16>) -> String {
    seconds.map_or_else(|| "off".to_owned(), |s| format!("{s}s"))
}

fn address(net: Option<IpNet>) -> String {
    net.map_or_else(|| "none".to_owned(), |n| n.to_string())
}

struct InterfaceLine<'a>(&'a InterfaceSpec);

impl Display for InterfaceLine<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let i = self.0;
        write!(
            f,
            "{} ({}) port {} fwmark {:#x} mtu {} address {}",
            i.name,
            backend(i.backend),
            i.listen_port,
            i.fwmark,
            i.mtu,
            address(i.address)
        )
    }
}

/// The fields that differ, `field old -> new`, comma separated.
fn interface_delta(f: &mut Formatter<'_>, from: &InterfaceSpec, to: &InterfaceSpec) -> fmt::Result {
    let mut parts = Vec::new();
    if from.backend != to.backend {
        parts.push(format!(
            "backend {} -> {}",
            backend(from.backend),
            backend(to.backend)
        ));
    }
    if from.listen_port != to.listen_port {
        parts.push(format!("port {} -> {}", from.listen_port, to.listen_port));
    }
    if from.fwmark != to.fwmark {
        parts.push(format!("fwmark {:#x} -> {:#x}", from.fwmark, to.fwmark));
    }
    if from.mtu != to.mtu {
        parts.push(format!("mtu {} -> {}", from.mtu, to.mtu));
    }
    if from.address != to.address {
        parts.push(format!(
            "address {} -> {}",
            address(from.address),
            address(to.address)
        ));
    }
    f.write_str(&parts.join(", "))
}

fn peer_line(f: &mut Formatter<'_>, peer: &PeerSpec) -> fmt::Result {
    write!(
        f,
        "endpoint {} allowed-ips {}",
        peer.endpoint,
        Nets(&peer.allowed_ips)
    )?;
    if let Some(seconds) = peer.persistent_keepalive {
        write!(f, " keepalive {seconds}s")?;
    }
    Ok(())
}

/// The fields that differ; allowed IPs as `+added -removed`.
fn peer_delta(f: &mut Formatter<'_>, from: &PeerSpec, to: &PeerSpec) -> fmt::Result {
    let mut parts = Vec::new();
    if from.endpoint != to.endpoint {
        parts.push(format!("endpoint {} -> {}", from.endpoint, to.endpoint));
    }
    if from.allowed_ips != to.allowed_ips {
        let added: Vec<IpNet> = without(&to.allowed_ips, &from.allowed_ips);
        let removed: Vec<IpNet> = without(&from.allowed_ips, &to.allowed_ips);
        let mut delta = String::from("allowed-ips");
        if !added.is_empty() {
            delta.push_str(&format!(" +{}", Nets(&added)));
        }
        if !removed.is_empty() {
            delta.push_str(&format!(" -{}", Nets(&removed)));
        }
        parts.push(delta);
    }
    if from.persistent_keepalive != to.persistent_keepalive {
        parts.push(format!(
            "keepalive {} -> {}",
            keepalive(from.persistent_keepalive),
            keepalive(to.persistent_keepalive)
        ));
    }
    if from.node != to.node {
        parts.push(format!("node {} -> {}", from.node, to.node));
    }
    f.write_str(&parts.join(", "))
}

fn without(nets: &[IpNet], others: &[IpNet]) -> Vec<IpNet> {
    nets.iter()
        .filter(|n| !others.contains(n))
        .copied()
        .collect()
}

/// `198.18.2.0/24 dev wg-encrypt table 51820` / `throw 198.18.1.0/24 table 51820` /
/// `unreachable 198.18.2.0/24 table 51820 metric 65535`.
struct RouteLine<'a>(&'a Route);

impl Display for RouteLine<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let r = self.0;
        match &r.kind {
            RouteKind::Device(dev) => write!(f, "{} dev {dev} table {}", r.destination, r.table),
            RouteKind::Throw => write!(f, "throw {} table {}", r.destination, r.table),
            RouteKind::Unreachable => write!(
                f,
                "unreachable {} table {} metric {}",
                r.destination,
                r.table,
                crate::dataplane::UNREACHABLE_METRIC
            ),
        }
    }
}

/// `priority 99 not fwmark 0x100000/0x100000 lookup 51820`.
struct RuleLine<'a>(&'a RuleSpec);

impl Display for RuleLine<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(
            f,
            "priority {} not fwmark {:#x}/{:#x} lookup {}",
            r.priority, r.fwmark, r.mask, r.table
        )
    }
}

/// A one-line summary of the nftables intent.
struct FirewallLine<'a>(&'a FirewallSpec);

impl Display for FirewallLine<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let spec = self.0;
        let ports: Vec<String> = spec.wireguard_ports.iter().map(u16::to_string).collect();
        let mut parts = vec![format!("accept udp {}", or_none(&ports.join(",")))];
        for m in &spec.masquerade {
            parts.push(format!(
                "masquerade out {} except {}",
                m.interface,
                Nets(&m.own_sources)
            ));
        }
        for nat in &spec.nat_outgoing {
            parts.push(format!(
                "nat-outgoing {} from {} to outside {}",
                nat.family,
                Nets(&nat.sources),
                Nets(&nat.cluster)
            ));
        }
        if let Some(rpf) = &spec.rpf {
            parts.push(format!(
                "rpf mark {:#x} on {}",
                rpf.mark,
                or_none(&rpf.interfaces.join(","))
            ));
        }
        if !spec.clamp_mss.is_empty() {
            parts.push(format!("clamp mss out {}", spec.clamp_mss.join(",")));
        }
        f.write_str(&parts.join("; "))
    }
}

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "none"
    } else {
        text
    }
}
