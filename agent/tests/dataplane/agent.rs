//! The agent's real reconcile loop in a node namespace: the real planner, reconciler,
//! [`ControlLoop`] with link events and [`HostDriver`], against a fixed cluster instead of an
//! API server (its writes are recorded by a [`FakeWriter`], node patches folded back into
//! the cluster as the API server would).
//!
//! The parent builds the cluster ([`two_node_cluster`]) with keys it generated and writes each
//! node's private key into its state directory; the node process runs the loop until the
//! step's stop file appears.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube_encrypt_agent::cluster::ClusterState;
use kube_encrypt_agent::dataplane::{Driver, HostDriver};
use kube_encrypt_agent::fake::FakeWriter;
use kube_encrypt_agent::keys::{key_path, KeyStore};
use kube_encrypt_agent::metrics::Metrics;
use kube_encrypt_agent::reconcile::{Parts, Reconciler};
use kube_encrypt_agent::run::{ClusterSource, ControlLoop};
use kube_encrypt_agent::scope::ScopeMemory;
use kube_encrypt_agent::server::Health;
use kube_encrypt_api::crd::{EncryptionConfigSpec, IPPoolSpec};
use kube_encrypt_api::fixtures::TestNode;
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::{node_views, INTERFACE_IPV4_ANNOTATION, PUBLIC_KEY_ANNOTATION};
use kube_encrypt_api::plan::{plan, LocalFacts, Snapshot, WireGuardSupport};
use kube_encrypt_api::rules::NamedPool;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use wireguard_control::Key;

use super::lab::Side;

/// What one agent run is given.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentRun {
    pub node_name: String,
    pub config: EncryptionConfigSpec,
    pub pools: Vec<IPPoolSpec>,
    pub nodes: Vec<Node>,
    pub resync: Duration,
    /// The loop stops when this file appears, or after `limit`.
    pub stop_file: PathBuf,
    pub limit: Duration,
}

/// The agent's state directory inside a side's directory.
pub fn agent_state_dir(side: &Side) -> PathBuf {
    side.dir.join("agent")
}

/// Writes `key` as the node's IPv4 private key, as a previous agent run would have.
pub fn install_key(side: &Side, key: &Key) {
    let dir = agent_state_dir(side);
    std::fs::create_dir_all(&dir).unwrap();
    let path = key_path(&dir, Family::V4);
    std::fs::write(&path, format!("{}\n", key.to_base64())).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// A node of the test cluster as its kubelet and its agent would have written it.
pub struct ClusterNode<'a> {
    pub name: &'a str,
    pub side: &'a Side,
    pub key: &'a Key,
}

/// Nodes `node-a` and `node-b` with the sides' addresses, /24 pod CIDRs and published
/// keys and interface addresses (those the planner gives them), IPv4 on.
pub fn two_node_cluster(
    nodes: [ClusterNode<'_>; 2],
) -> (EncryptionConfigSpec, Vec<IPPoolSpec>, Vec<Node>) {
    let config = EncryptionConfigSpec::test();
    let pools = vec![IPPoolSpec::test("198.18.0.0/16")];
    let with_keys: Vec<Node> = nodes.iter().map(|n| node_object(n, None)).collect();
    let published = nodes
        .iter()
        .map(|n| {
            let address = planned_interface_address(&config, &pools, &with_keys, n);
            node_object(n, address)
        })
        .collect();
    (config, pools, published)
}

fn node_object(node: &ClusterNode<'_>, interface: Option<IpAddr>) -> Node {
    let IpAddr::V4(pod) = node.side.pod_v4 else {
        unreachable!("the lab's IPv4 pod address")
    };
    let [a, b, c, _] = pod.octets();
    let mut built = TestNode::new(node.name)
        .internal_ip(&node.side.underlay_v4.to_string())
        .pod_cidr(&format!("{a}.{b}.{c}.0/24"))
        .annotation(PUBLIC_KEY_ANNOTATION, &public(node.key).to_base64());
    if let Some(address) = interface {
        built = built.annotation(INTERFACE_IPV4_ANNOTATION, &address.to_string());
    }
    built.build()
}

/// The interface address the planner gives `node` (what its agent publishes).
fn planned_interface_address(
    config: &EncryptionConfigSpec,
    pools: &[IPPoolSpec],
    nodes: &[Node],
    node: &ClusterNode<'_>,
) -> Option<IpAddr> {
    let views = node_views(nodes.iter(), None);
    let snapshot = Snapshot {
        config: Some(config),
        pools,
        nodes: &views,
    };
    let own_public_keys = kube_encrypt_api::net::PerFamily {
        v4: Some(public(node.key)),
        ..Default::default()
    };
    let facts = LocalFacts {
        node_name: node.name.into(),
        wireguard: WireGuardSupport {
            kernel: false,
            userspace: true,
        },
        underlay_mtu: Some(1500),
        underlay_interfaces: vec!["eth0".into()],
        own_public_keys,
        local_addresses: Vec::new(),
        protected: Vec::new(),
        current_peers: Default::default(),
    };
    plan(&snapshot, &facts).ok()?.publish.v4.interface_addr
}

fn public(key: &Key) -> WireGuardKey {
    WireGuardKey::from_bytes(key.get_public().0)
}

/// Child side: runs the loop until the stop file appears; returns the IPv4 status messages
/// the agent wrote.
pub async fn run_agent(
    driver: Arc<HostDriver>,
    step: &super::node::Step,
    run: &AgentRun,
) -> Vec<String> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(std::io::stderr)
        .try_init();
    let state_dir = agent_state_dir_of(step);
    let writer = Arc::new(FakeWriter::default());
    let changes = Arc::new(Notify::new());
    let _events = driver.watch(changes.clone()).await.expect("link events");
    let reconciler = Reconciler::new(Parts {
        node_name: run.node_name.clone(),
        driver: driver.clone(),
        host: driver.clone(),
        writer: writer.clone(),
        keys: KeyStore::load_or_generate(&state_dir).expect("keys"),
        scope: ScopeMemory::load(&state_dir).expect("scope"),
        metrics: Arc::new(Metrics::new()),
        protected: Vec::new(),
    });
    let cluster = FixedCluster {
        node_name: run.node_name.clone(),
        state: Mutex::new(ClusterState {
            config: Some(run.config.clone()),
            pools: run
                .pools
                .iter()
                .enumerate()
                .map(|(i, spec)| NamedPool::new(format!("pool-{i}"), spec.clone()))
                .collect(),
            nodes: run.nodes.iter().cloned().map(Arc::new).collect(),
            views: None,
            pods: None,
        }),
        writer: writer.clone(),
    };
    let control = ControlLoop {
        reconciler,
        caches: cluster,
        changes,
        health: Arc::new(Health::default()),
        resync: run.resync,
        debounce: Duration::from_millis(50),
    };
    // The watch caches announce their first sync; the fixed cluster is known at once.
    control.changes.notify_one();
    let stop_file = run.stop_file.clone();
    let limit = run.limit;
    control
        .run(async move {
            let deadline = tokio::time::Instant::now() + limit;
            while !stop_file.exists() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    writer
        .take_statuses()
        .into_iter()
        .filter_map(|s| s.ipv4.map(|f| f.message))
        .collect()
}

/// The step's agent state directory: next to the driver's.
fn agent_state_dir_of(step: &super::node::Step) -> PathBuf {
    step.state_dir
        .parent()
        .expect("the driver's state dir is inside the side's directory")
        .join("agent")
}

/// A cluster that changes only through the agent's own node patches.
struct FixedCluster {
    node_name: String,
    state: Mutex<ClusterState>,
    writer: Arc<FakeWriter>,
}

impl ClusterSource for FixedCluster {
    fn snapshot(&self) -> Option<ClusterState> {
        let mut state = self.state.lock().unwrap();
        for patch in self.writer.take_node_patches() {
            let own = state
                .nodes
                .iter_mut()
                .find(|n| n.metadata.name.as_deref() == Some(&self.node_name))?;
            let annotations = Arc::make_mut(own)
                .metadata
                .annotations
                .get_or_insert_with(Default::default);
            let Some(patched) = patch["metadata"]["annotations"].as_object() else {
                continue;
            };
            for (name, value) in patched {
                match value.as_str() {
                    Some(text) => annotations.insert(name.clone(), text.to_owned()),
                    None => annotations.remove(name),
                };
            }
        }
        Some(state.clone())
    }
}
