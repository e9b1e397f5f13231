//! Routes in the kube-encrypt table and the `not fwmark M/M lookup T` rule, over
//! rtnetlink. Messages are built by pure functions and sent by small async ones.
//!
//! Everything the agent adds carries its own routing protocol number, [`ROUTE_PROTOCOL`]
//! (`proto 75` in `ip route` / `ip rule`), and only routes and rules with that number are
//! observed or deleted: a table or rule priority shared by mistake with another CNI, a
//! routing daemon or `main` loses nothing to the agent.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use kube_encrypt_api::dataplane::{Route, RouteKind, RuleSpec};
use kube_encrypt_api::net::Family;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::{Handle, IpVersion};

use super::links::address_family;

/// The routing protocol number of every route and rule the agent creates: 75 (`'K'`). The
/// kernel does not interpret it (values above `RTPROT_STATIC` are free for routing daemons);
/// it is unused by iproute2's `rt_protos` (0–18, 42 babel, 99 openr, 186–192 FRR-style
/// daemons), Linux's `rtnetlink.h`, Calico (80), BIRD (12) and DHCP clients (16).
pub const ROUTE_PROTOCOL: u8 = 0x4b;

fn own_protocol() -> RouteProtocol {
    RouteProtocol::from(ROUTE_PROTOCOL)
}

/// `ip route add <destination> dev <oif> table T`, `ip route add throw <destination> table T`
/// or `ip route add unreachable <destination> table T metric M`, all `proto 75`. `oif` is the
/// index of the route's device, required for [`RouteKind::Device`].
pub(crate) fn route_message(route: &Route, oif: Option<u32>) -> RouteMessage {
    let mut message = RouteMessage::default();
    let family = Family::of_net(&route.destination);
    message.header.address_family = address_family(family);
    message.header.destination_prefix_length = route.destination.prefix_len();
    message.header.table = RouteHeader::RT_TABLE_UNSPEC;
    message.header.protocol = own_protocol();
    message.attributes.push(RouteAttribute::Table(route.table));
    message
        .attributes
        .push(RouteAttribute::Destination(route_address(
            route.destination.network(),
        )));
    match route.kind {
        RouteKind::Device(_) => {
            message.header.kind = RouteType::Unicast;
            message.header.scope = RouteScope::Link;
            if let Some(oif) = oif {
                message.attributes.push(RouteAttribute::Oif(oif));
            }
        }
        RouteKind::Throw => {
            message.header.kind = RouteType::Throw;
            message.header.scope = RouteScope::Universe;
        }
        RouteKind::Unreachable => {
            message.header.kind = RouteType::Unreachable;
            message.header.scope = RouteScope::Universe;
        }
    }
    if let Some(metric) = route.kind.metric() {
        message.attributes.push(RouteAttribute::Priority(metric));
    }
    message
}

/// The message deleting `route`: any scope, but only with the agent's protocol, so the
/// kernel never removes another tool's route to the same destination.
pub(crate) fn route_delete_message(route: &Route, oif: Option<u32>) -> RouteMessage {
    let mut message = route_message(route, oif);
    message.header.scope = RouteScope::NoWhere;
    message
}

/// A route of table `table` as the data model sees it; `None` for routes of other tables,
/// routes the agent did not make (another protocol), and kinds it never creates (logged,
/// left alone).
pub(crate) fn route_from_message(
    message: &RouteMessage,
    table: u32,
    link_names: &HashMap<u32, String>,
) -> Option<Route> {
    if message_table(message) != table || message.header.protocol != own_protocol() {
        return None;
    }
    let destination = destination(message)?;
    let kind = match message.header.kind {
        RouteType::Throw => RouteKind::Throw,
        RouteType::Unreachable => RouteKind::Unreachable,
        RouteType::Unicast if !has_gateway(message) => {
            let oif = message.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(index) => Some(*index),
                _ => None,
            })?;
            RouteKind::Device(link_names.get(&oif)?.clone())
        }
        other => {
            tracing::warn!(table, %destination, kind = ?other, "ignoring a route kube-encrypt does not create");
            return None;
        }
    };
    Some(Route {
        table,
        destination,
        kind,
    })
}

fn message_table(message: &RouteMessage) -> u32 {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(message.header.table))
}

fn destination(message: &RouteMessage) -> Option<IpNet> {
    let len = message.header.destination_prefix_length;
    let ip = message.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
        RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
        _ => None,
    });
    let ip = match (ip, message.header.address_family) {
        (Some(ip), _) => ip,
        (None, rtnetlink::packet_route::AddressFamily::Inet) => IpAddr::from([0u8; 4]),
        (None, rtnetlink::packet_route::AddressFamily::Inet6) => IpAddr::from([0u16; 8]),
        (None, _) => return None,
    };
    IpNet::new(ip, len).ok()
}

fn has_gateway(message: &RouteMessage) -> bool {
    message
        .attributes
        .iter()
        .any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Via(_)))
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(ip) => RouteAddress::Inet(ip),
        IpAddr::V6(ip) => RouteAddress::Inet6(ip),
    }
}

/// `ip rule add priority P not fwmark M/M lookup T proto 75`.
pub(crate) fn rule_message(rule: &RuleSpec) -> RuleMessage {
    let mut message = RuleMessage::default();
    message.header.family = address_family(rule.family);
    message.header.table = RouteHeader::RT_TABLE_UNSPEC;
    message.header.action = RuleAction::ToTable;
    message.header.flags = RuleFlags::Invert;
    message.attributes = vec![
        RuleAttribute::Priority(rule.priority),
        RuleAttribute::Table(rule.table),
        RuleAttribute::FwMark(rule.fwmark),
        RuleAttribute::FwMask(rule.mask),
        RuleAttribute::Protocol(own_protocol()),
    ];
    message
}

/// The rule as the data model sees it: only the agent's own shape, `not fwmark M/M lookup T`
/// with its protocol and no other selector; any other rule is someone else's.
pub(crate) fn rule_from_message(message: &RuleMessage, family: Family) -> Option<RuleSpec> {
    let header = &message.header;
    if header.action != RuleAction::ToTable
        || !header.flags.contains(RuleFlags::Invert)
        || header.src_len != 0
        || header.dst_len != 0
        || !message
            .attributes
            .contains(&RuleAttribute::Protocol(own_protocol()))
    {
        return None;
    }
    let mut priority = 0;
    let mut table = u32::from(message.header.table);
    let mut fwmark = None;
    let mut mask = None;
    for attribute in &message.attributes {
        match attribute {
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::FwMark(m) => fwmark = Some(*m),
            RuleAttribute::FwMask(m) => mask = Some(*m),
            other if is_selector(other) => return None,
            _ => {}
        }
    }
    let fwmark = fwmark?;
    Some(RuleSpec {
        family,
        priority,
        table,
        fwmark,
        mask: mask.unwrap_or(u32::MAX),
    })
}

/// Attributes that narrow which packets a rule matches: a rule with any of them is not the
/// agent's, whose only selector is the fwmark.
fn is_selector(attribute: &RuleAttribute) -> bool {
    matches!(
        attribute,
        RuleAttribute::Destination(_)
            | RuleAttribute::Source(_)
            | RuleAttribute::Iifname(_)
            | RuleAttribute::Oifname(_)
            | RuleAttribute::Goto(_)
            | RuleAttribute::TunId(_)
            | RuleAttribute::L3MDev(_)
            | RuleAttribute::UidRange(_)
            | RuleAttribute::IpProtocol(_)
            | RuleAttribute::SourcePortRange(_)
            | RuleAttribute::DestinationPortRange(_)
    )
}

/// What `keep` makes of the routes of `family` in the kernel (all tables), as they arrive:
/// a host with many routes is never held in memory whole.
pub(crate) async fn dump_routes<T: Ord>(
    handle: &Handle,
    family: Family,
    mut keep: impl FnMut(&RouteMessage) -> Option<T>,
) -> Result<BTreeSet<T>, rtnetlink::Error> {
    let mut filter = RouteMessage::default();
    filter.header.address_family = address_family(family);
    let mut messages = handle.route().get(filter).execute();
    let mut kept = BTreeSet::new();
    while let Some(message) = messages.try_next().await? {
        if message.header.address_family == address_family(family) {
            kept.extend(keep(&message));
        }
    }
    Ok(kept)
}

pub(crate) async fn add_route(
    handle: &Handle,
    route: &Route,
    oif: Option<u32>,
) -> Result<(), rtnetlink::Error> {
    handle
        .route()
        .add(route_message(route, oif))
        .execute()
        .await
}

pub(crate) async fn delete_route(
    handle: &Handle,
    route: &Route,
    oif: Option<u32>,
) -> Result<(), rtnetlink::Error> {
    handle
        .route()
        .del(route_delete_message(route, oif))
        .execute()
        .await
}

pub(crate) async fn dump_rules(
    handle: &Handle,
    family: Family,
) -> Result<Vec<RuleMessage>, rtnetlink::Error> {
    let version = match family {
        Family::V4 => IpVersion::V4,
        Family::V6 => IpVersion::V6,
    };
    handle.rule().get(version).execute().try_collect().await
}

pub(crate) async fn add_rule(handle: &Handle, rule: &RuleSpec) -> Result<(), rtnetlink::Error> {
    let mut request = handle.rule().add();
    *request.message_mut() = rule_message(rule);
    request.execute().await
}

pub(crate) async fn delete_rule(handle: &Handle, rule: &RuleSpec) -> Result<(), rtnetlink::Error> {
    handle.rule().del(rule_message(rule)).execute().await
}

/// `198.18.2.0/24 dev kube-encrypt table 51820`, `throw 198.18.1.0/24 table 51820`.
pub(crate) fn describe_route(route: &Route) -> String {
    match &route.kind {
        RouteKind::Device(dev) => format!("{} dev {dev} table {}", route.destination, route.table),
        RouteKind::Throw => format!("throw {} table {}", route.destination, route.table),
        RouteKind::Unreachable => format!(
            "unreachable {} table {} metric {}",
            route.destination,
            route.table,
            kube_encrypt_api::dataplane::UNREACHABLE_METRIC
        ),
    }
}

/// `priority 99 not fwmark 0x100000/0x100000 lookup 51820 (IPv4)`.
pub(crate) fn describe_rule(rule: &RuleSpec) -> String {
    format!(
        "priority {} not fwmark {:#x}/{:#x} lookup {} ({})",
        rule.priority, rule.fwmark, rule.mask, rule.table, rule.family
    )
}

#[cfg(test)]
mod tests;
