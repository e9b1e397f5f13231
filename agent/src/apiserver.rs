//! The API server's addresses. The agent must always reach the API server directly, whatever a
//! Node claims: the planner never lets these addresses into a tunnel
//! (`LocalFacts::protected`).
//!
//! Resolved once at start from the kubeconfig's server (or the in-cluster
//! `KUBERNETES_SERVICE_HOST`). In a cluster that is the `kubernetes` Service's ClusterIP; the
//! control-plane nodes behind it are protected as every node's InternalIP is: no other node may
//! claim them.

use std::net::IpAddr;
use std::time::Duration;

/// How long resolving the API server's host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The addresses of the API server whose URL has `host` (`192.0.2.1`, `[2001:db8::1]`,
/// `api.example`): the literal address, or what the name resolves to, sorted. Empty, with a
/// warning, when it cannot be resolved (nothing is protected then, beyond every node's
/// InternalIPs).
pub async fn addresses(host: Option<&str>) -> Vec<IpAddr> {
    let Some(host) = host.map(|h| h.trim_start_matches('[').trim_end_matches(']')) else {
        return Vec::new();
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    let resolved = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0))).await;
    let mut found: Vec<IpAddr> = match resolved {
        Ok(Ok(addresses)) => addresses.map(|a| a.ip()).collect(),
        Ok(Err(e)) => {
            tracing::warn!(host, error = %e, "cannot resolve the API server; its addresses are not protected from being claimed by a node");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(host, timeout = ?RESOLVE_TIMEOUT, "resolving the API server timed out; its addresses are not protected from being claimed by a node");
            Vec::new()
        }
    };
    found.sort_unstable();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literal_addresses_and_local_names() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(addresses(Some("192.0.2.1")).await, [ip("192.0.2.1")]);
        assert_eq!(addresses(Some("[2001:db8::1]")).await, [ip("2001:db8::1")]);
        assert!(addresses(None).await.is_empty());
        let localhost = addresses(Some("localhost")).await;
        assert!(
            localhost.iter().all(IpAddr::is_loopback) && !localhost.is_empty(),
            "{localhost:?}"
        );
    }
}
