//! One emulator per test with the repository's CRDs, a kubeconfig for it, seeding helpers and a
//! runner for the plugin binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use kube_encrypt_api::crd::{EncryptionConfig, IPPool, IPPoolSpec, NodeEncryption};
use kube_encrypt_api::fixtures::{key, TestNode};
use kube_encrypt_api::net::Family;
pub use kube_encrypt_tests::test_cluster::Backend;
pub use kube_encrypt_tests::test_cluster::TempDir;
use kube_encrypt_tests::test_cluster::TestCluster;

/// A kubeconfig for `server` without credentials (an unreachable server, in error tests).
pub fn kubeconfig(server: &str) -> String {
    kube_encrypt_tests::lab::kubeconfig::anonymous(server)
}
use serde_json::{json, Value};
use tokio::process::Command;

/// Every plugin call ends within this.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory holding the workspace's binaries (next to the lab binary of this build).
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_kube-encrypt-lab"))
        .parent()
        .expect("the lab binary has a directory")
        .to_path_buf()
}

/// `kubectl-encrypt` of this build.
pub fn plugin_bin() -> PathBuf {
    let bin = bin_dir().join("kubectl-encrypt");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build -p kubectl-encrypt`, or the whole workspace)",
        bin.display()
    );
    bin
}

/// The lab's kubectl (`$KUBECTL`, the control plane's build, or `kubectl` on `PATH`).
pub fn kubectl_bin() -> PathBuf {
    kube_encrypt_tests::lab::control_plane::kubectl()
        .expect("kubectl is not installed: scripts/install-deps.sh installs it (or set KUBECTL)")
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to completion within [`CALL_TIMEOUT`].
pub async fn finish(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(CALL_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} did not finish within {CALL_TIMEOUT:?}"))
        .expect("running a command");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// An API server (emulator or kube-apiserver) with a client and an admin kubeconfig file for
/// the plugin.
pub struct Cluster {
    /// Serves until the test ends (dropped with it); its directory holds the kubeconfig.
    server: TestCluster,
    pub client: Client,
}

impl Cluster {
    /// An API server with kube-encrypt's CRDs.
    pub async fn start(backend: Backend) -> Self {
        let cluster = Self::start_empty(backend).await;
        cluster.server.install_crds().await;
        cluster
    }

    /// An API server without CRDs (nothing installed).
    pub async fn start_empty(backend: Backend) -> Self {
        let server = TestCluster::start(backend).await;
        server.kubeconfig();
        let client = server.client.clone();
        Self { server, client }
    }

    /// The test's directory.
    pub fn dir(&self) -> &Path {
        self.server.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir().join("admin.kubeconfig")
    }

    /// `kubectl-encrypt ARGS` against this cluster (no colour variables inherited).
    pub fn plugin(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(plugin_bin());
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir())
            .env_remove("NO_COLOR");
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        finish(self.plugin(args)).await
    }

    pub async fn add_nodes(&self, nodes: impl IntoIterator<Item = Node>) {
        let api: Api<Node> = Api::all(self.client.clone());
        for node in nodes {
            api.create(&PostParams::default(), &node)
                .await
                .expect("creating a node");
        }
    }

    pub async fn add_pool(&self, name: &str, spec: IPPoolSpec) {
        let api: Api<IPPool> = Api::all(self.client.clone());
        api.create(&PostParams::default(), &IPPool::new(name, spec))
            .await
            .expect("creating a pool");
    }

    pub async fn pool(&self, name: &str) -> IPPool {
        Api::<IPPool>::all(self.client.clone())
            .get(name)
            .await
            .expect("reading a pool")
    }

    /// Applies the config as `manager` would (server-side apply).
    pub async fn apply_config(&self, manager: &str, body: Value) {
        let api: Api<EncryptionConfig> = Api::all(self.client.clone());
        let mut patch = json!({"apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "EncryptionConfig", "metadata": {"name": "default"}});
        merge(&mut patch, body);
        api.patch(
            "default",
            &PatchParams::apply(manager),
            &Patch::Apply(&patch),
        )
        .await
        .expect("applying the config");
    }

    /// [`Self::apply_config`], returning the API server's refusal instead of failing.
    pub async fn try_apply_config(&self, manager: &str, body: Value) -> Result<(), String> {
        let api: Api<EncryptionConfig> = Api::all(self.client.clone());
        let mut patch = json!({"apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "EncryptionConfig", "metadata": {"name": "default"}});
        merge(&mut patch, body);
        api.patch(
            "default",
            &PatchParams::apply(manager),
            &Patch::Apply(&patch),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    pub async fn config(&self) -> Option<EncryptionConfig> {
        Api::<EncryptionConfig>::all(self.client.clone())
            .get_opt("default")
            .await
            .expect("reading the config")
    }

    /// Writes a node's NodeEncryption as its agent would (create, then status).
    pub async fn report(&self, node: &str, status: Value) {
        let api: Api<NodeEncryption> = Api::all(self.client.clone());
        let object = json!({"apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "NodeEncryption", "metadata": {"name": node}, "spec": {}});
        let patch = PatchParams::apply("kube-encrypt-agent").force();
        api.patch(node, &patch, &Patch::Apply(&object))
            .await
            .expect("applying a NodeEncryption");
        let mut status_patch = object.clone();
        status_patch["status"] = status;
        api.patch_status(node, &patch, &Patch::Apply(&status_patch))
            .await
            .expect("writing a NodeEncryption status");
    }
}

fn merge(target: &mut Value, extra: Value) {
    match (target, extra) {
        (Value::Object(t), Value::Object(e)) => {
            for (k, v) in e {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, e) => *t = e,
    }
}

/// Node `i` with its documentation addresses, pod CIDRs and both keys published.
pub fn node(i: u8) -> Node {
    TestNode::new(&format!("node-{i}"))
        .internal_ip(&format!("192.0.2.1{i}"))
        .internal_ip(&format!("2001:db8::1{i}"))
        .pod_cidr(&format!("198.18.{i}.0/24"))
        .pod_cidr(&format!("2001:db8:1:{i}::/64"))
        .test_key(Family::V4)
        .test_key(Family::V6)
        .build()
}

/// One family's status as an agent reports it: `Encrypted` with every peer handshaken.
pub fn encrypted(node: &str, family: Family, peers: i64) -> Value {
    let (port, mtu, interface) = match family {
        Family::V4 => (51820, 1440, "wg-encrypt"),
        Family::V6 => (51821, 1420, "wg-encrypt-v6"),
    };
    json!({
        "state": "Encrypted", "backend": "userspace", "interface": interface,
        "publicKey": key(node, family).to_base64(), "listenPort": port, "mtu": mtu,
        "peers": {"configured": peers, "handshaken": peers, "ratio": format!("{peers}/{peers}")},
        "oldestHandshakeSeconds": 12, "rxBytes": 4096, "txBytes": 2048
    })
}

/// One family's status in `state` with `message`.
pub fn state(state: &str, message: &str) -> Value {
    json!({"state": state, "message": message, "peers": {"configured": 0, "handshaken": 0, "ratio": "0/0"}})
}

/// A cluster of `n` IPv4-encrypted nodes with an IPv4 pool with NAT outgoing and the config
/// applied as `manager`.
pub async fn encrypted_cluster(n: u8, backend: Backend) -> Cluster {
    let cluster = Cluster::start(backend).await;
    cluster.add_nodes((1..=n).map(node)).await;
    cluster
        .add_pool(
            "pool-v4",
            IPPoolSpec {
                cidr: "198.18.0.0/16".into(),
                nat_outgoing: true,
                disabled: false,
            },
        )
        .await;
    cluster
        .apply_config(
            "gitless-admin",
            json!({"spec": {"ipv4": {"enabled": true}}}),
        )
        .await;
    for i in 1..=n {
        let name = format!("node-{i}");
        cluster
            .report(
                &name,
                json!({"ipv4": encrypted(&name, Family::V4, i64::from(n) - 1)}),
            )
            .await;
    }
    cluster
}
