//! Links and addresses over rtnetlink: what `ip link` and `ip address` would do, without
//! running `ip`.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use kube_encrypt_api::net::Family;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, LinkWireguard};

use super::error::netlink_errno;

/// What the driver needs to know about a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) index: u32,
    pub(crate) name: String,
    pub(crate) mtu: u32,
    pub(crate) up: bool,
    pub(crate) kind: Option<InfoKind>,
}

impl Link {
    /// A link of no particular kind, for tests.
    #[cfg(test)]
    pub(crate) fn test(index: u32, name: &str, mtu: u32, up: bool) -> Self {
        Self {
            index,
            name: name.into(),
            mtu,
            up,
            kind: None,
        }
    }
}

/// An address on a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    pub(crate) index: u32,
    pub(crate) net: IpNet,
    /// Global scope (not link-local, not host).
    pub(crate) universe: bool,
}

pub(crate) fn link_from_message(message: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut mtu = 0;
    let mut kind = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Mtu(m) => mtu = *m,
            LinkAttribute::LinkInfo(infos) => {
                kind = infos.iter().find_map(|info| match info {
                    LinkInfo::Kind(k) => Some(k.clone()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    Some(Link {
        index: message.header.index,
        name: name?,
        mtu,
        up: message.header.flags.contains(LinkFlags::Up),
        kind,
    })
}

pub(crate) fn address_from_message(message: &AddressMessage) -> Option<Address> {
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS the
    // peer's. Prefer LOCAL, as `ip address` does.
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    let ip = local.or(address)?;
    Some(Address {
        index: message.header.index,
        net: IpNet::new(ip, message.header.prefix_len).ok()?,
        universe: message.header.scope == AddressScope::Universe,
    })
}

pub(crate) async fn all_links(handle: &Handle) -> Result<Vec<Link>, rtnetlink::Error> {
    let messages: Vec<LinkMessage> = handle.link().get().execute().try_collect().await?;
    Ok(messages.iter().filter_map(link_from_message).collect())
}

/// The link called `name`, `None` when there is none.
pub(crate) async fn link_by_name(
    handle: &Handle,
    name: &str,
) -> Result<Option<Link>, rtnetlink::Error> {
    let request = handle.link().get().match_name(name.to_owned()).execute();
    match request.try_collect::<Vec<LinkMessage>>().await {
        Ok(messages) => Ok(messages.iter().find_map(link_from_message)),
        Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) async fn add_wireguard_link(
    handle: &Handle,
    name: &str,
) -> Result<(), rtnetlink::Error> {
    handle
        .link()
        .add(LinkWireguard::new(name).build())
        .execute()
        .await
}

/// `ip link set <index> mtu <mtu> up`.
pub(crate) async fn set_mtu_and_up(
    handle: &Handle,
    index: u32,
    mtu: u32,
) -> Result<(), rtnetlink::Error> {
    let message = LinkUnspec::new_with_index(index).mtu(mtu).up().build();
    handle.link().change(message).execute().await
}

pub(crate) async fn delete_link(handle: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    handle.link().del(index).execute().await
}

/// Addresses of one family, on one link or on all.
pub(crate) async fn addresses(
    handle: &Handle,
    family: Family,
    index: Option<u32>,
) -> Result<Vec<Address>, rtnetlink::Error> {
    let mut request = handle.address().get();
    if let Some(index) = index {
        request = request.set_link_index_filter(index);
    }
    request.message_mut().header.family = address_family(family);
    let messages: Vec<AddressMessage> = request.execute().try_collect().await?;
    Ok(messages
        .iter()
        .filter(|m| m.header.family == address_family(family))
        .filter_map(address_from_message)
        .filter(|a| index.is_none_or(|i| a.index == i))
        .collect())
}

pub(crate) async fn add_address(
    handle: &Handle,
    index: u32,
    net: IpNet,
) -> Result<(), rtnetlink::Error> {
    handle
        .address()
        .add(index, net.addr(), net.prefix_len())
        .execute()
        .await
}

pub(crate) async fn delete_address(
    handle: &Handle,
    address: &Address,
) -> Result<(), rtnetlink::Error> {
    handle
        .address()
        .del(address_message(address))
        .execute()
        .await
}

fn address_message(address: &Address) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = address_family(Family::of_net(&address.net));
    message.header.prefix_len = address.net.prefix_len();
    message.header.index = address.index;
    // The kernel matches IPv4 addresses by IFA_LOCAL and IPv6 addresses by IFA_ADDRESS.
    message.attributes.push(match address.net.addr() {
        ip @ IpAddr::V4(_) => AddressAttribute::Local(ip),
        ip @ IpAddr::V6(_) => AddressAttribute::Address(ip),
    });
    message
}

pub(crate) fn address_family(family: Family) -> AddressFamily {
    match family {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::LinkHeader;

    #[test]
    fn link_message_becomes_a_link() {
        let mut message = LinkMessage::default();
        message.header = LinkHeader {
            index: 7,
            flags: LinkFlags::Up | LinkFlags::Running,
            ..LinkHeader::default()
        };
        message.attributes = vec![
            LinkAttribute::IfName("kube-encrypt".into()),
            LinkAttribute::Mtu(1420),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Tun)]),
        ];
        assert_eq!(
            link_from_message(&message),
            Some(Link {
                index: 7,
                name: "kube-encrypt".into(),
                mtu: 1420,
                up: true,
                kind: Some(InfoKind::Tun),
            })
        );
    }

    #[test]
    fn address_prefers_the_local_address() {
        let cases = [
            (
                vec![AddressAttribute::Address("198.18.1.254".parse().unwrap())],
                "198.18.1.254/32",
            ),
            (
                vec![
                    AddressAttribute::Address("198.18.9.9".parse().unwrap()),
                    AddressAttribute::Local("198.18.1.254".parse().unwrap()),
                ],
                "198.18.1.254/32",
            ),
        ];
        for (attributes, expected) in cases {
            let mut message = AddressMessage::default();
            message.header.prefix_len = 32;
            message.header.index = 3;
            message.attributes = attributes;
            let address = address_from_message(&message).unwrap();
            assert_eq!(address.net, expected.parse::<IpNet>().unwrap());
            assert!(address.universe);
        }
    }
}
