//! `NodeEncryption`: one node's observed encryption state, written by that node's agent.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Status-only resource named after its node (ownerReference: the Node).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kube-encrypt.dev",
    version = "v1alpha1",
    kind = "NodeEncryption",
    shortname = "nodeenc",
    status = "NodeEncryptionStatus",
    printcolumn = r#"{"name":"IPv4","type":"string","jsonPath":".status.ipv4.state"}"#,
    printcolumn = r#"{"name":"IPv6","type":"string","jsonPath":".status.ipv6.state"}"#,
    printcolumn = r#"{"name":"Backend","type":"string","jsonPath":".status.ipv4.backend"}"#,
    printcolumn = r#"{"name":"IPv4 Peers","type":"string","jsonPath":".status.ipv4.peers.ratio"}"#,
    printcolumn = r#"{"name":"IPv6 Peers","type":"string","jsonPath":".status.ipv6.peers.ratio"}"#,
    printcolumn = r#"{"name":"Degraded","type":"string","jsonPath":".status.conditions[?(@.type==\"Degraded\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodeEncryptionSpec {}

/// One node's encryption state per family.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeEncryptionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<FamilyStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<FamilyStatus>,
    /// When the agent last wrote this status (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
    /// `Degraded`: the agent refuses (part of) the config or cannot apply it; a standard
    /// `metav1.Condition` whose message names the rule ids and what to change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What the admission rules (`kube_encrypt_api::rules`) say about the config as this agent
    /// sees it: denials it refused to apply, and warnings it applied anyway (NAT outgoing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<ConfigFinding>,
}

/// One finding of the admission rules, as the agent reports it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigFinding {
    /// The rule id (`port-range`, `ipv6-nat-outgoing`, ...).
    pub rule: String,
    /// `deny` (not applied) or `warning` (applied).
    pub severity: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
    /// What is wrong and what to change.
    pub message: String,
}

/// Encryption state of one family on one node.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FamilyStatus {
    pub state: EncryptionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Base64 WireGuard public key (never the private key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    #[serde(default)]
    pub peers: PeerCounts,
    /// Age of the oldest latest-handshake among handshaken peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_handshake_seconds: Option<i64>,
    #[serde(default)]
    pub rx_bytes: i64,
    #[serde(default)]
    pub tx_bytes: i64,
    /// Why the state is what it is, for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The few worst peers: no handshake or a stale one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worst_peers: Vec<PeerHealth>,
    /// Other nodes left out of this family's mesh and why (at most
    /// [`MAX_REPORTED_SKIPPED`], by node name; `skippedPeerCount` has the total).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_peers: Vec<SkippedPeerStatus>,
    #[serde(default)]
    pub skipped_peer_count: i64,
}

/// How many skipped peers a family status lists by name.
pub const MAX_REPORTED_SKIPPED: usize = 10;

/// A node that is not programmed as a peer, and why.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SkippedPeerStatus {
    pub node: String,
    pub reason: String,
}

/// How many peers are programmed and how many completed a handshake.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PeerCounts {
    pub configured: i64,
    pub handshaken: i64,
    /// `handshaken/configured`, such as `2/2`, for `kubectl get nodeencryptions`.
    #[serde(default)]
    pub ratio: String,
}

impl PeerCounts {
    /// Counts with their `ratio` filled in.
    pub fn new(configured: i64, handshaken: i64) -> Self {
        Self {
            configured,
            handshaken,
            ratio: format!("{handshaken}/{configured}"),
        }
    }
}

/// A peer that needs attention.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PeerHealth {
    pub node: String,
    /// Seconds since the last handshake; absent when there never was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_age_seconds: Option<i64>,
}

/// The state of one family on one node.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncryptionState {
    Encrypted,
    #[default]
    Disabled,
    Unsupported,
    Error,
}

/// Which WireGuard implementation carries the family.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Kernel,
    Userspace,
}
