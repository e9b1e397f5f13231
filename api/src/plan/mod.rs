//! The mesh planner of SPEC §4.1: from a cluster snapshot and local facts to the desired
//! dataplane of one node N. Pure: no I/O, no clock; output sorted and deterministic.
//!
//! ```text
//!  Snapshot (config, pools, NodeViews) ─┐
//!                                       ├─► plan() ─► NodePlan { dataplane, outcomes, publish,
//!  LocalFacts (name, MTU, WireGuard, keys) ┘                       skipped, problems }
//! ```
//!
//! # Semantics
//!
//! - **Fail static.** N absent from the snapshot ([`PlanError::UnknownNode`]), an invalid
//!   `spec.nodeSelector` or a config value out of range: planning fails and the agent keeps
//!   its dataplane as it is.
//! - **Off.** No config: every family `Disabled` ("no EncryptionConfig"). N opted out (label
//!   `kube-encrypt.dev/encryption=disabled`) or not selected by `spec.nodeSelector`: every
//!   family `Disabled` with that reason. Both: empty dataplane, nothing published. A family
//!   disabled in the config is `Disabled`; so is one for which N has no InternalIP (no peer
//!   could reach it).
//! - **Backend.** `Auto`: kernel, else userspace, else `Unsupported`; `Kernel` / `Userspace`:
//!   that one or `Unsupported`. Unsupported: no interface, no key published.
//! - **Peers** of N for family F: every other node M that is selected, not opted out,
//!   publishes a valid key for F, has an InternalIP of F (endpoint = the first one : F's port)
//!   and whose key nobody else publishes (N's device key included): two holders of one key are
//!   both left out. Allowed IPs: M's pod CIDRs (`PodCIDRs`) or workload IPs as host prefixes
//!   (`WorkloadIPs`), M's published interface address unless already covered, and with host
//!   encryption M's InternalIPs of F, except when N or M is a control-plane node and
//!   `controlPlaneHostEncryption` is off. Sorted, deduplicated. Keepalive when > 0.
//! - **Routes** in table T: `dev <interface>` for every peer allowed IP; `throw` for N's own
//!   workload destinations and for every destination (workloads, plus node IPs with host
//!   encryption) of every other node that is not a peer. One route per destination; throw
//!   wins a conflict. **Rule**: `priority P: not fwmark M/M lookup T`.
//! - **Interface**: name, port, fwmark M, the chosen backend, the configured MTU or
//!   [`crate::mtu::auto`]; address = second-to-last address of N's first pod CIDR of F
//!   (`198.18.1.0/24` → `198.18.1.254/32`), none without one. Published with the key.
//! - **Bootstrap lockout.** The family steers traffic (routes + rule, state `Encrypted`) only
//!   when N's published key equals the device key (`LocalFacts::own_public_keys`). Otherwise
//!   the interface and peers are planned and the key is published, but no route or rule:
//!   state `Disabled`, "publishing the new key; …". If another node publishes N's device key,
//!   no peer programs N: state `Error`, no route or rule either.
//! - **Firewall** (when a family has an interface): accept its WireGuard port; masquerade on
//!   its interface except N's own allowed IPs; NAT outgoing for the family when an enabled
//!   pool of it has `natOutgoing`; RPF marking on the underlay interfaces with host encryption
//!   while a family steers, unless N is an exempt control-plane node.
//!   **Sysctl** `net.ipv4.conf.all.src_valid_mark = 1` with host encryption while IPv4 steers.
//! - **Skipped**: one entry per other node left out of a family that has an interface.
//!   **Problems**: every node's malformed data.

mod addresses;
mod family;
mod firewall;
mod mesh;
mod selector;
mod settings;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use crate::crd::EncryptionConfigSpec;
use crate::crd::{BackendKind, EncryptionState, IPPoolSpec};
use crate::dataplane::Dataplane;
use crate::key::WireGuardKey;
use crate::net::{Family, PerFamily};
use crate::node::{NodeProblem, NodeView};

pub use firewall::SRC_VALID_MARK;
pub use selector::{NodeSelector, SelectorError};

use mesh::{Exclusion, Mesh};
use settings::Settings;

/// What the cluster says, as the agent's watch caches hold it.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// The `default` EncryptionConfig's spec; `None` when it does not exist.
    pub config: Option<&'a EncryptionConfigSpec>,
    pub pools: &'a [IPPoolSpec],
    /// Every node, converted by [`crate::node::node_views`].
    pub nodes: &'a [NodeView],
}

/// What the agent knows about its own node that the cluster does not say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalFacts {
    pub node_name: String,
    /// Smallest MTU of the underlay interfaces carrying node traffic; `None` = not detected.
    pub underlay_mtu: Option<u32>,
    /// Names of the interfaces holding the node's InternalIPs.
    pub underlay_interfaces: Vec<String>,
    pub wireguard: WireGuardSupport,
    /// The public key of the agent's actual private key per family (`None`: none yet).
    pub own_public_keys: PerFamily<Option<WireGuardKey>>,
}

/// Which WireGuard implementations this node can run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireGuardSupport {
    pub kernel: bool,
    pub userspace: bool,
}

/// The desired state of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePlan {
    pub dataplane: Dataplane,
    pub families: PerFamily<FamilyOutcome>,
    /// What the agent publishes on its own Node.
    pub publish: PerFamily<Publication>,
    /// Other nodes left out of the mesh, and why (sorted by node, then family).
    pub skipped: Vec<SkippedPeer>,
    /// Malformed data met on the way (sorted), for logs and status.
    pub problems: Vec<NodeProblem>,
}

/// How one family ends up on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyOutcome {
    pub state: EncryptionState,
    pub backend: Option<BackendKind>,
    /// Why, for humans: "IPv6 encryption is off", "node opted out by label ...".
    pub message: String,
}

/// Annotations this node should carry for one family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Publication {
    /// Publish the node's public key (otherwise remove the annotation).
    pub public_key: bool,
    /// The interface address to publish (otherwise remove the annotation).
    pub interface_addr: Option<IpAddr>,
}

/// A node that is not programmed as a peer for one family.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SkippedPeer {
    pub node: String,
    pub family: Family,
    pub reason: String,
}

/// Why no plan could be made; the agent keeps the dataplane as it is (fail static).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "node {node:?} is not in the cluster snapshot; keeping the dataplane as it is \
         (check --node-name / NODE_NAME, and that the Node object exists)"
    )]
    UnknownNode { node: String },
    #[error("EncryptionConfig spec.nodeSelector is invalid, keeping the dataplane as it is: {0}")]
    InvalidNodeSelector(#[source] SelectorError),
    #[error("EncryptionConfig {field} is invalid, keeping the dataplane as it is: {message}")]
    InvalidConfig { field: String, message: String },
}

/// Plans node `facts.node_name`'s dataplane from `snapshot`. See the module doc.
pub fn plan(snapshot: &Snapshot<'_>, facts: &LocalFacts) -> Result<NodePlan, PlanError> {
    let own = snapshot
        .nodes
        .iter()
        .find(|n| n.name == facts.node_name)
        .ok_or_else(|| PlanError::UnknownNode {
            node: facts.node_name.clone(),
        })?;
    let problems = all_problems(snapshot.nodes);
    let Some(config) = snapshot.config else {
        return Ok(NodePlan::off("no EncryptionConfig", problems));
    };
    let settings = Settings::from_spec(config)?;
    let selector = NodeSelector::compile(config.node_selector.as_ref())
        .map_err(PlanError::InvalidNodeSelector)?;
    if let Some(exclusion) = Exclusion::of(own, &selector) {
        let message = format!("this node is {}", exclusion.reason());
        return Ok(NodePlan::off(&message, problems));
    }
    let mesh = Mesh::new(&settings, snapshot.nodes, own, facts, &selector);
    let mut plan = NodePlan {
        problems,
        ..NodePlan::default()
    };
    for family in Family::ALL {
        family::plan_family(&mesh, family, &mut plan);
    }
    plan.dataplane.firewall = firewall::firewall(&mesh, snapshot.pools, &plan.dataplane);
    plan.dataplane.sysctls = firewall::sysctls(&mesh, &plan.dataplane);
    plan.skipped.sort();
    Ok(plan)
}

impl NodePlan {
    /// Nothing of kube-encrypt on this node; both families `Disabled` for `message`.
    fn off(message: &str, problems: Vec<NodeProblem>) -> Self {
        Self {
            families: PerFamily::from_fn(|_| family::disabled(message.to_owned())),
            problems,
            ..Self::default()
        }
    }
}

fn all_problems(nodes: &[NodeView]) -> Vec<NodeProblem> {
    let mut problems: Vec<NodeProblem> = nodes.iter().flat_map(|n| n.problems.clone()).collect();
    problems.sort_by(|a, b| (&a.node, &a.field, &a.message).cmp(&(&b.node, &b.field, &b.message)));
    problems
}
