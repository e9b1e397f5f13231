//! Which addresses belong to a node, per family: its workload destinations, its node IPs and
//! its WireGuard interface address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::crd::RouteSource;
use crate::net::{host_net, Family};
use crate::node::NodeView;

/// The node's workload destinations of `family`: its pod CIDRs (`PodCIDRs`) or its workload
/// IPs as host prefixes (`WorkloadIPs`).
pub(super) fn workload_nets(node: &NodeView, family: Family, source: RouteSource) -> Vec<IpNet> {
    match source {
        RouteSource::PodCidrs => node.pod_cidrs_of(family).collect(),
        RouteSource::WorkloadIps => node
            .workload_ips
            .iter()
            .filter(|ip| Family::of_addr(ip) == family)
            .map(|ip| host_net(*ip))
            .collect(),
    }
}

/// The node's InternalIPs of `family` as host prefixes.
pub(super) fn node_ip_nets(node: &NodeView, family: Family) -> impl Iterator<Item = IpNet> + '_ {
    node.internal_ips_of(family).map(host_net)
}

/// The address this node gives its own interface of `family`: the second-to-last address of
/// its first pod CIDR of the family (`198.18.1.0/24` → `198.18.1.254/32`), in either route
/// source mode. `None` without such a CIDR, or when the CIDR holds a single address.
pub(super) fn own_interface_address(node: &NodeView, family: Family) -> Option<IpNet> {
    node.pod_cidrs_of(family)
        .next()
        .and_then(second_to_last)
        .map(host_net)
}

/// The address just below the last address of `net`.
pub(super) fn second_to_last(net: IpNet) -> Option<IpAddr> {
    if net.prefix_len() == net.max_prefix_len() {
        return None;
    }
    Some(match net.broadcast() {
        IpAddr::V4(last) => IpAddr::V4(Ipv4Addr::from(u32::from(last) - 1)),
        IpAddr::V6(last) => IpAddr::V6(Ipv6Addr::from(u128::from(last) - 1)),
    })
}

/// Adds `addr` as a host prefix unless one of `nets` already holds it.
pub(super) fn push_uncovered(nets: &mut Vec<IpNet>, addr: IpAddr) {
    if !nets.iter().any(|net| net.contains(&addr)) {
        nets.push(host_net(addr));
    }
}

/// Sorts and deduplicates.
pub(super) fn normalized(mut nets: Vec<IpNet>) -> Vec<IpNet> {
    nets.sort_unstable();
    nets.dedup();
    nets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_to_last_address() {
        let rows = [
            ("198.18.1.0/24", Some("198.18.1.254")),
            ("198.18.0.0/16", Some("198.18.255.254")),
            ("198.18.1.0/31", Some("198.18.1.0")),
            ("198.18.1.7/32", None),
            ("2001:db8:1::/64", Some("2001:db8:1:0:ffff:ffff:ffff:fffe")),
            ("2001:db8::1/128", None),
        ];
        for (net, expected) in rows {
            let expected: Option<IpAddr> = expected.map(|a| a.parse().unwrap());
            assert_eq!(second_to_last(net.parse().unwrap()), expected, "{net}");
        }
    }
}
