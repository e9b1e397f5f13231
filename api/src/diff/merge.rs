//! Sorted merge of two sequences: the linear walk behind the peer, route and sysctl diffs.

use std::borrow::Cow;
use std::cmp::Ordering;

/// Where an item of a merge was found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Side<'a, T> {
    Desired(&'a T),
    Observed(&'a T),
    /// In both, equal under the comparison (not necessarily in every field).
    Both(&'a T, &'a T),
}

/// `items` sorted by `cmp`: borrowed when already sorted (the dataplane's invariant), otherwise
/// a sorted copy, so a misbehaving source cannot make the diff wrong.
pub(super) fn sorted_by<T: Clone>(items: &[T], cmp: impl Fn(&T, &T) -> Ordering) -> Cow<'_, [T]> {
    if items.is_sorted_by(|a, b| cmp(a, b) != Ordering::Greater) {
        Cow::Borrowed(items)
    } else {
        let mut owned = items.to_vec();
        owned.sort_by(&cmp);
        Cow::Owned(owned)
    }
}

/// Walks `desired` and `observed` (both sorted by `cmp`) in one pass, calling `visit` in order.
pub(super) fn merge_sorted<'a, T>(
    desired: &'a [T],
    observed: &'a [T],
    cmp: impl Fn(&T, &T) -> Ordering,
    mut visit: impl FnMut(Side<'a, T>),
) {
    let (mut d, mut o) = (desired.iter().peekable(), observed.iter().peekable());
    loop {
        let side = match (d.peek(), o.peek()) {
            (None, None) => return,
            (Some(_), None) => Side::Desired(d.next().expect("peeked")),
            (None, Some(_)) => Side::Observed(o.next().expect("peeked")),
            (Some(w), Some(h)) => match cmp(w, h) {
                Ordering::Less => Side::Desired(d.next().expect("peeked")),
                Ordering::Greater => Side::Observed(o.next().expect("peeked")),
                Ordering::Equal => Side::Both(d.next().expect("peeked"), o.next().expect("peeked")),
            },
        };
        visit(side);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_in_order_and_pairs_equal_items() {
        let mut seen = Vec::new();
        merge_sorted(&[1, 3, 4, 7], &[2, 3, 7, 9], i32::cmp, |side| {
            seen.push(match side {
                Side::Desired(x) => format!("+{x}"),
                Side::Observed(x) => format!("-{x}"),
                Side::Both(x, _) => format!("={x}"),
            })
        });
        assert_eq!(seen, ["+1", "-2", "=3", "+4", "=7", "-9"]);
    }

    #[test]
    fn sorts_only_when_needed() {
        assert!(matches!(
            sorted_by(&[1, 2, 2, 5], i32::cmp),
            Cow::Borrowed(_)
        ));
        let fixed = sorted_by(&[5, 1, 2], i32::cmp);
        assert!(matches!(fixed, Cow::Owned(_)));
        assert_eq!(&*fixed, &[1, 2, 5]);
    }
}
