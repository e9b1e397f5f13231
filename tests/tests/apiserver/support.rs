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

/// Every test ends within this.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

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

/// An in-process emulator with a kube-rs client.
pub struct TestServer {
    pub server: RunningServer,
    pub client: Client,
    pub dir: StateDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_in(StateDir::new()).await
    }

    pub async fn start_in(dir: StateDir) -> Self {
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir.path().to_path_buf(),
        };
        let server = start(config).await.expect("starting the emulator");
        let url = format!("http://{}", server.addr()).parse().unwrap();
        let client = Client::try_from(Config::new(url)).expect("building a client");
        Self {
            server,
            client,
            dir,
        }
    }

    /// Stops the server and starts a new one on the same state.
    pub async fn restart(self) -> Self {
        let Self { server, dir, .. } = self;
        server.shutdown().await.expect("stopping the emulator");
        Self::start_in(dir).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
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

pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in repo_crds() {
        api.create(&PostParams::default(), &crd)
            .await
            .expect("creating a CRD");
    }
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
