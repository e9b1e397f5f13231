//! kube-encrypt node agent: observe → plan → apply.
//!
//! ```text
//!  Kubernetes watches ─┐
//!                      ├─► kube_encrypt_api::plan ─► diff vs. observed ─► apply (netlink, WireGuard, nftables)
//!  local facts ────────┘                                                └─► publish key + NodeEncryption
//! ```
//!
//! [`watch`] keeps the caches, [`reconcile`] runs one round (plan, [`publish`], observe,
//! [`execute`], [`status`]), [`run`] wires them into a loop with [`server`] and [`metrics`].
//! The host sits behind [`dataplane::Driver`] and [`host::HostProbe`]; `fake` stands in for
//! both (and for the API server's writes) in tests: it exists only with the `testing` feature,
//! which the agent's own tests enable, so release binaries carry no fakes.

pub mod apiserver;
pub mod args;
pub mod cluster;
pub mod dataplane;
pub mod durable;
pub mod execute;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod host;
pub mod incidents;
pub mod keys;
pub mod lock;
pub mod metrics;
pub mod node_table;
pub mod publish;
pub mod reconcile;
pub mod run;
pub mod scope;
pub mod server;
pub mod slim_node;
pub mod status;
pub mod watch;
