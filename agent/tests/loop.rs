//! The reconcile loop against a fake host and a fake API server: converge, stay put, tear
//! down, survive outages and restarts. No root needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Node;
use kube_encrypt_agent::cluster::ClusterState;
use kube_encrypt_agent::dataplane::facts::HostFacts;
use kube_encrypt_agent::dataplane::PeerStats;
use kube_encrypt_agent::fake::{FakeDriver, FakeWriter};
use kube_encrypt_agent::host::{wireguard_support, FixedHost};
use kube_encrypt_agent::keys::{key_path, KeyStore};
use kube_encrypt_agent::metrics::Metrics;
use kube_encrypt_agent::reconcile::{Handshakes, Outcome, Parts, ReconcileError, Reconciler};
use kube_encrypt_agent::scope::ScopeMemory;
use kube_encrypt_api::crd::{EncryptionConfigSpec, EncryptionState, IPPoolSpec, RouteSource};
use kube_encrypt_api::dataplane::{Dataplane, RouteKind};
use kube_encrypt_api::diff::Change;
use kube_encrypt_api::fixtures::{self, TestNode, TestPod};
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::{Family, PerFamily};
use kube_encrypt_api::node::{INTERFACE_IPV4_ANNOTATION, PUBLIC_KEY_ANNOTATION};
use kube_encrypt_api::plan::{plan, LocalFacts, Snapshot};
use kube_encrypt_api::rules::NamedPool;
use serde_json::Value;

const NODE: &str = "node-a";

type TestReconciler = Reconciler<Arc<FakeDriver>, FixedHost, Arc<FakeWriter>>;

/// One agent on node-a with a fake host and API server, and the cluster it sees.
struct Harness {
    dir: PathBuf,
    driver: Arc<FakeDriver>,
    writer: Arc<FakeWriter>,
    metrics: Arc<Metrics>,
    reconciler: TestReconciler,
    cluster: ClusterState,
    now: SystemTime,
}

fn state_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ke-loop-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn host_facts() -> HostFacts {
    HostFacts {
        underlay_interfaces: vec!["eth0".into()],
        underlay_mtu: Some(1500),
        underlay_addresses: vec!["192.0.2.1/24".parse().unwrap()],
        kernel_wireguard: false,
        userspace_wireguard: true,
    }
}

/// The API server the agent reaches directly.
const API_SERVER: &str = "192.0.2.100";

fn nodes() -> Vec<Arc<Node>> {
    let own = TestNode::new(NODE)
        .internal_ip("192.0.2.1")
        .pod_cidr("198.18.1.0/24");
    let peer = TestNode::new("node-b")
        .internal_ip("192.0.2.2")
        .pod_cidr("198.18.2.0/24")
        .test_key(Family::V4)
        .interface_addr(Family::V4, "198.18.2.1");
    vec![Arc::new(own.build()), Arc::new(peer.build())]
}

fn cluster(config: Option<EncryptionConfigSpec>) -> ClusterState {
    ClusterState {
        config,
        pools: vec![NamedPool::new("pods", IPPoolSpec::test("198.18.0.0/16"))],
        nodes: nodes(),
        views: None,
        pods: None,
    }
}

fn reconciler(
    dir: &Path,
    driver: &Arc<FakeDriver>,
    writer: &Arc<FakeWriter>,
    metrics: &Arc<Metrics>,
) -> TestReconciler {
    Reconciler::new(Parts {
        node_name: NODE.into(),
        driver: driver.clone(),
        host: FixedHost(host_facts()),
        writer: writer.clone(),
        keys: KeyStore::load_or_generate(dir).unwrap(),
        scope: ScopeMemory::load(dir).unwrap(),
        metrics: metrics.clone(),
        protected: vec![API_SERVER.parse().unwrap()],
    })
}

impl Harness {
    fn new(test: &str, config: Option<EncryptionConfigSpec>) -> Self {
        Self::on(state_dir(test), Arc::new(FakeDriver::default()), config)
    }

    fn on(dir: PathBuf, driver: Arc<FakeDriver>, config: Option<EncryptionConfigSpec>) -> Self {
        let writer = Arc::new(FakeWriter::default());
        let metrics = Arc::new(Metrics::new());
        let reconciler = reconciler(&dir, &driver, &writer, &metrics);
        Self {
            dir,
            driver,
            writer,
            metrics,
            reconciler,
            cluster: cluster(config),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    /// The agent restarts: same state directory and host, fresh process state.
    fn restart(mut self) -> Self {
        self.writer = Arc::new(FakeWriter::default());
        self.metrics = Arc::new(Metrics::new());
        self.reconciler = reconciler(&self.dir, &self.driver, &self.writer, &self.metrics);
        self
    }

    /// The agent runs with `--per-peer-metrics`.
    fn with_per_peer_metrics(mut self) -> Self {
        self.metrics = Arc::new(Metrics::with_per_peer(true));
        self.reconciler = reconciler(&self.dir, &self.driver, &self.writer, &self.metrics);
        self
    }

    async fn round(&mut self) -> Result<Outcome, ReconcileError> {
        self.now += Duration::from_secs(1);
        self.reconciler.reconcile(&self.cluster, self.now).await
    }

    /// The API server applies the agent's node patches and the watch delivers them.
    fn sync_node_patches(&mut self) -> Vec<Value> {
        let patches = self.writer.take_node_patches();
        for patch in &patches {
            let node = self
                .cluster
                .nodes
                .iter_mut()
                .find(|n| n.metadata.name.as_deref() == Some(NODE))
                .unwrap();
            apply_annotation_patch(Arc::make_mut(node), patch);
        }
        patches
    }

    fn own_keys(&self) -> PerFamily<Option<WireGuardKey>> {
        KeyStore::load_or_generate(&self.dir)
            .unwrap()
            .public()
            .clone()
    }

    /// What the planner wants for the current cluster, on a node whose device has nothing
    /// contested.
    fn expected(&self) -> Dataplane {
        let views = self.cluster.node_views();
        let pools: Vec<IPPoolSpec> = self.cluster.pools.iter().map(|p| p.spec.clone()).collect();
        let snapshot = Snapshot {
            config: self.cluster.config.as_ref(),
            pools: &pools,
            nodes: &views,
        };
        let facts = LocalFacts {
            node_name: NODE.into(),
            underlay_mtu: host_facts().underlay_mtu,
            underlay_interfaces: host_facts().underlay_interfaces,
            wireguard: wireguard_support(&host_facts()),
            own_public_keys: self.own_keys(),
            local_addresses: host_facts().underlay_addresses,
            protected: vec![API_SERVER.parse().unwrap()],
            current_peers: PerFamily::default(),
        };
        plan(&snapshot, &facts).unwrap().dataplane
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn apply_annotation_patch(node: &mut Node, patch: &Value) {
    let annotations = node
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    for (name, value) in patch["metadata"]["annotations"].as_object().unwrap() {
        match value.as_str() {
            Some(text) => annotations.insert(name.clone(), text.to_owned()),
            None => annotations.remove(name),
        };
    }
}

fn ipv4_on() -> Option<EncryptionConfigSpec> {
    Some(EncryptionConfigSpec::test())
}

#[tokio::test]
async fn first_round_publishes_the_key_and_converges_to_the_plan() {
    let mut h = Harness::new("first", ipv4_on());
    let outcome = h.round().await.unwrap();
    let expected_before_publication = h.expected();

    let patches = h.sync_node_patches();
    assert_eq!(patches.len(), 1, "{patches:?}");
    let annotations = &patches[0]["metadata"]["annotations"];
    let own_key = h.own_keys().v4.unwrap().to_base64();
    assert_eq!(
        annotations[PUBLIC_KEY_ANNOTATION],
        Value::String(own_key.clone())
    );
    assert!(
        annotations[INTERFACE_IPV4_ANNOTATION].is_string(),
        "{annotations}"
    );

    // Until the node's own key is visible in the cluster, the planner keeps traffic off
    // the tunnel: interface and peers, but no routes or rule yet.
    let dataplane = h.driver.dataplane();
    assert_eq!(dataplane, expected_before_publication);
    let v4 = dataplane.family(Family::V4);
    assert!(v4.routes.is_empty() && v4.rule.is_none(), "{v4:?}");
    assert_eq!(v4.interface.as_ref().unwrap().name, "wg-encrypt");
    assert_eq!(
        v4.peers.iter().map(|p| p.node.as_str()).collect::<Vec<_>>(),
        ["node-b"]
    );
    let applied = h.driver.take_applied();
    assert_eq!(
        outcome,
        Outcome::Converged {
            applied: applied.len()
        }
    );
    let position = |want: fn(&Change) -> bool| applied.iter().position(want).unwrap();
    let created = position(|c| matches!(c, Change::CreateInterface { .. }));
    assert!(
        created < position(|c| matches!(c, Change::AddPeer { .. })),
        "{applied:?}"
    );

    let statuses = h.writer.take_statuses();
    assert_eq!(statuses.len(), 1);
    let v4 = statuses[0].ipv4.clone().unwrap();
    assert_ne!(
        v4.state,
        EncryptionState::Encrypted,
        "not before peers can know the key"
    );
    assert_eq!(v4.peers.configured, 1);

    h.round().await.unwrap();
    let dataplane = h.driver.dataplane();
    assert_eq!(dataplane, h.expected());
    let v4 = dataplane.family(Family::V4);
    assert!(
        !v4.routes.is_empty() && v4.rule.is_some(),
        "key published: traffic may use the tunnel"
    );
    let status = h.writer.take_statuses().pop().unwrap().ipv4.unwrap();
    assert_eq!(
        status.state,
        EncryptionState::Encrypted,
        "{}",
        status.message
    );
    assert_eq!(status.public_key, Some(own_key));
}

#[tokio::test]
async fn a_second_round_with_the_same_inputs_touches_nothing() {
    let mut h = Harness::new("steady", ipv4_on());
    h.round().await.unwrap();
    h.sync_node_patches();
    h.round().await.unwrap();
    h.driver.take_applied();
    h.writer.take_statuses();

    for _ in 0..3 {
        assert_eq!(h.round().await.unwrap(), Outcome::Converged { applied: 0 });
    }
    assert_eq!(h.driver.take_applied(), Vec::<Change>::new());
    assert!(
        h.sync_node_patches().is_empty(),
        "annotations already published"
    );
    assert!(
        h.writer.take_statuses().is_empty(),
        "status unchanged, not yet due"
    );
}

#[tokio::test]
async fn deleting_the_config_removes_everything_and_withdraws_the_key() {
    let mut h = Harness::new("delete", ipv4_on());
    h.round().await.unwrap();
    h.sync_node_patches();
    assert!(!h.driver.dataplane().is_empty());

    h.cluster.config = None;
    h.round().await.unwrap();
    assert!(
        h.driver.dataplane().is_empty(),
        "{:?}",
        h.driver.dataplane()
    );
    assert!(h.driver.device_keys().v4.is_none());
    let patches = h.sync_node_patches();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0]["metadata"]["annotations"][PUBLIC_KEY_ANNOTATION],
        Value::Null
    );
    let own = h.cluster.node(NODE).unwrap();
    assert!(own.metadata.annotations.as_ref().unwrap().is_empty());
    let status = h.writer.take_statuses().pop().unwrap();
    assert_eq!(status.ipv4.unwrap().state, EncryptionState::Disabled);
}

#[tokio::test]
async fn an_unpublished_key_with_the_api_down_keeps_the_dataplane_as_it_is() {
    let mut h = Harness::new("down-first", ipv4_on());
    h.writer.set_down(true);
    let err = h.round().await.unwrap_err();
    assert!(matches!(err, ReconcileError::Publish(_)), "{err}");
    assert!(
        h.driver.dataplane().is_empty(),
        "nothing relies on an unpublished key"
    );
    assert!(h.driver.take_applied().is_empty(), "read, never changed");
    assert!(h
        .metrics
        .encode()
        .contains(r#"kube_encrypt_reconcile_errors_total{stage="publish"} 1"#));

    h.writer.set_down(false);
    h.round().await.unwrap();
    assert_eq!(h.driver.dataplane(), h.expected());
}

#[tokio::test]
async fn an_api_outage_in_steady_state_changes_nothing() {
    let mut h = Harness::new("down-steady", ipv4_on());
    h.round().await.unwrap();
    h.sync_node_patches();
    h.round().await.unwrap();
    let before = h.driver.dataplane();
    h.driver.take_applied();
    h.writer.take_statuses();
    h.writer.set_down(true);

    assert_eq!(h.round().await.unwrap(), Outcome::Converged { applied: 0 });
    h.now += Duration::from_secs(600);
    assert_eq!(h.round().await.unwrap(), Outcome::Converged { applied: 0 });
    assert_eq!(h.driver.dataplane(), before);
    assert!(h.driver.take_applied().is_empty());
    let metrics = h.metrics.encode();
    assert!(
        metrics.contains(r#"kube_encrypt_reconcile_errors_total{stage="status"} 1"#),
        "{metrics}"
    );

    h.writer.set_down(false);
    h.round().await.unwrap();
    assert_eq!(
        h.writer.take_statuses().len(),
        1,
        "the due status is written once the API is back"
    );
}

#[tokio::test]
async fn a_restart_after_disable_still_finds_renamed_leftovers() {
    let mut custom = EncryptionConfigSpec::test();
    custom.ipv4.interface_name = "wg-custom".into();
    custom.routing_table = 700;
    custom.routing_rule_priority = 90;
    let mut h = Harness::new("restart", Some(custom));
    h.round().await.unwrap();
    h.sync_node_patches();
    assert_eq!(
        h.driver
            .dataplane()
            .family(Family::V4)
            .interface
            .as_ref()
            .unwrap()
            .name,
        "wg-custom"
    );

    let mut h = h.restart();
    h.cluster.config = None;
    h.round().await.unwrap();
    assert!(
        h.driver.dataplane().is_empty(),
        "{:?}",
        h.driver.dataplane()
    );
}

#[tokio::test]
async fn without_the_remembered_scope_renamed_leftovers_would_stay() {
    let mut custom = EncryptionConfigSpec::test();
    custom.ipv4.interface_name = "wg-custom".into();
    custom.routing_table = 700;
    let mut h = Harness::new("forgotten", Some(custom));
    h.round().await.unwrap();
    std::fs::remove_file(h.dir.join("managed-scope.json")).unwrap();

    let mut h = h.restart();
    h.cluster.config = None;
    h.round().await.unwrap();
    let left = h.driver.dataplane();
    assert!(
        left.family(Family::V4).interface.is_some(),
        "the control case: the file is what finds them"
    );
}

#[tokio::test]
async fn a_device_holding_a_foreign_key_is_rebuilt_with_the_node_key() {
    let dir = state_dir("foreign");
    let mut h = Harness::on(dir, Arc::new(FakeDriver::default()), ipv4_on());
    let desired = h.expected();
    let stranger = fixtures::key("stranger", Family::V4);
    h.driver = Arc::new(FakeDriver::with(
        desired,
        PerFamily {
            v4: Some(stranger),
            v6: None,
        },
    ));
    let mut h = h.restart();

    h.round().await.unwrap();
    let applied = h.driver.take_applied();
    assert!(
        matches!(
            &applied[0],
            Change::DeleteInterface {
                family: Family::V4,
                ..
            }
        ),
        "{applied:?}"
    );
    assert!(
        applied
            .iter()
            .any(|c| matches!(c, Change::CreateInterface { .. })),
        "{applied:?}"
    );
    assert_eq!(h.driver.device_keys().v4, h.own_keys().v4);
    assert_eq!(h.driver.dataplane(), h.expected());
}

#[tokio::test]
async fn a_failed_change_is_reported_and_retried() {
    let mut h = Harness::new("retry", ipv4_on());
    h.driver
        .fail_changes(Some(Box::new(|c| matches!(c, Change::AddPeer { .. }))));
    let err = h.round().await.unwrap_err();
    assert!(
        matches!(err, ReconcileError::Apply { failed: 1, .. }),
        "{err}"
    );
    let status = h.writer.take_statuses().pop().unwrap().ipv4.unwrap();
    assert_eq!(status.state, EncryptionState::Error);
    assert!(
        status.message.contains("injected failure"),
        "{}",
        status.message
    );

    h.driver.fail_changes(None);
    h.sync_node_patches();
    h.round().await.unwrap();
    assert_eq!(h.driver.dataplane(), h.expected());
    let status = h.writer.take_statuses().pop().unwrap().ipv4.unwrap();
    assert_eq!(status.state, EncryptionState::Encrypted);
}

#[tokio::test]
async fn an_unknown_node_touches_nothing() {
    let mut h = Harness::new("unknown", ipv4_on());
    h.cluster
        .nodes
        .retain(|n| n.metadata.name.as_deref() != Some(NODE));
    assert_eq!(h.round().await.unwrap(), Outcome::UnknownNode);
    assert_eq!(h.driver.observations(), 0);
    assert!(h.writer.take_node_patches().is_empty());
}

#[tokio::test]
async fn failing_observation_keeps_the_dataplane() {
    let mut h = Harness::new("observe", ipv4_on());
    h.driver.fail_observe(true);
    let err = h.round().await.unwrap_err();
    assert!(matches!(err, ReconcileError::Observe(_)), "{err}");
    assert!(h.driver.take_applied().is_empty());
}

#[tokio::test]
async fn the_key_survives_restarts_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Harness::new("keys", ipv4_on());
    h.round().await.unwrap();
    let published =
        h.sync_node_patches()[0]["metadata"]["annotations"][PUBLIC_KEY_ANNOTATION].clone();
    let mode = std::fs::metadata(key_path(&h.dir, Family::V4))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    h.driver.take_applied();

    let mut h = h.restart();
    h.round().await.unwrap();
    assert!(
        h.sync_node_patches().is_empty(),
        "same key, nothing to republish"
    );
    assert_eq!(
        Value::String(h.own_keys().v4.unwrap().to_base64()),
        published
    );
    let applied = h.driver.take_applied();
    assert!(
        applied
            .iter()
            .all(|c| !matches!(c, Change::CreateInterface { .. })),
        "{applied:#?}"
    );
}

#[tokio::test]
async fn metrics_show_peers_changes_and_reconciles() {
    let mut h = Harness::new("metrics", ipv4_on()).with_per_peer_metrics();
    h.round().await.unwrap();
    let peer_key = fixtures::key("node-b", Family::V4);
    h.driver.set_peer_stats(
        Family::V4,
        vec![PeerStats {
            public_key: peer_key,
            last_handshake: Some(h.now - Duration::from_secs(30)),
            rx_bytes: 1234,
            tx_bytes: 5678,
        }],
    );
    h.round().await.unwrap();
    let text = h.metrics.encode();
    let expected = [
        r#"kube_encrypt_peers_configured{family="ipv4"} 1"#,
        r#"kube_encrypt_peers_handshaken{family="ipv4"} 1"#,
        r#"kube_encrypt_peer_receive_bytes_total{family="ipv4",node="node-b"} 1234"#,
        r#"kube_encrypt_peer_transmit_bytes_total{family="ipv4",node="node-b"} 5678"#,
        r#"kube_encrypt_peer_handshake_age_seconds{family="ipv4",node="node-b"} 31"#,
        "kube_encrypt_reconcile_duration_seconds_count 2",
    ];
    for line in expected {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        !text.contains("kube_encrypt_dataplane_changes_total 0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_handshake_under_way_asks_for_an_early_look() {
    let mut h = Harness::new("handshakes", ipv4_on());
    h.round().await.unwrap();
    let stats = |last_handshake, tx_bytes| PeerStats {
        public_key: fixtures::key("node-b", Family::V4),
        last_handshake,
        rx_bytes: 0,
        tx_bytes,
    };
    let cases = [
        ("node-b is silent", stats(None, 0), Handshakes::Silent),
        (
            "node-b's handshake is under way",
            stats(None, 148),
            Handshakes::Underway,
        ),
        (
            "node-b handshook",
            stats(Some(h.now), 296),
            Handshakes::Done,
        ),
    ];
    for (name, peer, expected) in cases {
        h.driver.set_peer_stats(Family::V4, vec![peer]);
        h.round().await.unwrap();
        assert_eq!(h.reconciler.handshakes(), expected, "{name}");
    }
}

#[tokio::test]
async fn workload_ips_mode_routes_the_pods_of_each_node() {
    let mut config = EncryptionConfigSpec::test();
    config.route_source = RouteSource::WorkloadIps;
    let mut h = Harness::new("workload", Some(config));
    h.cluster
        .pools
        .push(NamedPool::new("vnet", IPPoolSpec::test("198.51.100.0/24")));
    h.cluster.pods = Some(vec![
        Arc::new(TestPod::new("web", "node-b").ip("198.51.100.7").build()),
        Arc::new(
            TestPod::new("done", "node-b")
                .ip("198.51.100.8")
                .phase("Succeeded")
                .build(),
        ),
    ]);
    h.round().await.unwrap();
    let dataplane = h.driver.dataplane();
    let peer = &dataplane.family(Family::V4).peers[0];
    let allowed: Vec<String> = peer.allowed_ips.iter().map(|n| n.to_string()).collect();
    assert!(
        allowed.contains(&"198.51.100.7/32".to_string()),
        "{allowed:?}"
    );
    assert!(
        !allowed.contains(&"198.51.100.8/32".to_string()),
        "{allowed:?}"
    );
}

#[tokio::test]
async fn a_vanished_interface_is_recreated_counted_and_named_in_the_status() {
    let mut h = Harness::new("vanished", ipv4_on());
    h.round().await.unwrap();
    h.sync_node_patches();
    h.round().await.unwrap();
    assert_eq!(h.driver.dataplane(), h.expected());
    let fallbacks = |dataplane: &Dataplane| {
        dataplane
            .family(Family::V4)
            .routes
            .iter()
            .filter(|r| r.kind == RouteKind::Unreachable)
            .count()
    };
    assert_eq!(fallbacks(&h.driver.dataplane()), 1, "node-b's pods");

    h.driver.vanish_interface(Family::V4);
    let left = h.driver.dataplane();
    assert_eq!(
        fallbacks(&left),
        1,
        "while the interface is gone the fallback drops node-b's traffic"
    );
    assert!(left.family(Family::V4).rule.is_some());
    h.driver.take_applied();
    h.writer.take_statuses();

    h.round().await.unwrap();
    assert_eq!(h.driver.dataplane(), h.expected(), "recreated");
    let applied = h.driver.take_applied();
    assert!(
        matches!(applied[0], Change::CreateInterface { .. }),
        "{applied:#?}"
    );
    let metrics = h.metrics.encode();
    assert!(
        metrics.contains(r#"kube_encrypt_interface_recreations_total{family="ipv4"} 1"#),
        "{metrics}"
    );
    let status = h.writer.take_statuses().pop().unwrap().ipv4.unwrap();
    assert_eq!(status.state, EncryptionState::Encrypted);
    assert!(
        status.message.contains("vanished and was recreated once"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn an_unwritable_state_dir_is_an_error_in_the_status_not_an_update_loop() {
    let mut h = Harness::new("read-only", ipv4_on());
    h.round().await.unwrap();
    h.sync_node_patches();
    h.driver
        .set_state_problems(vec!["write peer-names.json: Read-only file system".into()]);
    // The managed scope cannot be written either: a directory stands where it goes.
    let scope_file = h.dir.join("managed-scope.json");
    std::fs::remove_file(&scope_file).unwrap();
    std::fs::create_dir_all(&scope_file).unwrap();
    h.cluster.config.as_mut().unwrap().routing_table = 700;

    let err = h.round().await.unwrap_err();
    assert!(matches!(err, ReconcileError::State { .. }), "{err}");
    assert!(err.to_string().contains("Read-only file system"), "{err}");
    assert!(err.to_string().contains("managed-scope.json"), "{err}");
    assert_eq!(
        h.driver.dataplane(),
        h.expected(),
        "the dataplane is converged all the same"
    );
    let status = h.writer.take_statuses().pop().unwrap().ipv4.unwrap();
    assert_eq!(status.state, EncryptionState::Error);
    assert!(status.message.contains("Read-only"), "{}", status.message);
    h.driver.take_applied();

    for _ in 0..3 {
        assert!(h.round().await.is_err());
    }
    assert_eq!(
        h.driver.take_applied(),
        Vec::<Change>::new(),
        "nothing is redone while the records cannot be saved"
    );
    assert!(h
        .metrics
        .encode()
        .contains(r#"kube_encrypt_reconcile_errors_total{stage="state"} 4"#));

    h.driver.set_state_problems(vec![]);
    std::fs::remove_dir(&scope_file).unwrap();
    assert_eq!(h.round().await.unwrap(), Outcome::Converged { applied: 0 });
}

#[tokio::test]
async fn a_publish_refused_by_rbac_is_named_in_the_status_and_touches_nothing() {
    let mut h = Harness::new("forbidden", ipv4_on());
    h.writer.refuse_node_patches(Some(403));
    let err = h.round().await.unwrap_err();
    assert!(matches!(err, ReconcileError::Publish(_)), "{err}");
    assert!(err.to_string().contains("HTTP 403 Forbidden"), "{err}");
    assert!(
        h.driver.dataplane().is_empty(),
        "nothing relies on an unpublished key"
    );
    let v4 = h
        .writer
        .take_statuses()
        .pop()
        .expect("the refusal is reported")
        .ipv4
        .unwrap();
    assert_eq!(v4.state, EncryptionState::Error);
    assert!(v4.message.contains("HTTP 403 Forbidden"), "{}", v4.message);
    assert!(
        v4.message.contains("ClusterRole kube-encrypt-agent"),
        "{}",
        v4.message
    );

    // The control: an API server that cannot be reached gets no status write to wait on.
    h.writer.refuse_node_patches(None);
    h.writer.set_down(true);
    assert!(h.round().await.is_err());
    assert!(h.writer.take_statuses().is_empty());

    h.writer.set_down(false);
    h.round().await.unwrap();
    h.sync_node_patches();
    h.round().await.unwrap();
    assert_eq!(h.driver.dataplane(), h.expected(), "converges once allowed");
}

#[tokio::test(start_paused = true)]
async fn an_api_server_that_never_answers_fails_the_round_instead_of_hanging_it() {
    let mut h = Harness::new("hanging", ipv4_on());
    h.writer.set_hanging(true);
    let started = tokio::time::Instant::now();
    let err = h.round().await.unwrap_err();
    assert!(matches!(err, ReconcileError::Publish(_)), "{err}");
    assert!(
        err.to_string().contains("no answer from the API server"),
        "{err}"
    );
    assert_eq!(
        started.elapsed(),
        kube_encrypt_agent::reconcile::API_TIMEOUT
    );
    assert!(
        h.driver.dataplane().is_empty(),
        "nothing relies on an unpublished key"
    );
}

fn degraded(status: &kube_encrypt_api::crd::NodeEncryptionStatus) -> (String, String, String) {
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("a Degraded condition");
    (
        condition.status.clone(),
        condition.reason.clone(),
        condition.message.clone(),
    )
}

fn breaking_the_dataplane_rules() -> Option<EncryptionConfigSpec> {
    let mut spec = EncryptionConfigSpec::test();
    spec.routing_table = 254;
    spec.ipv4.interface_name = "-wg".into();
    Some(spec)
}

#[tokio::test]
async fn an_invalid_config_keeps_the_last_good_dataplane_until_it_is_fixed() {
    let mut h = Harness::new("refused", ipv4_on());
    h.round().await.unwrap();
    h.sync_node_patches();
    h.round().await.unwrap();
    let good = h.driver.dataplane();
    h.driver.take_applied();
    h.writer.take_statuses();

    h.cluster.config = breaking_the_dataplane_rules();
    let err = h.round().await.unwrap_err();
    assert!(matches!(err, ReconcileError::Plan(_)), "{err}");
    assert_eq!(
        h.driver.dataplane(),
        good,
        "nothing of the bad config applied"
    );
    assert!(h.driver.take_applied().is_empty());
    assert!(h.sync_node_patches().is_empty(), "annotations kept");
    let status = h
        .writer
        .take_statuses()
        .pop()
        .expect("the refusal is reported");
    let (state, reason, message) = degraded(&status);
    assert_eq!((state.as_str(), reason.as_str()), ("True", "InvalidConfig"));
    assert!(
        message.contains("breaks interface-name, routing-table and is not applied"),
        "{message}"
    );
    assert!(
        message.contains("pick an unused table such as 51820"),
        "{message}"
    );
    let findings: Vec<(&str, &str)> = status
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.severity.as_str()))
        .collect();
    assert_eq!(
        findings,
        [("interface-name", "deny"), ("routing-table", "deny")]
    );
    let v4 = status.ipv4.unwrap();
    assert_eq!(
        v4.state,
        EncryptionState::Encrypted,
        "the kept dataplane still encrypts"
    );

    h.cluster.config = ipv4_on();
    assert_eq!(h.round().await.unwrap(), Outcome::Converged { applied: 0 });
    assert_eq!(h.driver.dataplane(), h.expected());
    let status = h.writer.take_statuses().pop().expect("the fix is reported");
    assert_eq!(degraded(&status).0, "False");
    assert!(status.findings.is_empty(), "{:?}", status.findings);
}

#[tokio::test]
async fn a_fresh_agent_refuses_an_invalid_config_and_touches_nothing() {
    let mut h = Harness::new("refused-fresh", breaking_the_dataplane_rules());
    assert!(h.round().await.is_err());
    assert!(h.driver.dataplane().is_empty());
    assert!(h.writer.take_node_patches().is_empty(), "no key published");
    let status = h.writer.take_statuses().pop().unwrap();
    assert_eq!(degraded(&status).1, "InvalidConfig");
    let v4 = status.ipv4.unwrap();
    assert_eq!(v4.state, EncryptionState::Disabled);
    assert!(v4.message.contains("not applied"), "{}", v4.message);

    h.cluster.config = ipv4_on();
    h.round().await.unwrap();
    h.sync_node_patches();
    h.round().await.unwrap();
    assert_eq!(h.driver.dataplane(), h.expected(), "applied once fixed");
}

#[tokio::test]
async fn nat_outgoing_findings_only_warn() {
    let mut h = Harness::new("nat-warning", ipv4_on());
    h.cluster.pools = vec![NamedPool::new(
        "pods",
        IPPoolSpec::test("198.18.0.0/16").without_nat(),
    )];
    h.round().await.unwrap();
    h.sync_node_patches();
    h.round().await.unwrap();
    assert_eq!(h.driver.dataplane(), h.expected());
    let status = h.writer.take_statuses().pop().unwrap();
    let (state, _, message) = degraded(&status);
    assert_eq!(state, "False");
    assert!(message.contains("warnings: ipv4-nat-outgoing"), "{message}");
    let findings: Vec<(&str, &str)> = status
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.severity.as_str()))
        .collect();
    assert_eq!(findings, [("ipv4-nat-outgoing", "warning")]);
}

#[tokio::test]
async fn the_status_counts_handshakes_from_the_device_after_applying() {
    let mut h = Harness::new("fresh-counters", ipv4_on());
    h.driver.set_peer_stats(
        Family::V4,
        vec![PeerStats {
            public_key: fixtures::key("node-b", Family::V4),
            last_handshake: Some(h.now),
            rx_bytes: 92,
            tx_bytes: 148,
        }],
    );
    h.round().await.unwrap();
    let v4 = h.writer.take_statuses().pop().unwrap().ipv4.unwrap();
    assert_eq!(
        v4.peers.ratio, "1/1",
        "the device had no peer before this round applied it"
    );
    assert_eq!((v4.rx_bytes, v4.tx_bytes), (92, 148));
}

/// node-c, older than node-b, publishes node-b's key.
fn copier() -> Arc<Node> {
    let key = fixtures::key("node-b", Family::V4).to_base64();
    Arc::new(
        TestNode::new("node-c")
            .internal_ip("192.0.2.3")
            .pod_cidr("198.18.3.0/24")
            .annotation(PUBLIC_KEY_ANNOTATION, &key)
            .created("2020-01-01T00:00:00Z")
            .build(),
    )
}

fn peer_nodes(h: &Harness) -> Vec<String> {
    let dataplane = h.driver.dataplane();
    dataplane
        .family(Family::V4)
        .peers
        .iter()
        .map(|p| p.node.clone())
        .collect()
}

#[tokio::test]
async fn a_key_copy_never_takes_over_a_peer_the_device_has() {
    let mut h = Harness::new("copy", ipv4_on());
    h.round().await.unwrap();
    h.sync_node_patches();
    h.round().await.unwrap();
    assert_eq!(peer_nodes(&h), ["node-b"]);

    let mut h = h.restart();
    h.cluster.nodes.push(copier());
    h.round().await.unwrap();
    assert_eq!(
        peer_nodes(&h),
        ["node-b"],
        "the device's peer keeps its key"
    );
    let v4 = h.writer.take_statuses().pop().unwrap().ipv4.unwrap();
    assert_eq!(v4.state, EncryptionState::Encrypted);
    let skipped: Vec<(&str, bool)> = v4
        .skipped_peers
        .iter()
        .map(|s| (s.node.as_str(), s.reason.starts_with("refused")))
        .collect();
    assert_eq!(skipped, [("node-c", true)]);

    // The control: a node whose device holds nothing yet goes by age alone.
    let mut fresh = Harness::new("copy-fresh", ipv4_on());
    fresh.cluster.nodes.push(copier());
    fresh.round().await.unwrap();
    assert_eq!(peer_nodes(&fresh), ["node-c"]);
}
