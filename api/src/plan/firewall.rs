//! The firewall intent and kernel settings of node N, derived from the families already planned.

use ipnet::IpNet;

use crate::crd::IPPoolSpec;
use crate::dataplane::{
    Dataplane, FirewallSpec, InterfaceMasquerade, InterfaceSpec, NatOutgoing, RpfMark, Sysctl,
};
use crate::net::{parse_network, Family};

use super::family::own_sources;
use super::mesh::Mesh;

/// Key of the kernel setting that makes reverse-path checks honour packet marks.
pub const SRC_VALID_MARK: &str = "net.ipv4.conf.all.src_valid_mark";

/// The agent's nftables table: present when at least one family has an interface.
pub(super) fn firewall(
    mesh: &Mesh<'_>,
    pools: &[IPPoolSpec],
    dataplane: &Dataplane,
) -> Option<FirewallSpec> {
    let active: Vec<(Family, &InterfaceSpec)> = Family::ALL
        .into_iter()
        .filter_map(|f| dataplane.family(f).interface.as_ref().map(|i| (f, i)))
        .collect();
    if active.is_empty() {
        return None;
    }
    let mut spec = FirewallSpec::default();
    for (family, interface) in active {
        spec.wireguard_ports.push(interface.listen_port);
        spec.masquerade.push(InterfaceMasquerade {
            interface: interface.name.clone(),
            own_sources: own_sources(mesh, family, interface),
        });
        spec.nat_outgoing
            .extend(nat_outgoing(pools, family, &interface.name));
        spec.clamp_mss.push(interface.name.clone());
    }
    spec.clamp_mss.sort_unstable();
    spec.clamp_mss.dedup();
    spec.wireguard_ports.sort_unstable();
    spec.wireguard_ports.dedup();
    spec.masquerade
        .sort_by(|a, b| a.interface.cmp(&b.interface));
    spec.rpf = rpf_mark(mesh, dataplane);
    Some(spec)
}

/// Kernel settings: `src_valid_mark` with host encryption while IPv4 is steered.
pub(super) fn sysctls(mesh: &Mesh<'_>, dataplane: &Dataplane) -> Vec<Sysctl> {
    let ipv4_steering = dataplane.family(Family::V4).rule.is_some();
    if mesh.settings.host_encryption && ipv4_steering {
        vec![Sysctl {
            key: SRC_VALID_MARK.to_owned(),
            value: "1".to_owned(),
        }]
    } else {
        Vec::new()
    }
}

/// NAT outgoing for `family` when any enabled pool of it asks for it.
fn nat_outgoing(pools: &[IPPoolSpec], family: Family, interface: &str) -> Option<NatOutgoing> {
    let mut cluster: Vec<(IpNet, bool)> = pools
        .iter()
        .filter(|p| !p.disabled)
        .filter_map(|p| parse_network(&p.cidr).ok().map(|net| (net, p.nat_outgoing)))
        .filter(|(net, _)| Family::of_net(net) == family)
        .collect();
    cluster.sort_unstable();
    let mut sources: Vec<IpNet> = cluster
        .iter()
        .filter(|(_, nat)| *nat)
        .map(|(n, _)| *n)
        .collect();
    if sources.is_empty() {
        return None;
    }
    sources.dedup();
    let mut cluster: Vec<IpNet> = cluster.into_iter().map(|(net, _)| net).collect();
    cluster.dedup();
    Some(NatOutgoing {
        family,
        sources,
        cluster,
        exempt_interfaces: vec![interface.to_owned()],
    })
}

/// Reverse-path marking: with host encryption, while a family is steered, unless host traffic
/// of this (control-plane) node is exempt.
fn rpf_mark(mesh: &Mesh<'_>, dataplane: &Dataplane) -> Option<RpfMark> {
    let settings = mesh.settings;
    let steering = dataplane.families.iter().any(|(_, f)| f.rule.is_some());
    let exempt = settings.exempts_host_traffic(mesh.own.control_plane, false);
    if !settings.host_encryption || !steering || exempt {
        return None;
    }
    let mut interfaces = mesh.facts.underlay_interfaces.clone();
    interfaces.sort_unstable();
    interfaces.dedup();
    Some(RpfMark {
        mark: settings.firewall_mark,
        interfaces,
    })
}
