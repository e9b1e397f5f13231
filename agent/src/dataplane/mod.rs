//! The seam between the reconcile loop and the host: observe the dataplane kube-encrypt
//! manages, apply [`Change`]s one by one or as a batch. The real driver talks netlink, WireGuard and
//! nftables; tests of the loop use a fake.

mod batch;
mod deadline;
mod error;
mod events;
pub mod facts;
mod firewall;
mod host;
mod interface;
mod links;
mod observe;
mod routing;
mod state;
mod sysctl;
mod userspace;
mod wireguard;

pub use events::Watch;
pub use host::{HostDriver, HostDriverConfig};
pub use routing::ROUTE_PROTOCOL;

use std::time::SystemTime;

use kube_encrypt_api::dataplane::Dataplane;
use kube_encrypt_api::diff::Change;
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::PerFamily;

/// Where to look: everything kube-encrypt may have created, for the current and any earlier
/// configuration (interfaces renamed, table or priority changed), so leftovers are found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub families: PerFamily<Vec<FamilyScope>>,
}

/// One family's managed names and numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyScope {
    pub interface: String,
    pub table: u32,
    pub rule_priority: u32,
}

/// The dataplane as found, plus what only the device knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub dataplane: Dataplane,
    /// Public key of each family's WireGuard device, when the device exists.
    pub device_keys: PerFamily<Option<WireGuardKey>>,
    /// Per-peer counters of each family's device, sorted by public key.
    pub peer_stats: PerFamily<Vec<PeerStats>>,
    /// Records of the driver that could not be written to the state directory (it is
    /// read-only or full): the dataplane is applied, but a restart would not know all of it.
    pub state_problems: Vec<String>,
}

/// Counters of one WireGuard peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    pub public_key: WireGuardKey,
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// The private keys the driver programs into devices; owned by the agent's key store.
#[derive(Clone, Default)]
pub struct PrivateKeys {
    pub keys: PerFamily<Option<SecretKey>>,
}

impl std::fmt::Debug for PrivateKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKeys(<redacted>)")
    }
}

/// A WireGuard private key that never prints and is zeroed when dropped.
///
/// Copies the agent cannot reach are not covered: wireguard-control's `DeviceUpdate` holds
/// its own copy until it is applied, and its userspace backend reads the device's key back in
/// a UAPI response (dropped at once, see [`wireguard`]).
#[derive(Clone)]
pub struct SecretKey(wireguard_control::Key);

impl SecretKey {
    pub fn new(key: wireguard_control::Key) -> Self {
        Self(key)
    }

    /// The key itself, for the device and the public key only.
    pub fn expose(&self) -> &wireguard_control::Key {
        &self.0
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0 .0);
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A failed observation or change, named after the operation.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct DriverError {
    pub operation: String,
    pub message: String,
}

/// Observes and changes the host's dataplane.
#[allow(async_fn_in_trait)]
pub trait Driver {
    /// Reads every managed object within `scope`.
    async fn observe(&self, scope: &Scope) -> Result<Observed, DriverError>;
    /// Starts notifying `changes` of host events that need a round soon (a managed interface
    /// vanished, the underlay changed); `None` when the driver sees no such events.
    async fn watch(
        &self,
        changes: std::sync::Arc<tokio::sync::Notify>,
    ) -> Result<Option<Watch>, DriverError> {
        let _ = changes;
        Ok(None)
    }
    /// Applies one change; `keys` supplies the private key when a device is created.
    async fn apply(&self, change: &Change, keys: &PrivateKeys) -> Result<(), DriverError>;
    /// Applies `changes` in order, one result per change. A driver may combine changes
    /// into fewer host calls; a combined call that fails fails every change it carried.
    async fn apply_batch(
        &self,
        changes: &[Change],
        keys: &PrivateKeys,
    ) -> Vec<Result<(), DriverError>> {
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            results.push(self.apply(change, keys).await);
        }
        results
    }
}
