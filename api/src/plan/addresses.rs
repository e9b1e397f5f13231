//! Which addresses belong to a node, per family: its workload destinations, its node IPs and
//! its WireGuard interface address.

use std::net::IpAddr;

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

/// The address this node gives its own interface of `family`: the network address of its
/// first pod CIDR of the family (`198.18.1.0/24` → `198.18.1.0/32`), in either route source
/// mode, as Flannel does. IPAM never hands a pod the network address of its range
/// (host-local starts at the second address), so no pod can ever hold it, and it needs no
/// IPAM of its own. `None` without such a CIDR, or when the CIDR is a /31, /32, /127 or /128
/// (whose every address may be a host's).
pub(super) fn own_interface_address(node: &NodeView, family: Family) -> Option<IpNet> {
    node.pod_cidrs_of(family)
        .next()
        .filter(|net| net.prefix_len() + 1 < net.max_prefix_len())
        .map(|net| host_net(net.network()))
}

/// Adds `addr` as a host prefix unless one of `nets` already holds it.
pub(super) fn push_uncovered(nets: &mut Vec<IpNet>, addr: IpAddr) {
    if !nets.iter().any(|net| net.contains(&addr)) {
        nets.push(host_net(addr));
    }
}

/// Sorts and deduplicates.
pub(super) fn normalized(mut nets: Vec<IpNet>) -> Vec<IpNet> {
    nets.sort_unstable_by_key(order);
    nets.dedup();
    nets
}

/// `net` as integers that sort as [`IpNet`]'s own order does (IPv4 before IPv6, then address,
/// then prefix length), and compare much faster: what the planner sorts by, at hundreds of
/// thousands of prefixes.
pub(super) fn order(net: &IpNet) -> (bool, u128, u8) {
    match net {
        IpNet::V4(v4) => (false, u128::from(u32::from(v4.addr())), v4.prefix_len()),
        IpNet::V6(v6) => (true, u128::from(v6.addr()), v6.prefix_len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sort_key_orders_prefixes_as_ipnet_does() {
        let nets: Vec<IpNet> = [
            "198.18.1.0/24",
            "198.18.1.0/32",
            "198.18.0.0/16",
            "198.18.1.7/24",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "2001:db8::/32",
            "2001:db8::1/128",
            "::/0",
            "::ffff:198.18.1.0/120",
            "ffff::/16",
            "192.0.2.0/24",
        ]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
        for rotation in 0..nets.len() {
            let mut by_key = nets.clone();
            by_key.rotate_left(rotation);
            let mut by_ord = by_key.clone();
            by_key.sort_unstable_by_key(order);
            by_ord.sort();
            assert_eq!(by_key, by_ord, "rotation {rotation}");
        }
    }

    #[test]
    fn the_interface_takes_the_network_address_of_the_first_pod_cidr() {
        let rows: [(&[&str], Family, Option<&str>); 8] = [
            (&["198.18.1.0/24"], Family::V4, Some("198.18.1.0/32")),
            (&["198.18.0.0/16"], Family::V4, Some("198.18.0.0/32")),
            (&["198.18.1.0/30"], Family::V4, Some("198.18.1.0/32")),
            (&["198.18.1.0/31"], Family::V4, None),
            (&["198.18.1.7/32"], Family::V4, None),
            (
                &["2001:db8:1::/64", "198.18.1.0/24"],
                Family::V6,
                Some("2001:db8:1::/128"),
            ),
            (&["2001:db8::1/128"], Family::V6, None),
            (&[], Family::V4, None),
        ];
        for (cidrs, family, expected) in rows {
            let node = cidrs
                .iter()
                .fold(NodeView::test("n"), |n, c| n.with_pod_cidr(c));
            let expected: Option<IpNet> = expected.map(|a| a.parse().unwrap());
            assert_eq!(own_interface_address(&node, family), expected, "{cidrs:?}");
        }
    }
}
