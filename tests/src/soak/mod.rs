//! The soak run (`make soak`): a 3-node dual-stack lab on the real control plane, encryption
//! on, then for a given time fake Nodes added and removed, EncryptionConfig and IPPool
//! changes, agents killed and the API server restarted, each at a bounded rate; meanwhile RSS
//! and CPU of every agent and of the webhook sampled from /proc. At the end: the cluster
//! settles, the flow matrix runs, and the report says how memory grew, which ERROR/WARN
//! lines were logged (and which the faults explain) and whether every flow was as expected.
//!
//! ```text
//!  up ─► enable ─► settle ─┬─ schedule ─► churn / faults (sequential, bounded) ─┐
//!                          └─ sampler thread: /proc of agents + webhook ────────┤
//!                                        remove fake Nodes ─► settle ─► flows ─► logs ─► report ─► down
//! ```

pub mod churn;
pub mod faults;
pub mod logs;
pub mod report;
pub mod run;
pub mod sample;
pub mod schedule;
pub mod settle;

use std::path::PathBuf;
use std::time::Duration;

/// What a soak run is asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// Length of the churn phase.
    pub length: Duration,
    /// Where soak.md, soak.json, soak-rss.svg and the copied logs go.
    pub out: PathBuf,
    /// The `kube-encrypt-lab` binary (the agent and webhook are found next to it).
    pub lab_bin: PathBuf,
    /// How often /proc is sampled.
    pub sample_every: Duration,
    /// Seed of the node churn's add/remove choices.
    pub seed: u64,
}
