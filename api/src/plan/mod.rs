//! The mesh planner of SPEC §4.1: from a cluster snapshot and local facts to the desired
//! dataplane of one node. Pure: no I/O, no clock; output sorted and deterministic.

use std::net::IpAddr;

use crate::crd::{BackendKind, EncryptionConfigSpec, EncryptionState, IPPoolSpec};
use crate::dataplane::Dataplane;
use crate::net::PerFamily;
use crate::node::{NodeProblem, NodeView};

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
    pub family: crate::net::Family,
    pub reason: String,
}
