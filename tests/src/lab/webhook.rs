//! The admission webhook in the lab, run as its Deployment would run it: `kube-encrypt-webhook`
//! in `ke-lab` at `https://192.0.2.1:8443`, as the `kube-encrypt-webhook` ServiceAccount (a
//! token bound to its Pod), with the policy of the install manifests' ConfigMap projected into
//! a file, and `--self-signed` bootstrap writing the caBundle. The install base (applied by
//! [`super::cluster::seed`]) holds its RBAC, Service and ValidatingWebhookConfiguration; the
//! lab writes the Service's Endpoints — `192.0.2.1:8443`, as the endpoints controller would
//! for the Deployment's pod — and kube-apiserver resolves webhook Services to their endpoints
//! (`--enable-aggregator-routing`: the lab has no kube-proxy). The lab runs one replica, and
//! says so in the Deployment's `spec.replicas` and status.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;

use super::apply::apply_yaml;
use super::cluster::{api_err, ClusterError, INSTALL_NAMESPACE};
use super::control_plane::write_private;
use super::identities::bound_token;
use super::kubeconfig;
use super::services::{self, ServiceError};
use super::state::{Paths, Store};
use super::sys;
use super::topology::{webhook_addr, Topology, LAB_NETNS, WEBHOOK_PORT};

/// The webhook's role among the lab's services.
pub const WEBHOOK: &str = "webhook";
/// Its ServiceAccount, Service, configuration and Pod name.
pub const NAME: &str = "kube-encrypt-webhook";
/// The Pod standing for the webhook's one replica.
pub const POD: &str = "kube-encrypt-webhook-lab";
pub const POLICY: &str = include_str!("../../../manifests/webhook/policy.yaml");
const READY: Duration = Duration::from_secs(60);

/// Registers the webhook with the API server: the Service's Endpoints, its identity (a
/// kubeconfig in the lab's files) and the policy file.
/// `ca_pem` is the real control plane's CA (`None` on the emulator, which has no auth).
pub async fn register(
    client: &Client,
    paths: &Paths,
    topo: &Topology,
    ca_pem: Option<&str>,
) -> Result<(), ClusterError> {
    let kubeconfig_text = match ca_pem {
        Some(ca) => {
            let pod = create_pod(client, topo).await?;
            let token = bound_token(client, NAME, &pod).await?;
            kubeconfig::token(&format!("https://{}", topo.api_addr()), ca, &token)
        }
        None => kubeconfig::anonymous(&format!("http://{}", topo.api_addr())),
    };
    write_private(&paths.webhook_kubeconfig(), &kubeconfig_text)?;
    write_private(&paths.webhook_policy(), POLICY)?;
    apply_yaml(client, &endpoints_yaml(ca_pem.is_some())).await
}

/// The Service's Endpoints (and, on kube-apiserver, EndpointSlice) pointing at the webhook
/// in `ke-lab`.
fn endpoints_yaml(slice: bool) -> String {
    let ip = webhook_addr().ip();
    let mut text = format!(
        "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: {NAME}\n  namespace: {INSTALL_NAMESPACE}\nsubsets:\n- addresses:\n  - ip: {ip}\n  ports:\n  - name: https\n    port: {WEBHOOK_PORT}\n"
    );
    if slice {
        text.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {NAME}-lab\n  namespace: {INSTALL_NAMESPACE}\n  labels:\n    kubernetes.io/service-name: {NAME}\n    endpointslice.kubernetes.io/managed-by: kube-encrypt-lab\naddressType: IPv4\nendpoints:\n- addresses: [\"{ip}\"]\n  conditions:\n    ready: true\nports:\n- name: https\n  port: {WEBHOOK_PORT}\n"
        ));
    }
    text
}

async fn create_pod(client: &Client, topo: &Topology) -> Result<Pod, ClusterError> {
    let mut spec = json!({
        "serviceAccountName": NAME,
        "containers": [{"name": "webhook", "image": "kube-encrypt-webhook:lab"}],
    });
    if let Some(node) = topo.control_plane_node() {
        spec["nodeName"] = json!(node.name);
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": POD, "namespace": INSTALL_NAMESPACE, "labels": {"app.kubernetes.io/name": NAME}},
        "spec": spec,
    }))
    .expect("a valid Pod");
    Api::<Pod>::namespaced(client.clone(), INSTALL_NAMESPACE)
        .create(&PostParams::default(), &pod)
        .await
        .map_err(api_err(format!("create webhook pod {POD}")))
}

/// Starts the webhook in `ke-lab` with the flags its Deployment uses.
pub fn start(store: &mut Store, program: &Path) -> Result<(), ServiceError> {
    let paths = store.paths.clone();
    let args = [
        program.to_string_lossy().into_owned(),
        "--self-signed".into(),
        "--self-signed-san".into(),
        webhook_addr().ip().to_string(),
        "--listen".into(),
        webhook_addr().to_string(),
        "--kubeconfig".into(),
        paths.webhook_kubeconfig().to_string_lossy().into_owned(),
        "--policy-file".into(),
        paths.webhook_policy().to_string_lossy().into_owned(),
        "--pod-name".into(),
        POD.into(),
        "--namespace".into(),
        INSTALL_NAMESPACE.into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    services::start(store, WEBHOOK, sys::in_netns(LAB_NETNS, &args))
}

/// Waits until the webhook wrote its CA into the configuration and answers `/readyz` (its
/// caches have synced): from then on the API server's calls to it succeed. Gives up at once
/// when `alive` says the process has exited.
pub async fn wait_ready(
    client: &Client,
    log: &Path,
    alive: impl Fn() -> bool,
) -> Result<(), ClusterError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let deadline = Instant::now() + READY;
    loop {
        let config = api
            .get(NAME)
            .await
            .map_err(api_err("read the webhook configuration"))?;
        if has_ca_bundle(&config) && answers_ready() {
            return Ok(());
        }
        if !alive() {
            return Err(ClusterError::Timeout(format!(
                "the webhook exited before it was ready; see its log {}",
                log.display()
            )));
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Timeout(format!(
                "the webhook was not ready within {READY:?}; see its log {}",
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn has_ca_bundle(config: &ValidatingWebhookConfiguration) -> bool {
    let webhooks = config.webhooks.as_deref().unwrap_or_default();
    !webhooks.is_empty()
        && webhooks.iter().all(|w| {
            w.client_config
                .ca_bundle
                .as_ref()
                .is_some_and(|b| !b.0.is_empty())
        })
}

/// `/readyz` answers 200, asked inside `ke-lab` (the webhook's certificate is its own CA's).
fn answers_ready() -> bool {
    let url = format!("https://{}/readyz", webhook_addr());
    let mut cmd = sys::in_netns(
        LAB_NETNS,
        &[
            "curl",
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "2",
            &url,
        ],
    );
    sys::run(&mut cmd)
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "200")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoints_point_at_the_lab() {
        let objects = super::super::apply::parse_documents(&endpoints_yaml(true)).unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o.types.as_ref().unwrap().kind.as_str())
            .collect();
        assert_eq!(kinds, ["Endpoints", "EndpointSlice"]);
        assert_eq!(
            objects[0].data["subsets"][0]["addresses"][0]["ip"],
            "192.0.2.1"
        );
        assert_eq!(objects[0].data["subsets"][0]["ports"][0]["port"], 8443);
    }

    #[test]
    fn the_install_base_names_the_lab_objects() {
        let base = super::super::cluster::INSTALL_BASE;
        assert!(base.contains(&format!("name: {NAME}")));
        assert!(base.contains("kind: ValidatingWebhookConfiguration"));
    }
}
