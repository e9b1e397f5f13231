//! Prefixes as address spans, for overlap questions at cluster scale in O(log n).

use std::net::IpAddr;

use ipnet::IpNet;

/// The first and last address of `net` as numbers. IPv4 and IPv6 spans are only ever
/// compared within one family.
pub(super) fn span(net: &IpNet) -> (u128, u128) {
    let number = |addr: IpAddr| match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    (number(net.network()), number(net.broadcast()))
}

/// A set of prefixes of one family that answers "does this prefix overlap any of them".
#[derive(Debug, Default)]
pub(super) struct Intervals {
    /// Sorted by first address.
    spans: Vec<(u128, u128)>,
    /// `reach[i]`: the highest last address among `spans[..=i]`.
    reach: Vec<u128>,
}

impl Intervals {
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let mut spans: Vec<(u128, u128)> = nets.into_iter().map(|n| span(&n)).collect();
        spans.sort_unstable();
        let reach = spans
            .iter()
            .scan(0u128, |high, (_, last)| {
                *high = (*high).max(*last);
                Some(*high)
            })
            .collect();
        Self { spans, reach }
    }

    pub fn overlaps(&self, net: &IpNet) -> bool {
        let (first, last) = span(net);
        let starting_before_end = self.spans.partition_point(|(start, _)| *start <= last);
        starting_before_end > 0 && self.reach[starting_before_end - 1] >= first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_queries() {
        let set = Intervals::new(
            ["198.18.1.0/24", "198.18.4.0/22", "198.18.2.7/32"]
                .map(|n| n.parse::<IpNet>().unwrap()),
        );
        let rows = [
            ("198.18.1.0/24", true),
            ("198.18.1.128/25", true),
            ("198.18.0.0/16", true),
            ("198.18.2.0/24", true),
            ("198.18.2.8/29", false),
            ("198.18.3.0/24", false),
            ("198.18.6.1/32", true),
            ("198.18.8.0/24", false),
            ("198.17.0.0/16", false),
        ];
        for (net, expected) in rows {
            assert_eq!(set.overlaps(&net.parse().unwrap()), expected, "{net}");
        }
        assert!(!Intervals::default().overlaps(&"0.0.0.0/0".parse().unwrap()));
    }
}
