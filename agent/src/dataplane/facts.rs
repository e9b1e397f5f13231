//! What the planner needs to know about this host that the cluster cannot tell it: the
//! interfaces carrying the node's InternalIPs (for the MTU and RPF marking) and which
//! WireGuard implementations can run here.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ipnet::IpNet;
use kube_encrypt_api::net::Family;
use rtnetlink::packet_route::link::InfoKind;

use super::deadline::{bounded, OBSERVE_TIMEOUT};
use super::error::{netlink_errno, netlink_text};
use super::links::{self, Address, Link};
use super::{DriverError, HostDriver};

/// Plain facts about the host; the agent maps them into the planner's `LocalFacts`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Up interfaces holding one of the node's InternalIPs, sorted.
    pub underlay_interfaces: Vec<String>,
    /// The smallest MTU among them; `None` when none was found.
    pub underlay_mtu: Option<u32>,
    /// The global addresses on them with their prefix length (`192.0.2.11/24`), sorted: no
    /// peer may claim them or their subnets.
    pub underlay_addresses: Vec<IpNet>,
    /// The kernel can create `wireguard` links.
    pub kernel_wireguard: bool,
    /// The userspace implementation exists and `/dev/net/tun` can be opened.
    pub userspace_wireguard: bool,
}

const TUN_DEVICE: &str = "/dev/net/tun";

impl HostDriver {
    /// Gathers [`HostFacts`] for a node with these InternalIPs.
    pub async fn host_facts(&self, node_ips: &[IpAddr]) -> Result<HostFacts, DriverError> {
        bounded(
            "read the host facts",
            OBSERVE_TIMEOUT,
            self.gather_facts(node_ips),
        )
        .await
    }

    async fn gather_facts(&self, node_ips: &[IpAddr]) -> Result<HostFacts, DriverError> {
        let all_links = links::all_links(&self.handle)
            .await
            .map_err(|e| DriverError::netlink("list links", &e))?;
        let mut addresses = Vec::new();
        for family in Family::ALL {
            let found = links::addresses(&self.handle, family, None)
                .await
                .map_err(|e| DriverError::netlink(format!("list {family} addresses"), &e))?;
            addresses.extend(found);
        }
        let underlay = underlay(&all_links, &addresses, node_ips);
        self.interest.lock().expect("interest lock").underlay =
            underlay.interfaces.iter().cloned().collect();
        Ok(HostFacts {
            underlay_interfaces: underlay.interfaces,
            underlay_mtu: underlay.mtu,
            underlay_addresses: underlay.addresses,
            kernel_wireguard: *self
                .kernel_wireguard
                .get_or_try_init(|| self.probe_kernel_wireguard())
                .await?,
            userspace_wireguard: userspace_wireguard(
                self.config.userspace_implementation.as_deref(),
            ),
        })
    }

    /// Creates and deletes a throwaway `wireguard` link; "Unknown device type" means no.
    /// The kernel loads the module on demand when it has one, so one probe per driver is
    /// enough (a module installed later is seen after an agent restart). Probe links an
    /// earlier agent left behind (it died mid-probe) are removed first.
    async fn probe_kernel_wireguard(&self) -> Result<bool, DriverError> {
        self.remove_leftover_probes().await?;
        let name = probe_name();
        let operation = format!("probe kernel WireGuard with link {name}");
        match links::add_wireguard_link(&self.handle, &name).await {
            Ok(()) => {}
            Err(e) if netlink_errno(&e) == Some(libc::EOPNOTSUPP) => return Ok(false),
            Err(e) => return Err(DriverError::new(operation, netlink_text(&e))),
        }
        let link = links::link_by_name(&self.handle, &name)
            .await
            .map_err(|e| DriverError::netlink(&operation, &e))?;
        if let Some(link) = link {
            links::delete_link(&self.handle, link.index)
                .await
                .map_err(|e| DriverError::netlink(&operation, &e))?;
        }
        Ok(true)
    }
}

impl HostDriver {
    async fn remove_leftover_probes(&self) -> Result<(), DriverError> {
        let operation = "remove leftover kernel probe links";
        let all = links::all_links(&self.handle)
            .await
            .map_err(|e| DriverError::netlink(operation, &e))?;
        for link in leftover_probes(&all) {
            tracing::info!(link = %link.name, "removing a kernel probe link an earlier agent left");
            links::delete_link(&self.handle, link.index)
                .await
                .map_err(|e| DriverError::netlink(operation, &e))?;
        }
        Ok(())
    }
}

/// Prefix of the throwaway links of the kernel probe.
const PROBE_PREFIX: &str = "ketprobe";

/// `ketprobe` and seven random hex digits (15 bytes, the longest link name): unique even
/// where every agent is pid 1 of its container and many share a network namespace.
fn probe_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{PROBE_PREFIX}{:07x}", hasher.finish() & 0x0fff_ffff)
}

/// WireGuard links named like a probe: what a probe interrupted by a crash leaves.
fn leftover_probes(links: &[Link]) -> Vec<&Link> {
    links
        .iter()
        .filter(|l| l.name.starts_with(PROBE_PREFIX) && l.kind == Some(InfoKind::Wireguard))
        .collect()
}

/// The up links carrying the node's InternalIPs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Underlay {
    /// Names, sorted.
    pub(crate) interfaces: Vec<String>,
    /// The smallest MTU among them.
    pub(crate) mtu: Option<u32>,
    /// Their global addresses with prefix length, sorted.
    pub(crate) addresses: Vec<IpNet>,
}

/// The up links holding one of `node_ips`: names, smallest MTU and global addresses.
pub(crate) fn underlay(links: &[Link], addresses: &[Address], node_ips: &[IpAddr]) -> Underlay {
    let indexes: BTreeSet<u32> = addresses
        .iter()
        .filter(|a| node_ips.contains(&a.net.addr()))
        .map(|a| a.index)
        .collect();
    let carriers: Vec<&Link> = links
        .iter()
        .filter(|l| l.up && indexes.contains(&l.index))
        .collect();
    let names: BTreeSet<String> = carriers.iter().map(|l| l.name.clone()).collect();
    let on_carriers: BTreeSet<IpNet> = addresses
        .iter()
        .filter(|a| a.universe && carriers.iter().any(|l| l.index == a.index))
        .map(|a| a.net)
        .collect();
    Underlay {
        interfaces: names.into_iter().collect(),
        mtu: carriers.iter().map(|l| l.mtu).min(),
        addresses: on_carriers.into_iter().collect(),
    }
}

/// True when `implementation` is an executable file and a TUN device can be opened.
pub(crate) fn userspace_wireguard(implementation: Option<&Path>) -> bool {
    let executable = implementation
        .and_then(|path| std::fs::metadata(path).ok())
        .is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    executable
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(TUN_DEVICE)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(index: u32, net: &str) -> Address {
        Address {
            index,
            net: net.parse().unwrap(),
            universe: true,
        }
    }

    #[test]
    fn underlay_is_the_up_links_holding_node_ips() {
        let links = [
            Link::test(2, "eth0", 9000, true),
            Link::test(3, "eth1", 1500, true),
            Link::test(4, "eth2", 1400, false),
            Link::test(5, "pod0", 1200, true),
        ];
        let addresses = [
            address(2, "192.0.2.1/24"),
            address(2, "198.51.100.7/32"),
            Address {
                universe: false,
                ..address(2, "fe80::1/64")
            },
            address(3, "2001:db8::1/64"),
            address(4, "192.0.2.9/24"),
            address(5, "198.18.1.1/24"),
        ];
        // (node IPs, underlay names, MTU, underlay addresses)
        type Case<'a> = (&'a [&'a str], &'a [&'a str], Option<u32>, &'a [&'a str]);
        let cases: [Case<'_>; 4] = [
            (
                &["192.0.2.1"],
                &["eth0"],
                Some(9000),
                &["192.0.2.1/24", "198.51.100.7/32"],
            ),
            (
                &["192.0.2.1", "2001:db8::1"],
                &["eth0", "eth1"],
                Some(1500),
                &["192.0.2.1/24", "198.51.100.7/32", "2001:db8::1/64"],
            ),
            (&["192.0.2.9"], &[], None, &[]),
            (&["203.0.113.1"], &[], None, &[]),
        ];
        for (node_ips, names, mtu, nets) in cases {
            let node_ips: Vec<IpAddr> = node_ips.iter().map(|s| s.parse().unwrap()).collect();
            let got = underlay(&links, &addresses, &node_ips);
            let expected = Underlay {
                interfaces: names.iter().map(|s| s.to_string()).collect(),
                mtu,
                addresses: nets.iter().map(|n| n.parse().unwrap()).collect(),
            };
            assert_eq!(got, expected, "{node_ips:?}");
        }
    }

    #[test]
    fn probe_links_get_unique_names_that_fit_and_leftovers_are_found() {
        let names: BTreeSet<String> = (0..50).map(|_| probe_name()).collect();
        assert_eq!(names.len(), 50, "{names:?}");
        assert!(names
            .iter()
            .all(|n| n.len() == 15 && n.starts_with("ketprobe")));
        let probe = |index, name: &str, kind| Link {
            kind,
            ..Link::test(index, name, 1420, false)
        };
        let links = [
            probe(3, "ketprobe12ab3cd", Some(InfoKind::Wireguard)),
            probe(4, "ketprobe7", Some(InfoKind::Wireguard)),
            probe(5, "ketprobe-mine", Some(InfoKind::Veth)),
            probe(6, "wg-encrypt", Some(InfoKind::Wireguard)),
        ];
        let found: Vec<u32> = leftover_probes(&links).iter().map(|l| l.index).collect();
        assert_eq!(found, [3, 4], "only WireGuard links named like a probe");
    }

    #[test]
    fn userspace_needs_an_executable_implementation() {
        let not_executable = std::env::temp_dir().join(format!("ket-facts-{}", std::process::id()));
        std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cases = [
            (None, false),
            (Some(Path::new("/nonexistent/wireguard-go")), false),
            (Some(Path::new("/")), false),
            (Some(not_executable.as_path()), false),
        ];
        for (implementation, expected) in cases {
            assert_eq!(
                userspace_wireguard(implementation),
                expected,
                "{implementation:?}"
            );
        }
        std::fs::remove_file(not_executable).unwrap();
    }
}
