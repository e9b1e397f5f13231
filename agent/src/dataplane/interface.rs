//! The WireGuard interface as one thing: the link (kernel `wireguard` link or the TUN of a
//! userspace daemon), the device settings, MTU, up state and address; and its peers.

use std::path::Path;

use ipnet::IpNet;
use kube_encrypt_api::crd::BackendKind;
use kube_encrypt_api::dataplane::{InterfaceSpec, PeerSpec};
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::Family;
use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::Handle;
use wireguard_control::{DeviceUpdate, Key};

use super::error::{netlink_errno, netlink_text};
use super::links::{self, Link};
use super::state::{PeerNames, StateDir};
use super::{userspace, wireguard, DriverError};

/// Creates, changes and removes WireGuard interfaces and their peers.
pub(crate) struct Interfaces<'a> {
    pub(crate) handle: &'a Handle,
    pub(crate) userspace: Option<&'a Path>,
    pub(crate) state: &'a StateDir,
}

/// Which WireGuard backend serves `link`, if any: a kernel `wireguard` link, or a TUN
/// whose userspace daemon answers on its socket.
pub(crate) async fn wireguard_backend(link: &Link) -> Option<BackendKind> {
    match link.kind {
        Some(InfoKind::Wireguard) => Some(BackendKind::Kernel),
        Some(InfoKind::Tun) if userspace::socket_answers(&link.name).await => {
            Some(BackendKind::Userspace)
        }
        _ => None,
    }
}

fn backend_word(backend: &BackendKind) -> &'static str {
    match backend {
        BackendKind::Kernel => "kernel",
        BackendKind::Userspace => "userspace",
    }
}

impl Interfaces<'_> {
    /// Creates the interface, or adopts an existing one of the same backend (left by a
    /// crash between creating and configuring), then configures it fully.
    pub(crate) async fn create(
        &self,
        family: Family,
        spec: &InterfaceSpec,
        key: &Key,
    ) -> Result<(), DriverError> {
        let operation = format!(
            "create {} WireGuard interface {}",
            backend_word(&spec.backend),
            spec.name
        );
        let fail = |message: String| DriverError::new(&operation, message);
        match self.link(&spec.name).await.map_err(fail)? {
            None => self.create_link(spec).await.map_err(fail)?,
            Some(link) => adoptable(&link, &spec.backend).await.map_err(fail)?,
        }
        self.configure(family, spec, Some(key)).await.map_err(fail)
    }

    /// Changes port, fwmark, MTU and address of an existing interface.
    pub(crate) async fn update(
        &self,
        family: Family,
        from: &InterfaceSpec,
        to: &InterfaceSpec,
    ) -> Result<(), DriverError> {
        let operation = format!("update WireGuard interface {}", to.name);
        if from.backend != to.backend || from.name != to.name {
            return Err(DriverError::new(
                operation,
                format!(
                    "cannot turn {} interface {} into {} interface {} in place; delete and create it",
                    backend_word(&from.backend),
                    from.name,
                    backend_word(&to.backend),
                    to.name
                ),
            ));
        }
        self.configure(family, to, None)
            .await
            .map_err(|m| DriverError::new(operation, m))
    }

    /// Deletes the link; a userspace daemon exits with it. Absent is fine.
    pub(crate) async fn delete(&self, name: &str) -> Result<(), DriverError> {
        let operation = format!("delete WireGuard interface {name}");
        let fail = |message: String| DriverError::new(&operation, message);
        if let Some(link) = self.link(name).await.map_err(fail)? {
            links::delete_link(self.handle, link.index)
                .await
                .map_err(|e| fail(netlink_text(&e)))?;
        }
        userspace::wait_for_daemon_exit(name).await.map_err(fail)?;
        self.state.edit_peer_names(|names| {
            names.remove(name);
        })
    }

    /// Applies `edits` to the peers of `interface` as one device update, then records the
    /// node names in one write. Put sets a peer exactly to its spec (adding it if new).
    pub(crate) async fn edit_peers(
        &self,
        operation: &str,
        interface: &str,
        edits: &[PeerEdit<'_>],
    ) -> Result<(), DriverError> {
        let fail = |message: String| DriverError::new(operation, message);
        let backend = self.existing_backend(interface).await.map_err(fail)?;
        let update = edits.iter().fold(DeviceUpdate::new(), add_edit);
        wireguard::apply(interface, wireguard::backend(&backend), update)
            .await
            .map_err(fail)?;
        self.state
            .edit_peer_names(|names| record_peer_names(names, interface, edits))
    }

    async fn link(&self, name: &str) -> Result<Option<Link>, String> {
        links::link_by_name(self.handle, name)
            .await
            .map_err(|e| format!("look up link: {}", netlink_text(&e)))
    }

    /// The backend of an existing WireGuard interface, or why there is none. Checked
    /// before every device call: wireguard-control would otherwise start a daemon itself.
    async fn existing_backend(&self, name: &str) -> Result<BackendKind, String> {
        let link = self
            .link(name)
            .await?
            .ok_or_else(|| format!("interface {name} does not exist"))?;
        wireguard_backend(&link).await.ok_or_else(|| {
            format!("{name} is not a WireGuard interface (or its userspace daemon does not answer)")
        })
    }

    async fn create_link(&self, spec: &InterfaceSpec) -> Result<(), String> {
        match spec.backend {
            BackendKind::Kernel => links::add_wireguard_link(self.handle, &spec.name)
                .await
                .map_err(|e| match netlink_errno(&e) {
                    Some(libc::EOPNOTSUPP) => {
                        "the kernel has no WireGuard support (Unknown device type); \
                         load the wireguard module or use the userspace backend"
                            .to_owned()
                    }
                    _ => netlink_text(&e),
                }),
            BackendKind::Userspace => {
                let implementation = self.userspace.ok_or(
                    "no userspace WireGuard implementation is configured; install wireguard-go",
                )?;
                userspace::start_daemon(implementation, &spec.name).await
            }
        }
    }

    /// Programs key (when given), port and fwmark, then MTU, up and address.
    async fn configure(
        &self,
        family: Family,
        spec: &InterfaceSpec,
        key: Option<&Key>,
    ) -> Result<(), String> {
        let backend = self.existing_backend(&spec.name).await?;
        if backend != spec.backend {
            return Err(format!(
                "{} is a {} interface, not {}; delete and create it",
                spec.name,
                backend_word(&backend),
                backend_word(&spec.backend)
            ));
        }
        let mut update = DeviceUpdate::new()
            .set_listen_port(spec.listen_port)
            .set_fwmark(spec.fwmark);
        if let Some(key) = key {
            update = update.set_private_key(key.clone());
        }
        wireguard::apply(&spec.name, wireguard::backend(&backend), update)
            .await
            .map_err(|e| format!("configure device: {e}"))?;
        let link = self
            .link(&spec.name)
            .await?
            .ok_or_else(|| format!("interface {} vanished", spec.name))?;
        links::set_mtu_and_up(self.handle, link.index, spec.mtu)
            .await
            .map_err(|e| format!("set mtu {} and up: {}", spec.mtu, netlink_text(&e)))?;
        self.ensure_address(link.index, family, spec.address).await
    }

    /// Leaves exactly `wanted` as the interface's global address of `family`. The new
    /// address goes on before the old ones come off: when an interface loses its last IPv4
    /// address the kernel flushes every route through it, the table's included.
    async fn ensure_address(
        &self,
        index: u32,
        family: Family,
        wanted: Option<IpNet>,
    ) -> Result<(), String> {
        if let Some(net) = wanted.filter(|n| Family::of_net(n) != family) {
            return Err(format!("address {net} is not an {family} address"));
        }
        let present = links::addresses(self.handle, family, Some(index))
            .await
            .map_err(|e| format!("list addresses: {}", netlink_text(&e)))?;
        let present: Vec<_> = present.into_iter().filter(|a| a.universe).collect();
        if let Some(net) = wanted.filter(|n| !present.iter().any(|a| a.net == *n)) {
            links::add_address(self.handle, index, net)
                .await
                .map_err(|e| format!("add address {net}: {}", netlink_text(&e)))?;
        }
        for address in present.iter().filter(|a| Some(a.net) != wanted) {
            links::delete_address(self.handle, address)
                .await
                .map_err(|e| format!("delete address {}: {}", address.net, netlink_text(&e)))?;
        }
        Ok(())
    }
}

/// One peer change on an interface.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PeerEdit<'a> {
    Put(&'a PeerSpec),
    Remove(&'a WireGuardKey),
}

fn add_edit(update: DeviceUpdate, edit: &PeerEdit<'_>) -> DeviceUpdate {
    match edit {
        PeerEdit::Put(peer) => update.add_peer(wireguard::peer_config(peer)),
        PeerEdit::Remove(key) => update.remove_peer_by_key(&wireguard::device_key(key)),
    }
}

fn record_peer_names(names: &mut PeerNames, interface: &str, edits: &[PeerEdit<'_>]) {
    let peers = names.entry(interface.to_owned()).or_default();
    for edit in edits {
        match edit {
            PeerEdit::Put(peer) => {
                peers.insert(peer.public_key.to_base64(), peer.node.clone());
            }
            PeerEdit::Remove(key) => {
                peers.remove(&key.to_base64());
            }
        }
    }
}

/// An existing link can be taken over when it is WireGuard of the wanted backend.
async fn adoptable(link: &Link, wanted: &BackendKind) -> Result<(), String> {
    match wireguard_backend(link).await {
        Some(backend) if backend == *wanted => Ok(()),
        Some(backend) => Err(format!(
            "{} already exists as a {} WireGuard interface; delete it first",
            link.name,
            backend_word(&backend)
        )),
        None => Err(format!(
            "a link named {} exists that is not WireGuard ({}); rename or delete it",
            link.name,
            link.kind
                .as_ref()
                .map_or("unknown kind".to_owned(), |k| format!("{k:?}")
                    .to_lowercase())
        )),
    }
}
