//! `IPPool`: one of the cluster's pod address ranges and its NAT-outgoing policy.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A pod address range of the cluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[kube(
    group = "kube-encrypt.dev",
    version = "v1alpha1",
    kind = "IPPool",
    shortname = "ippool",
    printcolumn = r#"{"name":"CIDR","type":"string","jsonPath":".spec.cidr"}"#,
    printcolumn = r#"{"name":"NATOutgoing","type":"boolean","jsonPath":".spec.natOutgoing"}"#,
    printcolumn = r#"{"name":"Disabled","type":"boolean","jsonPath":".spec.disabled"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolSpec {
    /// The range, IPv4 or IPv6, in CIDR notation (`198.18.0.0/16`, `2001:db8:1::/48`).
    #[x_kube(validation = Rule::new("isCIDR(self) && cidr(self).masked() == cidr(self)").message("pool-cidr: spec.cidr must be a network address in CIDR notation, such as 198.18.0.0/16 or 2001:db8:1::/48"))]
    pub cidr: String,
    /// Masquerade traffic from this pool to destinations outside every pool.
    #[serde(default)]
    pub nat_outgoing: bool,
    /// A disabled pool allocates nothing and is ignored by the rules and the agents.
    #[serde(default)]
    pub disabled: bool,
}
