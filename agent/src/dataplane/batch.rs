//! A round's changes with few round trips: consecutive peer changes on one interface become
//! one WireGuard device update and one write of the peer names, and routes look their
//! device up once per batch. Every change still gets its own result.

use std::collections::HashMap;

use kube_encrypt_api::diff::Change;

use super::deadline::{bounded, CHANGE_TIMEOUT};
use super::host::HostDriver;
use super::interface::PeerEdit;
use super::{DriverError, PrivateKeys};

/// Interface name → link index, found while applying one batch.
pub(super) type LinkIndexes = HashMap<String, u32>;

impl HostDriver {
    /// Applies `changes` in order; see the module documentation.
    pub(super) async fn apply_changes(
        &self,
        changes: &[Change],
        keys: &PrivateKeys,
    ) -> Vec<Result<(), DriverError>> {
        let mut results = Vec::with_capacity(changes.len());
        let mut indexes = LinkIndexes::new();
        let mut rest = changes;
        while let Some(first) = rest.first() {
            let run = peer_run(rest);
            if run == 0 {
                let one = self.apply_one(first, keys, &mut indexes);
                results.push(bounded(first.to_string(), CHANGE_TIMEOUT, one).await);
                rest = &rest[1..];
            } else {
                let peers = &rest[..run];
                let operation = describe_peer_changes(peers);
                let edit = self.apply_peer_changes(peers);
                let outcome = bounded(operation, CHANGE_TIMEOUT, edit).await;
                results.extend(spread(outcome, run));
                rest = &rest[run..];
            }
        }
        results
    }

    /// Peer changes, all on one interface, as one device update.
    pub(super) async fn apply_peer_changes(&self, changes: &[Change]) -> Result<(), DriverError> {
        let (names, edits): (Vec<&str>, Vec<PeerEdit<'_>>) =
            changes.iter().filter_map(peer_edit).unzip();
        let Some(interface) = names.first() else {
            return Ok(());
        };
        let operation = describe_peer_changes(changes);
        self.interfaces()
            .edit_peers(&operation, interface, &edits)
            .await
    }

    /// A change that is not a peer change; routes use and fill `indexes`, anything else may
    /// create or delete links and so empties it.
    async fn apply_one(
        &self,
        change: &Change,
        keys: &PrivateKeys,
        indexes: &mut LinkIndexes,
    ) -> Result<(), DriverError> {
        match change {
            Change::AddRoute { family, route } => self.add_route(*family, route, indexes).await,
            Change::DeleteRoute { family, route } => {
                self.delete_route(*family, route, indexes).await
            }
            _ => {
                indexes.clear();
                self.apply_unbounded(change, keys).await
            }
        }
    }
}

/// How many changes at the start of `changes` are peer changes on the first one's interface.
fn peer_run(changes: &[Change]) -> usize {
    let Some((interface, _)) = changes.first().and_then(peer_edit) else {
        return 0;
    };
    changes
        .iter()
        .take_while(|change| peer_edit(change).is_some_and(|(name, _)| name == interface))
        .count()
}

/// The interface and edit of a peer change; `None` for any other change.
fn peer_edit(change: &Change) -> Option<(&str, PeerEdit<'_>)> {
    match change {
        Change::AddPeer {
            interface, peer, ..
        } => Some((interface, PeerEdit::Put(peer))),
        Change::UpdatePeer { interface, to, .. } => Some((interface, PeerEdit::Put(to))),
        Change::RemovePeer {
            interface,
            public_key,
            ..
        } => Some((interface, PeerEdit::Remove(public_key))),
        _ => None,
    }
}

/// `add peer node-b (…) on wg0` for one change, `apply 12 peer changes to wg0` for more.
fn describe_peer_changes(changes: &[Change]) -> String {
    match changes {
        [single] => describe_peer_change(single),
        _ => {
            let interface = changes.first().and_then(peer_edit).map(|(name, _)| name);
            format!(
                "apply {} peer changes to {}",
                changes.len(),
                interface.unwrap_or("?")
            )
        }
    }
}

fn describe_peer_change(change: &Change) -> String {
    match change {
        Change::AddPeer {
            interface, peer, ..
        } => format!(
            "add peer {} ({}) on {interface}",
            peer.node, peer.public_key
        ),
        Change::UpdatePeer { interface, to, .. } => {
            format!("update peer {} ({}) on {interface}", to.node, to.public_key)
        }
        Change::RemovePeer {
            interface,
            public_key,
            node,
            ..
        } => format!("remove peer {node} ({public_key}) from {interface}"),
        other => other.to_string(),
    }
}

/// The outcome of a shared update, once per change it carried.
fn spread(
    outcome: Result<(), DriverError>,
    count: usize,
) -> impl Iterator<Item = Result<(), DriverError>> {
    std::iter::repeat_n(outcome, count)
}

#[cfg(test)]
mod tests {
    use kube_encrypt_api::dataplane::PeerSpec;
    use kube_encrypt_api::key::WireGuardKey;
    use kube_encrypt_api::net::Family;

    use super::*;

    fn key(byte: u8) -> WireGuardKey {
        WireGuardKey::from_bytes([byte; 32])
    }

    fn peer(byte: u8) -> PeerSpec {
        PeerSpec {
            public_key: key(byte),
            node: format!("node-{byte}"),
            endpoint: "192.0.2.2:51820".parse().unwrap(),
            allowed_ips: vec!["198.18.2.0/24".parse().unwrap()],
            persistent_keepalive: None,
        }
    }

    fn add(interface: &str, byte: u8) -> Change {
        Change::AddPeer {
            family: Family::V4,
            interface: interface.into(),
            peer: peer(byte),
        }
    }

    fn remove(interface: &str, byte: u8) -> Change {
        Change::RemovePeer {
            family: Family::V4,
            interface: interface.into(),
            public_key: key(byte),
            node: format!("node-{byte}"),
        }
    }

    #[test]
    fn runs_stop_at_other_interfaces_and_other_changes() {
        let rule_like = Change::DeleteFirewall;
        let cases: Vec<(Vec<Change>, usize)> = vec![
            (vec![], 0),
            (vec![rule_like.clone(), add("wg0", 1)], 0),
            (vec![add("wg0", 1), add("wg0", 2), remove("wg0", 3)], 3),
            (vec![remove("wg0", 1), add("wg0", 2), add("wg1", 3)], 2),
            (vec![add("wg0", 1), rule_like, add("wg0", 2)], 1),
        ];
        for (changes, expected) in cases {
            assert_eq!(peer_run(&changes), expected, "{changes:?}");
        }
    }

    #[test]
    fn a_shared_failure_is_reported_for_every_change() {
        let failed: Vec<_> = spread(Err(DriverError::new("apply", "boom")), 3).collect();
        assert_eq!(failed.len(), 3);
        assert!(failed
            .iter()
            .all(|r| r.as_ref().unwrap_err().to_string() == "apply: boom"));
        assert_eq!(spread(Ok(()), 2).filter(Result::is_ok).count(), 2);
    }

    #[test]
    fn single_changes_keep_their_own_description() {
        assert_eq!(
            describe_peer_change(&remove("wg0", 1)),
            format!("remove peer node-1 ({}) from wg0", key(1))
        );
    }
}
