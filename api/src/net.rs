//! Address families and the network values the planner works with.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::quote::quoted;

/// An IP family; each is planned separately, with its own interface and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn of_addr(addr: &IpAddr) -> Self {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    pub fn of_net(net: &IpNet) -> Self {
        Self::of_addr(&net.addr())
    }

    /// `"IPv4"` / `"IPv6"`, as users read it.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// `"ipv4"` / `"ipv6"`, as the spec's field names spell it.
    pub fn field(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// The host prefix length: 32 or 128.
    pub fn host_prefix_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerFamily<T> {
    pub v4: T,
    pub v6: T,
}

impl<T> PerFamily<T> {
    pub fn get(&self, family: Family) -> &T {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    pub fn get_mut(&mut self, family: Family) -> &mut T {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// Builds both values from one function of the family.
    pub fn from_fn(mut f: impl FnMut(Family) -> T) -> Self {
        Self {
            v4: f(Family::V4),
            v6: f(Family::V6),
        }
    }

    /// `(family, value)` pairs, IPv4 first.
    pub fn iter(&self) -> impl Iterator<Item = (Family, &T)> {
        [(Family::V4, &self.v4), (Family::V6, &self.v6)].into_iter()
    }
}

/// The host prefix (`/32` or `/128`) holding exactly `addr`.
pub fn host_net(addr: IpAddr) -> IpNet {
    IpNet::new(addr, Family::of_addr(&addr).host_prefix_len()).expect("host prefix length is valid")
}

/// Parses a CIDR and insists it is a network address (`198.18.1.0/24`, not `198.18.1.7/24`).
pub fn parse_network(text: &str) -> Result<IpNet, NetworkParseError> {
    let net: IpNet = text
        .trim()
        .parse()
        .map_err(|_| NetworkParseError::NotCidr(quoted(text)))?;
    if net.trunc() != net {
        return Err(NetworkParseError::HostBitsSet {
            text: quoted(text),
            network: net.trunc(),
        });
    }
    Ok(net)
}

/// Why a CIDR was refused. The refused text is kept quoted and cut to a bounded length
/// ([`quoted`]), as it may come from any Node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkParseError {
    #[error("{0} is not a CIDR such as 198.18.0.0/16 or 2001:db8:1::/48")]
    NotCidr(String),
    #[error("{text} has host bits set; write the network address {network}")]
    HostBitsSet { text: String, network: IpNet },
}
