//! Watch caches (kube-runtime reflectors). The admission caches (EncryptionConfig, IPPool)
//! run on every replica and publish a [`ClusterSnapshot`] after each change; readiness waits
//! for their first complete list. The status caches (Node, NodeEncryption) run only on the
//! replica holding the Lease. Objects are stripped of what nobody reads before they are
//! stored. Every watcher retries with backoff forever and keeps its last state meanwhile.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource};
use kube_encrypt_api::crd::{EncryptionConfig, IPPool, NodeEncryption};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cluster::{ClusterSnapshot, SharedCluster};

/// A reflector's store, whether its first list completed, and its task (aborted on drop).
pub struct Reflected<K: Resource<DynamicType = ()> + 'static> {
    pub store: Store<K>,
    synced: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl<K: Resource<DynamicType = ()> + 'static> Drop for Reflected<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Reflected<K> {
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

/// The EncryptionConfig and IPPool caches behind admission.
pub struct AdmissionCaches {
    pub configs: Reflected<EncryptionConfig>,
    pub pools: Reflected<IPPool>,
    publisher: JoinHandle<()>,
}

impl Drop for AdmissionCaches {
    fn drop(&mut self) {
        self.publisher.abort();
    }
}

impl AdmissionCaches {
    /// Starts both reflectors; `cluster` gets a new snapshot after every change once both
    /// synced, and `changes` is notified too (the status controller listens).
    pub fn start(client: &Client, cluster: Arc<SharedCluster>, changes: Arc<Notify>) -> Self {
        let own = Arc::new(Notify::new());
        let configs = reflect(Api::all(client.clone()), strip_metadata, own.clone());
        let pools = reflect(Api::all(client.clone()), strip_metadata, own.clone());
        let publisher = tokio::spawn(publish(
            configs.store.clone(),
            pools.store.clone(),
            [configs.synced.clone(), pools.synced.clone()],
            cluster,
            own,
            changes,
        ));
        Self {
            configs,
            pools,
            publisher,
        }
    }
}

/// Rebuilds the snapshot after every change, once both caches synced.
async fn publish(
    configs: Store<EncryptionConfig>,
    pools: Store<IPPool>,
    synced: [Arc<AtomicBool>; 2],
    cluster: Arc<SharedCluster>,
    own: Arc<Notify>,
    changes: Arc<Notify>,
) {
    loop {
        own.notified().await;
        if !synced.iter().all(|s| s.load(Ordering::Acquire)) {
            continue;
        }
        let pools = pools.state();
        let snapshot = ClusterSnapshot::of(configs.state(), pools.iter().map(AsRef::as_ref));
        cluster.publish(snapshot);
        if !cluster.synced() {
            tracing::info!("admission caches synced; ready");
            cluster.set_synced();
        }
        changes.notify_one();
    }
}

/// The Node and NodeEncryption caches of the status controller.
pub struct StatusCaches {
    pub nodes: Reflected<Node>,
    pub reports: Reflected<NodeEncryption>,
}

impl StatusCaches {
    pub fn start(client: &Client, changes: Arc<Notify>) -> Self {
        Self {
            nodes: reflect(Api::all(client.clone()), strip_node, changes.clone()),
            reports: reflect(Api::all(client.clone()), strip_metadata, changes),
        }
    }

    pub fn synced(&self) -> bool {
        self.nodes.synced() && self.reports.synced()
    }
}

/// Runs a reflector for `K` with `strip` applied to every object, notifying `changes` on
/// every event after (and at) the first complete list.
pub fn reflect<K>(api: Api<K>, strip: fn(&mut K), changes: Arc<Notify>) -> Reflected<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let synced = Arc::new(AtomicBool::new(false));
    let flag = synced.clone();
    let kind = K::kind(&()).into_owned();
    let task = tokio::spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(strip)
            .reflect(writer);
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init | Event::InitApply(_)) => {}
                Ok(event) => {
                    if matches!(event, Event::InitDone) && !flag.swap(true, Ordering::AcqRel) {
                        tracing::info!(kind, "watch cache synced");
                    }
                    if flag.load(Ordering::Acquire) {
                        changes.notify_one();
                    }
                }
                Err(e) => {
                    tracing::warn!(kind, error = %e, "watch failed; retrying with backoff (serving from the cache meanwhile)")
                }
            }
        }
        tracing::error!(kind, "watch stream ended unexpectedly");
    });
    Reflected {
        store,
        synced,
        task,
    }
}

/// Drops the bookkeeping every object carries but the webhook never reads.
pub fn strip_metadata<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Keeps what the status controller reads of a Node: name, labels and addresses.
pub fn strip_node(node: &mut Node) {
    strip_metadata(node);
    node.metadata.annotations = None;
    node.spec = None;
    let addresses = node.status.take().and_then(|s| s.addresses);
    node.status = addresses.map(|addresses| NodeStatus {
        addresses: Some(addresses),
        ..Default::default()
    });
}
