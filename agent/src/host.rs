//! What the agent learns about its own host each round (underlay MTU and interfaces, which
//! WireGuard implementations run here), behind a seam so the loop can be tested without root.

use std::net::IpAddr;

use kube_encrypt_api::plan::WireGuardSupport;

use crate::dataplane::facts::HostFacts;
use kube_encrypt_api::diff::Change;

use crate::dataplane::{Driver, DriverError, HostDriver, Observed, PrivateKeys, Scope};

/// Reads the host facts.
#[allow(async_fn_in_trait)]
pub trait HostProbe {
    /// The facts for a node whose InternalIPs are `internal_ips`. An error keeps the
    /// dataplane as it is: planning with unknown facts could tear the mesh down.
    async fn probe(&self, internal_ips: &[IpAddr]) -> Result<HostFacts, DriverError>;
}

/// The WireGuard implementations the facts allow.
pub fn wireguard_support(facts: &HostFacts) -> WireGuardSupport {
    WireGuardSupport {
        kernel: facts.kernel_wireguard,
        userspace: facts.userspace_wireguard,
    }
}

impl HostProbe for HostDriver {
    async fn probe(&self, internal_ips: &[IpAddr]) -> Result<HostFacts, DriverError> {
        self.host_facts(internal_ips).await
    }
}

impl<T: HostProbe> HostProbe for std::sync::Arc<T> {
    async fn probe(&self, internal_ips: &[IpAddr]) -> Result<HostFacts, DriverError> {
        self.as_ref().probe(internal_ips).await
    }
}

/// Always the same facts (tests, and hosts whose facts are given).
#[derive(Clone, Debug, Default)]
pub struct FixedHost(pub HostFacts);

impl HostProbe for FixedHost {
    async fn probe(&self, _internal_ips: &[IpAddr]) -> Result<HostFacts, DriverError> {
        Ok(self.0.clone())
    }
}

/// One shared driver serves as both the [`Driver`] and the [`HostProbe`] of the real host.
impl<T: Driver> Driver for std::sync::Arc<T> {
    async fn observe(&self, scope: &Scope) -> Result<Observed, DriverError> {
        self.as_ref().observe(scope).await
    }

    async fn apply(&self, change: &Change, keys: &PrivateKeys) -> Result<(), DriverError> {
        self.as_ref().apply(change, keys).await
    }

    async fn apply_batch(
        &self,
        changes: &[Change],
        keys: &PrivateKeys,
    ) -> Vec<Result<(), DriverError>> {
        self.as_ref().apply_batch(changes, keys).await
    }

    async fn watch(
        &self,
        changes: std::sync::Arc<tokio::sync::Notify>,
    ) -> Result<Option<crate::dataplane::Watch>, DriverError> {
        self.as_ref().watch(changes).await
    }
}
