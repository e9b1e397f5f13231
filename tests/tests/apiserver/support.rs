//! A server per test, clients, CRDs and error helpers.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client, Config};
use kube_encrypt_tests::apiserver::{start, RunningServer, ServerConfig};
use kube_encrypt_tests::kube_apiserver::{self, KubeApiServer};

/// Every test ends within this.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a test body under [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time limit")
}

/// A temporary state directory, removed on drop.
#[derive(Debug)]
pub struct StateDir(PathBuf);

impl StateDir {
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kube-encrypt-apiserver-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a test state directory");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which API server a test runs against. Every test of this suite runs against both:
/// `on_both_servers!(name)` makes `name::emulator` and `name::kube`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The project's in-process emulator.
    Emulator,
    /// A real etcd + kube-apiserver (`scripts/build-control-plane.sh`).
    Kube,
}

impl Backend {
    /// Whether the real control plane can run. Without Go it cannot be built here: the
    /// kube variant says so and runs nothing (the emulator variant still runs). With Go but
    /// without the build, it fails and says how to build it.
    pub fn kube_available() -> bool {
        match kube_apiserver::binaries() {
            Ok(_) => true,
            Err(e) if !kube_apiserver::have_go() => {
                eprintln!("GATED: Go is not installed, so the real control plane cannot be built here; only the emulator variant ran ({e})");
                false
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Runs the test `async fn $name(backend: Backend)` once per API server.
#[macro_export]
macro_rules! on_both_servers {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn emulator() {
                super::$name($crate::support::Backend::Emulator).await
            }

            #[tokio::test]
            async fn kube() {
                if $crate::support::Backend::kube_available() {
                    super::$name($crate::support::Backend::Kube).await
                }
            }
        }
    };
}

/// The server behind a [`TestServer`].
pub enum Server {
    Emulator(RunningServer),
    Kube(KubeApiServer),
}

/// An API server of the chosen backend with an admin kube-rs client.
pub struct TestServer {
    pub server: Server,
    pub client: Client,
    pub dir: StateDir,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_in(backend, StateDir::new()).await
    }

    pub async fn start_in(backend: Backend, dir: StateDir) -> Self {
        match backend {
            Backend::Emulator => {
                let config = ServerConfig {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    state_dir: dir.path().to_path_buf(),
                };
                let server = start(config).await.expect("starting the emulator");
                let url = format!("http://{}", server.addr()).parse().unwrap();
                let client = Client::try_from(Config::new(url)).expect("building a client");
                Self {
                    server: Server::Emulator(server),
                    client,
                    dir,
                }
            }
            Backend::Kube => {
                let server = KubeApiServer::start(dir.path())
                    .await
                    .expect("starting etcd and kube-apiserver");
                let client = server.client().await.expect("building a client");
                Self {
                    server: Server::Kube(server),
                    client,
                    dir,
                }
            }
        }
    }

    /// Stops the server and starts it again on the same state (the emulator's files,
    /// kube-apiserver's etcd).
    pub async fn restart(self) -> Self {
        let Self {
            server,
            dir,
            client,
        } = self;
        match server {
            Server::Emulator(server) => {
                server.shutdown().await.expect("stopping the emulator");
                Self::start_in(Backend::Emulator, dir).await
            }
            Server::Kube(mut server) => {
                server.restart().await.expect("restarting kube-apiserver");
                Self {
                    server: Server::Kube(server),
                    client,
                    dir,
                }
            }
        }
    }

    /// A kubeconfig for an outside client (kubectl) with admin rights.
    pub fn kubeconfig_text(&self) -> String {
        match &self.server {
            Server::Emulator(server) => {
                kube_encrypt_tests::lab::kubeconfig::anonymous(&format!("http://{}", server.addr()))
            }
            Server::Kube(server) => std::fs::read_to_string(server.kubeconfig())
                .expect("the test control plane's kubeconfig"),
        }
    }

    /// A raw HTTP GET, for documents kube-rs does not model.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let req = hyper::http::Request::get(path).body(Vec::new()).unwrap();
        self.client
            .request::<serde_json::Value>(req)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

/// `(code, reason, message)` of an API error.
pub fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String, String) {
    match result {
        Err(kube::Error::Api(status)) => {
            (status.code, status.reason.clone(), status.message.clone())
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The repository's CRDs (manifests/crds/*.yaml).
pub fn repo_crds() -> Vec<CustomResourceDefinition> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("manifests/crds")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            serde_yaml::from_str(&std::fs::read_to_string(f).unwrap()).expect("a CRD manifest")
        })
        .collect()
}

/// Creates the repository's CRDs and waits until each is served (`Established`).
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in repo_crds() {
        let name = crd.metadata.name.clone().unwrap();
        api.create(&PostParams::default(), &crd)
            .await
            .expect("creating a CRD");
        wait_established(&api, &name).await;
    }
}

/// Waits (bounded) until the CRD `name` is established.
pub async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) {
    for _ in 0..300 {
        let crd = api.get(name).await.expect("reading a CRD");
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("CRD {name} was not established within 30 s");
}

/// A dynamic API for a kube-encrypt.dev kind.
pub fn kube_encrypt_api(client: &Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kube-encrypt.dev", "v1alpha1", kind);
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// A Node object.
pub fn node(name: &str) -> k8s_openapi::api::core::v1::Node {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}
