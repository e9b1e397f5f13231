//! Objects and helpers the webhook tests share: the install namespace, nodes, agent
//! reports, a kubeconfig for the emulator, polling, the running webhook, the real kubectl.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kube_encrypt_api::crd::{
    EncryptionState, FamilyStatus, NodeEncryption, NodeEncryptionSpec, NodeEncryptionStatus,
};
use serde_json::json;

use crate::support::{node, TestServer};

pub const NAMESPACE: &str = "kube-encrypt";

pub async fn create_namespace(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

pub async fn create_node(client: &Client, name: &str) {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    nodes
        .create(&PostParams::default(), &node(name))
        .await
        .unwrap();
}

/// What an agent reports: IPv4 in `v4`, IPv6 disabled, written just now.
pub fn report(v4: EncryptionState) -> NodeEncryptionStatus {
    let family = |state, port, interface: &str| FamilyStatus {
        state,
        listen_port: Some(port),
        interface: Some(interface.into()),
        mtu: Some(1440),
        message: format!("{state:?}"),
        ..Default::default()
    };
    NodeEncryptionStatus {
        ipv4: Some(family(v4, 51820, "wg-encrypt")),
        ipv6: Some(family(EncryptionState::Disabled, 51821, "wg-encrypt-v6")),
        last_update: Some(
            k8s_openapi::jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        ),
        ..Default::default()
    }
}

/// Writes node `name`'s NodeEncryption status, creating the object first when needed.
pub async fn write_report(client: &Client, name: &str, status: &NodeEncryptionStatus) {
    let api: Api<NodeEncryption> = Api::all(client.clone());
    if api.get_opt(name).await.unwrap().is_none() {
        api.create(
            &PostParams::default(),
            &NodeEncryption::new(name, NodeEncryptionSpec {}),
        )
        .await
        .unwrap();
    }
    let patch = Patch::Merge(json!({"status": status}));
    api.patch_status(name, &PatchParams::default(), &patch)
        .await
        .unwrap();
}

/// The admin kubeconfig of the test's API server.
pub fn kubeconfig(server: &TestServer) -> PathBuf {
    server.kubeconfig()
}

/// Polls `probe` every 100 ms until it returns `Some`, failing with `what` after `limit`.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole webhook as the binary runs it (`run_until`), with `--self-signed` and a policy
/// file, registered by the repository's ValidatingWebhookConfiguration pointed at it.
pub struct RunningWebhook {
    pub policy: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningWebhook {
    /// Registers and starts the webhook for the emulator `server` (CRDs and namespace in place).
    pub async fn start(server: &TestServer, policy: &str) -> Self {
        use clap::Parser;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(server.client.clone());
        vwcs.create(&PostParams::default(), &webhook_configuration(addr))
            .await
            .unwrap();
        let policy_path = server.dir.path().join("policy.yaml");
        std::fs::write(&policy_path, policy).unwrap();
        let kubeconfig = kubeconfig(server);
        let args = kube_encrypt_webhook::args::Args::try_parse_from([
            "kube-encrypt-webhook",
            "--self-signed",
            "--self-signed-san",
            "127.0.0.1",
            "--listen",
            &addr.to_string(),
            "--pod-name",
            "webhook-0",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy-file",
            policy_path.to_str().unwrap(),
        ])
        .unwrap();
        let config = args.into_config(None).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(kube_encrypt_webhook::run::run_until(config, async {
            let _ = stopped.await;
        }));
        Self {
            policy: policy_path,
            stop: Some(stop),
            task,
        }
    }

    /// SIGTERM, as it were: waits for the webhook to drain and exit.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap().unwrap();
    }
}

impl Drop for RunningWebhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The repository's ValidatingWebhookConfiguration, pointed at `addr` instead of the Service.
pub fn webhook_configuration(addr: std::net::SocketAddr) -> ValidatingWebhookConfiguration {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/webhook/validatingwebhookconfiguration.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut value: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    value["webhooks"][0]["clientConfig"] = json!({"url": format!("https://{addr}/validate")});
    serde_json::from_value(value).unwrap()
}

/// The caBundle of the first webhook, once written.
pub async fn ca_bundle(client: &Client) -> Option<Vec<u8>> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let config = api.get("kube-encrypt-webhook").await.ok()?;
    config
        .webhooks?
        .first()?
        .client_config
        .ca_bundle
        .clone()
        .map(|b| b.0)
}

/// What one `kubectl` run printed.
#[derive(Debug)]
pub struct KubectlOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `kubectl` against the test's API server, within 30 s.
pub async fn kubectl(server: &TestServer, args: &[&str]) -> KubectlOutput {
    let binary = kube_encrypt_tests::lab::control_plane::kubectl()
        .expect("kubectl is not installed: run `make deps`");
    let dir = server.dir.path();
    let mut command = tokio::process::Command::new(&binary);
    command
        .arg("--kubeconfig")
        .arg(kubeconfig(server))
        .arg("--cache-dir")
        .arg(dir.join("kubectl-cache"))
        .args(args)
        .env("HOME", dir)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 30 s"))
        .unwrap_or_else(|e| panic!("running {binary:?} (install kubectl or set KUBECTL): {e}"));
    KubectlOutput {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}
