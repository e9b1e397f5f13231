//! The difference between a desired and an observed [`Dataplane`] as an ordered list of
//! changes. Applying the changes in order turns the observed state into the desired one;
//! an empty list means there is nothing to do. Each change prints as one log line.
//!
//! ```text
//!  desired ─┐
//!           ├─► diff() ─► [ReplaceFirewall, DeleteRule, DeleteRoute, RemovePeer, DeleteInterface,
//!  observed ┘              Create/UpdateInterface, Add/UpdatePeer, AddRoute, AddRule,
//!                          Set/RestoreSysctl, DeleteFirewall]
//! ```
//!
//! The order keeps traffic flowing: the firewall accepts WireGuard UDP before any handshake,
//! steering stops (rule, routes) before peers and interfaces go, and starts again (routes,
//! rule) only once interfaces and peers are in place. Peers and routes are compared by a
//! sorted merge, so a diff is linear in their number. Deleting an interface takes its peers
//! and device routes with it: no `RemovePeer` is emitted for them, and device routes that
//! are still wanted are added again after the interface is re-created.

mod display;
mod merge;

#[cfg(test)]
mod tests;

use crate::dataplane::{
    Dataplane, FamilyDataplane, FirewallSpec, InterfaceSpec, PeerSpec, Route, RouteKind, RuleSpec,
    Sysctl,
};
use crate::key::WireGuardKey;
use crate::net::Family;

use merge::{merge_sorted, sorted_by, Side};

/// One step towards the desired dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Create the WireGuard interface (with the agent's private key for the family), set its
    /// port, fwmark, MTU and address, and bring it up.
    CreateInterface {
        family: Family,
        spec: InterfaceSpec,
    },
    /// Change port, fwmark, MTU or address of an existing interface (same name).
    UpdateInterface {
        family: Family,
        from: InterfaceSpec,
        to: InterfaceSpec,
    },
    /// Remove the interface (and with it its peers and device routes).
    DeleteInterface {
        family: Family,
        name: String,
    },
    AddPeer {
        family: Family,
        interface: String,
        peer: PeerSpec,
    },
    /// Same public key, other endpoint, allowed IPs or keepalive.
    UpdatePeer {
        family: Family,
        interface: String,
        from: PeerSpec,
        to: PeerSpec,
    },
    RemovePeer {
        family: Family,
        interface: String,
        public_key: WireGuardKey,
        node: String,
    },
    AddRoute {
        family: Family,
        route: Route,
    },
    DeleteRoute {
        family: Family,
        route: Route,
    },
    AddRule(RuleSpec),
    DeleteRule(RuleSpec),
    /// Replace the agent's nftables table atomically (create it when absent).
    ReplaceFirewall(FirewallSpec),
    DeleteFirewall,
    /// Set a kernel setting (the agent remembers the value it replaced).
    SetSysctl(Sysctl),
    /// Put back the value a kernel setting had before the agent set it.
    RestoreSysctl {
        key: String,
    },
}

/// The ordered changes turning `observed` into `desired`; empty when they are equal.
pub fn diff(desired: &Dataplane, observed: &Dataplane) -> Vec<Change> {
    let mut changes = Vec::new();
    firewall_changes(
        desired.firewall.as_ref(),
        observed.firewall.as_ref(),
        &mut changes,
    );
    for family in Family::ALL {
        family_changes(
            family,
            desired.family(family),
            observed.family(family),
            &mut changes,
        );
    }
    sysctl_changes(&desired.sysctls, &observed.sysctls, &mut changes);
    changes.sort_by_key(Change::phase);
    changes
}

impl Change {
    /// Position of the change's kind in the apply order (stable within a kind).
    fn phase(&self) -> u8 {
        match self {
            Change::ReplaceFirewall(_) => 0,
            Change::DeleteRule(_) => 1,
            Change::DeleteRoute { .. } => 2,
            Change::RemovePeer { .. } => 3,
            Change::DeleteInterface { .. } => 4,
            Change::CreateInterface { .. } | Change::UpdateInterface { .. } => 5,
            Change::AddPeer { .. } | Change::UpdatePeer { .. } => 6,
            Change::AddRoute { .. } => 7,
            Change::AddRule(_) => 8,
            Change::SetSysctl(_) | Change::RestoreSysctl { .. } => 9,
            Change::DeleteFirewall => 10,
        }
    }
}

/// What happens to a family's interface.
enum Fate<'a> {
    /// Neither side has one.
    Absent,
    /// Stays (maybe updated in place): peers are diffed.
    Kept(&'a str),
    /// Created, or deleted and created again: every desired peer is added.
    Created(&'a str),
    /// Deleted (named); its peers and device routes go with it.
    Deleted,
}

fn family_changes(
    family: Family,
    want: &FamilyDataplane,
    have: &FamilyDataplane,
    out: &mut Vec<Change>,
) {
    let fate = interface_changes(
        family,
        want.interface.as_ref(),
        have.interface.as_ref(),
        out,
    );
    if want.rule != have.rule {
        out.extend(have.rule.clone().map(Change::DeleteRule));
        out.extend(want.rule.clone().map(Change::AddRule));
    }
    match fate {
        Fate::Kept(interface) => peer_changes(family, interface, &want.peers, &have.peers, out),
        Fate::Created(interface) => out.extend(want.peers.iter().map(|peer| Change::AddPeer {
            family,
            interface: interface.to_owned(),
            peer: peer.clone(),
        })),
        Fate::Deleted | Fate::Absent => {}
    }
    let recreated = match (&fate, &have.interface) {
        (Fate::Created(_), Some(old)) => Some(old.name.as_str()),
        _ => None,
    };
    route_changes(family, &want.routes, &have.routes, recreated, out);
}

fn interface_changes<'a>(
    family: Family,
    want: Option<&'a InterfaceSpec>,
    have: Option<&'a InterfaceSpec>,
    out: &mut Vec<Change>,
) -> Fate<'a> {
    let create = |spec: &InterfaceSpec| Change::CreateInterface {
        family,
        spec: spec.clone(),
    };
    let delete = |spec: &InterfaceSpec| Change::DeleteInterface {
        family,
        name: spec.name.clone(),
    };
    match (want, have) {
        (None, None) => Fate::Absent,
        (Some(w), None) => {
            out.push(create(w));
            Fate::Created(&w.name)
        }
        (None, Some(h)) => {
            out.push(delete(h));
            Fate::Deleted
        }
        (Some(w), Some(h)) if w.name != h.name || w.backend != h.backend => {
            out.push(delete(h));
            out.push(create(w));
            Fate::Created(&w.name)
        }
        (Some(w), Some(h)) => {
            if w != h {
                out.push(Change::UpdateInterface {
                    family,
                    from: h.clone(),
                    to: w.clone(),
                });
            }
            Fate::Kept(&w.name)
        }
    }
}

fn peer_changes(
    family: Family,
    interface: &str,
    want: &[PeerSpec],
    have: &[PeerSpec],
    out: &mut Vec<Change>,
) {
    let by_key = |a: &PeerSpec, b: &PeerSpec| a.public_key.cmp(&b.public_key);
    let (want, have) = (sorted_by(want, by_key), sorted_by(have, by_key));
    let interface = || interface.to_owned();
    merge_sorted(&want, &have, by_key, |side| match side {
        Side::Desired(peer) => out.push(Change::AddPeer {
            family,
            interface: interface(),
            peer: peer.clone(),
        }),
        Side::Observed(peer) => out.push(Change::RemovePeer {
            family,
            interface: interface(),
            public_key: peer.public_key,
            node: peer.node.clone(),
        }),
        Side::Both(w, h) if w != h => out.push(Change::UpdatePeer {
            family,
            interface: interface(),
            from: h.clone(),
            to: w.clone(),
        }),
        Side::Both(..) => {}
    });
}

/// Set difference of the routes. Observed device routes through `recreated` (an interface
/// deleted and created again) vanish with it, so the wanted ones among them are added again.
fn route_changes(
    family: Family,
    want: &[Route],
    have: &[Route],
    recreated: Option<&str>,
    out: &mut Vec<Change>,
) {
    let (want, have) = (sorted_by(want, Route::cmp), sorted_by(have, Route::cmp));
    let vanished = |route: &Route| matches!((&route.kind, recreated), (RouteKind::Device(dev), Some(old)) if dev == old);
    merge_sorted(&want, &have, Route::cmp, |side| match side {
        Side::Desired(route) => out.push(Change::AddRoute {
            family,
            route: route.clone(),
        }),
        Side::Observed(route) => out.push(Change::DeleteRoute {
            family,
            route: route.clone(),
        }),
        Side::Both(route, _) if vanished(route) => out.push(Change::AddRoute {
            family,
            route: route.clone(),
        }),
        Side::Both(..) => {}
    });
}

fn firewall_changes(
    want: Option<&FirewallSpec>,
    have: Option<&FirewallSpec>,
    out: &mut Vec<Change>,
) {
    match want {
        Some(w) if Some(w) != have => out.push(Change::ReplaceFirewall(w.clone())),
        None if have.is_some() => out.push(Change::DeleteFirewall),
        _ => {}
    }
}

fn sysctl_changes(want: &[Sysctl], have: &[Sysctl], out: &mut Vec<Change>) {
    let by_key = |a: &Sysctl, b: &Sysctl| a.key.cmp(&b.key);
    let (want, have) = (sorted_by(want, by_key), sorted_by(have, by_key));
    merge_sorted(&want, &have, by_key, |side| match side {
        Side::Desired(w) => out.push(Change::SetSysctl(w.clone())),
        Side::Both(w, h) if w.value != h.value => out.push(Change::SetSysctl(w.clone())),
        Side::Both(..) => {}
        Side::Observed(h) => out.push(Change::RestoreSysctl { key: h.key.clone() }),
    });
}
