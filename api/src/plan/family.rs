//! One family on node N: outcome, interface, peers, routes, rule and what to publish.

use ipnet::IpNet;

use crate::crd::{Backend, BackendKind, EncryptionState};
use crate::dataplane::{FamilyDataplane, InterfaceSpec, PeerSpec, Route, RouteKind, RuleSpec};
use crate::mtu;
use crate::net::Family;

use super::addresses::{order, own_interface_address, push_uncovered};
use super::mesh::{Mesh, OwnKey};
use super::{FamilyOutcome, NodePlan, Publication, WireGuardSupport};

/// Message of a family whose key peers do not know yet.
pub(super) const PUBLISHING_MESSAGE: &str =
    "publishing the new key; traffic stays unencrypted until peers know it";

/// The WireGuard implementation to use, if any.
pub(super) fn choose_backend(wanted: Backend, support: WireGuardSupport) -> Option<BackendKind> {
    match wanted {
        Backend::Auto if support.kernel => Some(BackendKind::Kernel),
        Backend::Auto if support.userspace => Some(BackendKind::Userspace),
        Backend::Kernel if support.kernel => Some(BackendKind::Kernel),
        Backend::Userspace if support.userspace => Some(BackendKind::Userspace),
        Backend::Auto | Backend::Kernel | Backend::Userspace => None,
    }
}

fn unsupported_message(wanted: Backend) -> &'static str {
    match wanted {
        Backend::Auto => {
            "no WireGuard on this node: neither the kernel module nor a userspace \
             implementation is available; install wireguard-go or load the wireguard module"
        }
        Backend::Kernel => {
            "spec.backend is Kernel but the wireguard kernel module is not available; \
             load it or set spec.backend to Auto"
        }
        Backend::Userspace => {
            "spec.backend is Userspace but no userspace WireGuard implementation is available; \
             install wireguard-go or set spec.backend to Auto"
        }
    }
}

/// Plans `family` into `plan`.
pub(super) fn plan_family(mesh: &Mesh<'_>, family: Family, plan: &mut NodePlan) {
    let settings = mesh.settings;
    let outcome = plan.families.get_mut(family);
    if !settings.family(family).enabled {
        *outcome = disabled(format!(
            "{family} encryption is off (spec.{}.enabled is false)",
            family.field()
        ));
        return;
    }
    let Some(backend) = choose_backend(settings.backend, mesh.facts.wireguard) else {
        *outcome = FamilyOutcome {
            state: EncryptionState::Unsupported,
            backend: None,
            message: unsupported_message(settings.backend).to_owned(),
        };
        return;
    };
    if mesh.own.endpoint_ip(family).is_none() {
        *outcome = disabled(format!(
            "this node has no {family} InternalIP for peers to reach it; {family} stays unencrypted"
        ));
        return;
    }
    plan_active_family(mesh, family, backend, plan);
}

/// Plans a family that gets an interface: enabled, supported and reachable.
fn plan_active_family(mesh: &Mesh<'_>, family: Family, backend: BackendKind, plan: &mut NodePlan) {
    let members = mesh.members(family);
    let interface = interface(mesh, family, backend);
    let own_key = mesh.own_key(family);
    let mut dataplane = FamilyDataplane::default();
    let (state, message) = match &own_key {
        OwnKey::Consistent => {
            let mut throws = members.throws;
            throws.extend(mesh.own_workload_nets(family));
            dataplane.routes = routes(mesh.settings.table, &interface.name, &members.peers, throws);
            dataplane.rule = Some(rule(mesh, family));
            let message = encrypted_message(members.peers.len(), members.skipped.len());
            (EncryptionState::Encrypted, message)
        }
        OwnKey::Publishing => (EncryptionState::Disabled, PUBLISHING_MESSAGE.to_owned()),
    };
    *plan.publish.get_mut(family) = Publication {
        public_key: true,
        interface_addr: interface.address.map(|net| net.addr()),
    };
    *plan.families.get_mut(family) = FamilyOutcome {
        state,
        backend: Some(backend),
        message,
    };
    dataplane.peers = members.peers;
    dataplane.interface = Some(interface);
    *plan.dataplane.families.get_mut(family) = dataplane;
    plan.skipped.extend(members.skipped);
}

pub(super) fn disabled(message: String) -> FamilyOutcome {
    FamilyOutcome {
        state: EncryptionState::Disabled,
        backend: None,
        message,
    }
}

fn encrypted_message(peers: usize, skipped: usize) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if skipped == 0 {
        format!("encrypting to {peers} peer{}", plural(peers))
    } else {
        format!(
            "encrypting to {peers} peer{}; {skipped} node{} left unencrypted",
            plural(peers),
            plural(skipped)
        )
    }
}

fn interface(mesh: &Mesh<'_>, family: Family, backend: BackendKind) -> InterfaceSpec {
    let settings = mesh.settings;
    let fs = settings.family(family);
    let azure = settings.host_encryption && mtu::is_azure(mesh.own.provider_id.as_deref());
    InterfaceSpec {
        name: fs.interface.clone(),
        backend,
        listen_port: fs.port,
        fwmark: settings.firewall_mark,
        mtu: fs
            .mtu
            .unwrap_or_else(|| mtu::auto(mesh.facts.underlay_mtu, family, azure)),
        address: own_interface_address(mesh.own, family),
    }
}

fn rule(mesh: &Mesh<'_>, family: Family) -> RuleSpec {
    let settings = mesh.settings;
    RuleSpec {
        family,
        priority: settings.rule_priority,
        table: settings.table,
        fwmark: settings.firewall_mark,
        mask: settings.firewall_mark,
    }
}

/// Node N's own allowed IPs of `family`: its workload destinations plus its interface address.
pub(super) fn own_sources(
    mesh: &Mesh<'_>,
    family: Family,
    interface: &InterfaceSpec,
) -> Vec<IpNet> {
    let mut nets = mesh.own_workload_nets(family);
    if let Some(address) = interface.address {
        push_uncovered(&mut nets, address.addr());
    }
    super::addresses::normalized(nets)
}

/// Routes sorted by destination: through the interface, with an unreachable fallback under
/// it, for every peer allowed IP; thrown for `throws`; a destination both thrown and routed is
/// thrown.
fn routes(table: u32, interface: &str, peers: &[PeerSpec], throws: Vec<IpNet>) -> Vec<Route> {
    let routed = peers
        .iter()
        .flat_map(|p| &p.allowed_ips)
        .map(|n| (*n, false));
    let allowed: usize = peers.iter().map(|p| p.allowed_ips.len()).sum();
    let mut all: Vec<(IpNet, bool)> = Vec::with_capacity(throws.len() + allowed);
    all.extend(throws.into_iter().map(|n| (n, true)));
    all.extend(routed);
    all.sort_unstable_by_key(|(net, throw)| (order(net), *throw));
    all.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 |= later.1;
        }
        same
    });
    let mut routes = Vec::with_capacity(all.len() * 2);
    for (destination, throw) in all {
        let route = |kind| Route {
            table,
            destination,
            kind,
        };
        if throw {
            routes.push(route(RouteKind::Throw));
        } else {
            routes.push(route(RouteKind::Device(interface.to_owned())));
            routes.push(route(RouteKind::Unreachable));
        }
    }
    routes
}
