//! Root tests of the host driver in throwaway network namespaces.
//!
//! ```text
//!   ket-dp-<pid>-<test>-a                          ket-dp-<pid>-<test>-b
//!   pod0 198.18.1.1/24 2001:db8:1::1/64            pod0 198.18.2.1/24 2001:db8:2::1/64
//!   ket4/ket6 (WireGuard, driven by HostDriver)    ket4/ket6
//!   eth0 192.0.2.1/24 2001:db8::1/64 ──── veth ──── eth0 192.0.2.2/24 2001:db8::2/64
//! ```
//!
//! The main tables have no route to the other node's pods: pod-to-pod traffic only flows
//! when the driver's table, rule and tunnel work. Each driver runs in its own process inside
//! its node's namespaces ([`node`]); the tests look at the result independently with `ip`,
//! `nft`, `ping` and `tcpdump`. Needs root, wireguard-go, tcpdump and nft; fails loudly
//! without them. Only traffic between the test's own namespaces, documentation addresses.

#[path = "dataplane/agent.rs"]
mod agent;
#[path = "dataplane/capture.rs"]
mod capture;
#[path = "dataplane/changes.rs"]
mod changes;
#[path = "dataplane/encryption.rs"]
mod encryption;
#[path = "dataplane/facts.rs"]
mod facts;
#[path = "dataplane/idempotency.rs"]
mod idempotency;
#[path = "dataplane/lab.rs"]
mod lab;
#[path = "dataplane/mesh.rs"]
mod mesh;
#[path = "dataplane/mss.rs"]
mod mss;
#[path = "dataplane/node.rs"]
mod node;
#[path = "dataplane/ownership.rs"]
mod ownership;
#[path = "dataplane/recovery.rs"]
mod recovery;

/// The userspace WireGuard implementation the tests drive.
const WIREGUARD_GO: &str = "/usr/bin/wireguard-go";
