//! Running the driver as a node agent would: a separate process inside the node's network
//! namespace, with a private mount namespace whose `/run/wireguard` is the node's own
//! directory (userspace WireGuard sockets never mix between nodes).
//!
//! The test binary re-executes itself (`ip netns exec <ns> unshare --mount ... <self>
//! node::node_process`) with a [`Step`] file; the child applies the step's operations
//! through [`HostDriver`], observes, writes a [`Report`] and exits. Every step is a fresh
//! process: a fresh driver, as after an agent restart.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use kube_encrypt_agent::dataplane::facts::HostFacts;
use kube_encrypt_agent::dataplane::{
    Driver, FamilyScope, HostDriver, HostDriverConfig, Observed, PrivateKeys, Scope, SecretKey,
};
use kube_encrypt_api::dataplane::{Dataplane, InterfaceSpec, PeerSpec, Route, RuleSpec};
use kube_encrypt_api::diff::Change;
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::{Family, PerFamily};
use serde::{Deserialize, Serialize};

use super::lab::Side;

const STEP_ENV: &str = "KET_DP_STEP";
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// One operation of a step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Op {
    /// Every change creating `Dataplane` from nothing, in order; stops at the first error.
    Build(Box<Dataplane>),
    /// Observes, then applies every change removing what was found.
    TearDown,
    AddRoute(Family, Route),
    DeleteRoute(Family, Route),
    AddRule(RuleSpec),
    DeleteRule(RuleSpec),
    /// `UpdateInterface` from the first spec to the second.
    UpdateInterface(Family, Box<InterfaceSpec>, Box<InterfaceSpec>),
    /// `UpdatePeer` on an interface from the first spec to the second.
    UpdatePeer(Family, String, Box<PeerSpec>, Box<PeerSpec>),
    /// `RemovePeer` from an interface.
    RemovePeer(Family, String, PeerSpec),
    /// Host facts for these node IPs.
    Facts(Vec<IpAddr>),
    /// `ReplaceFirewall` with this spec.
    ReplaceFirewall(Box<kube_encrypt_api::dataplane::FirewallSpec>),
    /// The agent's real reconcile loop against a fixed cluster ([`super::agent`]).
    Agent(Box<super::agent::AgentRun>),
}

/// What a node process is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct Step {
    pub state_dir: PathBuf,
    pub userspace: Option<PathBuf>,
    /// Base64 private keys.
    pub private_keys: PerFamily<Option<String>>,
    /// `(family, interface, table, rule priority)`.
    pub scope: Vec<(Family, String, u32, u32)>,
    pub ops: Vec<Op>,
    pub report: PathBuf,
}

/// What a node process found.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// One result per operation.
    pub results: Vec<Result<(), String>>,
    /// The observation after all operations.
    pub dataplane: Dataplane,
    pub device_keys: PerFamily<Option<WireGuardKey>>,
    pub peers: PerFamily<Vec<PeerCounters>>,
    pub facts: Option<Facts>,
    /// The family status messages the agent wrote, in order (`Op::Agent`).
    #[serde(default)]
    pub agent_messages: Vec<String>,
    /// `{:?}` of the driver, the keys it was given and the observation: must never show a
    /// private key.
    #[serde(default)]
    pub debug: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PeerCounters {
    pub public_key: WireGuardKey,
    pub handshake_age_secs: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub underlay_interfaces: Vec<String>,
    pub underlay_mtu: Option<u32>,
    pub underlay_addresses: Vec<String>,
    pub kernel_wireguard: bool,
    pub userspace_wireguard: bool,
}

/// The node process: not a test of its own. Started by the namespace tests with a step.
#[test]
#[ignore = "entry point of the node processes the namespace tests start inside a namespace"]
fn node_process() {
    let Ok(step_path) = std::env::var(STEP_ENV) else {
        println!("not a test: node_process is started by the dataplane tests with {STEP_ENV} set");
        return;
    };
    let step: Step = serde_json::from_slice(&std::fs::read(&step_path).unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(run_step(&step));
    std::fs::write(&step.report, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
}

async fn run_step(step: &Step) -> Report {
    let config = HostDriverConfig::new(&step.state_dir, step.userspace.clone());
    let driver = std::sync::Arc::new(HostDriver::new(config).expect("driver starts"));
    let keys = private_keys(&step.private_keys);
    let scope = scope(&step.scope);
    let mut facts = None;
    let mut agent_messages = Vec::new();
    let mut results = Vec::new();
    for op in &step.ops {
        let result = match op {
            Op::Build(dataplane) => apply_all(&driver, &build_changes(dataplane), &keys).await,
            Op::TearDown => match driver.observe(&scope).await {
                Ok(found) => apply_all(&driver, &teardown_changes(&found.dataplane), &keys).await,
                Err(e) => Err(e.to_string()),
            },
            Op::AddRoute(family, route) => {
                let change = Change::AddRoute {
                    family: *family,
                    route: route.clone(),
                };
                apply_all(&driver, &[change], &keys).await
            }
            Op::DeleteRoute(family, route) => {
                let change = Change::DeleteRoute {
                    family: *family,
                    route: route.clone(),
                };
                apply_all(&driver, &[change], &keys).await
            }
            Op::AddRule(rule) => apply_all(&driver, &[Change::AddRule(rule.clone())], &keys).await,
            Op::DeleteRule(rule) => {
                apply_all(&driver, &[Change::DeleteRule(rule.clone())], &keys).await
            }
            Op::UpdateInterface(family, from, to) => {
                let change = Change::UpdateInterface {
                    family: *family,
                    from: *from.clone(),
                    to: *to.clone(),
                };
                apply_all(&driver, &[change], &keys).await
            }
            Op::UpdatePeer(family, interface, from, to) => {
                let change = Change::UpdatePeer {
                    family: *family,
                    interface: interface.clone(),
                    from: *from.clone(),
                    to: *to.clone(),
                };
                apply_all(&driver, &[change], &keys).await
            }
            Op::RemovePeer(family, interface, peer) => {
                let change = Change::RemovePeer {
                    family: *family,
                    interface: interface.clone(),
                    public_key: peer.public_key,
                    node: peer.node.clone(),
                };
                apply_all(&driver, &[change], &keys).await
            }
            Op::Facts(ips) => driver
                .host_facts(ips)
                .await
                .map(|f| facts = Some(facts_of(f)))
                .map_err(|e| e.to_string()),
            Op::ReplaceFirewall(spec) => {
                let change = Change::ReplaceFirewall(*spec.clone());
                apply_all(&driver, &[change], &keys).await
            }
            Op::Agent(run) => {
                agent_messages = super::agent::run_agent(driver.clone(), step, run).await;
                Ok(())
            }
        };
        results.push(result);
    }
    let observed = driver.observe(&scope).await.expect("observe");
    let debug = format!("{driver:?} {keys:?} {observed:?} {observed:#?}");
    let mut report = report(results, observed, facts);
    report.debug = debug;
    report.agent_messages = agent_messages;
    report
}

async fn apply_all(
    driver: &HostDriver,
    changes: &[Change],
    keys: &PrivateKeys,
) -> Result<(), String> {
    for change in changes {
        driver
            .apply(change, keys)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The changes creating `dataplane` on an empty host, in the order a plan would use.
fn build_changes(dataplane: &Dataplane) -> Vec<Change> {
    let mut changes = Vec::new();
    for (family, f) in dataplane.families.iter() {
        if let Some(spec) = &f.interface {
            changes.push(Change::CreateInterface {
                family,
                spec: spec.clone(),
            });
            for peer in &f.peers {
                let interface = spec.name.clone();
                changes.push(Change::AddPeer {
                    family,
                    interface,
                    peer: peer.clone(),
                });
            }
        }
        for route in &f.routes {
            changes.push(Change::AddRoute {
                family,
                route: route.clone(),
            });
        }
        changes.extend(f.rule.clone().map(Change::AddRule));
    }
    changes.extend(dataplane.firewall.clone().map(Change::ReplaceFirewall));
    changes.extend(dataplane.sysctls.iter().cloned().map(Change::SetSysctl));
    changes
}

/// The changes removing everything found, rule first so traffic stops using the table.
fn teardown_changes(found: &Dataplane) -> Vec<Change> {
    let mut changes = Vec::new();
    for (family, f) in found.families.iter() {
        changes.extend(f.rule.clone().map(Change::DeleteRule));
        for route in &f.routes {
            changes.push(Change::DeleteRoute {
                family,
                route: route.clone(),
            });
        }
        if let Some(spec) = &f.interface {
            changes.push(Change::DeleteInterface {
                family,
                name: spec.name.clone(),
            });
        }
    }
    if found.firewall.is_some() {
        changes.push(Change::DeleteFirewall);
    }
    for sysctl in &found.sysctls {
        changes.push(Change::RestoreSysctl {
            key: sysctl.key.clone(),
        });
    }
    changes
}

fn private_keys(keys: &PerFamily<Option<String>>) -> PrivateKeys {
    let key = |text: &Option<String>| {
        text.as_deref()
            .map(|t| SecretKey::new(wireguard_control::Key::from_base64(t).expect("test key")))
    };
    PrivateKeys {
        keys: PerFamily {
            v4: key(&keys.v4),
            v6: key(&keys.v6),
        },
    }
}

fn scope(entries: &[(Family, String, u32, u32)]) -> Scope {
    let mut scope = Scope::default();
    for (family, interface, table, rule_priority) in entries {
        scope.families.get_mut(*family).push(FamilyScope {
            interface: interface.clone(),
            table: *table,
            rule_priority: *rule_priority,
        });
    }
    scope
}

fn facts_of(f: HostFacts) -> Facts {
    Facts {
        underlay_interfaces: f.underlay_interfaces,
        underlay_mtu: f.underlay_mtu,
        underlay_addresses: f
            .underlay_addresses
            .iter()
            .map(ToString::to_string)
            .collect(),
        kernel_wireguard: f.kernel_wireguard,
        userspace_wireguard: f.userspace_wireguard,
    }
}

fn report(results: Vec<Result<(), String>>, observed: Observed, facts: Option<Facts>) -> Report {
    let counters = |stats: &Vec<kube_encrypt_agent::dataplane::PeerStats>| {
        stats
            .iter()
            .map(|s| PeerCounters {
                public_key: s.public_key,
                handshake_age_secs: s.last_handshake.map(|t| {
                    SystemTime::now()
                        .duration_since(t)
                        .unwrap_or_default()
                        .as_secs()
                }),
                rx_bytes: s.rx_bytes,
                tx_bytes: s.tx_bytes,
            })
            .collect()
    };
    Report {
        results,
        dataplane: observed.dataplane,
        device_keys: observed.device_keys,
        peers: PerFamily {
            v4: counters(&observed.peer_stats.v4),
            v6: counters(&observed.peer_stats.v6),
        },
        facts,
        agent_messages: Vec::new(),
        debug: String::new(),
    }
}

/// Parent side: runs one step as a node process of `side` and returns its report.
pub fn run_step_in(side: &Side, step_name: &str, step: Step) -> Report {
    spawn_step_in(side, step_name, step).wait(STEP_TIMEOUT)
}

/// A node process running in the background.
pub struct RunningStep {
    child: std::process::Child,
    name: String,
    netns: String,
    report: PathBuf,
    log_file: PathBuf,
    err_file: PathBuf,
}

/// Parent side: starts one step as a node process of `side`; [`RunningStep::wait`] for it.
pub fn spawn_step_in(side: &Side, step_name: &str, mut step: Step) -> RunningStep {
    let files = side.dir.join("steps");
    std::fs::create_dir_all(&files).unwrap();
    let step_file = files.join(format!("{step_name}.json"));
    step.report = files.join(format!("{step_name}.report.json"));
    std::fs::write(&step_file, serde_json::to_vec_pretty(&step).unwrap()).unwrap();
    let log_file = files.join(format!("{step_name}.stdout"));
    let err_file = files.join(format!("{step_name}.stderr"));
    let exe = std::env::current_exe().unwrap();
    let socket_dir = side.socket_dir();
    let mount_and_exec =
        "mkdir -p /run/wireguard && mount --bind \"$0\" /run/wireguard && exec \"$@\"";
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &side.netns,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
        ])
        .args(["sh", "-c", mount_and_exec])
        .arg(&socket_dir)
        .arg(&exe)
        .args([
            "--exact",
            "node::node_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STEP_ENV, &step_file)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log_file).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_file).unwrap()))
        .spawn()
        .expect("start node process");
    RunningStep {
        child,
        name: step_name.to_owned(),
        netns: side.netns.clone(),
        report: step.report,
        log_file,
        err_file,
    }
}

impl RunningStep {
    /// Waits at most `limit` for the node process and returns its report.
    pub fn wait(mut self, limit: Duration) -> Report {
        let deadline = Instant::now() + limit;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                // The node process is `ip`, exec'ed into unshare, sh and the test binary: one PID.
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "node process for {} on {} timed out after {limit:?}",
                    self.name, self.netns
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = self.child.wait().unwrap();
        let text = format!(
            "{}{}",
            std::fs::read_to_string(&self.log_file).unwrap_or_default(),
            std::fs::read_to_string(&self.err_file).unwrap_or_default()
        );
        assert!(
            status.success(),
            "node process {} on {} failed:\n{text}",
            self.name,
            self.netns
        );
        let report = std::fs::read(&self.report).unwrap_or_else(|e| {
            panic!(
                "no report from {} on {}: {e}\n{text}",
                self.name, self.netns
            )
        });
        serde_json::from_slice(&report).unwrap()
    }

    /// The process's output so far (for failure messages).
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log_file).unwrap_or_default(),
            std::fs::read_to_string(&self.err_file).unwrap_or_default()
        )
    }
}

impl Drop for RunningStep {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
