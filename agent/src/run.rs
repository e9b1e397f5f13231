//! The agent's life: load keys and state, connect, serve metrics, start the watch caches and
//! reconcile on every change (debounced), on every resync tick, and sooner after a failure.
//! Shutting down leaves the dataplane as it is: the next agent takes over from there.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Node;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::apiserver;
use crate::args::{Config, MetricsAddr, Userspace};
use crate::cluster::{ClusterState, ClusterWriter, KubeWriter};
use crate::dataplane::{Driver, HostDriver, HostDriverConfig};
use crate::host::HostProbe;
use crate::keys::{ensure_state_dir, KeyStore};
use crate::lock::StateLock;
use crate::metrics::Metrics;
use crate::reconcile::{Handshakes, Outcome, Parts, Reconciler};
use crate::scope::ScopeMemory;
use crate::server::{self, Health};
use crate::watch::Caches;

/// Runs the agent on this host's real dataplane until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let userspace = match &config.userspace {
        Userspace::Program(path) => Some(path.clone()),
        Userspace::None => None,
        Userspace::Missing(name) => {
            tracing::warn!(program = %name, "userspace WireGuard implementation not found; without the kernel module this node reports Unsupported (install it or pass --userspace-implementation PATH)");
            None
        }
    };
    let driver_config = HostDriverConfig {
        sysctl_root: config.sysctl_dir.clone(),
        ..HostDriverConfig::new(config.state_dir.join("dataplane"), userspace)
    };
    let driver = Arc::new(HostDriver::new(driver_config).context("opening the host's dataplane")?);
    run_with(config, driver.clone(), driver).await
}

/// Runs the agent with the given dataplane driver and host probe until SIGTERM or SIGINT.
pub async fn run_with<D: Driver, H: HostProbe>(
    config: Config,
    driver: D,
    host: H,
) -> anyhow::Result<()> {
    run_until(config, driver, host, shutdown_signal()).await
}

/// Runs the agent until `shutdown` resolves; errors only when it cannot start.
pub async fn run_until<D: Driver, H: HostProbe>(
    config: Config,
    driver: D,
    host: H,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    ensure_state_dir(&config.state_dir)?;
    let _lock = StateLock::acquire(&config.state_dir)?;
    let keys =
        KeyStore::load_or_generate(&config.state_dir).context("loading the WireGuard keys")?;
    let scope = ScopeMemory::load(&config.state_dir).context("loading the managed scope")?;
    let kube_config = kube_config(config.kubeconfig.as_deref()).await?;
    let protected = apiserver::addresses(kube_config.cluster_url.host()).await;
    let client = Client::try_from(kube_config).context("building the Kubernetes client")?;
    let metrics = Arc::new(Metrics::with_per_peer(config.per_peer_metrics));
    let health = Arc::new(Health::new(3 * config.resync_interval));
    let metrics_addr = metrics_addr(&config, &client).await?;
    let listener = server::bind(metrics_addr).await.with_context(|| {
        format!(
            "cannot listen on {metrics_addr} (--metrics-addr {}); choose a free address",
            config.metrics_addr
        )
    })?;
    let server = tokio::spawn(server::serve(listener, metrics.clone(), health.clone()));
    tracing::info!(node = %config.node_name, metrics = %metrics_addr, public_keys = ?keys.public(), api_server = ?protected, "kube-encrypt agent started");

    let changes = Arc::new(Notify::new());
    let _host_events = match driver.watch(changes.clone()).await {
        Ok(watch) => watch,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch host events; a vanished interface waits for the resync");
            None
        }
    };
    let reconciler = Reconciler::new(Parts {
        node_name: config.node_name.clone(),
        driver,
        host,
        writer: KubeWriter::new(client.clone()),
        keys,
        scope,
        metrics,
        protected,
    });
    let control = ControlLoop {
        reconciler,
        caches: Caches::start(client, &config.node_name, changes.clone()),
        changes,
        health,
        resync: config.resync_interval,
        debounce: config.debounce,
    };
    control.run(shutdown).await;
    server.abort();
    Ok(())
}

/// How long the agent waits for its Node's InternalIP when `--metrics-addr node:PORT` has no
/// `--host-ip`.
const NODE_ADDRESS_WAIT: Duration = Duration::from_secs(60);

/// The metrics server's address: given, or the node's own (`--host-ip`, else the first
/// InternalIP of its Node, read from the API server).
async fn metrics_addr(config: &Config, client: &Client) -> anyhow::Result<SocketAddr> {
    if let Some(addr) = config.known_metrics_addr() {
        return Ok(addr);
    }
    let MetricsAddr::Node(port) = config.metrics_addr else {
        unreachable!("a fixed address is always known");
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + NODE_ADDRESS_WAIT;
    loop {
        let found = match nodes.get(&config.node_name).await {
            Ok(node) => internal_ip(&node).ok_or_else(|| "it has no InternalIP".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match found {
            Ok(ip) => return Ok(SocketAddr::new(ip, port)),
            Err(why) if Instant::now() >= deadline => anyhow::bail!(
                "cannot find this node's address for --metrics-addr {}: reading Node {}: {why}; \
                 set HOST_IP from the downward API (status.hostIP) or pass --metrics-addr IP:PORT",
                config.metrics_addr,
                config.node_name
            ),
            Err(why) => {
                tracing::warn!(node = %config.node_name, error = %why, "waiting for this node's InternalIP to serve metrics");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// The Node's first InternalIP, as the kubelet lists it (the address `status.hostIP` shows).
fn internal_ip(node: &Node) -> Option<IpAddr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

/// A Kubernetes client from `kubeconfig` (a file or a `:`-separated list), else in-cluster
/// configuration.
pub async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    let config = kube_config(kubeconfig).await?;
    Client::try_from(config).context("building the Kubernetes client")
}

/// The client configuration from `kubeconfig` (a file or a `:`-separated list), else
/// in-cluster configuration.
pub async fn kube_config(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Config> {
    let config = match kubeconfig {
        Some(paths) => {
            let kubeconfig = read_kubeconfigs(paths)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("the kubeconfig {} cannot be used", paths.display()))?
        }
        None => kube::Config::infer().await.context(
            "no --kubeconfig given and no in-cluster service account found; pass --kubeconfig or run the agent as a pod",
        )?,
    };
    Ok(config)
}

fn read_kubeconfigs(paths: &Path) -> anyhow::Result<Kubeconfig> {
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(paths.as_os_str()).filter(|p| !p.as_os_str().is_empty()) {
        let next = Kubeconfig::read_from(&path)
            .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
        merged = Some(match merged {
            Some(done) => done.merge(next)?,
            None => next,
        });
    }
    merged.with_context(|| format!("--kubeconfig {:?} names no file", paths))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Where the loop takes the cluster from: the watch caches, or a fixed cluster.
pub trait ClusterSource {
    /// Follows the latest config (the pod cache runs only in `WorkloadIPs` mode).
    fn refresh(&mut self) {}
    /// A consistent snapshot; `None` while it is not known yet (caches not synced).
    fn snapshot(&self) -> Option<ClusterState>;
}

impl ClusterSource for Caches {
    fn refresh(&mut self) {
        self.follow_route_source();
        self.follow_node_selector();
    }

    fn snapshot(&self) -> Option<ClusterState> {
        Caches::snapshot(self)
    }
}

/// The reconcile loop and what wakes it.
pub struct ControlLoop<D, H, W, C = Caches> {
    pub reconciler: Reconciler<D, H, W>,
    pub caches: C,
    pub changes: Arc<Notify>,
    pub health: Arc<Health>,
    pub resync: Duration,
    pub debounce: Duration,
}

impl<D: Driver, H: HostProbe, W: ClusterWriter, C: ClusterSource> ControlLoop<D, H, W, C> {
    /// Reconciles until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        futures::pin_mut!(shutdown);
        let mut delays = Delays {
            retry: RetryDelay::new(Duration::from_secs(1), self.resync),
            handshakes: RetryDelay::new(Duration::from_secs(1), self.resync),
        };
        let mut next = Instant::now() + self.resync;
        loop {
            tokio::select! {
                () = &mut shutdown => {
                    tracing::info!("shutting down; the dataplane is left as it is");
                    return;
                }
                () = self.changes.notified() => self.debounce().await,
                () = tokio::time::sleep_until(next) => {}
            }
            next = Instant::now() + self.round(&mut delays).await;
            self.health.round_finished();
        }
    }

    /// Waits for a burst of changes to settle, then swallows the notifications it raised.
    async fn debounce(&self) {
        tokio::time::sleep(self.debounce).await;
        let _ = self.changes.notified().now_or_never();
    }

    /// One reconcile when the caches are ready; returns how long to wait before the next.
    async fn round(&mut self, delays: &mut Delays) -> Duration {
        self.caches.refresh();
        let Some(cluster) = self.caches.snapshot() else {
            tracing::debug!("watch caches not synced yet; keeping the dataplane as it is");
            return self.resync;
        };
        let started = Instant::now();
        let result = self.reconciler.reconcile(&cluster, SystemTime::now()).await;
        self.health
            .set_ready(matches!(result, Ok(Outcome::Converged { .. })));
        match result {
            Ok(outcome) => {
                tracing::debug!(?outcome, "reconciled");
                delays.retry.reset();
                self.after_success(outcome, started.elapsed(), &mut delays.handshakes)
            }
            Err(e) => {
                let delay = delays.retry.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "reconcile failed");
                delay
            }
        }
    }
}

impl<D: Driver, H: HostProbe, W: ClusterWriter, C> ControlLoop<D, H, W, C> {
    fn after_success(&self, outcome: Outcome, took: Duration, delay: &mut RetryDelay) -> Duration {
        let round = Finished {
            changed: matches!(outcome, Outcome::Converged { applied } if applied > 0),
            handshakes: self.reconciler.handshakes(),
            took,
        };
        next_wait(round, delay, self.resync)
    }
}

/// What a successful round leaves for the schedule.
#[derive(Clone, Copy, Debug)]
struct Finished {
    /// It changed the dataplane.
    changed: bool,
    handshakes: Handshakes,
    /// How long it took.
    took: Duration,
}

/// Silent peers (see [`Handshakes::Silent`]) are looked at again at most this long after a
/// change: at 1, 2, 4, 8 and 16 s, then at the resync.
const SILENT_FOLLOW_UP: Duration = Duration::from_secs(16);
/// A look at silent peers may take at most this share of the time (its round's duration over
/// the wait before it): a small mesh, whose rounds take milliseconds, is looked at five times
/// in 31 s; a mesh of 5,000 nodes (rounds of about 0.15 s) at 8 and 16 s; one of 15,000
/// (0.5 s) not at all — about 0.6 s of rounds per change at most.
const SILENT_BUDGET: f64 = 0.02;

/// The wait after a successful round: the resync interval, or sooner (1 s, doubling) after
/// the dataplane changed and while a first handshake is under way — or, within budget for a
/// short while after a change, while a peer is silent — so the status reports handshakes
/// without waiting for the resync.
fn next_wait(round: Finished, delay: &mut RetryDelay, resync: Duration) -> Duration {
    if round.changed {
        delay.reset();
        return delay.next_delay();
    }
    let keep_looking = match round.handshakes {
        Handshakes::Underway => true,
        Handshakes::Silent => silent_look_due(delay, round.took),
        Handshakes::Done => false,
    };
    if keep_looking {
        return delay.next_delay();
    }
    // A silent peer keeps the schedule spent until the next change.
    if round.handshakes == Handshakes::Done {
        delay.reset();
    }
    resync
}

/// Skips the looks at silent peers that would cost more than [`SILENT_BUDGET`]; true when one
/// within [`SILENT_FOLLOW_UP`] is left.
fn silent_look_due(delay: &mut RetryDelay, took: Duration) -> bool {
    let affordable = |wait: Duration| took.as_secs_f64() <= wait.as_secs_f64() * SILENT_BUDGET;
    while delay.upcoming() <= SILENT_FOLLOW_UP && !affordable(delay.upcoming()) {
        let before = delay.upcoming();
        delay.next_delay();
        if delay.upcoming() == before {
            break; // capped below the follow-up: nothing longer to wait for
        }
    }
    delay.upcoming() <= SILENT_FOLLOW_UP && affordable(delay.upcoming())
}

/// The loop's two back-off schedules.
#[derive(Debug)]
struct Delays {
    /// After a failed round.
    retry: RetryDelay,
    /// While first handshakes are awaited after a successful round.
    handshakes: RetryDelay,
}

/// Doubling delays between retries after failures, capped.
#[derive(Debug)]
pub struct RetryDelay {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl RetryDelay {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first.min(max),
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }

    /// The delay [`RetryDelay::next_delay`] would return.
    pub fn upcoming(&self) -> Duration {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_resync_interval() {
        let mut retry = RetryDelay::new(Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<u64> = (0..5).map(|_| retry.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        retry.reset();
        assert_eq!(retry.next_delay(), Duration::from_secs(1));
    }

    /// One round: whether it changed the dataplane, and the handshakes it saw.
    type Round = (bool, Handshakes);

    /// Waits after a sequence of rounds taking `took` each, from a fresh schedule, with a
    /// resync of 60 s.
    fn waits(rounds: &[Round], took: Duration) -> Vec<u64> {
        let mut delay = RetryDelay::new(Duration::from_secs(1), Duration::from_secs(60));
        rounds
            .iter()
            .map(|(changed, handshakes)| {
                let round = Finished {
                    changed: *changed,
                    handshakes: *handshakes,
                    took,
                };
                next_wait(round, &mut delay, Duration::from_secs(60)).as_secs()
            })
            .collect()
    }

    #[test]
    fn the_loop_looks_again_soon_for_handshakes_after_a_change() {
        use Handshakes::*;
        let silent_after_a_change: &[Round] = &[
            (true, Silent),
            (false, Silent),
            (false, Silent),
            (false, Silent),
            (false, Silent),
            (false, Silent),
            (false, Silent),
            (false, Silent),
        ];
        let fast = Duration::from_millis(5);
        let rows: [(&str, &[Round], Duration, &[u64]); 9] = [
            (
                "nothing changes",
                &[(false, Done), (false, Done)],
                fast,
                &[60, 60],
            ),
            (
                "a change, all handshaken at once",
                &[(true, Done), (false, Done)],
                fast,
                &[1, 60],
            ),
            (
                "a silent peer is followed for 31 s, then left to the resync",
                silent_after_a_change,
                fast,
                &[1, 2, 4, 8, 16, 60, 60, 60],
            ),
            (
                "rounds of 20 ms (a small mesh in a busy lab): every look",
                silent_after_a_change,
                Duration::from_millis(20),
                &[1, 2, 4, 8, 16, 60, 60, 60],
            ),
            (
                "rounds of 150 ms (5,000 nodes): only the looks taking ≤ 2 % (8 s and longer)",
                silent_after_a_change,
                Duration::from_millis(150),
                &[1, 8, 16, 60, 60, 60, 60, 60],
            ),
            (
                "rounds of 0.5 s (15,000 nodes): silent peers wait for the resync",
                silent_after_a_change,
                Duration::from_millis(500),
                &[1, 60, 60, 60, 60, 60, 60, 60],
            ),
            (
                "a silent peer handshakes: back to the resync",
                &[(true, Silent), (false, Silent), (false, Done)],
                fast,
                &[1, 2, 60],
            ),
            (
                "a handshake under way is followed up to the resync, whatever a round costs",
                &[
                    (true, Underway),
                    (false, Underway),
                    (false, Underway),
                    (false, Underway),
                    (false, Underway),
                    (false, Underway),
                    (false, Underway),
                    (false, Underway),
                ],
                Duration::from_millis(500),
                &[1, 2, 4, 8, 16, 32, 60, 60],
            ),
            (
                "all handshaken, then a peer sent to: followed from 1 s",
                &[
                    (true, Done),
                    (false, Done),
                    (false, Underway),
                    (false, Underway),
                ],
                fast,
                &[1, 60, 1, 2],
            ),
        ];
        for (what, rounds, took, expected) in rows {
            assert_eq!(waits(rounds, took), expected, "{what}");
        }
    }

    #[test]
    fn a_resync_shorter_than_the_follow_up_ends_the_skipping() {
        let mut delay = RetryDelay::new(Duration::from_secs(1), Duration::from_secs(10));
        assert!(!silent_look_due(&mut delay, Duration::from_secs(5)));
        assert_eq!(delay.upcoming(), Duration::from_secs(10));
    }
}
