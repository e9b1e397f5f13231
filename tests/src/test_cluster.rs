//! One home for the clusters tests run against: a temporary directory, and an API server per
//! test — the in-process emulator or a real etcd + kube-apiserver + controller-manager
//! ([`crate::kube_apiserver`]) — with an admin client and kubeconfig. `on_both_servers!(name)`
//! runs a test body against both, so the emulator is held to the real server's behaviour.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::{Api, Client, Config};

use crate::apiserver::{start, RunningServer, ServerConfig};
use crate::kube_apiserver::{self, KubeApiServer};

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TempDir {
    pub fn new() -> Self {
        Self::named("test")
    }

    /// A fresh directory whose name says what it is for.
    pub fn named(what: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kube-encrypt-{what}-{}-{}",
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

impl Drop for TempDir {
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
                super::$name($crate::test_cluster::Backend::Emulator).await
            }

            #[tokio::test]
            async fn kube() {
                if $crate::test_cluster::Backend::kube_available() {
                    super::$name($crate::test_cluster::Backend::Kube).await
                }
            }
        }
    };
}

/// The server behind a [`TestCluster`].
pub enum Server {
    Emulator(RunningServer),
    Kube(KubeApiServer),
}

/// An API server of the chosen backend with an admin kube-rs client.
pub struct TestCluster {
    pub server: Server,
    pub client: Client,
    pub dir: TempDir,
}

impl TestCluster {
    pub async fn start(backend: Backend) -> Self {
        Self::start_in(backend, TempDir::new()).await
    }

    pub async fn start_in(backend: Backend, dir: TempDir) -> Self {
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

    /// The API server's URL (`http://` for the emulator, `https://` for kube-apiserver).
    pub fn url(&self) -> String {
        match &self.server {
            Server::Emulator(server) => format!("http://{}", server.addr()),
            Server::Kube(server) => server.url(),
        }
    }

    /// A kubeconfig file with admin rights for outside clients (kubectl, the plugin, the
    /// webhook), written into the test's directory.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("admin.kubeconfig");
        std::fs::write(&path, self.kubeconfig_text()).expect("writing the test kubeconfig");
        path
    }

    /// The text of [`Self::kubeconfig`].
    pub fn kubeconfig_text(&self) -> String {
        match &self.server {
            Server::Emulator(server) => {
                crate::lab::kubeconfig::anonymous(&format!("http://{}", server.addr()))
            }
            Server::Kube(server) => std::fs::read_to_string(server.kubeconfig())
                .expect("the test control plane's kubeconfig"),
        }
    }

    /// Creates the repository's CRDs and waits until each is served.
    pub async fn install_crds(&self) {
        install_crds(&self.client).await
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

/// The repository's CRDs (the files `crdgen` writes into manifests/crds).
pub fn repo_crds() -> Vec<CustomResourceDefinition> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    kube_encrypt_api::crd::all()
        .iter()
        .map(|(file, _)| {
            let text = std::fs::read_to_string(dir.join(file)).expect("manifests/crds");
            serde_yaml::from_str(&text).expect("a CRD manifest")
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
