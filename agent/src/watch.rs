//! The agent's watch caches: reflectors for EncryptionConfig, IPPool, Node and (only in
//! `WorkloadIPs` mode) Pods. Objects are stripped to what the planner reads before they are
//! stored, to bound memory; Nodes are never even parsed in full ([`SlimNode`]) and are kept
//! as the planner's views ([`NodeTable`]), and their watch starts once the config is known,
//! so that it keeps the labels the node selector reads from the first list on. Every watcher
//! retries with backoff forever: while the API server is away the caches keep their last
//! state (fail static) and relist when it is back.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, PodStatus};
use kube::api::{Api, ObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource};
use kube_encrypt_api::crd::{EncryptionConfig, IPPool, RouteSource, SINGLETON_NAME};
use kube_encrypt_api::rules::NamedPool;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cluster::ClusterState;
use crate::node_table::NodeTable;
use crate::slim_node::{label_keys, SlimNode};

/// Pods that can still hold an IP: terminal ones are left to the API server.
pub const LIVE_PODS: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// A watch task: stopped when dropped.
struct Watching {
    /// Set once the first list completed.
    synced: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watching {
    fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

/// One reflector: its store and its watch.
struct Reflected<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    watching: Watching,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Reflected<K> {
    fn synced(&self) -> bool {
        self.watching.synced()
    }

    fn objects(&self) -> Vec<Arc<K>> {
        self.store.state()
    }
}

/// The watch caches and the signal they raise on every relevant change.
pub struct Caches {
    client: Client,
    /// The agent's node: the only Node kept as an object.
    own_node: String,
    changes: Arc<Notify>,
    configs: Reflected<EncryptionConfig>,
    pools: Reflected<IPPool>,
    /// Started by [`Caches::follow_node_selector`] once the configs are listed.
    nodes: Option<NodeCache>,
    pods: Option<Reflected<Pod>>,
}

/// The Nodes as views ([`NodeTable`]), their watch and the label keys it keeps.
struct NodeCache {
    table: Arc<Mutex<NodeTable>>,
    watching: Watching,
    labels: BTreeSet<String>,
}

impl Caches {
    /// Starts the reflectors of the agent of node `own_node`; `changes` is notified whenever
    /// a cached object changes.
    pub fn start(client: Client, own_node: &str, changes: Arc<Notify>) -> Self {
        let configs = reflect(
            Api::all(client.clone()),
            watcher::Config::default(),
            strip_metadata::<EncryptionConfig>,
            changes.clone(),
        );
        let pools = reflect(
            Api::all(client.clone()),
            watcher::Config::default(),
            strip_metadata::<IPPool>,
            changes.clone(),
        );
        Self {
            client,
            own_node: own_node.to_owned(),
            changes,
            configs,
            pools,
            nodes: None,
            pods: None,
        }
    }

    /// Starts the Node watch once the configs are listed, and watches the Nodes again when
    /// the node selector starts or stops reading a label key: the cache holds only the labels
    /// the planner reads. Until the new watch has listed every Node, rounds wait (the
    /// snapshot is not ready); its first list wakes the loop.
    pub fn follow_node_selector(&mut self) {
        if !self.configs.synced() {
            return;
        }
        let selector = self.config().and_then(|c| c.spec.node_selector.clone());
        let wanted = label_keys(selector.as_ref());
        let current = self.nodes.as_ref().map(|n| &n.labels);
        if current == Some(&wanted) {
            return;
        }
        if current.is_some() {
            tracing::info!(labels = ?wanted, "the node selector reads other labels: watching the Nodes again");
        }
        let api = Api::all(self.client.clone());
        let table = Arc::new(Mutex::new(NodeTable::new(&self.own_node)));
        let watching = watch_nodes(api, wanted.clone(), table.clone(), self.changes.clone());
        self.nodes = Some(NodeCache {
            table,
            watching,
            labels: wanted,
        });
    }

    /// Starts the pod reflector when the config asks for workload IPs, stops it otherwise.
    pub fn follow_route_source(&mut self) {
        let wanted = self.route_source() == Some(RouteSource::WorkloadIps);
        match (wanted, self.pods.is_some()) {
            (true, false) => {
                tracing::info!("routeSource is WorkloadIPs: watching pods");
                let config = watcher::Config::default().fields(LIVE_PODS);
                let api = Api::all(self.client.clone());
                self.pods = Some(reflect(api, config, strip_pod, self.changes.clone()));
            }
            (false, true) => {
                tracing::info!("routeSource is no longer WorkloadIPs: no longer watching pods");
                self.pods = None;
            }
            _ => {}
        }
    }

    fn route_source(&self) -> Option<RouteSource> {
        self.config().map(|c| c.spec.route_source)
    }

    fn config(&self) -> Option<Arc<EncryptionConfig>> {
        self.configs
            .objects()
            .into_iter()
            .find(|c| c.metadata.name.as_deref() == Some(SINGLETON_NAME))
    }

    /// A consistent snapshot, or `None` while a needed cache has not completed its first list
    /// (reconciling against a half-filled cache would tear down the mesh).
    pub fn snapshot(&self) -> Option<ClusterState> {
        let nodes_synced = self.nodes.as_ref().is_some_and(|n| n.watching.synced());
        if !(self.configs.synced() && self.pools.synced() && nodes_synced) {
            return None;
        }
        let config = self.config().map(|c| c.spec.clone());
        let workload_ips =
            config.as_ref().map(|c| c.route_source) == Some(RouteSource::WorkloadIps);
        let pods = match (&self.pods, workload_ips) {
            (_, false) => None,
            (Some(pods), true) if pods.synced() => Some(pods.objects()),
            (_, true) => return None,
        };
        let nodes = self
            .nodes
            .as_ref()
            .map(|n| n.table.lock().expect("node table lock").snapshot())
            .unwrap_or_default();
        Some(ClusterState {
            config,
            pools: self
                .pools
                .objects()
                .iter()
                .map(|p| NamedPool::from(p.as_ref()))
                .collect(),
            nodes: nodes.own.into_iter().collect(),
            views: Some(nodes.views),
            pods,
        })
    }
}

/// Nodes are listed in pages of this many: a page is held whole while it is read.
const NODE_PAGE: u32 = 100;

/// The Node watch: it deserializes [`SlimNode`]s (a kubelet's images, conditions and
/// managedFields are never allocated), keeps only `label_keys` among their labels, and
/// hands them to `table`, which keeps their views.
fn watch_nodes(
    api: Api<SlimNode>,
    label_keys: BTreeSet<String>,
    table: Arc<Mutex<NodeTable>>,
    changes: Arc<Notify>,
) -> Watching {
    let config = watcher::Config::default().page_size(NODE_PAGE);
    let events = watcher::watcher(api, config)
        .default_backoff()
        .map_ok(move |event| SlimNode::into_node_event(event, &label_keys));
    follow(events, changes, move |event: Event<Node>| {
        table.lock().expect("node table lock").apply(event)
    })
}

/// Runs a reflector for `K` with `strip` applied to every object, notifying `changes` on the
/// first complete list, on every later relist, and on each object whose stripped form changed.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    strip: fn(&mut K),
    changes: Arc<Notify>,
) -> Reflected<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static,
{
    let events = watcher::watcher(api, config)
        .default_backoff()
        .modify(strip);
    reflect_events(events, changes)
}

/// Stores the objects of a watch `events` stream, notifying `changes` as [`reflect`] says.
fn reflect_events<K>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    changes: Arc<Notify>,
) -> Reflected<K>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let mut filter = ChangeFilter::default();
    let watching = follow(events.reflect(writer), changes, move |event: Event<K>| {
        filter.relevant(&event)
    });
    Reflected { store, watching }
}

/// Follows a watch `events` stream in a task: every event goes to `take`, which says whether
/// it changed what a round reads (then `changes` is notified); failures are logged and
/// retried (the stream backs off).
fn follow<K>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    changes: Arc<Notify>,
    mut take: impl FnMut(Event<K>) -> bool + Send + 'static,
) -> Watching
where
    K: Resource<DynamicType = ()> + Send + 'static,
{
    let synced = Arc::new(AtomicBool::new(false));
    let flag = synced.clone();
    let kind = K::kind(&()).into_owned();
    let task = tokio::spawn(async move {
        let mut refusals = 0u32;
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    refusals = 0;
                    let done = matches!(event, Event::InitDone);
                    let relevant = take(event);
                    if done && !flag.swap(true, Ordering::AcqRel) {
                        tracing::info!(kind, "watch cache synced");
                    }
                    if relevant {
                        changes.notify_one();
                    }
                }
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    tracing::debug!(kind, "watch expired; relisting");
                }
                Err(e) if http_status(&e) == Some(403) => {
                    refusals += 1;
                    if refusals < PERSISTENT_REFUSALS {
                        tracing::warn!(kind, error = %e, "HTTP 403 Forbidden listing or watching {kind}s; retrying with backoff (an API server that just restarted may refuse until its authorizer has synced)");
                    } else {
                        tracing::error!(kind, error = %e, "{}", forbidden_hint(&kind));
                    }
                }
                Err(e) => {
                    tracing::warn!(kind, error = %e, "watch failed; retrying with backoff (the dataplane is kept as it is)")
                }
            }
        }
        tracing::error!(kind, "watch stream ended unexpectedly");
    });
    Watching { synced, task }
}

/// The API server's HTTP status for a failed list or watch, when it answered.
fn http_status(error: &watcher::Error) -> Option<u16> {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.code),
        watcher::Error::WatchError(status) => Some(status.code),
        _ => None,
    }
}

/// A refusal is reported as an RBAC problem from this many in a row on: right after an API
/// server restart its authorizer may refuse for a moment (the watch retries with backoff, so
/// three in a row take several seconds).
const PERSISTENT_REFUSALS: u32 = 3;

/// What to grant when the API server refuses the agent a list or watch of `kind`.
fn forbidden_hint(kind: &str) -> String {
    let grant = match kind {
        "Pod" => "routeSource: WorkloadIPs needs list/watch on pods, which the base install does not grant: add the kustomize component manifests/components/workload-ips (Helm: --set rbac.workloadIPs=true)",
        _ => "check the ClusterRole kube-encrypt-agent and its binding to the agent's ServiceAccount (manifests/agent/rbac.yaml)",
    };
    format!("HTTP 403 Forbidden: the agent may not list/watch {kind}s, so it cannot reconcile (the dataplane is kept as it is); {grant}")
}

/// Remembers a digest of every object so that updates the planner cannot see (heartbeats,
/// resource versions) do not trigger a reconcile.
#[derive(Default)]
struct ChangeFilter {
    digests: HashMap<String, u64>,
    relisting: HashMap<String, u64>,
}

impl ChangeFilter {
    fn relevant<K: Resource + Serialize>(&mut self, event: &Event<K>) -> bool {
        match event {
            Event::Init => {
                self.relisting.clear();
                false
            }
            Event::InitApply(obj) => {
                self.relisting.insert(key_of(obj), digest(obj));
                false
            }
            Event::InitDone => {
                let changed = self.digests != self.relisting;
                self.digests = std::mem::take(&mut self.relisting);
                changed || self.digests.is_empty()
            }
            Event::Apply(obj) => {
                let digest = digest(obj);
                self.digests.insert(key_of(obj), digest) != Some(digest)
            }
            Event::Delete(obj) => self.digests.remove(&key_of(obj)).is_some(),
        }
    }
}

fn key_of<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// A hash of `obj`'s JSON, written straight into the hasher (no copy of the JSON is made).
fn digest<K: Serialize>(obj: &K) -> u64 {
    let mut hasher = HashWriter(std::collections::hash_map::DefaultHasher::new());
    let _ = serde_json::to_writer(&mut hasher, obj);
    hasher.0.finish()
}

/// Feeds what is written to it into a hasher.
struct HashWriter<H>(H);

impl<H: Hasher> std::io::Write for HashWriter<H> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Drops the bookkeeping every object carries but the agent never reads.
pub fn strip_metadata<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    meta.resource_version = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Keeps a Pod's identity, node, host-network flag, phase and IPs: what workload IPs need.
pub fn strip_pod(pod: &mut Pod) {
    let meta = std::mem::take(&mut pod.metadata);
    pod.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        ..Default::default()
    };
    let spec = pod.spec.take().unwrap_or_default();
    pod.spec = Some(PodSpec {
        node_name: spec.node_name,
        host_network: spec.host_network,
        ..Default::default()
    });
    let status = pod.status.take().unwrap_or_default();
    pod.status = Some(PodStatus {
        phase: status.phase,
        pod_ip: status.pod_ip,
        pod_ips: status.pod_ips,
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        let status = kube::core::Status::failure("refused", "Forbidden").with_code(code);
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_refused_list_is_told_apart_and_says_what_to_grant() {
        let refused = watcher::Error::InitialListFailed(api_error(403));
        assert_eq!(http_status(&refused), Some(403));
        let outage = watcher::Error::InitialListFailed(api_error(503));
        assert_eq!(http_status(&outage), Some(503));
        let pods = forbidden_hint("Pod");
        assert!(
            pods.contains("manifests/components/workload-ips")
                && pods.contains("rbac.workloadIPs=true"),
            "{pods}"
        );
        let nodes = forbidden_hint("Node");
        assert!(nodes.contains("ClusterRole kube-encrypt-agent"), "{nodes}");
    }
}
