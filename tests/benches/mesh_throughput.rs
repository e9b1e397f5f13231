//! Throughput of the managed mesh against what it replaces, side by side in one run, on the
//! same two bench nodes (network namespaces behind a bridge, veth MTU 1500):
//!
//! - (a) plaintext between the node addresses: the ceiling;
//! - (b) hand-configured userspace WireGuard between the nodes (`wg set`, `ip`): the manual
//!   setup;
//! - (c) the managed mesh, pod → pod: two real `kube-encrypt-agent`s against the API
//!   emulator, iperf3 between pods of different nodes;
//! - (c') the managed mesh between node-local workload addresses (198.18.<i>.1): exactly
//!   the path of (b), only configured by the agents instead of by hand.
//!
//! iperf3 TCP, `-t 4 -O 1`, with 1 and with 4 parallel streams, four rounds alternating the
//! paths (a b c' c, then back); medians in Gbit/s and the ratios to (b) (median of per-round
//! ratios, target ≥ 0.95). The manual interface gets the MTU the agent chose. The userspace
//! implementation of (b), (c) and (c') is wireguard-go, or boringtun with
//! `--implementation boringtun` (its own run: `make bench` runs both when boringtun-cli is
//! installable).
//! Run as root: `cargo bench -p kube-encrypt-tests --bench mesh_throughput`.

#[allow(dead_code)]
mod common;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use kube::Client;

use common::agent::{agent_binary, Agent, INTERFACE};
use common::cluster::{self, Emulator};
use common::iperf::{self, Probe, Timing};
use common::net::{BenchNode, Workspace, HUB_ADDR};
use common::report::{Goal, Row, Session};
use common::userspace::Implementation;

/// Rounds: 4 (an even count, so the alternating order evens out), or 1 in a tiny run.
fn rounds_count() -> usize {
    common::report::sized(4, 1)
}
/// Each iperf3 run: 4 s after 1 s of slow start left out, or 1 s in a tiny run.
fn timing() -> Timing {
    common::report::sized(
        Timing {
            seconds: 4,
            omit: 1,
        },
        Timing {
            seconds: 1,
            omit: 0,
        },
    )
}
/// Parallel TCP streams of each measurement.
const STREAMS: [u32; 2] = [1, 4];
const RATIO_TARGET: f64 = 0.95;
const MANUAL_IF: &str = "wgm";
const MANUAL_PORT: &str = "51830";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh_throughput FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The bench's namespaces: two nodes with one pod each.
struct Nodes {
    n1: BenchNode,
    n2: BenchNode,
    pod1: String,
    pod2: String,
}

fn run() -> anyhow::Result<()> {
    let session = Session::begin("mesh_throughput");
    common::require_root("mesh_throughput")?;
    for tool in ["iperf3", "wg", "ping"] {
        anyhow::ensure!(
            kube_encrypt_tests::lab::sys::have_command(tool),
            "{tool} is not installed; install it (apt-get install iperf3 wireguard-tools iputils-ping)"
        );
    }
    let binary = agent_binary()?;
    let mut ws = Workspace::new("mesh")?;
    let implementation = Implementation::from_args(&ws.dir)?;
    let session = session.param("implementation", implementation.name);
    let hub = ws.add_hub()?;
    let n1 = ws.add_node(&hub, 1)?;
    let n2 = ws.add_node(&hub, 2)?;
    let pod1 = ws.add_pod(&n1)?;
    let pod2 = ws.add_pod(&n2)?;
    let nodes = Nodes { n1, n2, pod1, pod2 };
    ws.enter(&hub)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(bench(&ws, &nodes, (&binary, &implementation), session));
    drop(rt);
    result
}

async fn bench(
    ws: &Workspace,
    nodes: &Nodes,
    (binary, implementation): (&std::path::Path, &Implementation),
    session: Session,
) -> anyhow::Result<()> {
    common::watch_interrupts();
    let emulator = Emulator::start(format!("{HUB_ADDR}:0").parse()?, &ws.dir).await?;
    let client = emulator.client.clone();
    let mut agents = start_managed_mesh(ws, nodes, &emulator, (binary, implementation)).await?;
    let result = measure(ws, nodes, &client, (&mut agents, implementation), session).await;
    if result.is_err() {
        for agent in &agents {
            eprintln!(
                "--- last lines of agent {}\n{}",
                agent.node_name,
                agent.log_tail(25)
            );
        }
    }
    drop(agents);
    emulator.stop().await?;
    result
}

async fn start_managed_mesh(
    ws: &Workspace,
    nodes: &Nodes,
    emulator: &Emulator,
    (binary, implementation): (&std::path::Path, &Implementation),
) -> anyhow::Result<Vec<Agent>> {
    let client = &emulator.client;
    emulator.install_crds().await?;
    cluster::create_pool(client, "bench-pods", "198.18.0.0/15").await?;
    let program = implementation.program.display().to_string();
    let mut agents = Vec::new();
    for node in [&nodes.n1, &nodes.n2] {
        let name = format!("node-{}", node.index);
        let cidr = format!("198.18.{}.0/24", node.index);
        cluster::create_node(
            client,
            &cluster::node_object(&name, &node.addr, &cidr, None),
        )
        .await?;
        agents.push(Agent::start_with(
            binary,
            node,
            (&name, &emulator.kubeconfig, &ws.dir),
            &["--userspace-implementation", &program],
        )?);
    }
    cluster::create_config(client, &cluster::ipv4_config()).await?;
    for agent in &mut agents {
        let name = agent.node_name.clone();
        common::poll(
            &format!("{name} Encrypted with 1 peer"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            async || {
                agent.check_alive()?;
                let statuses = cluster::ipv4_statuses(client).await?;
                Ok(cluster::encrypted_with(&statuses, &name, 1).then_some(()))
            },
        )
        .await?;
    }
    Ok(agents)
}

/// Gbit/s of each probe per round: `[stream count][probe][round]`.
type Results = Vec<Vec<Vec<f64>>>;

async fn measure(
    ws: &Workspace,
    nodes: &Nodes,
    client: &Client,
    (agents, implementation): (&mut [Agent], &Implementation),
    session: Session,
) -> anyhow::Result<()> {
    let mtu = link_mtu(&nodes.n1, INTERFACE)?;
    setup_manual_wireguard(ws, nodes, implementation, mtu)?;
    let probes = probes(nodes, implementation.name);
    for probe in &probes {
        iperf::ping(probe)
            .await
            .with_context(|| format!("{}: no connectivity", probe.label))?;
    }
    let _servers = [iperf::server(&nodes.n2.netns)?, iperf::server(&nodes.pod2)?];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = wireguard_tx(&nodes.n1, INTERFACE)?;
    let results = rounds(&probes, agents).await?;
    ensure_through_the_mesh(nodes, client, agents, before).await?;
    let mut rows = Vec::new();
    for (streams, results) in STREAMS.iter().zip(&results) {
        rows.extend(stream_rows(&probes, results, *streams));
    }
    println!(
        "  MTU: underlay veth 1500; managed {INTERFACE} {mtu} (auto, chosen by the agent); manual {MANUAL_IF} {mtu} (set to match); \
         pods' eth0 1500, path MTU {mtu} learned from the node"
    );
    let timing = timing();
    session.publish(
        &format!(
            "mesh_throughput ({}): iperf3 TCP -t {} -O {}, 1 and 4 streams, {} rounds (a b c' c, then back), 2 CPUs shared by both ends; load average {}",
            implementation.name,
            timing.seconds,
            timing.omit,
            rounds_count(),
            common::load_average()
        ),
        &rows,
    )
}

/// The managed runs really went through the mesh (bytes on node 1's device since `before`),
/// and every agent still reports Encrypted.
async fn ensure_through_the_mesh(
    nodes: &Nodes,
    client: &Client,
    agents: &[Agent],
    before: u64,
) -> anyhow::Result<()> {
    let encrypted = wireguard_tx(&nodes.n1, INTERFACE)?.saturating_sub(before);
    anyhow::ensure!(
        encrypted > 10_000_000,
        "the managed runs sent only {encrypted} bytes through {INTERFACE}: the traffic did not go through the mesh"
    );
    let still = cluster::ipv4_statuses(client).await?;
    for agent in agents {
        anyhow::ensure!(
            cluster::encrypted_with(&still, &agent.node_name, 1),
            "{} no longer reports Encrypted",
            agent.node_name
        );
    }
    Ok(())
}

/// (a), (b), (c), (c'): clients on node 1 or pod 1, servers on node 2 or pod 2.
fn probes(nodes: &Nodes, implementation: &str) -> [Probe; 4] {
    let probe = |label: String, client_netns: &str, target, source| Probe {
        label,
        client_netns: client_netns.to_string(),
        target,
        source,
    };
    [
        probe(
            "(a) plaintext, node → node".into(),
            &nodes.n1.netns,
            "192.0.2.12",
            None,
        ),
        probe(
            format!("(b) manual {implementation}, node → node"),
            &nodes.n1.netns,
            "198.51.100.2",
            None,
        ),
        probe(
            format!("(c) managed {implementation}, pod → pod"),
            &nodes.pod1,
            "198.18.2.2",
            None,
        ),
        probe(
            format!("(c') managed {implementation}, node workload addr"),
            &nodes.n1.netns,
            "198.18.2.1",
            Some("198.18.1.1"),
        ),
    ]
}

/// Every probe with every stream count once per round, in the order a, b, c', c and back
/// again on the next round (ABBA): (b) and (c') always run back to back, and a drift of the
/// machine's load evens out.
async fn rounds(probes: &[Probe], agents: &mut [Agent]) -> anyhow::Result<Results> {
    const ORDER: [usize; 4] = [0, 1, 3, 2];
    let mut results: Results = vec![vec![Vec::new(); probes.len()]; STREAMS.len()];
    for round in 0..rounds_count() {
        let mut order = ORDER;
        if round % 2 == 1 {
            order.reverse();
        }
        for (s, streams) in STREAMS.iter().enumerate() {
            for i in order {
                let probe = &probes[i];
                common::check_interrupted()?;
                let gbps = iperf::run(probe, *streams, timing())
                    .await
                    .with_context(|| format!("iperf3 over {}", probe.label))?;
                println!(
                    "round {}: {:<42} ×{streams} {gbps:6.3} Gbit/s",
                    round + 1,
                    probe.label
                );
                results[s][i].push(gbps);
            }
        }
        for agent in agents.iter_mut() {
            agent.check_alive()?;
        }
    }
    Ok(results)
}

/// `1 stream` / `4 streams`, as figure names spell it.
fn streams_text(streams: u32) -> String {
    match streams {
        1 => "1 stream".into(),
        n => format!("{n} streams"),
    }
}

/// Rows of every probe at one stream count, with the hand-configured pair (b) as the managed
/// paths' baseline and plaintext (a) as the ceiling of (b).
fn stream_rows(probes: &[Probe], results: &[Vec<f64>], streams: u32) -> Vec<Row> {
    let text = streams_text(streams);
    let medians: Vec<f64> = results.iter().map(|r| common::median(r)).collect();
    let mut rows: Vec<Row> = probes
        .iter()
        .zip(results)
        .zip(&medians)
        .enumerate()
        .map(|(i, ((probe, runs), median))| {
            let runs: Vec<String> = runs.iter().map(|g| format!("{g:.3}")).collect();
            let row = Row::new(
                format!("{}, {text} median", probe.label),
                *median,
                "Gbit/s",
                Goal::Info,
            )
            .note(format!("runs {}", runs.join(", ")));
            match i {
                0 => row,
                1 => row.baseline(medians[0]),
                _ => row.baseline(medians[1]),
            }
        })
        .collect();
    rows.push(
        ratio_row(
            &format!("ratio (c)/(b), {text}: managed pod→pod / manual"),
            &results[2],
            &results[1],
        )
        .note_more("the pod path adds a veth hop and forwarding on each node"),
    );
    rows.push(ratio_row(
        &format!("ratio (c')/(b), {text}: managed / manual, same path"),
        &results[3],
        &results[1],
    ));
    rows.push(
        Row::new(
            format!("ratio (b)/(a), {text}: manual WireGuard / plaintext"),
            medians[1] / medians[0],
            "",
            Goal::Info,
        )
        .note("the cost of userspace WireGuard itself"),
    );
    rows
}

/// The median of the per-round ratios: runs of one round are seconds apart, so the ratio
/// is little affected by the load other users put on the machine from round to round.
fn ratio_row(name: &str, managed: &[f64], manual: &[f64]) -> Row {
    let ratios: Vec<f64> = managed.iter().zip(manual).map(|(m, b)| m / b).collect();
    let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    Row::new(
        name,
        common::median(&ratios),
        "",
        Goal::AtLeast(RATIO_TARGET),
    )
    .note(format!(
        "median of per-round ratios {}; ratio of medians {:.2}",
        listed.join(", "),
        common::median(managed) / common::median(manual)
    ))
}

fn link_mtu(node: &BenchNode, link: &str) -> anyhow::Result<u32> {
    let text = node.stdout(&["ip", "-o", "link", "show", link])?;
    let mut words = text.split_whitespace();
    words
        .by_ref()
        .find(|w| *w == "mtu")
        .and_then(|_| words.next()?.parse().ok())
        .with_context(|| format!("no mtu in `{text}`"))
}

/// Bytes sent through a WireGuard device (all peers).
fn wireguard_tx(node: &BenchNode, link: &str) -> anyhow::Result<u64> {
    let text = node.stdout(&["wg", "show", link, "transfer"])?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum())
}

/// The manual setup: the same userspace implementation as `wgm` on both nodes, keys from `wg genkey`, `wg set` and
/// `ip` — what an operator would type — with the agent's MTU.
fn setup_manual_wireguard(
    ws: &Workspace,
    nodes: &Nodes,
    implementation: &Implementation,
    mtu: u32,
) -> anyhow::Result<()> {
    let pair = [&nodes.n1, &nodes.n2];
    let mut keys = Vec::new();
    for node in pair {
        let private = ws.dir.join(format!("manual-{}.key", node.index));
        let key = node.stdout(&["wg", "genkey"])?;
        std::fs::write(&private, &key)?;
        let public = node.stdout(&["sh", "-c", &format!("wg pubkey < {}", private.display())])?;
        keys.push((private, public.trim().to_string()));
    }
    for (i, node) in pair.iter().enumerate() {
        let other = pair[1 - i];
        implementation.start(node, MANUAL_IF)?;
        let private = keys[i].0.display().to_string();
        let endpoint = format!("{}:{MANUAL_PORT}", other.addr);
        let allowed = format!("198.51.100.{}/32", other.index);
        node.run(&[
            "wg",
            "set",
            MANUAL_IF,
            "private-key",
            &private,
            "listen-port",
            MANUAL_PORT,
            "peer",
            &keys[1 - i].1,
            "endpoint",
            &endpoint,
            "allowed-ips",
            &allowed,
        ])?;
        let addr = format!("198.51.100.{}/24", node.index);
        node.run(&["ip", "addr", "add", &addr, "dev", MANUAL_IF])?;
        node.run(&[
            "ip",
            "link",
            "set",
            MANUAL_IF,
            "mtu",
            &mtu.to_string(),
            "up",
        ])?;
    }
    Ok(())
}
