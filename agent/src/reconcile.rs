//! One reconcile round: observe the dataplane, plan from the cluster snapshot, the local facts
//! and what the device holds, publish what the plan asks this node to publish, diff, apply,
//! then report (status and metrics) from the device as it is after applying.
//!
//! Order matters for the bootstrap lockout: the node's key and interface address are
//! published *before* the dataplane relies on them. When publishing fails (API server
//! unreachable) the dataplane is kept exactly as it is. A config that breaks a rule guarding
//! the dataplane is not applied either: the dataplane stays as the last good config left it,
//! the status says `Degraded` with the rules, and the next round after the fix applies it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kube_encrypt_api::crd::{EncryptionState, IPPoolSpec, NodeEncryptionStatus};
use kube_encrypt_api::net::{Family, PerFamily};
use kube_encrypt_api::node::NodeView;
use kube_encrypt_api::plan::{plan, FamilyOutcome, LocalFacts, NodePlan, PlanError, Snapshot};
use kube_encrypt_api::rules::evaluate_for_agent;

use crate::cluster::{ClusterState, ClusterWriter, WriteError};
use crate::dataplane::facts::HostFacts;
use crate::dataplane::{Driver, DriverError, Observed, Scope};
use crate::execute::{apply_all, changes_towards, ApplyReport};
use crate::host::{wireguard_support, HostProbe};
use crate::incidents::Incidents;
use crate::keys::KeyStore;
use crate::metrics::{MeshSnapshot, Metrics, Stage};
use crate::publish::{annotation_patch, desired_annotations};
use crate::scope::{scope_of, union, ScopeMemory};
use crate::status::{
    build_status, peer_samples, ConfigReview, FamilyErrors, StatusLimiter, REFRESH_INTERVAL,
};

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
    /// Addresses never to send into a tunnel (the API server's).
    protected: Vec<IpAddr>,
    limiter: StatusLimiter,
    /// The plan last applied, for the status while a config is refused.
    applied: Option<NodePlan>,
    /// The plan's problems and skipped peers as last logged (warning or not), to log only
    /// changes.
    notes: Vec<(bool, String)>,
    /// The programmed peers' handshakes at the end of the last round.
    handshakes: Handshakes,
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
            protected: parts.protected,
            limiter: StatusLimiter::new(REFRESH_INTERVAL),
            applied: None,
            notes: Vec::new(),
            handshakes: Handshakes::Done,
            incidents: Incidents::default(),
            scope_problem: None,
        }
    }

    /// The dataplane driver (tests inspect their fake through it).
    pub fn driver(&self) -> &D {
        &self.driver
    }

    /// Whether some programmed peer has not handshaken yet: handshakes raise no watch event,
    /// so the loop looks again soon to report them.
    pub fn handshakes(&self) -> Handshakes {
        self.handshakes
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
        let Some(own) = views.iter().find(|v| v.name == self.node_name) else {
            let unknown = PlanError::UnknownNode {
                node: self.node_name.clone(),
            };
            tracing::warn!("{unknown}");
            return Ok(Outcome::UnknownNode);
        };
        let host = self
            .host
            .probe(&own.internal_ips)
            .await
            .map_err(ReconcileError::Facts)?;
        let scopes = Scopes::of(cluster, &self.scope);
        // Before planning: of two nodes claiming one key or address, the one the device has
        // programmed keeps it.
        let observed = self.observe(&scopes.observe).await?;
        let facts = self.local_facts(host, &observed);
        let mut review = review(cluster);
        let plan = match plan_cluster(cluster, &views, &facts) {
            Ok(plan) => plan,
            Err(e @ PlanError::InvalidConfig { .. }) => {
                review.refused = true;
                self.report_refusal(cluster, &observed, &review, now).await;
                return Err(ReconcileError::Plan(e));
            }
            Err(e) => return Err(ReconcileError::Plan(e)),
        };
        self.apply_plan(cluster, plan, observed, scopes, &review, now)
            .await
    }

    /// Publishes, converges and reports one plan.
    async fn apply_plan(
        &mut self,
        cluster: &ClusterState,
        plan: NodePlan,
        observed: Observed,
        scopes: Scopes,
        review: &ConfigReview,
        now: SystemTime,
    ) -> Result<Outcome, ReconcileError> {
        self.log_notes(&plan);
        if let Err(e) = self.publish(cluster, &plan).await {
            self.report_refused_publish(cluster, &plan, &observed, &e, review, now)
                .await;
            return Err(e);
        }
        let (observed, report) = self.converge(&plan, observed, scopes, now).await?;
        let problems = self.state_problems(&observed);
        let mut errors = report.errors.clone();
        for family in Family::ALL {
            errors.get_mut(family).extend(problems.iter().cloned());
        }
        self.report(cluster, &plan, &observed, &errors, review, now)
            .await;
        self.applied = Some(plan);
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

    /// The planner's facts: the host's, the agent's keys and protected addresses, and the
    /// peers the devices have programmed now.
    fn local_facts(&self, host: HostFacts, observed: &Observed) -> LocalFacts {
        LocalFacts {
            node_name: self.node_name.clone(),
            wireguard: wireguard_support(&host),
            underlay_mtu: host.underlay_mtu,
            underlay_interfaces: host.underlay_interfaces,
            own_public_keys: self.keys.public().clone(),
            local_addresses: host.underlay_addresses,
            protected: self.protected.clone(),
            current_peers: PerFamily::from_fn(|f| observed.dataplane.family(f).peers.clone()),
        }
    }

    /// Logs malformed node data and skipped peers when they differ from the last round's: a
    /// warning for what looks wrong or hostile (malformed data, a refused node), information
    /// for nodes that simply do not take part.
    fn log_notes(&mut self, plan: &NodePlan) {
        let problems = plan
            .problems
            .iter()
            .map(|p| (true, format!("malformed node data: {p}")));
        let skipped = plan.skipped.iter().map(|s| {
            let note = format!("{} peer {} not encrypted: {}", s.family, s.node, s.reason);
            (s.refused, note)
        });
        let notes: Vec<(bool, String)> = problems.chain(skipped).collect();
        if notes == self.notes {
            return;
        }
        for (warn, note) in &notes {
            if *warn {
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

    /// Applies the changes from `observed` (made this round, within the current and the
    /// remembered scope) towards the plan; returns the dataplane as it is afterwards, read
    /// again from the host when anything was applied.
    async fn converge(
        &mut self,
        plan: &NodePlan,
        observed: Observed,
        scopes: Scopes,
        now: SystemTime,
    ) -> Result<(Observed, ApplyReport), ReconcileError> {
        self.note_vanished(plan, &observed, now);
        let changes = changes_towards(&plan.dataplane, &observed, self.keys.public());
        if changes.is_empty() {
            self.remember(scopes.current);
            self.incidents.settled(&observed);
            return Ok((observed, ApplyReport::default()));
        }
        // Remember the wider scope before touching anything, so a crash mid-way still
        // finds every leftover on the next start.
        self.remember(scopes.observe.clone());
        let report = apply_all(&self.driver, &changes, self.keys.private()).await;
        if report.failed == 0 {
            self.remember(scopes.current);
        }
        let after = self.observe(&scopes.observe).await?;
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

    async fn observe(&self, scope: &Scope) -> Result<Observed, ReconcileError> {
        self.driver
            .observe(scope)
            .await
            .map_err(ReconcileError::Observe)
    }

    /// Remembers the managed scope; a failure is reported with the round, not fatal: the
    /// dataplane is still converged.
    fn remember(&mut self, scope: Scope) {
        self.scope_problem = self.scope.save(scope).err().map(|e| e.to_string());
    }

    /// Updates the metrics and, when due, the NodeEncryption status.
    async fn report(
        &mut self,
        cluster: &ClusterState,
        plan: &NodePlan,
        observed: &Observed,
        errors: &FamilyErrors,
        review: &ConfigReview,
        now: SystemTime,
    ) {
        self.handshakes = handshakes_of(observed);
        self.metrics.set_mesh(MeshSnapshot {
            configured: PerFamily::from_fn(|f| observed.dataplane.family(f).peers.len()),
            peers: PerFamily::from_fn(|f| peer_samples(plan, observed, f, now)),
        });
        let mut status = build_status(plan, observed, self.keys.public(), errors, review, now);
        self.limiter.settle(&mut status);
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

    /// Reports a publish the API server answered with an error (RBAC, admission): the
    /// dataplane is kept as it is and every family says why, with the HTTP status. A publish
    /// that reached no server is only logged: the status write would not get through either.
    async fn report_refused_publish(
        &mut self,
        cluster: &ClusterState,
        plan: &NodePlan,
        observed: &Observed,
        error: &ReconcileError,
        review: &ConfigReview,
        now: SystemTime,
    ) {
        let ReconcileError::Publish(write) = error else {
            return;
        };
        if write.http_status.is_none() {
            return;
        }
        let why = format!("the dataplane is kept as it is: {write}");
        let errors = PerFamily::from_fn(|_| vec![why.clone()]);
        self.report(cluster, plan, observed, &errors, review, now)
            .await;
    }

    /// Reports a refused config: the dataplane as the last applied plan left it (or as found,
    /// when this agent applied none), `Degraded` with the rules that refuse it.
    async fn report_refusal(
        &mut self,
        cluster: &ClusterState,
        observed: &Observed,
        review: &ConfigReview,
        now: SystemTime,
    ) {
        let plan = self.applied.take();
        let shown = plan.clone().unwrap_or_else(refused_plan);
        self.report(
            cluster,
            &shown,
            observed,
            &FamilyErrors::default(),
            review,
            now,
        )
        .await;
        self.applied = plan;
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
                http_status: None,
            })
        })
}

/// The current scope and the one to observe: the current plus whatever an earlier config
/// may have left.
struct Scopes {
    current: Scope,
    observe: Scope,
}

impl Scopes {
    fn of(cluster: &ClusterState, memory: &ScopeMemory) -> Self {
        let current = scope_of(cluster.config.as_ref());
        let observe = union(&current, memory.remembered());
        Self { current, observe }
    }
}

/// The plan for `cluster` as the watch caches hold it.
fn plan_cluster(
    cluster: &ClusterState,
    views: &[NodeView],
    facts: &LocalFacts,
) -> Result<NodePlan, PlanError> {
    let pools: Vec<IPPoolSpec> = cluster.pools.iter().map(|p| p.spec.clone()).collect();
    let snapshot = Snapshot {
        config: cluster.config.as_ref(),
        pools: &pools,
        nodes: views,
    };
    plan(&snapshot, facts)
}

/// What the admission rules say about the `default` config as this agent sees it.
fn review(cluster: &ClusterState) -> ConfigReview {
    let findings = cluster
        .config
        .as_ref()
        .map(|spec| evaluate_for_agent(spec, &cluster.pools))
        .unwrap_or_default();
    ConfigReview {
        findings,
        refused: false,
    }
}

/// What the status shows for a config refused before this agent applied any.
fn refused_plan() -> NodePlan {
    let outcome = FamilyOutcome {
        state: EncryptionState::Disabled,
        backend: None,
        message: "the EncryptionConfig breaks rules the dataplane depends on and is not \
                  applied (see the Degraded condition); the dataplane is kept as it is"
            .to_owned(),
    };
    NodePlan {
        families: PerFamily::from_fn(|_| outcome.clone()),
        ..NodePlan::default()
    }
}

/// What the last round saw of the programmed peers' first handshakes, least pressing first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Handshakes {
    /// Every programmed peer has handshaken (or there is none).
    Done,
    /// Some peer never handshook and nothing was sent to it yet: the other node may start
    /// the handshake when its own traffic begins.
    Silent,
    /// Some peer was sent traffic or handshake initiations but never completed a handshake.
    Underway,
}

/// The most pressing case among the peers that never handshook.
fn handshakes_of(observed: &Observed) -> Handshakes {
    observed
        .peer_stats
        .iter()
        .flat_map(|(_, peers)| peers)
        .filter(|p| p.last_handshake.is_none())
        .map(|p| {
            if p.tx_bytes > 0 {
                Handshakes::Underway
            } else {
                Handshakes::Silent
            }
        })
        .max()
        .unwrap_or(Handshakes::Done)
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
    /// Addresses never to send into a tunnel: the API server's, resolved at start.
    pub protected: Vec<IpAddr>,
}
