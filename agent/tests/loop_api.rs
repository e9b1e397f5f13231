//! The whole agent (watch caches, debounce, reconcile, publish, status, HTTP endpoints) against
//! a small in-process Kubernetes API on loopback, over plain HTTP, with a fake host: it
//! converges, keeps the dataplane through an API outage, and reconverges after it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kube_encrypt_agent::args::{Config, MetricsAddr, Userspace};
use kube_encrypt_agent::dataplane::facts::HostFacts;
use kube_encrypt_agent::fake::FakeDriver;
use kube_encrypt_agent::host::FixedHost;
use kube_encrypt_agent::run::run_until;
use kube_encrypt_api::crd::{EncryptionConfig, EncryptionConfigSpec, IPPool, IPPoolSpec};
use kube_encrypt_api::fixtures::TestNode;
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::PUBLIC_KEY_ANNOTATION;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, Infallible>;

const CONFIGS: &str = "/apis/kube-encrypt.dev/v1alpha1/encryptionconfigs";
const POOLS: &str = "/apis/kube-encrypt.dev/v1alpha1/ippools";
const NODES: &str = "/api/v1/nodes";
const NODE_ENCRYPTIONS: &str = "/apis/kube-encrypt.dev/v1alpha1/nodeencryptions";

/// The objects the fake API serves, by collection path and name, and the writes it received.
#[derive(Default)]
struct Objects {
    collections: BTreeMap<&'static str, BTreeMap<String, Value>>,
    /// Every change as a watch event: (resourceVersion, collection, event JSON).
    events: Vec<(u64, &'static str, Value)>,
    node_patches: Vec<Value>,
    node_encryptions: BTreeMap<String, Value>,
    resource_version: u64,
    /// How many times each collection was listed.
    lists: BTreeMap<&'static str, usize>,
}

impl Objects {
    fn get(&self, path: &str, name: &str) -> Value {
        self.collections[path]
            .get(name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Inserts, replaces (`Some`) or deletes (`None`) an object and records the event.
    fn put(&mut self, path: &'static str, name: &str, object: Option<Value>) {
        self.resource_version += 1;
        let rv = self.resource_version;
        let collection = self.collections.entry(path).or_default();
        let (kind, mut object) = match object {
            Some(object) if collection.contains_key(name) => ("MODIFIED", object),
            Some(object) => ("ADDED", object),
            None => match collection.remove(name) {
                Some(gone) => ("DELETED", gone),
                None => return,
            },
        };
        object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        if kind != "DELETED" {
            collection.insert(name.to_owned(), object.clone());
        }
        self.events
            .push((rv, path, json!({"type": kind, "object": object})));
    }
}

/// A Kubernetes API that lists and watches (from any resourceVersion, so a client that lost
/// its connection resumes where it was), merge-patches nodes and stores NodeEncryptions.
struct FakeApi {
    objects: Arc<Mutex<Objects>>,
    changed: watch::Sender<u64>,
}

impl FakeApi {
    fn new(objects: Objects) -> Arc<Self> {
        let (changed, _) = watch::channel(objects.resource_version);
        Arc::new(Self {
            objects: Arc::new(Mutex::new(objects)),
            changed,
        })
    }

    fn change(&self, edit: impl FnOnce(&mut Objects)) {
        let mut objects = self.objects.lock().unwrap();
        edit(&mut objects);
        self.changed.send_replace(objects.resource_version);
    }

    fn with<T>(&self, read: impl FnOnce(&Objects) -> T) -> T {
        read(&self.objects.lock().unwrap())
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let collection = [CONFIGS, POOLS, NODES].into_iter().find(|c| *c == path);
        match (method, collection) {
            (Method::GET, Some(c)) if query.contains("watch=true") => self.watch(c, &query),
            (Method::GET, Some(c)) => self.list(c),
            (Method::PATCH, _) if path.starts_with("/api/v1/nodes/") => {
                self.patch_node(&path[14..], body)
            }
            (Method::POST, _) if path == NODE_ENCRYPTIONS => self.create_node_encryption(body),
            (Method::PATCH, _)
                if path.starts_with(NODE_ENCRYPTIONS) && path.ends_with("/status") =>
            {
                let name = path[NODE_ENCRYPTIONS.len() + 1..path.len() - 7].to_owned();
                self.patch_status(&name, body)
            }
            _ => status(StatusCode::NOT_FOUND, "NotFound"),
        }
    }

    fn list(&self, path: &'static str) -> Response<Body> {
        self.change(|o| *o.lists.entry(path).or_default() += 1);
        self.with(|o| {
            let items: Vec<Value> = o.collections[path].values().cloned().collect();
            let list = json!({
                "apiVersion": "v1", "kind": "List",
                "metadata": {"resourceVersion": o.resource_version.to_string()},
                "items": items,
            });
            json_response(StatusCode::OK, &list)
        })
    }

    /// Streams the events of `path` after the asked resourceVersion, then every new one.
    fn watch(self: &Arc<Self>, path: &'static str, query: &str) -> Response<Body> {
        let after: u64 = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("resourceVersion="))
            .and_then(|rv| rv.parse().ok())
            .unwrap_or_default();
        let state = (self.clone(), self.changed.subscribe(), after);
        let stream = futures::stream::unfold(state, move |(api, mut changed, after)| async move {
            loop {
                let (lines, last) = api.with(|o| {
                    let new: Vec<_> = o
                        .events
                        .iter()
                        .filter(|(rv, p, _)| *rv > after && *p == path)
                        .collect();
                    let lines: String = new.iter().map(|(_, _, e)| format!("{e}\n")).collect();
                    (lines, new.last().map_or(after, |(rv, _, _)| *rv))
                });
                if !lines.is_empty() {
                    return Some((Ok(Frame::data(Bytes::from(lines))), (api, changed, last)));
                }
                changed.changed().await.ok()?;
            }
        });
        Response::new(BodyExt::boxed(StreamBody::new(stream)))
    }

    fn patch_node(&self, name: &str, patch: Value) -> Response<Body> {
        let mut patched = Value::Null;
        self.change(|o| {
            o.node_patches.push(patch.clone());
            let mut node = o.get(NODES, name);
            if !node.is_null() {
                merge(&mut node, &patch);
                o.put(NODES, name, Some(node));
                patched = o.get(NODES, name);
            }
        });
        match patched {
            Value::Null => status(StatusCode::NOT_FOUND, "NotFound"),
            node => json_response(StatusCode::OK, &node),
        }
    }

    fn create_node_encryption(&self, object: Value) -> Response<Body> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.objects
            .lock()
            .unwrap()
            .node_encryptions
            .insert(name, object.clone());
        json_response(StatusCode::CREATED, &object)
    }

    fn patch_status(&self, name: &str, patch: Value) -> Response<Body> {
        let mut objects = self.objects.lock().unwrap();
        match objects.node_encryptions.get_mut(name) {
            Some(object) => {
                merge(object, &patch);
                json_response(StatusCode::OK, object)
            }
            None => status(StatusCode::NOT_FOUND, "NotFound"),
        }
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().unwrap();
    for (key, value) in fields {
        if value.is_null() {
            object.remove(key);
        } else {
            merge(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn status(code: StatusCode, reason: &str) -> Response<Body> {
    let body = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "reason": reason, "code": code.as_u16(), "message": reason});
    json_response(code, &body)
}

/// The fake API listening on `addr`; dropping it refuses connections and cuts open ones.
struct Serving {
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Serving {
    async fn start(api: Arc<FakeApi>, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tracked = connections.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let api = api.clone();
                let service = hyper::service::service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(api.handle(req).await) }
                });
                let conn = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                tracked.lock().unwrap().push(conn);
            }
        });
        Self {
            accept,
            connections,
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.accept.abort();
        for conn in self.connections.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}

fn cluster() -> Objects {
    let config = EncryptionConfig::new("default", EncryptionConfigSpec::test());
    let pool = IPPool::new("pods", IPPoolSpec::test("198.18.0.0/16"));
    let mut own = TestNode::new("node-a")
        .internal_ip("192.0.2.1")
        .pod_cidr("198.18.1.0/24")
        .build();
    own.metadata.uid = Some("uid-node-a".into());
    let peer = TestNode::new("node-b")
        .internal_ip("192.0.2.2")
        .pod_cidr("198.18.2.0/24")
        .test_key(Family::V4)
        .build();
    let json = |v: &dyn erased::Json| v.json();
    let mut objects = Objects::default();
    for path in [CONFIGS, POOLS, NODES] {
        objects.collections.insert(path, BTreeMap::new());
    }
    objects.put(CONFIGS, "default", Some(json(&config)));
    objects.put(POOLS, "pods", Some(json(&pool)));
    objects.put(NODES, "node-a", Some(json(&own)));
    objects.put(NODES, "node-b", Some(json(&peer)));
    objects
}

mod erased {
    /// Any serializable object as JSON.
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn kubeconfig(dir: &std::path::Path, api: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{api}\n\
         contexts:\n- name: fake\n  context: {{cluster: fake, user: fake}}\ncurrent-context: fake\n\
         users:\n- name: fake\n  user: {{}}\n"
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Polls `done` every 100 ms for at most `limit`.
async fn eventually(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let code = response[9..12].parse().unwrap();
    (code, response)
}

/// A fresh state directory for test `name`, logs on, the TLS provider installed.
fn test_dir(name: &str) -> std::path::PathBuf {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,kube_client::client::builder=off")
        .with_test_writer()
        .try_init();
    let dir = std::env::temp_dir().join(format!("ke-loop-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The agent of node-a against the API at `api_addr`: fast resyncs, metrics on `metrics_addr`.
fn agent_config(dir: &std::path::Path, api_addr: SocketAddr, metrics_addr: SocketAddr) -> Config {
    Config {
        node_name: "node-a".into(),
        kubeconfig: Some(kubeconfig(dir, api_addr)),
        state_dir: dir.join("state"),
        metrics_addr: MetricsAddr::Fixed(metrics_addr),
        host_ip: None,
        per_peer_metrics: false,
        sysctl_dir: "/proc/sys".into(),
        userspace: Userspace::None,
        resync_interval: Duration::from_secs(1),
        debounce: Duration::from_millis(50),
    }
}

/// node-a's host: one underlay interface, userspace WireGuard only.
fn fixed_host() -> FixedHost {
    FixedHost(HostFacts {
        underlay_interfaces: vec!["eth0".into()],
        underlay_mtu: Some(1500),
        underlay_addresses: vec!["192.0.2.1/24".parse().unwrap()],
        kernel_wireguard: false,
        userspace_wireguard: true,
    })
}

/// The nodes of the IPv4 peers programmed on the fake host.
fn peer_nodes(driver: &FakeDriver) -> Vec<String> {
    let dataplane = driver.dataplane();
    let peers = &dataplane.family(Family::V4).peers;
    let mut nodes: Vec<String> = peers.iter().map(|p| p.node.clone()).collect();
    nodes.sort();
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_converges_rides_out_an_api_outage_and_reconverges() {
    let dir = test_dir("outage");
    let api_addr = free_port();
    let metrics_addr = free_port();
    let api = FakeApi::new(cluster());
    let serving = Serving::start(api.clone(), api_addr).await;

    let config = agent_config(&dir, api_addr, metrics_addr);
    let driver = Arc::new(FakeDriver::default());
    let host = fixed_host();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = run_until(config, driver.clone(), host, async {
        let _ = stopped.await;
    });

    let script = async {
        let routed = || {
            let dataplane = driver.dataplane();
            let v4 = dataplane.family(Family::V4);
            v4.interface.is_some() && v4.rule.is_some() && !v4.routes.is_empty()
        };
        eventually(
            "the mesh with routes, after the key is published",
            Duration::from_secs(20),
            routed,
        )
        .await;
        let published = api.with(|o| {
            o.get(NODES, "node-a")["metadata"]["annotations"][PUBLIC_KEY_ANNOTATION].clone()
        });
        assert!(published.is_string(), "{published}");
        let written =
            || api.with(|o| o.node_encryptions["node-a"]["status"]["ipv4"]["state"] == "Encrypted");
        eventually(
            "NodeEncryption status Encrypted",
            Duration::from_secs(10),
            || api.with(|o| o.node_encryptions.contains_key("node-a")) && written(),
        )
        .await;
        let owner = api.with(|o| {
            o.node_encryptions["node-a"]["metadata"]["ownerReferences"][0]["uid"].clone()
        });
        assert_eq!(owner, "uid-node-a");
        let mut ready = false;
        for _ in 0..50 {
            ready = http_get(metrics_addr, "/readyz").await.0 == 200;
            if ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "/readyz after convergence");
        let (_, metrics) = http_get(metrics_addr, "/metrics").await;
        assert!(
            metrics.contains(r#"kube_encrypt_peers_configured{family="ipv4"} 1"#),
            "{metrics}"
        );

        // Outage: connections refused and cut. The dataplane must not move.
        let before = driver.dataplane();
        driver.take_applied();
        drop(serving);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(driver.dataplane(), before, "fail static");
        assert!(driver.take_applied().is_empty());
        assert!(driver.observations() > 0, "resync rounds still ran");

        // While it is away, encryption is disabled; when it is back the agent reconverges.
        api.change(|o| o.put(CONFIGS, "default", None));
        let _serving = Serving::start(api.clone(), api_addr).await;
        eventually(
            "teardown after the API returns",
            Duration::from_secs(45),
            || driver.dataplane().is_empty(),
        )
        .await;
        let withdrawn = || {
            api.with(|o| {
                o.get(NODES, "node-a")["metadata"]["annotations"]
                    .get(PUBLIC_KEY_ANNOTATION)
                    .is_none()
            })
        };
        eventually(
            "the key annotation withdrawn",
            Duration::from_secs(10),
            withdrawn,
        )
        .await;
        let _ = stop.send(());
    };
    let (result, ()) = tokio::join!(agent, script);
    result.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Node cache keeps only the labels the planner reads: a node selector naming a new label
/// key makes the agent list the Nodes again (once), and it then selects by that label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_selector_naming_another_label_rewatches_the_nodes() {
    let dir = test_dir("selector");
    let api_addr = free_port();
    let mut objects = cluster();
    let node = |name: &str, i: u8, pool: Option<&str>| {
        let node = TestNode::new(name)
            .internal_ip(&format!("192.0.2.{i}"))
            .pod_cidr(&format!("198.18.{i}.0/24"))
            .test_key(Family::V4);
        let node = match pool {
            Some(pool) => node.label("pool", pool),
            None => node,
        };
        serde_json::to_value(node.build()).unwrap()
    };
    objects.put(NODES, "node-a", Some(node("node-a", 1, Some("encrypted"))));
    objects.put(NODES, "node-b", Some(node("node-b", 2, Some("encrypted"))));
    objects.put(NODES, "node-c", Some(node("node-c", 3, None)));
    let api = FakeApi::new(objects);
    let _serving = Serving::start(api.clone(), api_addr).await;
    let driver = Arc::new(FakeDriver::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = agent_config(&dir, api_addr, free_port());
    let agent = run_until(config, driver.clone(), fixed_host(), async {
        let _ = stopped.await;
    });

    let script = async {
        let all = || peer_nodes(&driver) == ["node-b", "node-c"];
        eventually("both peers, no selector", Duration::from_secs(20), all).await;
        let node_lists = || api.with(|o| o.lists.get(NODES).copied().unwrap_or_default());
        assert_eq!(
            node_lists(),
            1,
            "the Nodes are listed once the config is known"
        );

        let spec = EncryptionConfigSpec::test().selecting("pool", "encrypted");
        let config = EncryptionConfig::new("default", spec);
        api.change(|o| {
            o.put(
                CONFIGS,
                "default",
                Some(serde_json::to_value(&config).unwrap()),
            )
        });
        let selected = || peer_nodes(&driver) == ["node-b"];
        eventually(
            "node-c left out by the selector",
            Duration::from_secs(20),
            selected,
        )
        .await;
        assert_eq!(node_lists(), 2, "one new list for the new label key");
        let _ = stop.send(());
    };
    let (result, ()) = tokio::join!(agent, script);
    result.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
