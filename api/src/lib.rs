//! kube-encrypt's shared API: the custom resources, the one conversion from Kubernetes objects
//! to domain types, the admission rules, the mesh planner, the dataplane diff and MTU maths.
//!
//! Pure: no async runtime, network, netlink or WireGuard. The agent, the webhook and the
//! kubectl plugin all call into this crate, so none of them re-implements a rule.
//!
//! Test builders (`fixtures`) exist only with the `testing` feature, which the crate's own
//! tests and other crates' `[dev-dependencies]` enable; release binaries carry none.
//!
//! ```text
//!  Node, Pod ──► node::NodeView ─┐
//!  EncryptionConfig, IPPool ─────┼─► rules::evaluate_config ─► findings (webhook, plugin, agent)
//!                                └─► plan::plan ─► Dataplane ─► diff::diff(observed) ─► Vec<Change>
//!  LocalFacts (node name, underlay MTU, WireGuard support) ─┘
//! ```

pub mod crd;
pub mod dataplane;
pub mod diff;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
pub mod key;
pub mod mtu;
pub mod net;
pub mod node;
pub mod plan;
pub mod quote;
pub mod rules;
