//! One reconcile round: plan from the cluster snapshot and local facts, publish what the plan
//! asks this node to publish, observe, diff, apply, then report (status and metrics).
//!
//! Order matters for the bootstrap lockout: the node's key and interface address are
//! published *before* the dataplane relies on them. When publishing fails (API server
//! unreachable) the dataplane is kept exactly as it is.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kube_encrypt_api::crd::NodeEncryptionStatus;
use kube_encrypt_api::net::{Family, PerFamily};
use kube_encrypt_api::node::NodeView;
use kube_encrypt_api::plan::{plan, LocalFacts, NodePlan, PlanError, Snapshot};

use crate::cluster::{ClusterState, ClusterWriter, WriteError};
use crate::dataplane::{Driver, DriverError, Observed};
use crate::execute::{apply_all, changes_towards, ApplyReport};
use crate::host::{wireguard_support, HostProbe};
use crate::incidents::Incidents;
use crate::keys::KeyStore;
use crate::metrics::{MeshSnapshot, Metrics, Stage};
use crate::publish::{annotation_patch, desired_annotations};
use crate::scope::{scope_of, union, ScopeMemory};
use crate::status::{build_status, peer_samples, FamilyErrors, StatusLimiter, REFRESH_INTERVAL};

/// Why a round failed; the dataplane is left as the round found it or partly converged.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading this host's facts (the dataplane is kept as it is): {0}")]
    Facts(DriverError),
    #[error("planning the dataplane: {0}")]
    Plan(PlanError),
    #[error("publishing this node's key annotations (the dataplane is kept as it is until they are published): {0}")]
    Publish(WriteError),
    #[error("observing the dataplane: {0}")]
    Observe(DriverError),
    #[error("{failed} of {total} dataplane changes failed; they are retried")]
    Apply { failed: usize, total: usize },
    #[error("the dataplane is applied but the agent's state could not be saved: {}", .problems.join("; "))]
    State { problems: Vec<String> },
}

impl ReconcileError {
    pub fn stage(&self) -> Stage {
        match self {
            ReconcileError::Facts(_) => Stage::Facts,
            ReconcileError::Plan(_) => Stage::Plan,
            ReconcileError::Publish(_) => Stage::Publish,
            ReconcileError::Observe(_) => Stage::Observe,
            ReconcileError::Apply { .. } => Stage::Apply,
            ReconcileError::State { .. } => Stage::State,
        }
    }
}

/// What a successful round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The node is not (yet) in the cluster: nothing was touched.
    UnknownNode,
    /// The dataplane matches the plan after applying `applied` changes.
    Converged { applied: usize },
}

/// Everything one node's reconcile needs, owned for the agent's lifetime.
pub struct Reconciler<D, H, W> {
    node_name: String,
    driver: D,
    host: H,
    writer: W,
    keys: KeyStore,
    scope: ScopeMemory,
    metrics: Arc<Metrics>,
    limiter: StatusLimiter,
    /// The plan's problems and skipped peers as last logged, to log only changes.
    notes: Vec<String>,
    /// Some programmed peer had not completed a handshake at the end of the last round.
    handshakes_pending: bool,
    /// Interfaces that vanished behind the agent's back.
    incidents: Incidents,
    /// Why the remembered scope could not be saved this round.
    scope_problem: Option<String>,
}

impl<D: Driver, H: HostProbe, W: ClusterWriter> Reconciler<D, H, W> {
    /// A reconciler whose status is written on change or every five minutes.
    pub fn new(parts: Parts<D, H, W>) -> Self {
        Self {
            node_name: parts.node_name,
            driver: parts.driver,
            host: parts.host,
            writer: parts.writer,
            keys: parts.keys,
            scope: parts.scope,
            metrics: parts.metrics,
            limiter: StatusLimiter::new(REFRESH_INTERVAL),
            notes: Vec::new(),
            handshakes_pending: false,
            incidents: Incidents::default(),
            scope_problem: None,
        }
    }

    /// The dataplane driver (tests inspect their fake through it).
    pub fn driver(&self) -> &D {
        &self.driver
    }

    /// Whether a programmed peer is in the middle of its first handshake: handshakes raise no
    /// watch event, so the loop looks again soon to report them.
    pub fn handshakes_pending(&self) -> bool {
        self.handshakes_pending
    }

    /// The cluster writer (tests inspect their fake through it).
    pub fn writer(&self) -> &W {
        &self.writer
    }

    /// One round against `cluster` at wall-clock time `now`; timed and counted in metrics.
    pub async fn reconcile(
        &mut self,
        cluster: &ClusterState,
        now: SystemTime,
    ) -> Result<Outcome, ReconcileError> {
        let started = Instant::now();
        let result = self.round(cluster, now).await;
        self.metrics.observe_reconcile(started.elapsed());
        if let Err(e) = &result {
            self.metrics.count_error(e.stage());
        }
        result
    }

    async fn round(
        &mut self,
        cluster: &ClusterState,
        now: SystemTime,
    ) -> Result<Outcome, ReconcileError> {
        let views = cluster.node_views();
        let facts = self.local_facts(&views).await?;
        let snapshot = Snapshot {
            config: cluster.config.as_ref(),
            pools: &cluster.pools,
            nodes: &views,
        };
        let plan = match plan(&snapshot, &facts) {
            Ok(plan) => plan,
            Err(e @ PlanError::UnknownNode { .. }) => {
                tracing::warn!("{e}");
                return Ok(Outcome::UnknownNode);
            }
            Err(e) => return Err(ReconcileError::Plan(e)),
        };
        self.log_notes(&plan);
        self.publish(cluster, &plan).await?;
        let (observed, report) = self.converge(cluster, &plan, now).await?;
        let problems = self.state_problems(&observed);
        let mut errors = report.errors.clone();
        for family in Family::ALL {
            errors.get_mut(family).extend(problems.iter().cloned());
        }
        self.report(cluster, &plan, &observed, &errors, now).await;
        self.metrics.count_changes(report.applied as u64);
        match report.failed {
            0 if problems.is_empty() => Ok(Outcome::Converged {
                applied: report.applied,
            }),
            0 => Err(ReconcileError::State { problems }),
            failed => Err(ReconcileError::Apply {
                failed,
                total: failed + report.applied,
            }),
        }
    }

    /// What could not be saved in the state directory: the driver's records and the scope.
    fn state_problems(&self, observed: &Observed) -> Vec<String> {
        let mut problems = observed.state_problems.clone();
        problems.extend(self.scope_problem.clone());
        problems
    }

    async fn local_facts(&self, views: &[NodeView]) -> Result<LocalFacts, ReconcileError> {
        let own = views.iter().find(|v| v.name == self.node_name);
        let internal_ips = own.map(|v| v.internal_ips.as_slice()).unwrap_or_default();
        let host = self
            .host
            .probe(internal_ips)
            .await
            .map_err(ReconcileError::Facts)?;
        Ok(LocalFacts {
            node_name: self.node_name.clone(),
            wireguard: wireguard_support(&host),
            underlay_mtu: host.underlay_mtu,
            underlay_interfaces: host.underlay_interfaces,
            own_public_keys: self.keys.public().clone(),
        })
    }

    /// Logs malformed node data and skipped peers when they differ from the last round's.
    fn log_notes(&mut self, plan: &NodePlan) {
        let problems = plan
            .problems
            .iter()
            .map(|p| format!("malformed node data: {p}"));
        let skipped = plan
            .skipped
            .iter()
            .map(|s| format!("{} peer {} not encrypted: {}", s.family, s.node, s.reason));
        let notes: Vec<String> = problems.chain(skipped).collect();
        if notes == self.notes {
            return;
        }
        for note in &notes {
            if note.starts_with("malformed") {
                tracing::warn!("{note}");
            } else {
                tracing::info!("{note}");
            }
        }
        self.notes = notes;
    }

    /// Brings the node's annotations to what the plan publishes, when they differ.
    async fn publish(&self, cluster: &ClusterState, plan: &NodePlan) -> Result<(), ReconcileError> {
        let wanted = desired_annotations(&plan.publish, self.keys.public());
        let Some(patch) = annotation_patch(cluster.node(&self.node_name), &wanted) else {
            return Ok(());
        };
        within_api_timeout(
            "patch node",
            self.writer.patch_node(&self.node_name, &patch),
        )
        .await
        .map_err(ReconcileError::Publish)?;
        tracing::info!(annotations = %patch["metadata"]["annotations"], "published this node's annotations");
        Ok(())
    }

    /// Observes the dataplane within the current and the remembered scope and applies the
    /// changes towards the plan; returns the dataplane as it is afterwards.
    async fn converge(
        &mut self,
        cluster: &ClusterState,
        plan: &NodePlan,
        now: SystemTime,
    ) -> Result<(Observed, ApplyReport), ReconcileError> {
        let current = scope_of(cluster.config.as_ref());
        let scope = union(&current, self.scope.remembered());
        let observed = self.observe(&scope).await?;
        self.note_vanished(plan, &observed, now);
        let changes = changes_towards(&plan.dataplane, &observed, self.keys.public());
        if changes.is_empty() {
            self.remember(current);
            self.incidents.settled(&observed);
            return Ok((observed, ApplyReport::default()));
        }
        // Remember the wider scope before touching anything, so a crash mid-way still
        // finds every leftover on the next start.
        self.remember(scope.clone());
        let report = apply_all(&self.driver, &changes, self.keys.private()).await;
        if report.failed == 0 {
            self.remember(current);
        }
        let after = self.observe(&scope).await?;
        self.incidents.settled(&after);
        Ok((after, report))
    }

    /// Logs and counts interfaces that vanished since the last round (they are recreated).
    fn note_vanished(&mut self, plan: &NodePlan, observed: &Observed, now: SystemTime) {
        for (family, name) in self.incidents.vanished(&plan.dataplane, observed, now) {
            tracing::warn!(%family, interface = %name, "the WireGuard interface vanished (did its userspace daemon die?); creating it again");
            self.metrics.count_recreation(family);
        }
    }

    async fn observe(&self, scope: &crate::dataplane::Scope) -> Result<Observed, ReconcileError> {
        self.driver
            .observe(scope)
            .await
            .map_err(ReconcileError::Observe)
    }

    /// Remembers the managed scope; a failure is reported with the round, not fatal: the
    /// dataplane is still converged.
    fn remember(&mut self, scope: crate::dataplane::Scope) {
        self.scope_problem = self.scope.save(scope).err().map(|e| e.to_string());
    }

    /// Updates the metrics and, when due, the NodeEncryption status.
    async fn report(
        &mut self,
        cluster: &ClusterState,
        plan: &NodePlan,
        observed: &Observed,
        errors: &FamilyErrors,
        now: SystemTime,
    ) {
        self.handshakes_pending = awaiting_handshakes(observed);
        self.metrics.set_mesh(MeshSnapshot {
            configured: PerFamily::from_fn(|f| observed.dataplane.family(f).peers.len()),
            peers: PerFamily::from_fn(|f| peer_samples(plan, observed, f, now)),
        });
        let mut status = build_status(plan, observed, self.keys.public(), errors, now);
        self.add_incident_notes(&mut status);
        let Some(node) = cluster.node(&self.node_name) else {
            return;
        };
        if !self.limiter.due(&status, now) {
            return;
        }
        let write = self.writer.write_status(node, &status);
        match within_api_timeout("write status", write).await {
            Ok(()) => self.limiter.written(&status, now),
            Err(e) => {
                tracing::warn!(error = %e, "could not write the NodeEncryption status; retrying next round");
                self.metrics.count_error(Stage::Status);
            }
        }
    }
}

impl<D, H, W> Reconciler<D, H, W> {
    /// Appends what happened behind the agent's back to each family's message.
    fn add_incident_notes(&self, status: &mut NodeEncryptionStatus) {
        for (family, slot) in [
            (Family::V4, status.ipv4.as_mut()),
            (Family::V6, status.ipv6.as_mut()),
        ] {
            let (Some(family_status), Some(note)) = (slot, self.incidents.note(family)) else {
                continue;
            };
            family_status.message = match family_status.message.is_empty() {
                true => note,
                false => format!("{}; {note}", family_status.message),
            };
        }
    }
}

/// How long one write to the API server may take before the round gives up on it (the
/// client's own timeouts are minutes long; the loop must keep going).
pub const API_TIMEOUT: Duration = Duration::from_secs(30);

async fn within_api_timeout(
    operation: &str,
    write: impl std::future::Future<Output = Result<(), WriteError>>,
) -> Result<(), WriteError> {
    tokio::time::timeout(API_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| {
            Err(WriteError {
                operation: operation.to_owned(),
                message: format!("no answer from the API server within {API_TIMEOUT:?}"),
            })
        })
}

/// True when a handshake is under way: a peer of either family has sent (traffic or handshake
/// initiations) but never completed one. Silent peers do not count, so an idle mesh with
/// unreachable peers costs nothing between resyncs.
fn awaiting_handshakes(observed: &Observed) -> bool {
    observed.peer_stats.iter().any(|(_, peers)| {
        peers
            .iter()
            .any(|p| p.last_handshake.is_none() && p.tx_bytes > 0)
    })
}

/// The parts a [`Reconciler`] is built from.
pub struct Parts<D, H, W> {
    pub node_name: String,
    pub driver: D,
    pub host: H,
    pub writer: W,
    pub keys: KeyStore,
    pub scope: ScopeMemory,
    pub metrics: Arc<Metrics>,
}
