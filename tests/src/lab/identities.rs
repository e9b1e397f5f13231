//! Who the lab's processes are to the API server. On the real control plane each node's
//! agent authenticates as the `kube-encrypt-agent` ServiceAccount with a token bound to its
//! Pod — a Pod of the `kube-encrypt-agent` DaemonSet on its node, as the DaemonSet controller
//! would make it (TokenRequest API) — so the token carries the node-name claim, and the RBAC
//! and admission policy of the install manifests apply. On the emulator (no authentication)
//! the kubeconfigs carry no credentials.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;

use super::cluster::{api_err, ClusterError, INSTALL_NAMESPACE};
use super::control_plane::write_private;
use super::kubeconfig;
use super::state::Paths;
use super::topology::{NodePlan, Topology};

/// The agent's ServiceAccount and DaemonSet (both in the install manifests).
pub const AGENT_SERVICE_ACCOUNT: &str = "kube-encrypt-agent";
pub const AGENT_DAEMONSET: &str = "kube-encrypt-agent";
/// How long the agents' tokens live (longer than any lab).
const TOKEN_SECONDS: i64 = 7 * 24 * 3600;

/// The Pod standing for `node`'s agent, as the DaemonSet would create it.
pub fn agent_pod_name(node: &str) -> String {
    format!("kube-encrypt-agent-{node}")
}

/// Writes each node's anonymous kubeconfig (the emulator's).
pub fn write_anonymous_kubeconfigs(paths: &Paths, topo: &Topology) -> Result<(), ClusterError> {
    let server = format!("http://{}", topo.api_addr());
    for node in &topo.nodes {
        write_private(
            &paths.node_kubeconfig(&node.name),
            &kubeconfig::anonymous(&server),
        )?;
    }
    Ok(())
}

/// Creates one agent Pod per node (owned by the DaemonSet) and writes each node's kubeconfig
/// with a token bound to that Pod.
pub async fn issue_agent_tokens(
    client: &Client,
    paths: &Paths,
    topo: &Topology,
    ca_pem: &str,
) -> Result<(), ClusterError> {
    let server = format!("https://{}", topo.api_addr());
    let daemonset = Api::<DaemonSet>::namespaced(client.clone(), INSTALL_NAMESPACE)
        .get(AGENT_DAEMONSET)
        .await
        .map_err(api_err(format!("read DaemonSet {AGENT_DAEMONSET}")))?;
    for node in &topo.nodes {
        let pod = create_agent_pod(client, node, &daemonset).await?;
        let token = bound_token(client, AGENT_SERVICE_ACCOUNT, &pod).await?;
        let text = kubeconfig::token(&server, ca_pem, &token);
        write_private(&paths.node_kubeconfig(&node.name), &text)?;
    }
    Ok(())
}

async fn create_agent_pod(
    client: &Client,
    node: &NodePlan,
    daemonset: &DaemonSet,
) -> Result<Pod, ClusterError> {
    let name = agent_pod_name(&node.name);
    let labels = daemonset
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "namespace": INSTALL_NAMESPACE,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "DaemonSet", "name": AGENT_DAEMONSET,
                "uid": daemonset.metadata.uid, "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "nodeName": node.name,
            "serviceAccountName": AGENT_SERVICE_ACCOUNT,
            "hostNetwork": true,
            "containers": [{"name": "agent", "image": "kube-encrypt-agent:lab"}],
        },
    }))
    .expect("a valid Pod");
    let api: Api<Pod> = Api::namespaced(client.clone(), INSTALL_NAMESPACE);
    api.create(&PostParams::default(), &pod)
        .await
        .map_err(api_err(format!("create agent pod {name}")))
}

/// A token of `service_account` bound to `pod` (valid while the Pod exists).
pub async fn bound_token(
    client: &Client,
    service_account: &str,
    pod: &Pod,
) -> Result<String, ClusterError> {
    let namespace = pod
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(INSTALL_NAMESPACE);
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {
            "expirationSeconds": TOKEN_SECONDS,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod.metadata.name,
                "uid": pod.metadata.uid,
            },
        },
    }))
    .expect("a valid TokenRequest");
    let issued = api
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .map_err(api_err(format!("request a token for {service_account}")))?;
    issued.status.and_then(|s| s.token).ok_or_else(|| {
        ClusterError::Unexpected(format!(
            "the token request for {service_account} returned no token"
        ))
    })
}
