//! The lab's Kubernetes objects, written to the API server as a real cluster would have
//! them: the CRDs, the install namespace, one `Node` per node and one `Pod` per pod.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use super::topology::{ApiServerKind, NodePlan, PodPlan, Topology};
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::CONTROL_PLANE_LABEL;

/// The CRDs of `manifests/crds`, embedded so the lab binary works from anywhere.
pub const CRDS: [(&str, &str); 3] = [
    (
        "encryptionconfigs.yaml",
        include_str!("../../../manifests/crds/encryptionconfigs.yaml"),
    ),
    (
        "ippools.yaml",
        include_str!("../../../manifests/crds/ippools.yaml"),
    ),
    (
        "nodeencryptions.yaml",
        include_str!("../../../manifests/crds/nodeencryptions.yaml"),
    ),
];
/// The install manifests as `kubectl kustomize manifests` renders them (the file the kubectl
/// plugin embeds; a test keeps it equal to the rendering).
pub const INSTALL_BASE: &str = include_str!("../../../cmd/src/install/manifests.yaml");
/// The install namespace (SPEC §1).
pub const INSTALL_NAMESPACE: &str = "kube-encrypt";
/// The namespace of the lab's pods.
pub const POD_NAMESPACE: &str = "default";
/// The lab's field manager when it writes objects.
pub const FIELD_MANAGER: &str = "kube-encrypt-lab";
/// How long CRDs may take to be served after they are created.
const CRD_ESTABLISHED: Duration = Duration::from_secs(30);

/// Talking to the API server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {path} is unusable: {message}")]
    Config { path: String, message: String },
    #[error("{action}: {}", kube_error_text(error))]
    Api { action: String, error: kube::Error },
    #[error("the API server did not answer within {0:?}; see its log {1}")]
    NotReady(Duration, String),
    #[error("embedded CRD {0} is not a CustomResourceDefinition: {1}")]
    BadCrd(&'static str, serde_yaml::Error),
    #[error("a manifest is not valid YAML of Kubernetes objects: {0}")]
    BadManifest(serde_yaml::Error),
    #[error("a manifest is unusable: {0}")]
    Manifest(String),
    #[error("{0}")]
    Timeout(String),
    #[error("the API server answered unexpectedly: {0}")]
    Unexpected(String),
    #[error("CRD {0} was not established within {CRD_ESTABLISHED:?}")]
    NotEstablished(String),
    #[error(transparent)]
    Files(#[from] super::control_plane::ControlPlaneError),
}

/// Now, as Kubernetes writes times (`2026-01-02T03:04:05Z`).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Maps a kube error to [`ClusterError::Api`] with what the lab was doing.
pub fn api_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
    let action = action.into();
    move |error| ClusterError::Api { action, error }
}

/// A kube error in one line: the API server's message with its HTTP code and reason.
pub fn kube_error_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!(
            "{} (HTTP {} {})",
            status.message, status.code, status.reason
        ),
        other => other.to_string(),
    }
}

/// The text of a kubeconfig pointing at `server` without credentials (the emulator has no auth).
pub fn kubeconfig_text(server: &str) -> String {
    super::kubeconfig::anonymous(server)
}

/// A client for the lab's kubeconfig.
pub async fn client(kubeconfig: &Path) -> Result<Client, ClusterError> {
    let path = kubeconfig.display().to_string();
    let file = Kubeconfig::read_from(kubeconfig).map_err(|source| ClusterError::Kubeconfig {
        path: path.clone(),
        source,
    })?;
    let mut config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(|e| ClusterError::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(10));
    Client::try_from(config).map_err(|e| ClusterError::Config {
        path,
        message: e.to_string(),
    })
}

/// Waits (bounded) until the emulator answers `/version`.
pub async fn wait_ready(
    client: &Client,
    timeout: Duration,
    log: &Path,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + timeout;
    loop {
        match client.apiserver_version().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "API emulator not ready yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => return Err(ClusterError::NotReady(timeout, log.display().to_string())),
        }
    }
}

/// Installs the CRDs and namespaces, then registers every node and pod of `topo`.
/// Installs kube-encrypt as a user would (the rendered base, server-side applied; without
/// the webhook configuration when `webhook` is off), then registers every node and pod.
pub async fn seed(client: &Client, topo: &Topology, webhook: bool) -> Result<(), ClusterError> {
    install_base(client, webhook).await?;
    create_namespace(client, POD_NAMESPACE).await?;
    if topo.spec.apiserver == ApiServerKind::Kube {
        // Pods need their namespace's `default` ServiceAccount, which the controller-manager
        // creates shortly after the namespace (as in any cluster).
        wait_service_account(client, POD_NAMESPACE, "default").await?;
    }
    for node in &topo.nodes {
        create_node(client, topo, node).await?;
        for pod in &node.pods {
            create_pod(client, topo, node, pod).await?;
        }
    }
    Ok(())
}

/// Applies [`INSTALL_BASE`] and waits until its CRDs are served.
async fn install_base(client: &Client, webhook: bool) -> Result<(), ClusterError> {
    let objects = super::apply::parse_documents(INSTALL_BASE)?;
    let wanted: Vec<_> = objects
        .into_iter()
        .filter(|o| webhook || kind_of(o) != "ValidatingWebhookConfiguration")
        .collect();
    super::apply::apply_objects(client, &wanted).await?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in wanted
        .iter()
        .filter(|o| kind_of(o) == "CustomResourceDefinition")
    {
        wait_established(&api, crd.metadata.name.as_deref().unwrap_or_default()).await?;
    }
    Ok(())
}

fn kind_of(object: &kube::api::DynamicObject) -> &str {
    object.types.as_ref().map_or("", |t| t.kind.as_str())
}

/// How long the controller-manager may take to create a namespace's `default` ServiceAccount.
const SERVICE_ACCOUNT_CREATED: Duration = Duration::from_secs(30);

async fn wait_service_account(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), ClusterError> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + SERVICE_ACCOUNT_CREATED;
    loop {
        let found = api
            .get_opt(name)
            .await
            .map_err(api_err(format!("read ServiceAccount {namespace}/{name}")))?;
        if found.is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Timeout(format!(
                "ServiceAccount {namespace}/{name} was not created within \
                 {SERVICE_ACCOUNT_CREATED:?}; see the controller-manager's log"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the API server serves the CRD's resource (condition `Established`).
async fn wait_established(
    api: &Api<CustomResourceDefinition>,
    name: &str,
) -> Result<(), ClusterError> {
    let deadline = Instant::now() + CRD_ESTABLISHED;
    while Instant::now() < deadline {
        let crd = api
            .get(name)
            .await
            .map_err(api_err(format!("read CRD {name}")))?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ClusterError::NotEstablished(name.to_owned()))
}

async fn create_namespace(client: &Client, name: &str) -> Result<(), ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("valid Namespace");
    create_if_missing(&api, &ns, &format!("create namespace {name}")).await
}

async fn create_if_missing<K>(api: &Api<K>, obj: &K, action: &str) -> Result<(), ClusterError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api
        .create(
            &PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            obj,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(api_err(action)(e)),
    }
}

fn node_object(topo: &Topology, node: &NodePlan) -> serde_json::Value {
    let pod_cidrs: Vec<String> = topo
        .families()
        .iter()
        .map(|f| node.pod_cidr(*f).to_string())
        .collect();
    let mut labels = json!({
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": go_arch(),
    });
    if topo.spec.control_plane_on == Some(node.index) {
        labels[CONTROL_PLANE_LABEL] = json!("");
    }
    json!({
        "metadata": {
            "name": node.name,
            "labels": labels,
        },
        "spec": {"podCIDR": pod_cidrs[0], "podCIDRs": pod_cidrs},
    })
}

fn node_status(topo: &Topology, node: &NodePlan) -> serde_json::Value {
    let mut addresses: Vec<_> = topo
        .families()
        .iter()
        .map(|f| json!({"type": "InternalIP", "address": node.addr(*f).to_string()}))
        .collect();
    addresses.push(json!({"type": "Hostname", "address": node.name}));
    json!({"status": {
        "addresses": addresses,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kube-encrypt-lab node"}],
        "nodeInfo": node_info(),
    }})
}

/// The machine's architecture as Kubernetes names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// What a kubelet would report; the lab's nodes are network namespaces on this host.
fn node_info() -> serde_json::Value {
    json!({
        "architecture": go_arch(),
        "operatingSystem": "linux",
        "osImage": "kube-encrypt-lab network namespace",
        "kernelVersion": "",
        "kubeletVersion": "v1.35.4",
        "kubeProxyVersion": "",
        "containerRuntimeVersion": "netns://kube-encrypt-lab",
        "bootID": "",
        "machineID": "",
        "systemUUID": "",
    })
}

async fn create_node(
    client: &Client,
    topo: &Topology,
    node: &NodePlan,
) -> Result<(), ClusterError> {
    let api: Api<Node> = Api::all(client.clone());
    let obj: Node = serde_json::from_value(node_object(topo, node)).expect("valid Node");
    let action = format!("register node {}", node.name);
    create_if_missing(&api, &obj, &action).await?;
    api.patch_status(
        &node.name,
        &PatchParams::default(),
        &Patch::Merge(node_status(topo, node)),
    )
    .await
    .map_err(api_err(action))?;
    Ok(())
}

fn pod_object(pod: &PodPlan, node: &NodePlan) -> serde_json::Value {
    json!({
        "metadata": {"name": pod.name, "namespace": POD_NAMESPACE, "labels": {"app": "lab"}},
        "spec": {
            "nodeName": node.name,
            "containers": [{"name": "app", "image": "kube-encrypt-lab/netns"}],
        },
    })
}

fn pod_status(topo: &Topology, pod: &PodPlan, node: &NodePlan) -> serde_json::Value {
    let ips: Vec<_> = topo
        .families()
        .iter()
        .map(|f| json!({"ip": pod.addr(*f).to_string()}))
        .collect();
    json!({"status": {
        "phase": "Running",
        "hostIP": node.addr(Family::V4).to_string(),
        "podIP": pod.addr(Family::V4).to_string(),
        "podIPs": ips,
    }})
}

async fn create_pod(
    client: &Client,
    topo: &Topology,
    node: &NodePlan,
    pod: &PodPlan,
) -> Result<(), ClusterError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), POD_NAMESPACE);
    let obj: Pod = serde_json::from_value(pod_object(pod, node)).expect("valid Pod");
    let action = format!("register pod {}", pod.name);
    create_if_missing(&api, &obj, &action).await?;
    api.patch_status(
        &pod.name,
        &PatchParams::default(),
        &Patch::Merge(pod_status(topo, pod, node)),
    )
    .await
    .map_err(api_err(action))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::{LabSpec, DEFAULT_MTU};

    fn topo(ipv6: bool) -> Topology {
        Topology::new(LabSpec::new(2, ipv6, DEFAULT_MTU, &[]).unwrap())
    }

    #[test]
    fn embedded_crds_parse() {
        for (file, text) in CRDS {
            let crd: CustomResourceDefinition = serde_yaml::from_str(text).unwrap();
            assert!(crd.spec.group == "kube-encrypt.dev", "{file}");
        }
    }

    #[test]
    fn nodes_carry_addresses_and_pod_cidrs_per_family() {
        let cases = [
            (false, vec!["198.18.2.0/24"], vec!["192.0.2.12"]),
            (
                true,
                vec!["198.18.2.0/24", "2001:db8:1:2::/64"],
                vec!["192.0.2.12", "2001:db8::12"],
            ),
        ];
        for (ipv6, cidrs, ips) in cases {
            let topo = topo(ipv6);
            let node = topo.node(2).unwrap();
            let obj: Node = serde_json::from_value(node_object(&topo, node)).unwrap();
            assert_eq!(obj.spec.unwrap().pod_cidrs.unwrap(), cidrs);
            let status: Node = serde_json::from_value(node_status(&topo, node)).unwrap();
            let internal: Vec<String> = status
                .status
                .unwrap()
                .addresses
                .unwrap()
                .into_iter()
                .filter(|a| a.type_ == "InternalIP")
                .map(|a| a.address)
                .collect();
            assert_eq!(internal, ips);
        }
    }

    #[test]
    fn pods_are_running_on_their_node_with_their_ips() {
        let topo = topo(true);
        let node = topo.node(1).unwrap();
        let pod = &node.pods[1];
        let obj: Pod = serde_json::from_value(pod_object(pod, node)).unwrap();
        assert_eq!(obj.spec.unwrap().node_name.as_deref(), Some("node-1"));
        let status: Pod = serde_json::from_value(pod_status(&topo, pod, node)).unwrap();
        let status = status.status.unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("198.18.1.3"));
        let ips: Vec<String> = status.pod_ips.unwrap().into_iter().map(|p| p.ip).collect();
        assert_eq!(ips, ["198.18.1.3", "2001:db8:1:1::3"]);
    }

    #[test]
    fn kubeconfig_text_is_a_kubeconfig() {
        let config = Kubeconfig::from_yaml(&kubeconfig_text("http://127.0.0.1:1234")).unwrap();
        assert_eq!(
            config.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some("http://127.0.0.1:1234")
        );
        assert_eq!(config.current_context.as_deref(), Some("kube-encrypt-lab"));
    }
}
