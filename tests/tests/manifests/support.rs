//! Rendering, parsing and the tools: the pinned kubectl and Helm, a real kube-apiserver per
//! test, and tokens of the install's ServiceAccounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::Client;
pub use kube_encrypt_tests::test_cluster::TempDir;
use kube_encrypt_tests::test_cluster::{Backend, TestCluster};
use serde_json::{json, Value};
use tokio::process::Command;

/// The install namespace.
pub const NAMESPACE: &str = "kube-encrypt";
/// Every tool call ends within this.
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository")
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// stdout, or a failure with everything the command said.
    pub fn expect_ok(self, what: &str) -> String {
        assert!(self.ok, "{what} failed:\n{}", self.all());
        self.stdout
    }
}

/// Runs `cmd` to completion within [`CALL_TIMEOUT`].
pub async fn finish(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(CALL_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} did not finish within {CALL_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The pinned kubectl (the control plane's build), else `$KUBECTL` or PATH's.
pub fn kubectl_bin() -> PathBuf {
    kube_encrypt_tests::lab::control_plane::kubectl()
        .expect("kubectl is not installed: scripts/install-deps.sh installs it (or set KUBECTL)")
}

/// `kubectl kustomize <dir>` (relative to the repository).
pub async fn kustomize(dir: &str) -> String {
    kustomize_path(&repo().join(dir)).await
}

pub async fn kustomize_path(dir: &Path) -> String {
    let mut cmd = Command::new(kubectl_bin());
    cmd.arg("kustomize").arg(dir);
    finish(cmd)
        .await
        .expect_ok(&format!("kubectl kustomize {}", dir.display()))
}

/// The base with `components` (paths relative to the repository), rendered from a user's own
/// kustomization in a temporary folder, as a user would include them.
pub async fn kustomize_with_components(components: &[&str]) -> String {
    let dir = TempDir::named("kustomization");
    let up = "../".repeat(dir.path().components().count() - 1);
    let from_root = |p: &str| {
        let absolute = repo().join(p);
        format!("{up}{}", absolute.strip_prefix("/").unwrap().display())
    };
    let mut text = format!("resources:\n  - {}\ncomponents:\n", from_root("manifests"));
    for component in components {
        text.push_str(&format!("  - {}\n", from_root(component)));
    }
    std::fs::write(dir.path().join("kustomization.yaml"), text).unwrap();
    kustomize_path(dir.path()).await
}

/// The documents of a multi-document YAML stream, empty ones left out.
pub fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `Kind namespace/name` (`Kind name` when cluster-scoped).
pub fn key(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("?");
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The objects by [`key`].
pub fn by_key(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects.into_iter().map(|o| (key(&o), o)).collect()
}

/// The one object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendering"))
}

/// Helm built from tests/helm (`scripts/build-helm.sh`), or `None` when Go is missing.
pub async fn helm_bin() -> Option<PathBuf> {
    let out = finish(Command::new(repo().join("scripts/build-helm.sh"))).await;
    if !out.ok && out.stderr.contains("Go is not installed") {
        eprintln!(
            "GATED: Go is not installed, so Helm cannot be built here; the chart was not checked"
        );
        return None;
    }
    let dir = PathBuf::from(out.expect_ok("scripts/build-helm.sh").trim());
    Some(dir.join("helm"))
}

/// A real kube-apiserver for this test, or `None` (saying why) where it cannot be built.
pub async fn kube_cluster() -> Option<TestCluster> {
    if !Backend::kube_available() {
        return None;
    }
    let cluster = TestCluster::start(Backend::Kube).await;
    cluster.kubeconfig();
    Some(cluster)
}

/// The pinned kubectl against `cluster` as its admin.
pub async fn kubectl(cluster: &TestCluster, args: &[&str]) -> Output {
    let mut cmd = Command::new(kubectl_bin());
    cmd.arg("--kubeconfig")
        .arg(cluster.dir.path().join("admin.kubeconfig"))
        .arg("--cache-dir")
        .arg(cluster.dir.path().join("kubectl-cache"))
        .args(args)
        .env("HOME", cluster.dir.path());
    finish(cmd).await
}

/// Writes `yaml` into the test's directory and runs `kubectl ARGS -f <file>`.
pub async fn kubectl_file(cluster: &TestCluster, yaml: &str, args: &[&str]) -> Output {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let file = cluster.dir.path().join(format!("objects-{n}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["-f", file.to_str().unwrap()]);
    kubectl(cluster, &full).await
}

/// Applies the rendered base server-side as the plugin's field manager, as `kubectl encrypt
/// install` does.
pub async fn install_base(cluster: &TestCluster) {
    let base = kustomize("manifests").await;
    kubectl_file(
        cluster,
        &base,
        &["apply", "--server-side", "--field-manager=kubectl-encrypt"],
    )
    .await
    .expect_ok("applying the base");
    let crds: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(cluster.client.clone());
    for (file, crd) in kube_encrypt_api::crd::all() {
        let name = crd.metadata.name.unwrap_or_else(|| file.to_owned());
        kube_encrypt_tests::test_cluster::wait_established(&crds, &name).await;
    }
}

/// Creates a Node named `name` with one IPv4 and one IPv6 InternalIP and a pod CIDR per
/// family (documentation ranges), plus a label and an annotation kube-encrypt does not own.
pub async fn create_node(client: &Client, name: &str, index: u8) {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name},
            "annotations": {"example.com/owner": "platform"},
        },
        "spec": {
            "podCIDR": format!("198.18.{index}.0/24"),
            "podCIDRs": [format!("198.18.{index}.0/24"), format!("2001:db8:1:{index}::/64")],
        },
    }))
    .unwrap();
    let created = nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {"addresses": [
        {"type": "InternalIP", "address": format!("192.0.2.1{index}")},
        {"type": "InternalIP", "address": format!("2001:db8::1{index}")},
    ]}});
    nodes
        .patch_status(
            created.metadata.name.as_deref().unwrap(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(status),
        )
        .await
        .unwrap();
}

/// A Pod of `service_account` standing for one of the install's pods, on `node` when given
/// (no kubelet runs it: it exists so a token can be bound to it).
pub async fn create_pod(
    client: &Client,
    name: &str,
    service_account: &str,
    node: Option<&str>,
) -> Pod {
    let pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "nodeName": node,
            "serviceAccountName": service_account,
            "containers": [{"name": "main", "image": "example.invalid/none:v0"}],
        },
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    pods.create(&PostParams::default(), &pod).await.unwrap()
}

/// A token of `service_account` bound to `pod` (carrying its node's name when it has one).
pub async fn pod_token(client: &Client, service_account: &str, pod: &Pod) -> String {
    kube_encrypt_tests::lab::identities::bound_token(client, service_account, pod)
        .await
        .expect("a bound token")
}

/// A token of `service_account` bound to nothing (no node-name claim).
pub async fn unbound_token(client: &Client, service_account: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    let issued = accounts
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .unwrap();
    issued.status.and_then(|s| s.token).expect("a token")
}

/// A kubeconfig file authenticating with `token` against `cluster`.
pub fn token_kubeconfig(cluster: &TestCluster, token: &str, name: &str) -> PathBuf {
    let ca = std::fs::read_to_string(cluster.dir.path().join("control-plane/pki/ca.crt"))
        .expect("the test control plane's CA");
    let text = kube_encrypt_tests::lab::kubeconfig::token(&cluster.url(), &ca, token);
    let path = cluster.dir.path().join(format!("{name}.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A client for the agent of `node`, as the DaemonSet would run it: the `kube-encrypt-agent`
/// ServiceAccount with a token bound to a Pod on that node (so it carries the node-name claim).
pub async fn agent_client(cluster: &TestCluster, node: &str) -> Client {
    let admin = cluster.client.clone();
    let name = format!("kube-encrypt-agent-{node}");
    let pod = create_pod(&admin, &name, "kube-encrypt-agent", Some(node)).await;
    let token = pod_token(&admin, "kube-encrypt-agent", &pod).await;
    token_client(cluster, &token, "agent").await
}

/// A kube-rs client authenticating with `token`.
pub async fn token_client(cluster: &TestCluster, token: &str, name: &str) -> Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let file = Kubeconfig::read_from(token_kubeconfig(cluster, token, name)).unwrap();
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}
