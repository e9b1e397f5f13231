//! A Kubernetes API emulator speaking the real HTTP API to real clients (kube-rs, kubectl).
//! Test infrastructure only; production runs on real clusters.
//!
//! ```text
//!  HTTP (hyper) ─► request::RequestInfo ─► router ─┬─ discovery / openapi / version
//!                                                  └─ handlers (get/list/watch/write)
//!                                                        │ patch: merge / json / strategic / apply
//!                                                        │ schema (CRDs) ─► admission (webhooks)
//!                                                        ▼
//!                                  store (per-resource BTreeMap + event history + broadcast)
//!                                        │                         │
//!                                  persist (log + snapshot)     gc (ownerReferences)
//! ```
//!
//! Not emulated: authentication and authorization (everyone is `system:admin`, or the
//! `Impersonate-User`); finalizers and graceful deletion (deletes are immediate, a deleted
//! namespace's objects go at once); mutating webhooks; conversion between CRD versions
//! (objects are stored once and served in every version); controllers (no pods for
//! deployments, no service IPs); protobuf bodies other than Namespace, ConfigMap, Secret
//! and ServiceAccount; unknown-field detection for built-in kinds; `/openapi/v2`
//! (`kubectl apply` uses v3); watches of a resource restored from the on-disk snapshot
//! cannot resume from before the restart (410, clients relist).
//!
//! The API suites (`tests/tests/apiserver`) run against this emulator and against a real
//! kube-apiserver ([`crate::kube_apiserver`]). Where they differ, and the suites accept both:
//! kube-apiserver deletes a CRD through a finalizer and drops it from discovery a moment
//! later (here: at once); it publishes CRD schemas in OpenAPI v3 asynchronously and redirects
//! a stale `?hash=` (here: at once, any hash); its garbage collector and namespace controller
//! act within seconds, for a new custom resource after up to 30 s of rediscovery (here: at
//! once); it refuses a Pod until its namespace's `default` ServiceAccount exists and refuses
//! most Pod spec changes after creation (here: neither — no admission plugins, no
//! immutability rules for built-in kinds). Fixed after the comparison: an apply without
//! `fieldManager` is a 422 `Invalid` (was 400).

use std::net::SocketAddr;
use std::path::PathBuf;

pub mod admission;
pub mod cel;
pub mod schema;

mod api;
mod context;
mod discovery;
mod errors;
mod fieldset;
mod gc;
mod http;
mod lists;
mod managed;
mod meta;
mod openapi;
mod patch;
mod persist;
mod protobuf;
mod read;
mod registry;
mod request;
mod router;
mod selectors;
mod server;
mod smp;
mod store;
mod strategy;
mod table;
mod watch;
mod write;

pub use server::RunningServer;

/// Where the emulator listens and keeps its state.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks a free port (see [`RunningServer::addr`]).
    pub listen: SocketAddr,
    /// Directory holding the snapshot and the mutation log, created when missing.
    pub state_dir: PathBuf,
}

/// Runs the emulator until the process is killed; on SIGTERM or SIGINT it writes all
/// pending state to disk and returns.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let running = start(config).await?;
    tokio::select! {
        _ = term.recv() => running.shutdown().await,
        _ = int.recv() => running.shutdown().await,
    }
}

/// Loads the state, binds, spawns the server and returns a handle to it.
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    server::start(config).await
}
