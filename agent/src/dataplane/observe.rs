//! Reading the host back into the data model, normalized (peers by key, allowed IPs,
//! routes sorted) so that observing right after applying a plan gives back exactly the
//! applied [`Dataplane`](kube_encrypt_api::dataplane::Dataplane).
//!
//! A scope lists the current configuration first and earlier ones after it. Per family,
//! leftovers win: the first earlier interface (or rule) still present is reported, so the
//! loop deletes it; only then is the current one reported. Routes of every scoped table
//! are reported together (each route names its table).

use std::collections::{BTreeSet, HashMap};

use kube_encrypt_api::dataplane::{FamilyDataplane, InterfaceSpec, PeerSpec, Route, RuleSpec};
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::Family;
use rtnetlink::Handle;
use wireguard_control::Device;

use super::wireguard::DeviceState;

use super::interface::wireguard_backend;
use super::links::{self, Link};
use super::routing;
use super::state::PeerNames;
use super::{wireguard, DriverError, FamilyScope, PeerStats};

/// One family as found: its dataplane plus what only the device knows.
#[derive(Debug, Default)]
pub(crate) struct FamilyObservation {
    pub(crate) dataplane: FamilyDataplane,
    pub(crate) device_key: Option<WireGuardKey>,
    pub(crate) peer_stats: Vec<PeerStats>,
}

/// A family's WireGuard device as read through its own socket (UAPI, or WireGuard's generic
/// netlink), within the family's scope entries; `None` when there is none.
pub(crate) type FoundDevice = Option<(Link, DeviceState)>;

/// The routes and the rule of one family within its scope entries: two netlink dumps, one
/// after the other (a netlink socket serves one dump at a time: another one started
/// meanwhile fails with EBUSY).
pub(crate) async fn routing_tables(
    handle: &Handle,
    family: Family,
    scopes: &[FamilyScope],
    links: &[Link],
) -> Result<(Vec<Route>, Option<RuleSpec>), DriverError> {
    let routes = routes(handle, family, scopes, links).await?;
    let rule = rule(handle, family, scopes).await?;
    Ok((routes, rule))
}

/// One family from its device (see [`find_device`]) and routing (see [`routing_tables`]);
/// the interface's addresses are dumped here, so no other dump may run meanwhile.
pub(crate) async fn observe_family(
    handle: &Handle,
    family: Family,
    device: FoundDevice,
    (routes, rule): (Vec<Route>, Option<RuleSpec>),
    peer_names: &PeerNames,
) -> Result<FamilyObservation, DriverError> {
    let mut found = FamilyObservation::default();
    if let Some((link, state)) = device {
        let device = state.device();
        found.device_key = device.public_key.as_ref().and_then(wireguard::api_key);
        let names = peer_names.get(&link.name);
        let (peers, stats) = peers(device, |key| {
            names
                .and_then(|n| n.get(&key.to_base64()))
                .cloned()
                .unwrap_or_default()
        });
        found.dataplane.peers = peers;
        found.peer_stats = stats;
        found.dataplane.interface = interface_spec(handle, family, &link, device).await?;
    }
    found.dataplane.routes = routes;
    found.dataplane.rule = rule;
    Ok(found)
}

/// Leftovers (scope entries after the first) first, then the current entry.
fn leftovers_first(scopes: &[FamilyScope]) -> impl Iterator<Item = &FamilyScope> {
    scopes.iter().skip(1).chain(scopes.first())
}

/// The family's device within its scope entries. It does not use the rtnetlink handle, so it
/// can be read while the handle dumps routes and rules.
pub(crate) async fn find_device(
    scopes: &[FamilyScope],
    links: &[Link],
) -> Result<FoundDevice, DriverError> {
    for scope in leftovers_first(scopes) {
        let Some(link) = links.iter().find(|l| l.name == scope.interface) else {
            continue;
        };
        let Some(backend) = wireguard_backend(link).await else {
            continue;
        };
        let device = wireguard::read(&link.name, wireguard::backend(&backend))
            .await
            .map_err(|e| DriverError::new(format!("read WireGuard device {}", link.name), e))?;
        return Ok(Some((link.clone(), device)));
    }
    Ok(None)
}

/// The interface as specified. A link that is down is reported as absent, so the loop
/// creates it again, which adopts the link, configures it and brings it up.
async fn interface_spec(
    handle: &Handle,
    family: Family,
    link: &Link,
    device: &Device,
) -> Result<Option<InterfaceSpec>, DriverError> {
    let Some(backend) = wireguard_backend(link).await.filter(|_| link.up) else {
        return Ok(None);
    };
    let addresses = links::addresses(handle, family, Some(link.index))
        .await
        .map_err(|e| DriverError::netlink(format!("list addresses of {}", link.name), &e))?;
    Ok(Some(InterfaceSpec {
        name: link.name.clone(),
        backend,
        listen_port: device.listen_port.unwrap_or(0),
        fwmark: device.fwmark.unwrap_or(0),
        mtu: link.mtu,
        address: addresses.iter().find(|a| a.universe).map(|a| a.net),
    }))
}

/// The device's peers and their counters, both sorted by public key.
fn peers(
    device: &Device,
    node_of: impl Fn(&WireGuardKey) -> String,
) -> (Vec<PeerSpec>, Vec<PeerStats>) {
    let mut peers: Vec<PeerSpec> = device
        .peers
        .iter()
        .filter_map(|info| {
            let key = wireguard::api_key(&info.config.public_key)?;
            wireguard::peer_spec(info, node_of(&key))
        })
        .collect();
    peers.sort_by_key(|p| p.public_key);
    let mut stats: Vec<PeerStats> = device
        .peers
        .iter()
        .filter_map(wireguard::peer_stats)
        .collect();
    stats.sort_by_key(|s| s.public_key);
    (peers, stats)
}

async fn routes(
    handle: &Handle,
    family: Family,
    scopes: &[FamilyScope],
    links: &[Link],
) -> Result<Vec<Route>, DriverError> {
    let tables: BTreeSet<u32> = scopes.iter().map(|s| s.table).collect();
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
    let routes: BTreeSet<Route> = routing::dump_routes(handle, family, |message| {
        let mut ours = tables
            .iter()
            .filter_map(|table| routing::route_from_message(message, *table, &names));
        ours.next()
    })
    .await
    .map_err(|e| DriverError::netlink(format!("list {family} routes"), &e))?;
    Ok(routes.into_iter().collect())
}

async fn rule(
    handle: &Handle,
    family: Family,
    scopes: &[FamilyScope],
) -> Result<Option<RuleSpec>, DriverError> {
    if scopes.is_empty() {
        return Ok(None);
    }
    let messages = routing::dump_rules(handle, family)
        .await
        .map_err(|e| DriverError::netlink(format!("list {family} rules"), &e))?;
    let rules: Vec<RuleSpec> = messages
        .iter()
        .filter_map(|m| routing::rule_from_message(m, family))
        .collect();
    Ok(leftovers_first(scopes).find_map(|scope| {
        rules
            .iter()
            .find(|r| r.priority == scope.rule_priority && r.table == scope.table)
            .cloned()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(interface: &str, table: u32) -> FamilyScope {
        FamilyScope {
            interface: interface.into(),
            table,
            rule_priority: 99,
        }
    }

    #[test]
    fn leftovers_come_before_the_current_configuration() {
        let cases: [(&[FamilyScope], &[&str]); 3] = [
            (&[], &[]),
            (&[scope("wg0", 1)], &["wg0"]),
            (
                &[scope("wg1", 1), scope("wg0", 2), scope("old", 3)],
                &["wg0", "old", "wg1"],
            ),
        ];
        for (scopes, expected) in cases {
            let got: Vec<&str> = leftovers_first(scopes)
                .map(|s| s.interface.as_str())
                .collect();
            assert_eq!(got, expected);
        }
    }
}
