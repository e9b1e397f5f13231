//! kube-encrypt node agent: observe → plan → apply.
//!
//! ```text
//!  Kubernetes watches ─┐
//!                      ├─► kube_encrypt_api::plan ─► diff vs. observed ─► apply (netlink, WireGuard, nftables)
//!  local facts ────────┘                                                └─► publish key + NodeEncryption
//! ```

pub mod dataplane;
