//! One soak run from `up` to `down`: the phases of [`super`], the actions executed as the
//! schedule says, and the report assembled from what was seen.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use jiff::Timestamp;

use super::churn::{Churn, Outcome};
use super::logs::{self, Window};
use super::report::{ActionCount, Ending, Event, SoakReport};
use super::sample::{self, Sampler, Watched};
use super::schedule::{self, Action, Planned};
use super::{faults, settle, Options};
use crate::bench_report::machine;
use crate::lab::flows::{self, report::Style};
use crate::lab::state::{Paths, Store};
use crate::lab::testing::{LabSession, RunningLab};
use crate::lab::{cluster, signals};

/// How long the cluster may take to settle after encryption is enabled, and at the end.
const SETTLE: Duration = Duration::from_secs(180);
/// Before a failed write is retried once (a webhook or watch reconnecting after a restart).
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// The lab the soak runs: as the demo, 3 nodes, dual stack, the webhook, the real control
/// plane when it is built.
const UP_ARGS: [&str; 3] = ["--nodes", "3", "--ipv6"];

/// Runs the soak on a lab of its own (up, and down again also on failure); the report, or
/// the error that stopped the harness.
pub fn run(options: &Options) -> anyhow::Result<SoakReport> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the soak needs root (network namespaces, WireGuard): run `sudo make soak`");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    signals::install(&rt);
    let machine = machine::start();
    let session = LabSession::acquire(&options.lab_bin);
    let up_started = Timestamp::now();
    say(&format!("== kube-encrypt-lab up {}", UP_ARGS.join(" ")));
    let lab = session.up(&UP_ARGS);
    let report = soak(
        &Soak {
            session: &session,
            lab: &lab,
            rt: &rt,
            options,
        },
        up_started,
        machine,
    );
    say("== kube-encrypt-lab down");
    drop(lab);
    report
}

/// What every phase of a run needs.
struct Soak<'a> {
    session: &'a LabSession,
    lab: &'a RunningLab<'a>,
    rt: &'a tokio::runtime::Runtime,
    options: &'a Options,
}

/// The lab as `up` left it: its files, nodes and a line describing it.
struct LabFacts {
    paths: Paths,
    store: Store,
    nodes: Vec<String>,
    description: String,
}

impl LabFacts {
    fn read(lab: &RunningLab) -> anyhow::Result<Self> {
        let paths = lab.paths();
        let store = Store::load(&paths)?.context("the lab's state is gone right after `up`")?;
        let nodes: Vec<String> = store
            .state
            .topology()
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect();
        let description = format!(
            "{} nodes, dual stack, {}, admission webhook",
            nodes.len(),
            store.state.spec.apiserver.describe()
        );
        Ok(Self {
            paths,
            store,
            nodes,
            description,
        })
    }
}

/// What the churn phase saw.
struct Churned {
    date: Timestamp,
    seconds: f64,
    plan: Vec<Planned>,
    events: Vec<Event>,
    sampler: Sampler,
}

fn soak(
    s: &Soak,
    up_started: Timestamp,
    mut machine: crate::bench_report::schema::Machine,
) -> anyhow::Result<SoakReport> {
    let facts = LabFacts::read(s.lab)?;
    let client = s.rt.block_on(cluster::client(&s.lab.kubeconfig()))?;
    let mut churn = Churn::new(client.clone(), s.options.seed);
    say("== encryption on (pools with NAT outgoing, EncryptionConfig for IPv4 and IPv6)");
    s.rt.block_on(churn.enable_encryption())?;
    let settled = s.rt.block_on(settle::wait(&client, &facts.nodes, SETTLE));
    settled.map_err(|last| anyhow!("encryption did not settle within {SETTLE:?}: {last}"))?;
    let mut windows = vec![Window {
        start: up_started,
        end: Timestamp::now(),
        cause: "lab start-up and enabling encryption".into(),
    }];
    let churned = churn_phase(s, &facts, &mut churn, &mut windows)?;
    let ending = finish(s, &mut churn, &facts.nodes, &facts.store)?;
    let samples = churned.sampler.finish();
    let length = samples.last().map_or(churned.seconds, |x| x.t);
    let roles = Watched::new(facts.paths.clone(), facts.nodes.clone()).roles();
    let processes = roles
        .iter()
        .map(|role| sample::growth(role, &samples, length))
        .collect();
    let log_files = log_files(&facts.paths, &roles);
    let logs = logs::collect(&log_files, &windows).context("read the lab's logs")?;
    keep_logs(&log_files, &s.options.out.join("soak-logs"))?;
    machine::finish(&mut machine);
    let actions = action_counts(&churned.plan, &churned.events);
    let failures = failures(&actions, &ending);
    Ok(SoakReport {
        date: churned.date.to_string(),
        planned_minutes: s.options.length.as_secs_f64() / 60.0,
        churn_seconds: churned.seconds,
        machine,
        lab: facts.description,
        seed: s.options.seed,
        actions,
        events: churned.events,
        ending,
        processes,
        logs,
        failures,
        samples,
    })
}

/// The schedule executed while the sampler runs; the sampler is left running for the end.
fn churn_phase(
    s: &Soak,
    facts: &LabFacts,
    churn: &mut Churn,
    windows: &mut Vec<Window>,
) -> anyhow::Result<Churned> {
    let date = Timestamp::now();
    let start = Instant::now();
    let watched = Watched::new(facts.paths.clone(), facts.nodes.clone());
    let sampler = Sampler::start(watched, start, s.options.sample_every);
    let plan = schedule::plan(s.options.length);
    let counts: Vec<String> = schedule::counts(&plan)
        .iter()
        .map(|(a, n)| format!("{n} × {}", a.describe()))
        .collect();
    say(&format!(
        "== churn for {:.1} min: {}",
        s.options.length.as_secs_f64() / 60.0,
        counts.join(", ")
    ));
    let mut executor = Executor {
        s,
        paths: &facts.paths,
        churn,
        nodes: &facts.nodes,
        kills: 0,
    };
    let events = executor.run_plan(&plan, start, windows);
    let seconds = start.elapsed().as_secs_f64();
    let events = match events {
        Ok(events) => events,
        Err(e) => {
            sampler.finish();
            return Err(e);
        }
    };
    Ok(Churned {
        date,
        seconds,
        plan,
        events,
        sampler,
    })
}

/// Executes planned actions, one at a time.
struct Executor<'a> {
    s: &'a Soak<'a>,
    paths: &'a Paths,
    churn: &'a mut Churn,
    nodes: &'a [String],
    kills: usize,
}

impl Executor<'_> {
    /// Every action of `plan` at its time (late ones as soon as possible, none after the
    /// end); fault actions add their time span to `windows`. Errs only when interrupted.
    fn run_plan(
        &mut self,
        plan: &[Planned],
        start: Instant,
        windows: &mut Vec<Window>,
    ) -> anyhow::Result<Vec<Event>> {
        let end = start + self.s.options.length;
        let mut events = Vec::new();
        for planned in plan {
            wait_until(start + planned.at)?;
            if Instant::now() >= end {
                break;
            }
            let began = Timestamp::now();
            let t = start.elapsed().as_secs_f64();
            let (result, detail) = self.execute(planned.action);
            if planned.action != Action::NodeChurn {
                say(&format!(
                    "{t:>7.1} s  {}: {result} — {detail}",
                    planned.action.describe()
                ));
                windows.push(Window {
                    start: began,
                    end: Timestamp::now(),
                    cause: planned.action.describe().into(),
                });
            }
            events.push(Event {
                t,
                action: planned.action,
                result,
                detail,
            });
        }
        wait_until(end)?;
        Ok(events)
    }

    fn execute(&mut self, action: Action) -> (&'static str, String) {
        let outcome = match action {
            Action::NodeChurn | Action::ConfigChange | Action::PoolChange => self.write(action),
            Action::AgentKill => {
                let node = &self.nodes[self.kills % self.nodes.len()];
                self.kills += 1;
                faults::kill_agent(self.paths, node).map(Outcome::Done)
            }
            Action::ApiserverRestart => {
                faults::restart_apiserver(self.s.session).map(Outcome::Done)
            }
        };
        match outcome {
            Ok(Outcome::Done(detail)) => ("done", detail),
            Ok(Outcome::Refused { what, why }) => ("refused", format!("{what}: {why}")),
            Err(e) => ("failed", format!("{e:#}")),
        }
    }

    /// A cluster write, retried once after [`RETRY_AFTER`].
    fn write(&mut self, action: Action) -> anyhow::Result<Outcome> {
        match self.write_once(action) {
            Ok(outcome) => Ok(outcome),
            Err(first) => {
                std::thread::sleep(RETRY_AFTER);
                self.write_once(action)
                    .map_err(|e| anyhow!("{e} (and before a retry: {first})"))
            }
        }
    }

    fn write_once(&mut self, action: Action) -> Result<Outcome, kube::Error> {
        let churn = &mut *self.churn;
        self.s.rt.block_on(async {
            match action {
                Action::ConfigChange => churn.config_change().await,
                Action::PoolChange => churn.pool_change().await,
                _ => churn.node_churn().await,
            }
        })
    }
}

/// Sleeps until `when`, in short steps so Ctrl-C is noticed.
fn wait_until(when: Instant) -> anyhow::Result<()> {
    loop {
        signals::check()?;
        let now = Instant::now();
        if now >= when {
            return Ok(());
        }
        std::thread::sleep((when - now).min(Duration::from_millis(250)));
    }
}

/// The end of the run: fake Nodes removed, the cluster settled, the flow matrix.
fn finish(s: &Soak, churn: &mut Churn, nodes: &[String], store: &Store) -> anyhow::Result<Ending> {
    let left = churn.live_fake_nodes();
    say(&format!(
        "== removing the {left} fake Nodes left, waiting for convergence"
    ));
    s.rt.block_on(churn.remove_all_nodes())
        .context("remove the fake Nodes at the end")?;
    let client = s.rt.block_on(cluster::client(&s.lab.kubeconfig()))?;
    let settled = s.rt.block_on(settle::wait(&client, nodes, SETTLE));
    let (converged, seconds, detail) = match settled {
        Ok(took) => (
            true,
            took.as_secs_f64(),
            "every node Encrypted on both families with exactly the lab's peers".to_string(),
        ),
        Err(last) => (false, SETTLE.as_secs_f64(), last),
    };
    say(&format!(
        "== flows (converged: {converged}, {seconds:.1} s)"
    ));
    let style = Style { color: false };
    let results = flows::run(store, s.rt, style)?;
    Ok(Ending {
        converged,
        convergence_seconds: seconds,
        convergence_detail: detail,
        flows_total: results.len(),
        flows_as_expected: results.iter().filter(|r| r.as_expected()).count(),
        flow_lines: results
            .iter()
            .map(|r| flows::report::line(r, style))
            .collect(),
    })
}

fn log_files(paths: &Paths, roles: &[String]) -> Vec<(String, std::path::PathBuf)> {
    roles
        .iter()
        .map(|role| (role.clone(), paths.log(role)))
        .collect()
}

/// Copies the logs out of the lab's state dir, which `down` removes.
fn keep_logs(logs: &[(String, std::path::PathBuf)], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for (role, path) in logs {
        if path.exists() {
            let to = dir.join(format!("{role}.log"));
            std::fs::copy(path, &to)
                .with_context(|| format!("copy {} to {}", path.display(), to.display()))?;
        }
    }
    Ok(())
}

fn action_counts(plan: &[Planned], events: &[Event]) -> Vec<ActionCount> {
    schedule::counts(plan)
        .into_iter()
        .map(|(action, planned)| {
            let of = |result: &str| {
                events
                    .iter()
                    .filter(|e| e.action == action && e.result == result)
                    .count()
            };
            let ran = events.iter().filter(|e| e.action == action).count();
            ActionCount {
                action,
                planned,
                done: of("done"),
                refused: of("refused"),
                failed: of("failed"),
                skipped: planned - ran,
            }
        })
        .collect()
}

/// What makes the run fail: a failed action, no convergence, a flow not as expected.
/// A missed growth target is reported as MISSED, not a failure of the run.
pub fn failures(actions: &[ActionCount], ending: &Ending) -> Vec<String> {
    let mut out: Vec<String> = actions
        .iter()
        .filter(|a| a.failed > 0)
        .map(|a| format!("{} × {} failed", a.failed, a.action.describe()))
        .collect();
    if !ending.converged {
        out.push("the cluster did not converge at the end".into());
    }
    if !ending.flows_passed() {
        out.push(format!(
            "{} of {} flows not as expected",
            ending.flows_total - ending.flows_as_expected,
            ending.flows_total
        ));
    }
    out
}

fn say(text: &str) {
    println!("{text}");
}
