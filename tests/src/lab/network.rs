//! Builds the lab's network: namespaces, the underlay bridge, node and pod veths, addresses,
//! and the host-gw CNI (main-table routes to the other nodes' pod CIDRs via their node IPs).
//! Every `ip` call names a lab namespace (`ip -n …`): nothing is configured in the root one.

use kube_encrypt_api::net::Family;

use super::state::{Resource, StateError, Store};
use super::sys::{self, ip, CommandError};
use super::topology::*;

/// A step of building the network failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("network namespace {0} already exists but belongs to no lab state; if it is a leftover, remove it with `ip netns del {0}`")]
    Exists(String),
}

/// Builds every namespace, link, address and route of `topo`.
pub fn build(topo: &Topology, store: &mut Store) -> Result<(), NetworkError> {
    for name in topo.netns_names() {
        create_netns(&name, store)?;
    }
    build_underlay(topo)?;
    build_ext(topo)?;
    for node in &topo.nodes {
        build_node(topo, node)?;
        for pod in &node.pods {
            build_pod(topo, node, pod)?;
        }
    }
    for node in &topo.nodes {
        add_host_gw_routes(topo, node)?;
    }
    Ok(())
}

/// The lab's namespaces that exist now.
pub fn existing_netns(topo: &Topology) -> Result<Vec<String>, CommandError> {
    let output = sys::run(&mut sys::cmd("ip", ["netns", "list"]))?;
    let listed = String::from_utf8_lossy(&output.stdout).to_string();
    let present: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    Ok(topo
        .netns_names()
        .into_iter()
        .filter(|n| present.contains(&n.as_str()))
        .collect())
}

fn create_netns(name: &str, store: &mut Store) -> Result<(), NetworkError> {
    if std::path::Path::new("/run/netns").join(name).exists() {
        return Err(NetworkError::Exists(name.to_string()));
    }
    store.record(Resource::Netns {
        name: name.to_string(),
    })?;
    sys::run(&mut sys::cmd("ip", ["netns", "add", name]))?;
    ip(name, &["link", "set", "lo", "up"])?;
    Ok(())
}

fn build_underlay(topo: &Topology) -> Result<(), NetworkError> {
    let mtu = topo.spec.mtu.to_string();
    ip(
        LAB_NETNS,
        &[
            "link",
            "add",
            UNDERLAY_BRIDGE,
            "mtu",
            &mtu,
            "type",
            "bridge",
        ],
    )?;
    ip(LAB_NETNS, &["link", "set", UNDERLAY_BRIDGE, "up"])?;
    for family in topo.families() {
        add_addr(
            LAB_NETNS,
            UNDERLAY_BRIDGE,
            lab_addr(family),
            underlay_prefix(family),
        )?;
    }
    Ok(())
}

/// A veth from `ke-lab`'s bridge into `netns`, named `peer` on the lab side and eth0 inside.
fn plug_into_underlay(topo: &Topology, netns: &str, peer: &str) -> Result<(), CommandError> {
    let mtu = topo.spec.mtu.to_string();
    ip(
        LAB_NETNS,
        &[
            "link",
            "add",
            peer,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            UNDERLAY_IF,
            "mtu",
            &mtu,
            "netns",
            netns,
        ],
    )?;
    ip(
        LAB_NETNS,
        &["link", "set", peer, "master", UNDERLAY_BRIDGE, "up"],
    )?;
    ip(netns, &["link", "set", UNDERLAY_IF, "up"])?;
    Ok(())
}

fn build_ext(topo: &Topology) -> Result<(), CommandError> {
    plug_into_underlay(topo, EXT_NETNS, EXT_UNDERLAY_PEER)?;
    for family in topo.families() {
        add_addr(
            EXT_NETNS,
            UNDERLAY_IF,
            ext_addr(family),
            underlay_prefix(family),
        )?;
    }
    Ok(())
}

fn build_node(topo: &Topology, node: &NodePlan) -> Result<(), CommandError> {
    plug_into_underlay(topo, &node.netns, &node.underlay_peer)?;
    let mtu = topo.spec.mtu.to_string();
    ip(
        &node.netns,
        &["link", "add", POD_BRIDGE, "mtu", &mtu, "type", "bridge"],
    )?;
    ip(&node.netns, &["link", "set", POD_BRIDGE, "up"])?;
    for family in topo.families() {
        add_addr(
            &node.netns,
            UNDERLAY_IF,
            node.addr(family),
            underlay_prefix(family),
        )?;
        add_addr(
            &node.netns,
            POD_BRIDGE,
            node.gateway(family),
            node.pod_cidr(family).prefix_len(),
        )?;
    }
    sys::sysctl(&node.netns, "net.ipv4.ip_forward", "1")?;
    if topo.spec.ipv6 {
        sys::sysctl(&node.netns, "net.ipv6.conf.all.forwarding", "1")?;
    }
    Ok(())
}

fn build_pod(topo: &Topology, node: &NodePlan, pod: &PodPlan) -> Result<(), CommandError> {
    let mtu = topo.spec.mtu.to_string();
    ip(
        &node.netns,
        &[
            "link",
            "add",
            &pod.node_if,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            POD_IF,
            "mtu",
            &mtu,
            "netns",
            &pod.netns,
        ],
    )?;
    ip(
        &node.netns,
        &["link", "set", &pod.node_if, "master", POD_BRIDGE, "up"],
    )?;
    ip(&pod.netns, &["link", "set", POD_IF, "up"])?;
    for family in topo.families() {
        add_addr(
            &pod.netns,
            POD_IF,
            pod.addr(family),
            node.pod_cidr(family).prefix_len(),
        )?;
        let gateway = node.gateway(family).to_string();
        ip(
            &pod.netns,
            &[
                family_flag(family),
                "route",
                "add",
                "default",
                "via",
                &gateway,
            ],
        )?;
    }
    Ok(())
}

/// The host-gw CNI: each other node's pod CIDR via that node's underlay address.
fn add_host_gw_routes(topo: &Topology, node: &NodePlan) -> Result<(), CommandError> {
    for other in topo.nodes.iter().filter(|o| o.index != node.index) {
        for family in topo.families() {
            let cidr = other.pod_cidr(family).to_string();
            let via = other.addr(family).to_string();
            ip(
                &node.netns,
                &[family_flag(family), "route", "add", &cidr, "via", &via],
            )?;
        }
    }
    Ok(())
}

fn add_addr(
    netns: &str,
    dev: &str,
    addr: std::net::IpAddr,
    prefix: u8,
) -> Result<(), CommandError> {
    let cidr = format!("{addr}/{prefix}");
    match addr {
        std::net::IpAddr::V4(_) => ip(netns, &["addr", "add", &cidr, "dev", dev]),
        // No duplicate address detection: the address is usable at once.
        std::net::IpAddr::V6(_) => ip(netns, &["-6", "addr", "add", &cidr, "dev", dev, "nodad"]),
    }?;
    Ok(())
}

fn family_flag(family: Family) -> &'static str {
    match family {
        Family::V4 => "-4",
        Family::V6 => "-6",
    }
}

/// Deletes a lab network namespace (its veths go with it).
pub fn delete_netns(name: &str) -> Result<(), CommandError> {
    if !std::path::Path::new("/run/netns").join(name).exists() {
        return Ok(());
    }
    sys::run(&mut sys::cmd("ip", ["netns", "del", name])).map(|_| ())
}
