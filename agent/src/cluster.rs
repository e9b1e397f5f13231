//! The cluster as the agent sees it (a snapshot of its watch caches) and the only two writes
//! it makes: its own Node's annotations and its own NodeEncryption status.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use kube_encrypt_api::crd::{
    EncryptionConfigSpec, NodeEncryption, NodeEncryptionSpec, NodeEncryptionStatus,
};
use kube_encrypt_api::node::{attach_workload_ips, node_views, workload_ips_by_node, NodeView};
use kube_encrypt_api::rules::NamedPool;
use serde_json::{json, Value};

/// Field manager of every write the agent makes.
pub const FIELD_MANAGER: &str = "kube-encrypt-agent";

/// What the watch caches hold at one moment.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    /// The `default` EncryptionConfig's spec; `None` when it does not exist.
    pub config: Option<EncryptionConfigSpec>,
    /// Every IPPool, by name (the rules name them in their findings).
    pub pools: Vec<NamedPool>,
    /// Nodes as objects: what the agent writes against is read from its own (annotations,
    /// uid). The watch caches keep only that one, with every node in `views`; without
    /// `views`, every node is here and converted at each round.
    pub nodes: Vec<Arc<Node>>,
    /// Every node as the planner reads it (sorted by name, no workload IPs), converted once
    /// when the watch delivered it.
    pub views: Option<Arc<Vec<NodeView>>>,
    /// The pods, only in `WorkloadIPs` mode.
    pub pods: Option<Vec<Arc<Pod>>>,
}

impl ClusterState {
    /// Every node as the planner sees it: the views as they are, or copies with their
    /// workload IPs in `WorkloadIPs` mode; converted from `nodes` when there are no views.
    pub fn node_views(&self) -> Cow<'_, [NodeView]> {
        let workload_ips = self
            .pods
            .as_ref()
            .map(|pods| workload_ips_by_node(pods.iter().map(Arc::as_ref)));
        match (&self.views, workload_ips) {
            (Some(views), None) => Cow::Borrowed(views.as_slice()),
            (Some(views), Some(by_node)) => {
                let mut views = views.as_ref().clone();
                attach_workload_ips(&mut views, &by_node);
                Cow::Owned(views)
            }
            (None, workload_ips) => Cow::Owned(node_views(
                self.nodes.iter().map(Arc::as_ref),
                workload_ips.as_ref(),
            )),
        }
    }

    /// The Node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .map(Arc::as_ref)
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }
}

/// A failed write to the API server. The HTTP status stays a number, so a denial is told
/// apart from an outage (and the message can say what to grant).
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}{}", hint(*.http_status))]
pub struct WriteError {
    pub operation: String,
    pub message: String,
    /// The API server's HTTP status; `None` when it was not reached.
    pub http_status: Option<u16>,
}

/// What to do about an HTTP status, appended to the message.
fn hint(http_status: Option<u16>) -> String {
    match http_status {
        Some(403) => " (HTTP 403 Forbidden: RBAC or an admission policy denies the agent this \
                      write; check the ClusterRole kube-encrypt-agent, its binding to the \
                      agent's ServiceAccount, and the node-pinning admission policy)"
            .to_owned(),
        Some(401) => " (HTTP 401 Unauthorized: the agent's credentials are not accepted; \
                      check its ServiceAccount token)"
            .to_owned(),
        Some(code) => format!(" (HTTP {code})"),
        None => String::new(),
    }
}

impl WriteError {
    fn kube(operation: impl Into<String>, error: &kube::Error) -> Self {
        let (message, http_status) = match error {
            kube::Error::Api(status) => (status.message.clone(), Some(status.code)),
            other => (other.to_string(), None),
        };
        Self {
            operation: operation.into(),
            message,
            http_status,
        }
    }

    /// Whether the API server refused the write for lack of permission.
    pub fn is_forbidden(&self) -> bool {
        self.http_status == Some(403)
    }
}

/// The agent's writes to the cluster.
#[allow(async_fn_in_trait)]
pub trait ClusterWriter {
    /// Applies a JSON merge patch to the agent's own Node.
    async fn patch_node(&self, node: &str, patch: &Value) -> Result<(), WriteError>;
    /// Writes the status of the NodeEncryption named after `node`, creating it (owned by the
    /// Node) when it does not exist.
    async fn write_status(
        &self,
        node: &Node,
        status: &NodeEncryptionStatus,
    ) -> Result<(), WriteError>;
}

impl<T: ClusterWriter> ClusterWriter for Arc<T> {
    async fn patch_node(&self, node: &str, patch: &Value) -> Result<(), WriteError> {
        self.as_ref().patch_node(node, patch).await
    }

    async fn write_status(
        &self,
        node: &Node,
        status: &NodeEncryptionStatus,
    ) -> Result<(), WriteError> {
        self.as_ref().write_status(node, status).await
    }
}

/// Writes through the Kubernetes API.
#[derive(Clone)]
pub struct KubeWriter {
    client: Client,
}

impl KubeWriter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

impl ClusterWriter for KubeWriter {
    async fn patch_node(&self, node: &str, patch: &Value) -> Result<(), WriteError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .patch(node, &patch_params(), &Patch::Merge(patch))
            .await
            .map_err(|e| {
                WriteError::kube(format!("patching the annotations of node {node}"), &e)
            })?;
        Ok(())
    }

    async fn write_status(
        &self,
        node: &Node,
        status: &NodeEncryptionStatus,
    ) -> Result<(), WriteError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let api: Api<NodeEncryption> = Api::all(self.client.clone());
        let patch = status_patch(status);
        let operation = format!("writing the status of NodeEncryption {name}");
        match api
            .patch_status(&name, &patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(WriteError::kube(operation, &e)),
        }
        let post = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match api.create(&post, &node_encryption_for(node)).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => {}
            Err(e) => {
                return Err(WriteError::kube(
                    format!("creating NodeEncryption {name}"),
                    &e,
                ))
            }
        }
        api.patch_status(&name, &patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| WriteError::kube(operation, &e))?;
        Ok(())
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// The NodeEncryption of `node`, owned by it so it is deleted with it.
pub fn node_encryption_for(node: &Node) -> NodeEncryption {
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut object = NodeEncryption::new(&name, NodeEncryptionSpec {});
    object.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name,
        uid: node.metadata.uid.clone().unwrap_or_default(),
        ..Default::default()
    }]);
    object
}

/// Optional fields of a family status; a merge patch must null the absent ones, or stale
/// values would stay.
const OPTIONAL_FAMILY_FIELDS: [&str; 9] = [
    "backend",
    "interface",
    "publicKey",
    "listenPort",
    "mtu",
    "oldestHandshakeSeconds",
    "message",
    "worstPeers",
    "skippedPeers",
];
/// Optional top-level fields of the status, nulled when absent for the same reason.
const OPTIONAL_STATUS_FIELDS: [&str; 2] = ["conditions", "findings"];

/// The merge patch replacing the whole status with `status`.
pub fn status_patch(status: &NodeEncryptionStatus) -> Value {
    let mut value = serde_json::to_value(status).expect("a status always serializes");
    let object = value.as_object_mut().expect("a status is an object");
    for field in OPTIONAL_STATUS_FIELDS {
        object.entry(field).or_insert(Value::Null);
    }
    for family in ["ipv4", "ipv6"] {
        let entry = object.entry(family).or_insert(Value::Null);
        if let Some(fields) = entry.as_object_mut() {
            for field in OPTIONAL_FAMILY_FIELDS {
                fields.entry(field).or_insert(Value::Null);
            }
        }
    }
    json!({ "status": value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube_encrypt_api::crd::{EncryptionState, FamilyStatus};

    #[test]
    fn status_patch_nulls_what_is_absent() {
        let status = NodeEncryptionStatus {
            ipv4: Some(FamilyStatus {
                state: EncryptionState::Encrypted,
                mtu: Some(1440),
                ..Default::default()
            }),
            ipv6: None,
            last_update: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        let patch = status_patch(&status);
        assert_eq!(patch["status"]["ipv4"]["mtu"], json!(1440));
        assert_eq!(patch["status"]["ipv4"]["state"], json!("Encrypted"));
        assert_eq!(patch["status"]["ipv4"]["worstPeers"], Value::Null);
        assert_eq!(
            patch["status"]["ipv4"]["oldestHandshakeSeconds"],
            Value::Null
        );
        assert!(patch["status"]["ipv4"].get("privateKey").is_none());
        assert_eq!(patch["status"]["ipv6"], Value::Null);
    }

    #[test]
    fn a_denial_keeps_its_http_status_and_says_what_to_check() {
        let status = kube::core::Status::failure("nodes \"node-b\" is forbidden", "Forbidden")
            .with_code(403);
        let error = WriteError::kube("patching node-b", &kube::Error::Api(Box::new(status)));
        assert!(error.is_forbidden());
        let text = error.to_string();
        assert!(text.contains("HTTP 403 Forbidden"), "{text}");
        assert!(text.contains("ClusterRole kube-encrypt-agent"), "{text}");
        let refused = WriteError {
            operation: "patching node-b".into(),
            message: "connection refused".into(),
            http_status: None,
        };
        assert!(!refused.is_forbidden());
        assert_eq!(refused.to_string(), "patching node-b: connection refused");
    }

    #[test]
    fn node_encryption_is_owned_by_its_node() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some("node-a".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let object = node_encryption_for(&node);
        assert_eq!(object.metadata.name.as_deref(), Some("node-a"));
        let owner = &object.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "uid-1"));
        assert_eq!(owner.api_version, "v1");
    }
}
