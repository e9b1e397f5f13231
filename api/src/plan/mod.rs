//! The mesh planner of SPEC §4.1: from a cluster snapshot and local facts to the desired
//! dataplane of one node N. Pure: no I/O, no clock; output sorted and deterministic.
//!
//! ```text
//!  Snapshot (config, pools, NodeViews) ─────────┐
//!                                               ├─► plan() ─► NodePlan { dataplane, outcomes,
//!  LocalFacts (name, MTU, WireGuard, keys,      ┘                        publish, skipped,
//!   underlay addresses, API server, device peers)                         problems }
//! ```
//!
//! # Semantics
//!
//! - **Fail static.** N absent from the snapshot ([`PlanError::UnknownNode`]), an invalid
//!   `spec.nodeSelector`, or a config that breaks a rule guarding the dataplane
//!   ([`crate::rules::dataplane_blockers`]: port, MTU, interface name, routing table, rule
//!   priority, firewall mark, keepalive; [`PlanError::InvalidConfig`] carries the findings):
//!   planning fails and the agent keeps its dataplane as it is. The rules are the only judge
//!   of a config; every other rule is admission policy and does not stop planning.
//! - **Off.** No config: every family `Disabled` ("no EncryptionConfig"). N opted out (label
//!   `kube-encrypt.dev/encryption=disabled`) or not selected by `spec.nodeSelector`: every
//!   family `Disabled` with that reason. Both: empty dataplane, nothing published. A family
//!   disabled in the config is `Disabled`; so is one for which N has no InternalIP (no peer
//!   could reach it).
//! - **Backend.** `Auto`: kernel, else userspace, else `Unsupported`; `Kernel` / `Userspace`:
//!   that one or `Unsupported`. Unsupported: no interface, no key published.
//! - **Candidates** for family F: every other node M that is selected, not opted out,
//!   publishes a valid key for F and has an InternalIP of F (endpoint = the first one : F's
//!   port). A key N's device holds is N's: another node publishing it is refused as a copy,
//!   and N keeps encrypting. Of several nodes publishing one key, the *established* one keeps
//!   it and the others are refused: established is (1) what N's device has programmed for
//!   that node now (found by the recorded node name, else by endpoint; the device outlives
//!   agent restarts, see [`LocalFacts::current_peers`]), else (2) the older Node by
//!   `metadata.creationTimestamp` (a node without one counts as the newest), else (3) the
//!   node name.
//! - **Claims.** Every other node claims its workload destinations (pod CIDRs in `PodCIDRs`,
//!   pod IPs as host prefixes in `WorkloadIPs`) and its InternalIPs (routed only with host
//!   encryption, except when N or M is a control-plane node and `controlPlaneHostEncryption`
//!   is off; otherwise they only reserve the address); a candidate also claims its published
//!   interface address. A candidate is refused when a claim it would route
//!   * is wider than /8 (IPv4) or /16 (IPv6), or touches a special range: unspecified,
//!     loopback, link-local, multicast, broadcast, IPv4-mapped;
//!   * overlaps what is N's: its InternalIPs and underlay addresses
//!     ([`LocalFacts::local_addresses`]), its pod CIDRs, workload IPs and interface address,
//!     the API server ([`LocalFacts::protected`]; allowed only as the InternalIP of a
//!     control-plane peer with `controlPlaneHostEncryption` on);
//!   * overlaps an underlay subnet (prefix of an underlay address), except an InternalIP, and
//!     a pod IP in `WorkloadIPs` (CNIs that give pods addresses of the node network);
//!   * is a workload destination outside every enabled IPPool of F (the pools describe the
//!     pod address space and must cover the pod CIDRs), or an interface address outside M's
//!     own pod CIDRs.
//!
//!   Then claims overlapping between nodes (at least one of the two routed; non-candidates
//!   whose claims pass the same checks, pools aside, take part too) are contests: the
//!   established claimant (same order as for keys, (1) meaning the device's allowed IPs or
//!   endpoint for that node cover the claim) keeps it, the other node is refused whole.
//!   Contests are decided strongest winner first; one against a node that already lost is
//!   moot. A claim never flips between nodes, and no node can draw another's traffic.
//! - **Peers**: the candidates not refused. Allowed IPs: M's routed workload and InternalIP
//!   claims, plus its interface address unless already covered. Sorted, deduplicated.
//!   Keepalive when > 0.
//! - **Routes** in table T: `dev <interface>` for every peer allowed IP; `throw` for N's own
//!   workload destinations and for the routed workload and InternalIP claims of every other
//!   node that is not a peer, where they pass the checks above (pools aside) and overlap no
//!   peer's allowed IPs: a throw never carves into a peer's range. One route per destination;
//!   throw wins a conflict. **Rule**: `priority P: not fwmark M/M lookup T`.
//! - **Interface**: name, port, fwmark M, the chosen backend, the configured MTU or
//!   [`crate::mtu::auto`]; address = the network address of N's first pod CIDR of F
//!   (`198.18.1.0/24` → `198.18.1.0/32`), which no IPAM hands to a pod (Flannel's choice),
//!   none without one or for a /31, /32, /127 or /128. Published with the key.
//! - **Bootstrap lockout.** The family steers traffic (routes + rule, state `Encrypted`) only
//!   when N's published key equals the device key (`LocalFacts::own_public_keys`). Otherwise
//!   the interface and peers are planned and the key is published, but no route or rule:
//!   state `Disabled`, "publishing the new key; …".
//! - **Firewall** (when a family has an interface): accept its WireGuard port; masquerade on
//!   its interface except N's own allowed IPs; NAT outgoing for the family when an enabled
//!   pool of it has `natOutgoing`; RPF marking on the underlay interfaces with host encryption
//!   while a family steers, unless N is an exempt control-plane node.
//!   **Sysctl** `net.ipv4.conf.all.src_valid_mark = 1` with host encryption while IPv4 steers.
//! - **Skipped**: one entry per other node left out of a family that has an interface, with
//!   the reason; `refused` when the node's own data was refused (a copied key, a claim it may
//!   not make) rather than the node simply not taking part.
//!   **Problems**: every node's malformed data (values quoted cut, [`crate::quote`]).

mod addresses;
mod claims;
mod family;
mod firewall;
mod guard;
mod intervals;
mod mesh;
mod selector;
mod settings;
mod standing;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::crd::EncryptionConfigSpec;
use crate::crd::{BackendKind, EncryptionState, IPPoolSpec};
use crate::dataplane::{Dataplane, PeerSpec};
use crate::key::WireGuardKey;
use crate::net::{Family, PerFamily};
use crate::node::{NodeProblem, NodeView};
use crate::rules::Finding;

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
    /// The addresses on the underlay interfaces, with their prefix length
    /// (`192.0.2.11/24`): no peer may claim them or anything in their subnets.
    pub local_addresses: Vec<IpNet>,
    /// Addresses this node must always reach directly, whatever the cluster says: the API
    /// server's, as the agent resolved them from its kubeconfig or in-cluster environment.
    /// Never sent into a tunnel, except as the InternalIP of a control-plane peer with
    /// `controlPlaneHostEncryption` on.
    pub protected: Vec<IpAddr>,
    /// The peers programmed on this node's devices now (the device outlives agent restarts):
    /// of two nodes claiming one key or address, the one programmed here keeps it.
    pub current_peers: PerFamily<Vec<PeerSpec>>,
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
    /// The node's own data was refused (a copied key, addresses it may not claim): a sign of
    /// a misconfigured or hostile node, worth a warning. Otherwise the node simply does not
    /// take part (opted out, no key yet, not selected).
    pub refused: bool,
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
    #[error(
        "EncryptionConfig breaks rules the dataplane depends on; keeping the dataplane as it is \
         until it is fixed: {}",
        findings_text(.findings)
    )]
    InvalidConfig { findings: Vec<Finding> },
}

fn findings_text(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
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
    let settings =
        Settings::from_spec(config).map_err(|findings| PlanError::InvalidConfig { findings })?;
    let selector = NodeSelector::compile(config.node_selector.as_ref())
        .map_err(PlanError::InvalidNodeSelector)?;
    if let Some(exclusion) = Exclusion::of(own, &selector) {
        let message = format!("this node is {}", exclusion.reason());
        return Ok(NodePlan::off(&message, problems));
    }
    let mesh = Mesh::new(&settings, snapshot, own, facts, &selector);
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
