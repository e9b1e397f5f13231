//! `pool-cidr` and `pool-overlap`, and the cluster's pools before and after a change.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::crd::IPPoolSpec;
use crate::net::{parse_network, NetworkParseError};

use super::{Finding, NamedPool, PoolChange, Rule};

/// Why a pool CIDR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolCidrError {
    #[error(transparent)]
    Parse(#[from] NetworkParseError),
    #[error("{0:?} has spaces around it; write {trimmed}", trimmed = .0.trim())]
    Whitespace(String),
    #[error("{text:?} is an IPv4-mapped IPv6 range; write the IPv4 range {ipv4}")]
    Ipv4Mapped { text: String, ipv4: String },
    #[error("{text:?} is not in standard notation (a leading zero reads as octal to some tools); write {network}")]
    NonStandard { text: String, network: IpNet },
}

/// A pool's CIDR as the rules (and the API server's CEL `isCIDR`) accept it: a network address
/// in CIDR notation, no surrounding spaces, no leading zeros, no IPv4-mapped IPv6.
pub fn network(text: &str) -> Result<IpNet, PoolCidrError> {
    if text.trim() != text {
        return Err(PoolCidrError::Whitespace(text.to_owned()));
    }
    let net = parse_network(text)?;
    let address = text.split('/').next().unwrap_or_default();
    if address.parse::<IpAddr>().is_err() {
        return Err(PoolCidrError::NonStandard {
            text: text.to_owned(),
            network: net,
        });
    }
    match net.addr() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Err(PoolCidrError::Ipv4Mapped {
                text: text.to_owned(),
                ipv4: ipv4_of_mapped(v4, net.prefix_len()),
            }),
            None => Ok(net),
        },
        IpAddr::V4(_) => Ok(net),
    }
}

/// The IPv4 range an IPv4-mapped IPv6 range stands for (`::ffff:198.18.0.0/112` → `198.18.0.0/16`).
/// A mapped network always has a prefix of 96 or more (else the `ffff` bits are host bits).
fn ipv4_of_mapped(v4: std::net::Ipv4Addr, prefix_len: u8) -> String {
    format!("{v4}/{}", prefix_len.saturating_sub(96))
}

/// `pool-cidr` for one pool.
pub(super) fn check_cidr(pool: &NamedPool) -> Option<Finding> {
    network(&pool.spec.cidr).err().map(|e| {
        Finding::new(
            Rule::PoolCidr,
            "spec.cidr",
            format!("IPPool {:?}: {e}", pool.name),
        )
    })
}

/// The network of a pool that takes part in overlap and NAT checks: enabled, valid CIDR.
fn enabled_network(pool: &NamedPool) -> Option<IpNet> {
    (!pool.spec.disabled)
        .then(|| network(&pool.spec.cidr).ok())
        .flatten()
}

/// A pool as the overlap and NAT rules read it, its CIDR already parsed.
#[derive(Clone, Copy, Debug)]
pub(super) struct PoolView<'a> {
    pub name: &'a str,
    pub spec: &'a IPPoolSpec,
    /// The pool's network when it takes part in overlap and NAT checks (enabled, valid CIDR).
    pub network: Option<IpNet>,
}

impl<'a> PoolView<'a> {
    /// Parses the pool's CIDR.
    pub fn of(pool: &'a NamedPool) -> Self {
        Self::parsed(pool, enabled_network(pool))
    }

    fn parsed(pool: &'a NamedPool, network: Option<IpNet>) -> Self {
        Self {
            name: &pool.name,
            spec: &pool.spec,
            network,
        }
    }
}

/// The cluster's pools with each CIDR parsed once, for judging many requests against one
/// snapshot of the cluster (the webhook's watch cache): the `_against` functions of
/// [`crate::rules`] find exactly what their slice counterparts find.
#[derive(Clone, Debug, Default)]
pub struct PoolSet {
    pools: Vec<NamedPool>,
    networks: Vec<Option<IpNet>>,
}

impl PoolSet {
    pub fn new(pools: Vec<NamedPool>) -> Self {
        let networks = pools.iter().map(enabled_network).collect();
        Self { pools, networks }
    }

    /// The pools, in the order given.
    pub fn pools(&self) -> &[NamedPool] {
        &self.pools
    }

    pub fn len(&self) -> usize {
        self.pools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    pub(super) fn views(&self) -> impl Iterator<Item = PoolView<'_>> + Clone {
        self.pools
            .iter()
            .zip(&self.networks)
            .map(|(pool, network)| PoolView::parsed(pool, *network))
    }
}

impl FromIterator<NamedPool> for PoolSet {
    fn from_iter<I: IntoIterator<Item = NamedPool>>(pools: I) -> Self {
        Self::new(pools.into_iter().collect())
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// `pool-overlap` of `pool` against every other enabled pool of `others` (by name).
pub(super) fn check_overlap<'a>(
    pool: PoolView<'_>,
    others: impl IntoIterator<Item = PoolView<'a>>,
) -> Vec<Finding> {
    let Some(net) = pool.network else {
        return Vec::new();
    };
    others
        .into_iter()
        .filter(|other| other.name != pool.name)
        .filter_map(|other| Some((other, other.network?)))
        .filter(|(_, other_net)| overlaps(&net, other_net))
        .map(|(other, other_net)| {
            Finding::new(
                Rule::PoolOverlap,
                "spec.cidr",
                format!(
                    "IPPool {:?} ({net}) overlaps enabled IPPool {:?} ({other_net}); give them disjoint ranges or disable one",
                    pool.name, other.name
                ),
            )
        })
        .collect()
}

/// The pools not named `touched`.
fn others<'a>(pools: impl IntoIterator<Item = PoolView<'a>>, touched: &str) -> Vec<PoolView<'a>> {
    pools.into_iter().filter(|p| p.name != touched).collect()
}

/// The cluster's pools once `change` is applied to `pools`.
pub(super) fn apply<'a>(
    change: &'a PoolChange,
    pools: impl IntoIterator<Item = PoolView<'a>>,
) -> Vec<PoolView<'a>> {
    let touched = change.pool().name.as_str();
    let mut after = others(pools, touched);
    if let PoolChange::Create(new) | PoolChange::Update { new, .. } = change {
        after.push(PoolView::of(new));
    }
    after
}

/// The cluster's pools just before `change`: `pools`, with the old version of the changed pool
/// in it (and a pool being created not yet in it), whatever the caller's cache already holds.
pub(super) fn before<'a>(
    change: &'a PoolChange,
    pools: impl IntoIterator<Item = PoolView<'a>>,
) -> Vec<PoolView<'a>> {
    let touched = change.pool().name.as_str();
    let mut before = others(pools, touched);
    if let PoolChange::Delete(old) | PoolChange::Update { old, .. } = change {
        before.push(PoolView::of(old));
    }
    before
}
