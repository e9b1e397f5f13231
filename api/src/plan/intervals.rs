//! Prefixes as address spans, for overlap questions at cluster scale in O(log n).

use std::net::IpAddr;

use ipnet::IpNet;

/// The first and last address of a prefix as numbers. IPv4 and IPv6 spans are only ever
/// compared within one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Span {
    pub first: u128,
    pub last: u128,
}

impl Span {
    pub fn of(net: &IpNet) -> Self {
        let number = |addr: IpAddr| match addr {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        Self {
            first: number(net.network()),
            last: number(net.broadcast()),
        }
    }

    pub fn overlaps(&self, other: &Span) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    pub fn within(&self, other: &Span) -> bool {
        other.first <= self.first && self.last <= other.last
    }
}

/// A set of prefixes of one family that answers "does this prefix overlap any of them".
#[derive(Debug, Default)]
pub(super) struct Intervals {
    /// Sorted by first address.
    spans: Vec<Span>,
    /// `reach[i]`: the highest last address among `spans[..=i]`.
    reach: Vec<u128>,
}

impl Intervals {
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let mut spans: Vec<Span> = nets.into_iter().map(|n| Span::of(&n)).collect();
        spans.sort_unstable();
        let reach = spans
            .iter()
            .scan(0u128, |high, span| {
                *high = (*high).max(span.last);
                Some(*high)
            })
            .collect();
        Self { spans, reach }
    }

    pub fn overlaps(&self, span: &Span) -> bool {
        let starting_before_end = self.spans.partition_point(|s| s.first <= span.last);
        starting_before_end > 0 && self.reach[starting_before_end - 1] >= span.first
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
            let span = Span::of(&net.parse().unwrap());
            assert_eq!(set.overlaps(&span), expected, "{net}");
        }
        let everything = Span::of(&"0.0.0.0/0".parse().unwrap());
        assert!(!Intervals::default().overlaps(&everything));
    }
}
