//! `EncryptionConfig`: the cluster-wide intent (singleton named `default`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::net::Family;

/// The only accepted name of the `EncryptionConfig` singleton.
pub const SINGLETON_NAME: &str = "default";

/// Desired encryption of the cluster's node-to-node traffic.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kube-encrypt.dev",
    version = "v1alpha1",
    kind = "EncryptionConfig",
    shortname = "encconf",
    status = "EncryptionConfigStatus",
    printcolumn = r#"{"name":"IPv4","type":"boolean","jsonPath":".spec.ipv4.enabled"}"#,
    printcolumn = r#"{"name":"IPv6","type":"boolean","jsonPath":".spec.ipv6.enabled"}"#,
    printcolumn = r#"{"name":"Encrypted","type":"integer","jsonPath":".status.nodes.encrypted"}"#,
    printcolumn = r#"{"name":"Total","type":"integer","jsonPath":".status.nodes.total"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("self.metadata.name == 'default'").message("singleton-name: the EncryptionConfig must be named 'default'")
)]
#[x_kube(
    validation = Rule::new("!(self.ipv4.enabled && self.ipv6.enabled && self.ipv4.port == self.ipv6.port)").message("port-conflict: spec.ipv4.port and spec.ipv6.port must differ when both families are enabled"),
    validation = Rule::new("self.ipv4.interfaceName != self.ipv6.interfaceName").message("interface-name: spec.ipv4.interfaceName and spec.ipv6.interfaceName must differ"),
)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionConfigSpec {
    /// IPv4 encryption over the IPv4 underlay.
    #[serde(default)]
    pub ipv4: Ipv4Spec,
    /// IPv6 encryption over the IPv6 underlay.
    #[serde(default)]
    pub ipv6: Ipv6Spec,
    /// Policy routing table (same number for both families).
    #[serde(default = "default_routing_table")]
    #[x_kube(validation = Rule::new("self > 0 && self <= 4294967295 && !(self in [253, 254, 255])").message("routing-table: spec.routingTable must be 1-4294967295 and not 253, 254 or 255 (reserved: default, main, local)"))]
    pub routing_table: i64,
    /// Priority of the `ip rule` sending traffic to the routing table.
    #[serde(default = "default_rule_priority")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 32765").message("rule-priority: spec.routingRulePriority must be 1-32765 (0, 32766 and 32767 are the kernel's local/main/default rules)"))]
    pub routing_rule_priority: i64,
    /// Firewall mark bit set on WireGuard's own UDP packets, so they skip the routing table.
    #[serde(default = "default_firewall_mark")]
    #[x_kube(validation = Rule::new("self > 0 && self <= 4294967295 && (self / 16384) % 2 == 0 && (self / 32768) % 2 == 0").message("firewall-mark: spec.firewallMark must be non-zero and must not overlap kube-proxy's marks 0x4000 and 0x8000"))]
    pub firewall_mark: i64,
    /// Persistent keepalive in seconds, 0 = off.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 65535").message("persistent-keepalive: spec.persistentKeepalive must be 0-65535 seconds"))]
    pub persistent_keepalive: i64,
    /// Also encrypt host-to-host traffic (node IPs in allowed IPs).
    #[serde(default)]
    pub host_encryption: bool,
    /// With host encryption, also encrypt host traffic of control-plane nodes
    /// (label `node-role.kubernetes.io/control-plane`). Off by default: the agents' own
    /// connection to the API server must never depend on a tunnel (bootstrap lockout).
    #[serde(default)]
    pub control_plane_host_encryption: bool,
    /// Where a node's allowed IPs come from.
    #[serde(default)]
    pub route_source: RouteSource,
    /// Which WireGuard implementation the agents use.
    #[serde(default)]
    pub backend: Backend,
    /// Label selector of participating nodes; all nodes when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
}

/// Per-family settings of IPv4.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.mtu == 0 || (self.mtu >= 576 && self.mtu <= 9000)").message("mtu-range: spec.ipv4.mtu must be 0 (auto) or 576-9000"))]
#[serde(rename_all = "camelCase")]
pub struct Ipv4Spec {
    /// Encrypt IPv4 traffic.
    #[serde(default)]
    pub enabled: bool,
    /// WireGuard UDP listen port.
    #[serde(default = "default_port_v4")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port-range: spec.ipv4.port must be 1-65535"))]
    pub port: i64,
    /// Interface MTU; 0 = auto.
    #[serde(default)]
    pub mtu: i64,
    /// Linux interface name.
    #[serde(default = "default_interface_v4")]
    #[x_kube(validation = Rule::new("self.matches('^[!-~]{1,15}$') && !self.matches('[/:]') && !(self in ['.', '..']) && !self.startsWith('-')").message("interface-name: spec.ipv4.interfaceName must be 1-15 printable ASCII characters without '/', ':' or whitespace, not '.' or '..', and not starting with '-'"))]
    pub interface_name: String,
}

/// Per-family settings of IPv6.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.mtu == 0 || (self.mtu >= 1280 && self.mtu <= 9000)").message("mtu-range: spec.ipv6.mtu must be 0 (auto) or 1280-9000"))]
#[serde(rename_all = "camelCase")]
pub struct Ipv6Spec {
    /// Encrypt IPv6 traffic.
    #[serde(default)]
    pub enabled: bool,
    /// WireGuard UDP listen port.
    #[serde(default = "default_port_v6")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port-range: spec.ipv6.port must be 1-65535"))]
    pub port: i64,
    /// Interface MTU; 0 = auto.
    #[serde(default)]
    pub mtu: i64,
    /// Linux interface name.
    #[serde(default = "default_interface_v6")]
    #[x_kube(validation = Rule::new("self.matches('^[!-~]{1,15}$') && !self.matches('[/:]') && !(self in ['.', '..']) && !self.startsWith('-')").message("interface-name: spec.ipv6.interfaceName must be 1-15 printable ASCII characters without '/', ':' or whitespace, not '.' or '..', and not starting with '-'"))]
    pub interface_name: String,
}

/// The settings of one family, whichever it is, borrowed from the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilySettings<'a> {
    pub family: Family,
    pub enabled: bool,
    pub port: i64,
    pub mtu: i64,
    pub interface_name: &'a str,
}

/// Where a node's allowed IPs come from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RouteSource {
    /// The node's `spec.podCIDRs`.
    #[default]
    #[serde(rename = "PodCIDRs")]
    PodCidrs,
    /// The IPs of the node's pods (CNIs allocating from the VNet: Azure CNI, AWS VPC CNI).
    #[serde(rename = "WorkloadIPs")]
    WorkloadIps,
}

/// Which WireGuard implementation the agents use.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// The kernel module when present, otherwise the userspace implementation.
    #[default]
    Auto,
    Kernel,
    Userspace,
}

/// Observed state, written by the webhook deployment's status controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionConfigStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `Degraded`, standard `metav1.Condition`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeCounts>,
}

/// How many participating nodes are in each state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeCounts {
    pub total: i64,
    pub encrypted: i64,
    pub disabled: i64,
    pub unsupported: i64,
    pub error: i64,
}

impl Default for EncryptionConfigSpec {
    fn default() -> Self {
        Self {
            ipv4: Ipv4Spec::default(),
            ipv6: Ipv6Spec::default(),
            routing_table: default_routing_table(),
            routing_rule_priority: default_rule_priority(),
            firewall_mark: default_firewall_mark(),
            persistent_keepalive: 0,
            host_encryption: false,
            control_plane_host_encryption: false,
            route_source: RouteSource::default(),
            backend: Backend::default(),
            node_selector: None,
        }
    }
}

impl Default for Ipv4Spec {
    fn default() -> Self {
        Self {
            enabled: false,
            port: default_port_v4(),
            mtu: 0,
            interface_name: default_interface_v4(),
        }
    }
}

impl Default for Ipv6Spec {
    fn default() -> Self {
        Self {
            enabled: false,
            port: default_port_v6(),
            mtu: 0,
            interface_name: default_interface_v6(),
        }
    }
}

impl EncryptionConfigSpec {
    /// The settings of `family`, resolved from the per-family section.
    pub fn family(&self, family: Family) -> FamilySettings<'_> {
        match family {
            Family::V4 => FamilySettings {
                family,
                enabled: self.ipv4.enabled,
                port: self.ipv4.port,
                mtu: self.ipv4.mtu,
                interface_name: &self.ipv4.interface_name,
            },
            Family::V6 => FamilySettings {
                family,
                enabled: self.ipv6.enabled,
                port: self.ipv6.port,
                mtu: self.ipv6.mtu,
                interface_name: &self.ipv6.interface_name,
            },
        }
    }

    /// The families whose encryption is enabled, IPv4 first.
    pub fn enabled_families(&self) -> Vec<Family> {
        Family::ALL
            .into_iter()
            .filter(|f| self.enabled(*f))
            .collect()
    }

    /// Whether `family`'s encryption is enabled.
    pub fn enabled(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.ipv4.enabled,
            Family::V6 => self.ipv6.enabled,
        }
    }
}

impl RouteSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PodCidrs => "PodCIDRs",
            Self::WorkloadIps => "WorkloadIPs",
        }
    }
}

fn default_port_v4() -> i64 {
    51820
}
fn default_port_v6() -> i64 {
    51821
}
fn default_interface_v4() -> String {
    "wg-encrypt".into()
}
fn default_interface_v6() -> String {
    "wg-encrypt-v6".into()
}
fn default_routing_table() -> i64 {
    51820
}
fn default_rule_priority() -> i64 {
    99
}
fn default_firewall_mark() -> i64 {
    0x10_0000
}
