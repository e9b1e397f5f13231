//! Convergence: every lab node reports both families Encrypted, with a peer for every other
//! lab node and none left for a removed fake Node. Handshakes need traffic; the flow matrix
//! that follows brings it, and checks that it is encrypted.

use std::time::{Duration, Instant};

use kube::api::{Api, ListParams};
use kube::Client;
use kube_encrypt_api::crd::{EncryptionState, FamilyStatus, NodeEncryption};
use kube_encrypt_api::net::Family;

/// What one node reports for one family, in a word.
fn describe(node: &str, family: Family, status: Option<&FamilyStatus>) -> String {
    match status {
        Some(s) => format!(
            "{node} {family}: {:?} {}/{} peers",
            s.state, s.peers.handshaken, s.peers.configured
        ),
        None => format!("{node} {family}: no status"),
    }
}

fn settled(status: Option<&FamilyStatus>, peers: i64) -> bool {
    status.is_some_and(|s| s.state == EncryptionState::Encrypted && s.peers.configured == peers)
}

/// The nodes of `nodes` that have not settled yet, described; empty when all have.
pub async fn unsettled(client: &Client, nodes: &[String]) -> Result<Vec<String>, kube::Error> {
    let list = Api::<NodeEncryption>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let peers = nodes.len() as i64 - 1;
    let mut waiting = Vec::new();
    for node in nodes {
        let status = list
            .items
            .iter()
            .find(|ne| ne.metadata.name.as_deref() == Some(node.as_str()))
            .and_then(|ne| ne.status.as_ref());
        for family in Family::ALL {
            let family_status = status.and_then(|s| match family {
                Family::V4 => s.ipv4.as_ref(),
                Family::V6 => s.ipv6.as_ref(),
            });
            if !settled(family_status, peers) {
                waiting.push(describe(node, family, family_status));
            }
        }
    }
    Ok(waiting)
}

/// Waits up to `limit` for every node to settle; `Ok(elapsed)` or `Err(what was seen last)`.
pub async fn wait(client: &Client, nodes: &[String], limit: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last = String::from("nothing read yet");
    while start.elapsed() < limit {
        match unsettled(client, nodes).await {
            Ok(waiting) if waiting.is_empty() => return Ok(start.elapsed()),
            Ok(waiting) => last = waiting.join("; "),
            Err(e) => last = format!("list NodeEncryptions: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_encrypt_api::crd::PeerCounts;

    fn status(state: EncryptionState, configured: i64, handshaken: i64) -> FamilyStatus {
        let mut s: FamilyStatus =
            serde_json::from_value(serde_json::json!({"state": "Encrypted"})).unwrap();
        s.state = state;
        s.peers = PeerCounts::new(configured, handshaken);
        s
    }

    #[test]
    fn settled_means_encrypted_with_exactly_the_lab_peers() {
        let cases = [
            (Some(status(EncryptionState::Encrypted, 2, 2)), true),
            (Some(status(EncryptionState::Encrypted, 2, 0)), true),
            (Some(status(EncryptionState::Encrypted, 3, 2)), false),
            (Some(status(EncryptionState::Encrypted, 1, 1)), false),
            (Some(status(EncryptionState::Error, 2, 2)), false),
            (None, false),
        ];
        for (s, want) in cases {
            assert_eq!(settled(s.as_ref(), 2), want, "{s:?}");
        }
    }
}
