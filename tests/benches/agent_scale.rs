//! The agent at scale: one real `kube-encrypt-agent` (userspace WireGuard) in its own network
//! and mount namespace, the API emulator in this process (inside the bench's hub namespace).
//! After the agent's own node is Encrypted, N Nodes with published keys are created (5,000 by
//! default; `--nodes N` or `KEB_AGENT_NODES`, up to 16,000), each as a kubelet on a cloud writes
//! it (conditions, twenty images, node info, labels; the API server adds managedFields: about
//! 8 KB per Node as served); measured: the last Node created → all N peers in the WireGuard
//! device (target ≤ 1 s up to 5,000 nodes, ≤ 3 s above), one more node → its peer programmed
//! (≤ 0.3 s), the agent's RSS (≤ 64 MiB up to 5,000, ≤ 96 MiB above), its CPU over 120 s of
//! kubelet heartbeats — 1 % of the Nodes patched every 10 s, two resyncs of the agent
//! included — at most 1 % of a core, then over 65 s of idling (one resync included, the
//! follow-up rounds after the last change long over) — at most 0.5 % of a core (~0).
//! Baseline, in the same run and node: `wg setconf` of the same peers into the same userspace
//! implementation (`--implementation wireguard-go|boringtun`), and `wg set` of one more.
//!
//! Run as root: `cargo bench -p kube-encrypt-tests --bench agent_scale` (build the agent first:
//! `cargo build --release -p kube-encrypt-agent`); another size:
//! `cargo bench -p kube-encrypt-tests --bench agent_scale -- --nodes 1000`. No traffic is sent to the fake nodes.

#[allow(dead_code)]
mod common;

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Client;

use common::agent::{agent_binary, hex_key, reconcile_totals, uapi_peers, Agent, METRICS_PORT};
use common::cluster::{self, Server};
use common::net::{BenchNode, Workspace, HUB_ADDR};
use common::report::{sized, Goal, Row, Session};
use common::setconf::{self, Peer};
use common::userspace::Implementation;
use kube_encrypt_tests::bench_report::plot::SCALE_FIGURE;

/// Cluster size without `--nodes` / `KEB_AGENT_NODES` (20 in a tiny run).
const DEFAULT_NODES: usize = 5_000;
/// The address plan (pod /30s from 198.18.1.0 below the node IPs in 198.19.0.0/16) holds this many.
const MAX_NODES: usize = 16_000;
const IN_FLIGHT: usize = 64;
const OWN_NODE: &str = "bench-node";
/// Last Node created → all peers programmed: ≤ 1 s up to 5,000 nodes, ≤ 3 s at 15,000.
const BULK_TARGET: f64 = 1.0;
const BULK_TARGET_LARGE: f64 = 3.0;
const ONE_TARGET: f64 = 0.3;
const ONE_MORE_FIGURE: &str = "one more node → its peer programmed";
const RSS_TARGET_MIB: f64 = 64.0;
const RSS_TARGET_LARGE_MIB: f64 = 96.0;
/// Up to this size the smaller targets apply.
const LARGE_ABOVE: usize = 5_000;
/// "~0": at most 0.5 % of one core (0.05 s of CPU in 10 s), a resync included.
const IDLE_TARGET: f64 = 0.005;
/// How long the bulk phase may take before the bench gives up on the remaining peers.
const BULK_LIMIT: Duration = Duration::from_secs(100);
/// Heartbeats: 1 % of the Nodes every tick, for the window (the agent resyncs every 60 s by
/// default, so the window of 120 s holds two resyncs).
const HEARTBEAT_SHARE: usize = 100;
/// At most 1 % of one core over the window.
const HEARTBEAT_CPU_TARGET: f64 = 0.01;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent_scale FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The cluster size, its targets and the measuring windows.
#[derive(Clone, Copy, Debug)]
struct Size {
    nodes: usize,
    bulk_target: f64,
    rss_target_mib: f64,
    /// Idle CPU is measured over this: 65 s, so one resync (every 60 s) falls in it; 2 s in
    /// a tiny run.
    idle_window: Duration,
    /// Heartbeats: a patch wave every tick over the window (10 s and 120 s; 1 s and 3 s in
    /// a tiny run).
    heartbeat_tick: Duration,
    heartbeat_window: Duration,
}

impl Size {
    fn new(nodes: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (1..=MAX_NODES).contains(&nodes),
            "--nodes {nodes}: this bench's address plan holds 1 to {MAX_NODES} fake nodes"
        );
        let large = nodes > LARGE_ABOVE;
        Ok(Self {
            nodes,
            bulk_target: if large {
                BULK_TARGET_LARGE
            } else {
                BULK_TARGET
            },
            rss_target_mib: if large {
                RSS_TARGET_LARGE_MIB
            } else {
                RSS_TARGET_MIB
            },
            idle_window: sized(Duration::from_secs(65), Duration::from_secs(2)),
            heartbeat_tick: sized(Duration::from_secs(10), Duration::from_secs(1)),
            heartbeat_window: sized(Duration::from_secs(120), Duration::from_secs(3)),
        })
    }

    /// `--nodes N` (after cargo's `--bench`), else `KEB_AGENT_NODES`, else 5,000 (20 in a
    /// tiny run).
    fn from_args() -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().collect();
        let flag = args
            .iter()
            .position(|a| a == "--nodes")
            .map(|i| args.get(i + 1).cloned().context("--nodes needs a number"))
            .transpose()?;
        let text = flag.or_else(|| std::env::var("KEB_AGENT_NODES").ok());
        let nodes = match text {
            Some(text) => text
                .replace([',', '_'], "")
                .parse()
                .with_context(|| format!("--nodes {text} is not a number"))?,
            None => sized(DEFAULT_NODES, 20),
        };
        Self::new(nodes)
    }
}

fn run() -> anyhow::Result<()> {
    let size = Size::from_args()?;
    let apiserver = Server::kind_from_args()?;
    let session = Session::begin("agent_scale")
        .param("nodes", size.nodes)
        .param("apiserver", apiserver);
    common::require_root("agent_scale")?;
    let binary = agent_binary()?;
    let mut ws = Workspace::new("agent-scale")?;
    let implementation = Implementation::from_args(&ws.dir)?;
    let session = session.param("implementation", implementation.name);
    let hub = ws.add_hub()?;
    let node = ws.add_node(&hub, 1)?;
    ws.enter(&hub)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(bench(
        (&ws, &node),
        (&binary, &implementation),
        (size, apiserver),
        session,
    ));
    drop(rt);
    result
}

/// A fake node: its Node object, its key as the UAPI spells it, and the peer a hand-written
/// configuration would hold for it.
struct Fake {
    node: Node,
    hex_key: String,
    peer: Peer,
}

/// Fake node `i`: InternalIP in 198.19.0.0/16, pod CIDR a /30 of 198.18.1.0+ (its network
/// address is the node's WireGuard interface address, as agents choose it), a random key.
fn fake_node(i: usize) -> Fake {
    let key = cluster::random_key();
    let ip = Ipv4Addr::new(198, 19, (i / 250) as u8, (i % 250 + 1) as u8);
    let base = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 0)) + (i as u32) * 4);
    let cidr = format!("{base}/30");
    let node = cluster::realistic_node_object(
        &format!("fake-{i:05}"),
        &ip.to_string(),
        &cidr,
        Some((&key, &base.to_string())),
    );
    let peer = Peer {
        public_key_base64: key.to_base64(),
        allowed_ips: cidr,
        endpoint: format!("{ip}:51820"),
    };
    Fake {
        node,
        hex_key: hex_key(&key),
        peer,
    }
}

async fn bench(
    (ws, node): (&Workspace, &BenchNode),
    (binary, implementation): (&std::path::Path, &Implementation),
    (size, apiserver): (Size, &str),
    session: Session,
) -> anyhow::Result<()> {
    common::watch_interrupts();
    let server = Server::start(apiserver, HUB_ADDR.parse()?, &ws.dir).await?;
    let client = server.client().await?;
    server.install_crds().await?;
    cluster::create_pool(&client, "bench-pods", "198.18.0.0/15").await?;
    let own = cluster::node_object(OWN_NODE, &node.addr, "198.18.0.0/24", None);
    cluster::create_node(&client, &own).await?;
    cluster::create_config(&client, &cluster::ipv4_config()).await?;
    let program = implementation.program.display().to_string();
    let mut agent = Agent::start_with(
        binary,
        node,
        (OWN_NODE, &server.kubeconfig(), &ws.dir),
        &["--userspace-implementation", &program],
    )?;
    println!(
        "agent_scale: agent pid {} in {}; load average {}",
        agent.pid(),
        node.netns,
        common::load_average()
    );
    let result = measure(
        &client,
        &mut agent,
        (ws, node, implementation),
        size,
        session,
    )
    .await;
    if result.is_err() {
        eprintln!("--- last lines of the agent's log\n{}", agent.log_tail(40));
    }
    drop(agent);
    server.stop().await?;
    result
}

async fn measure(
    client: &Client,
    agent: &mut Agent,
    (ws, node, implementation): (&Workspace, &BenchNode, &Implementation),
    size: Size,
    session: Session,
) -> anyhow::Result<()> {
    wait_own_node_encrypted(client, agent).await?;
    let fakes: Vec<Fake> = (0..=size.nodes).map(fake_node).collect();
    let mut rows = Vec::new();
    let converged = scale_rows(client, agent, node, (size, &fakes), &mut rows).await?;
    if converged {
        rows.extend(resource_rows(agent, node, size).await?);
        rows.extend(heartbeat_rows(client, agent, node, size).await?);
        rows.push(idle_cpu(agent, size.idle_window).await?);
    } else {
        println!("the agent did not converge: memory and idle CPU were not measured");
    }
    let peers: Vec<Peer> = fakes.iter().map(|f| f.peer.clone()).collect();
    let (bulk, extra) = peers.split_at(size.nodes);
    let baseline = setconf::measure(ws, node, implementation, (bulk, &extra[0]))?;
    with_baseline(&mut rows, baseline, size.nodes);
    let title = format!(
        "agent_scale: {} fake nodes, userspace WireGuard ({}), load average {}",
        size.nodes,
        implementation.name,
        common::load_average()
    );
    session.publish(&title, &rows)
}

/// Sets the hand-written configuration's times as the baseline of the agent's figures, and
/// shows them as rows of their own.
fn with_baseline(rows: &mut Vec<Row>, baseline: setconf::Timings, nodes: usize) {
    let (bulk, one) = (baseline.bulk.as_secs_f64(), baseline.one_more.as_secs_f64());
    for row in rows.iter_mut() {
        if row.name == SCALE_FIGURE {
            row.baseline = Some(bulk);
        } else if row.name == ONE_MORE_FIGURE {
            row.baseline = Some(one);
        }
    }
    rows.push(
        Row::new(
            "baseline: wg setconf of the same peers",
            bulk,
            "s",
            Goal::Info,
        )
        .note(format!(
            "{nodes} peers into the same implementation, same node, same run"
        )),
    );
    rows.push(Row::new(
        "baseline: wg set of one more peer",
        one,
        "s",
        Goal::Info,
    ));
}

/// The bulk of N nodes, then one more; `false` when the bulk never completed (MISSED,
/// and nothing later can be measured).
async fn scale_rows(
    client: &Client,
    agent: &mut Agent,
    node: &BenchNode,
    (size, fakes): (Size, &[Fake]),
    rows: &mut Vec<Row>,
) -> anyhow::Result<bool> {
    let (bulk, extra) = fakes.split_at(size.nodes);
    let metrics = format!("{}:{METRICS_PORT}", node.addr);
    let before = reconcile_totals(&metrics).await?;
    let started = Instant::now();
    let complete = bulk_phase(client, agent, bulk, size, rows).await?;
    if !complete {
        return Ok(false);
    }
    wait_converged(client, agent, size.nodes as i64).await?;
    rows.push(Row::new(
        "create start → converged (routes, status)",
        started.elapsed().as_secs_f64(),
        "s",
        Goal::Info,
    ));
    let after_bulk = reconcile_totals(&metrics).await?;
    rows.push(rounds_row("bulk", before, after_bulk));
    rows.push(one_more_node(client, agent, &extra[0]).await?);
    wait_converged(client, agent, size.nodes as i64 + 1).await?;
    let after_one = reconcile_totals(&metrics).await?;
    rows.push(rounds_row("one more node", after_bulk, after_one));
    Ok(true)
}

/// Routes (a functional check) and memory after convergence.
async fn resource_rows(
    agent: &mut Agent,
    node: &BenchNode,
    size: Size,
) -> anyhow::Result<Vec<Row>> {
    let routes = route_count(node)?;
    anyhow::ensure!(
        routes > size.nodes,
        "only {routes} routes in table 51820 for {} peers",
        size.nodes + 1
    );
    let (rss, hwm) = agent.rss_kib()?;
    let mut rows = vec![Row::new(
        "agent RSS after convergence",
        rss as f64 / 1024.0,
        "MiB",
        Goal::AtMost(size.rss_target_mib),
    )
    .note(format!("peak VmHWM {:.1} MiB", hwm as f64 / 1024.0))];
    if let Some(daemon) = daemon_rss_mib(node, agent.pid()) {
        rows.push(Row::new(
            "wireguard-go RSS (context)",
            daemon,
            "MiB",
            Goal::Info,
        ));
    }
    rows.push(Row::new(
        "routes in table 51820",
        routes as f64,
        "",
        Goal::Info,
    ));
    Ok(rows)
}

async fn wait_own_node_encrypted(client: &Client, agent: &mut Agent) -> anyhow::Result<()> {
    common::poll(
        "the agent's own node published and Encrypted",
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || {
            agent.check_alive()?;
            let key = cluster::published_key(client, OWN_NODE).await?;
            let statuses = cluster::ipv4_statuses(client).await?;
            Ok((key.is_some() && cluster::encrypted_with(&statuses, OWN_NODE, 0)).then_some(()))
        },
    )
    .await
}

/// Samples the device's peer count from another thread until `stop`.
struct Sampler {
    samples: Arc<Mutex<Vec<(Duration, usize)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    /// Samples every 250 ms, and every 20 ms once 90 % of `goal` is reached: precise at the
    /// end without dumping thousands of peers (which contends with the agent) all along.
    fn start(socket: std::path::PathBuf, since: Instant, goal: usize) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (out, flag) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut last = 0;
            while !flag.load(Ordering::SeqCst) {
                if let Ok(peers) = uapi_peers(&socket) {
                    last = peers.len();
                    out.lock().unwrap().push((since.elapsed(), last));
                }
                let every = if last * 10 >= goal * 9 { 20 } else { 250 };
                std::thread::sleep(Duration::from_millis(every));
            }
        });
        Self {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    fn first_reaching(&self, count: usize) -> Option<Duration> {
        let samples = self.samples.lock().unwrap();
        samples.iter().find(|(_, n)| *n >= count).map(|(t, _)| *t)
    }

    fn latest(&self) -> usize {
        self.samples
            .lock()
            .unwrap()
            .last()
            .map(|s| s.1)
            .unwrap_or(0)
    }

    /// Peer counts at each whole second, to show how programming progressed.
    fn timeline(&self) -> String {
        let samples = self.samples.lock().unwrap();
        let mut out = Vec::new();
        let mut next = Duration::from_secs(1);
        for (t, n) in samples.iter() {
            if *t >= next {
                out.push(format!("{}s:{n}", t.as_secs()));
                next = Duration::from_secs(t.as_secs() + 1);
            }
        }
        out.join(" ")
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Creates the fake nodes (64 requests in flight) and waits for their peers; `false` when
/// the agent kept programming but did not finish within [`BULK_LIMIT`].
async fn bulk_phase(
    client: &Client,
    agent: &mut Agent,
    nodes: &[Fake],
    size: Size,
    rows: &mut Vec<Row>,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    let sampler = Sampler::start(agent.socket_path(), started, size.nodes);
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(nodes)
        .map(|fake| cluster::create_node_as_kubelet(client, &fake.node))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let created = started.elapsed();
    rows.push(Row::new(
        format!("API: create all Nodes ({IN_FLIGHT} in flight)"),
        created.as_secs_f64(),
        "s",
        Goal::Info,
    ));
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let reached = common::poll(
        &format!("{} peers programmed", size.nodes),
        BULK_LIMIT,
        Duration::from_millis(50),
        async || {
            agent.check_alive()?;
            Ok(sampler.first_reaching(size.nodes))
        },
    )
    .await;
    println!("peer count over time: {}", sampler.timeline());
    let target = Goal::AtMost(size.bulk_target);
    let rows_at = |at: Duration| {
        [
            Row::new(
                SCALE_FIGURE,
                at.saturating_sub(created).as_secs_f64(),
                "s",
                target,
            )
            .note(format!(
                "UAPI sampled every 250 ms, every 20 ms past 90 %; creating took {:.2} s",
                created.as_secs_f64()
            )),
            Row::new(
                "create start → all peers programmed",
                at.as_secs_f64(),
                "s",
                Goal::Info,
            ),
        ]
    };
    match reached {
        Ok(at) => {
            rows.extend(rows_at(at));
            Ok(true)
        }
        Err(e) => {
            // A dead agent or an interrupt is a failure; a slow agent is a missed target.
            agent.check_alive()?;
            common::check_interrupted()?;
            let latest = sampler.latest();
            if latest == 0 {
                bail!("no peer was ever programmed: {e}");
            }
            let gave_up = format!("gave up after {BULK_LIMIT:?} at {latest} peers");
            rows.extend(rows_at(started.elapsed()).map(|r| r.note_more(&gave_up)));
            Ok(false)
        }
    }
}

/// One more node while N peers are programmed: create → its key in the device.
async fn one_more_node(client: &Client, agent: &mut Agent, extra: &Fake) -> anyhow::Result<Row> {
    let socket = agent.socket_path();
    let started = Instant::now();
    cluster::create_node_as_kubelet(client, &extra.node).await?;
    let key = extra.hex_key.clone();
    let at = common::poll(
        "the extra node's peer programmed",
        Duration::from_secs(30),
        Duration::from_millis(20),
        async || {
            agent.check_alive()?;
            let socket = socket.clone();
            let key = key.clone();
            let found = tokio::task::spawn_blocking(move || uapi_peers(&socket))
                .await??
                .contains(&key);
            Ok(found.then(|| started.elapsed()))
        },
    )
    .await?;
    Ok(Row::new(
        ONE_MORE_FIGURE,
        at.as_secs_f64(),
        "s",
        Goal::AtMost(ONE_TARGET),
    )
    .note("UAPI polled every 20 ms"))
}

/// Converged: the agent reports every peer in its NodeEncryption (written after the round).
async fn wait_converged(client: &Client, agent: &mut Agent, peers: i64) -> anyhow::Result<()> {
    common::poll(
        &format!("NodeEncryption reporting {peers} configured peers"),
        Duration::from_secs(60),
        Duration::from_millis(200),
        async || {
            agent.check_alive()?;
            let statuses = cluster::ipv4_statuses(client).await?;
            Ok(cluster::encrypted_with(&statuses, OWN_NODE, peers).then_some(()))
        },
    )
    .await
}

fn route_count(node: &BenchNode) -> anyhow::Result<usize> {
    let out = kube_encrypt_tests::lab::sys::ip(&node.netns, &["route", "show", "table", "51820"])
        .context("list routes of table 51820")?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().count())
}

/// RSS of the node's other process (the userspace WireGuard daemon), for context.
fn daemon_rss_mib(node: &BenchNode, agent_pid: u32) -> Option<f64> {
    let out = kube_encrypt_tests::lab::sys::run(&mut kube_encrypt_tests::lab::sys::cmd(
        "ip",
        ["netns", "pids", &node.netns],
    ))
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let pid = text
        .split_whitespace()
        .filter(|p| *p != agent_pid.to_string())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim().starts_with("wireguard"))
        })?
        .to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

async fn idle_cpu(agent: &mut Agent, window: Duration) -> anyhow::Result<Row> {
    let before = agent.cpu_time()?;
    let started = Instant::now();
    while started.elapsed() < window {
        common::check_interrupted()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    agent.check_alive()?;
    let used = agent.cpu_time()?.saturating_sub(before);
    Ok(Row::new(
        format!(
            "agent CPU while idle ({} s, a resync included)",
            window.as_secs()
        ),
        used.as_secs_f64() * 100.0 / window.as_secs_f64(),
        "% core",
        Goal::AtMost(IDLE_TARGET * 100.0),
    )
    .note(format!(
        "{:.3} s of CPU, the agent resyncs every 60 s; utime+stime from /proc, {:.1} s since the agent started",
        used.as_secs_f64(),
        before.as_secs_f64()
    )))
}

/// 120 s of kubelet heartbeats (1 % of the Nodes every 10 s): the agent's CPU, memory and
/// rounds over the window.
async fn heartbeat_rows(
    client: &Client,
    agent: &mut Agent,
    node: &BenchNode,
    size: Size,
) -> anyhow::Result<Vec<Row>> {
    let metrics = format!("{}:{METRICS_PORT}", node.addr);
    let served = cluster::served_size(client, "fake-00000").await?;
    let per_tick = size.nodes.div_ceil(HEARTBEAT_SHARE);
    let rounds_before = reconcile_totals(&metrics).await?;
    let cpu_before = agent.cpu_time()?;
    let started = Instant::now();
    let mut next = 0;
    let mut tick = 0;
    while started.elapsed() < size.heartbeat_window {
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let names: Vec<String> = (0..per_tick)
            .map(|k| format!("fake-{:05}", (next + k) % size.nodes))
            .collect();
        next += per_tick;
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(&names)
            .map(|name| cluster::heartbeat(client, name, &now))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        tick += 1;
        let due = started + size.heartbeat_tick * tick;
        while Instant::now() < due && started.elapsed() < size.heartbeat_window {
            agent.check_alive()?;
            common::check_interrupted()?;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let window = started.elapsed();
    let used = agent.cpu_time()?.saturating_sub(cpu_before);
    let rounds_after = reconcile_totals(&metrics).await?;
    let (rss, hwm) = agent.rss_kib()?;
    let share = used.as_secs_f64() / window.as_secs_f64();
    Ok(vec![
        Row::new(
            "a Node as served (with managedFields)",
            served as f64 / 1024.0,
            "KiB",
            Goal::Info,
        ),
        Row::new(
            format!("heartbeats: agent CPU over {} s", window.as_secs()),
            share * 100.0,
            "% core",
            Goal::AtMost(HEARTBEAT_CPU_TARGET * 100.0),
        )
        .note(format!(
            "{:.2} s of CPU; {per_tick} Nodes patched every {} s ({tick} ticks)",
            used.as_secs_f64(),
            size.heartbeat_tick.as_secs()
        )),
        rounds_row("heartbeats", rounds_before, rounds_after)
            .note_more("resyncs every 60 s; heartbeats alone start none"),
        Row::new(
            "agent RSS after the heartbeats",
            rss as f64 / 1024.0,
            "MiB",
            Goal::AtMost(size.rss_target_mib),
        )
        .note(format!(
            "peak VmHWM {:.1} MiB since start",
            hwm as f64 / 1024.0
        )),
    ])
}

/// The agent's own account of the rounds between two metric readings (count, seconds).
fn rounds_row(phase: &str, before: (f64, f64), after: (f64, f64)) -> Row {
    let rounds = after.0 - before.0;
    Row::new(
        format!("{phase}: time in reconcile rounds"),
        after.1 - before.1,
        "s",
        Goal::Info,
    )
    .note(format!(
        "{rounds:.0} rounds, from kube_encrypt_reconcile_duration_seconds"
    ))
}
