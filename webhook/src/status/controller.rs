//! The status controller's loop, run by the replica holding the Lease: watch Nodes and
//! NodeEncryptions, recompute the `default` config's status after every change (debounced)
//! and every minute (for staleness), and write it only when it differs, as a merge patch of
//! the status subresource with field manager `kube-encrypt-webhook`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use kube_encrypt_api::crd::{EncryptionConfig, EncryptionConfigStatus, SINGLETON_NAME};
use kube_encrypt_api::node::NodeView;
use tokio::sync::Notify;

use super::{aggregate, Inputs};
use crate::caches::StatusCaches;
use crate::metrics::Metrics;

/// Recompute at least this often, so reports going stale show.
pub const RESYNC: Duration = Duration::from_secs(60);
/// Wait this long after a change for more before recomputing.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// What the controller reads and writes with.
#[derive(Clone)]
pub struct StatusController {
    pub client: Client,
    /// The admission caches' EncryptionConfig store (every replica runs it).
    pub configs: Store<EncryptionConfig>,
    /// Raised on every change of configs, pools, nodes or reports.
    pub changes: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

impl StatusController {
    /// Keeps the status up to date until the future is dropped (leadership lost).
    pub async fn run(&self) {
        let caches = StatusCaches::start(&self.client, self.changes.clone());
        let mut tick = tokio::time::interval(RESYNC);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.changes.notified() => tokio::time::sleep(DEBOUNCE).await,
                _ = tick.tick() => {}
            }
            if caches.synced() {
                self.round(&caches).await;
            }
        }
    }

    /// Computes the status and writes it when it changed.
    async fn round(&self, caches: &StatusCaches) {
        let Some(config) = self.configs.get(&ObjectRef::new(SINGLETON_NAME)) else {
            return;
        };
        let nodes: Vec<NodeView> = caches
            .nodes
            .store
            .state()
            .iter()
            .map(|n| NodeView::from_node(n))
            .collect();
        let reports: BTreeMap<String, _> = caches
            .reports
            .store
            .state()
            .iter()
            .filter_map(|r| Some((r.metadata.name.clone()?, r.status.clone()?)))
            .collect();
        let status = aggregate(Inputs {
            config: &config,
            nodes: &nodes,
            reports: &reports,
            now: Timestamp::now(),
        });
        if config.status.as_ref() == Some(&status) {
            return;
        }
        let written = write_status(&self.client, &status).await;
        self.metrics.status_written(written.is_ok());
        match written {
            Ok(()) => tracing::info!(
                nodes = ?status.nodes,
                ready = condition(&status, super::READY),
                degraded = condition(&status, super::DEGRADED),
                "EncryptionConfig status written"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "writing the EncryptionConfig status failed; retrying on the next change or within a minute")
            }
        }
    }
}

fn condition<'a>(status: &'a EncryptionConfigStatus, type_: &str) -> &'a str {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map_or("", |c| c.status.as_str())
}

/// Merge-patches the status subresource of the `default` config.
pub async fn write_status(
    client: &Client,
    status: &EncryptionConfigStatus,
) -> Result<(), kube::Error> {
    let api: Api<EncryptionConfig> = Api::all(client.clone());
    let params = PatchParams {
        field_manager: Some(crate::FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    let patch = serde_json::json!({ "status": status });
    api.patch_status(SINGLETON_NAME, &params, &Patch::Merge(&patch))
        .await
        .map(|_| ())
}
