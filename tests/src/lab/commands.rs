//! `down`, `exec`, `apiserver start|stop` and `status`: small commands on a lab that is up.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::mounts;
use super::services::{self, APISERVER};
use super::state::{LabLock, Paths, Store};
use super::sys::describe;
use super::teardown::teardown;
use super::topology::{parse_node_ref, ApiServerKind, Topology, EXT_NETNS, LAB_NETNS};
use super::{cluster, preflight, say, LabStateError};

/// Loads the lab that is up, or says that none is.
pub fn require_lab(paths: &Paths) -> anyhow::Result<Store> {
    Store::load(paths)?.ok_or_else(|| LabStateError::NotUp.into())
}

/// `down`: removes the lab; a lab that is not up is not an error (prints so, exit 0).
pub fn down(paths: &Paths) -> anyhow::Result<()> {
    preflight::check()?;
    let _lock = LabLock::acquire(Duration::from_secs(60))?;
    let Some(store) = Store::load(paths)? else {
        println!("kube-encrypt-lab: no lab is up; nothing to remove");
        return Ok(());
    };
    teardown(store)?;
    println!("kube-encrypt-lab: lab removed");
    Ok(())
}

/// `exec TARGET -- CMD…`: runs CMD in a node's network and mount namespaces (or in a pod's,
/// `ke-ext`'s or `ke-lab`'s network namespace) and exits with its code.
pub fn exec(paths: &Paths, target: &str, command: &[String]) -> anyhow::Result<ExitCode> {
    let store = require_lab(paths)?;
    let topo = store.state.topology();
    let mut cmd = match resolve(&topo, target)? {
        Target::Node(index) => mounts::in_node(paths, topo.node(index).expect("resolved"), command),
        Target::Netns(netns) => {
            let mut cmd = std::process::Command::new("nsenter");
            cmd.arg(format!("--net=/run/netns/{netns}"))
                .arg("--")
                .args(command);
            cmd
        }
    };
    let status = cmd
        .status()
        .with_context(|| format!("run `{}`", describe(&cmd)))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

enum Target {
    Node(u8),
    Netns(String),
}

fn resolve(topo: &Topology, target: &str) -> anyhow::Result<Target> {
    if let Some(index) = parse_node_ref(target, topo.spec.nodes) {
        return Ok(Target::Node(index));
    }
    let pods = topo.nodes.iter().flat_map(|n| n.pods.iter());
    if let Some(pod) = pods.clone().find(|p| p.name == target || p.netns == target) {
        return Ok(Target::Netns(pod.netns.clone()));
    }
    match target {
        "ext" | EXT_NETNS => Ok(Target::Netns(EXT_NETNS.into())),
        "lab" | LAB_NETNS => Ok(Target::Netns(LAB_NETNS.into())),
        _ => anyhow::bail!(
            "unknown target {target}: use node-1 … node-{}, a pod (pod-1-1), ext or lab",
            topo.spec.nodes
        ),
    }
}

/// `apiserver stop`: stops kube-apiserver (etcd keeps the state) or the emulator (its data
/// stays on disk).
pub fn apiserver_stop(paths: &Paths) -> anyhow::Result<()> {
    let _lock = LabLock::acquire(Duration::from_secs(60))?;
    let mut store = require_lab(paths)?;
    let name = api_server_name(&store);
    if services::stop(&mut store, APISERVER)? {
        let kept = match store.state.spec.apiserver {
            ApiServerKind::Kube => "etcd keeps the state".to_owned(),
            ApiServerKind::Emulator => format!("state kept in {}", paths.apiserver_dir().display()),
        };
        println!("kube-encrypt-lab: {name} stopped ({kept})");
    } else {
        println!("kube-encrypt-lab: {name} was not running");
    }
    Ok(())
}

fn api_server_name(store: &Store) -> &'static str {
    match store.state.spec.apiserver {
        ApiServerKind::Kube => "kube-apiserver",
        ApiServerKind::Emulator => "API emulator",
    }
}

/// `apiserver start`: starts the API server again on its data and waits until it answers.
pub fn apiserver_start(paths: &Paths, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let _lock = LabLock::acquire(Duration::from_secs(60))?;
    let mut store = require_lab(paths)?;
    let name = api_server_name(&store);
    if store.process(APISERVER).is_some_and(|p| p.is_alive()) {
        println!("kube-encrypt-lab: {name} is already running");
        return Ok(());
    }
    services::start_apiserver(&mut store)?;
    let log = paths.log(APISERVER);
    rt.block_on(async {
        let client = cluster::client(&paths.kubeconfig()).await?;
        cluster::wait_ready(&client, Duration::from_secs(60), &log).await
    })
    .map_err(|e| services::explain_dead(&store, e.into()))?;
    println!("kube-encrypt-lab: {name} started");
    Ok(())
}

/// `reimage NODE`: the node as from a fresh install, with a fresh agent.
pub fn reimage(paths: &Paths, node: &str) -> anyhow::Result<()> {
    let _lock = LabLock::acquire(Duration::from_secs(60))?;
    let store = require_lab(paths)?;
    let topo = store.state.topology();
    let plan = parse_node_ref(node, topo.spec.nodes)
        .and_then(|i| topo.node(i))
        .with_context(|| format!("unknown node {node}: use node-1 … node-{}", topo.spec.nodes))?;
    super::reimage::reimage(&store, plan)?;
    println!(
        "kube-encrypt-lab: {} reimaged; a fresh agent runs",
        plan.name
    );
    Ok(())
}

/// `status`: what the lab is and where its files are.
pub fn status(paths: &Paths) -> anyhow::Result<()> {
    let store = require_lab(paths)?;
    let topo = store.state.topology();
    let state = &store.state;
    say(format!(
        "lab: {} nodes, IPv6 {}, MTU {}{}",
        topo.spec.nodes,
        if topo.spec.ipv6 { "on" } else { "off" },
        topo.spec.mtu,
        if state.ready {
            ""
        } else {
            " (not ready: `up` did not finish)"
        }
    ))?;
    say(format!(
        "API server: {} at {}",
        state.spec.apiserver.describe(),
        topo.api_addr()
    ))?;
    say(format!("kubeconfig: {}", paths.kubeconfig().display()))?;
    for process in &state.processes {
        say(format!(
            "{:<18} pid {:<8} {}",
            process.role,
            process.pid,
            if process.is_alive() {
                "running"
            } else {
                "NOT running"
            }
        ))?;
    }
    for node in &topo.nodes {
        let agent = super::supervisor::AgentRecord::load(paths, &node.name);
        let agent = match agent {
            Some(a) if a.process.is_alive() => {
                format!("agent pid {} ({} restarts)", a.process.pid, a.restarts)
            }
            _ if state.agents => "agent not running".to_string(),
            _ => "no agent".to_string(),
        };
        let wg = if node.wireguard { "" } else { ", no WireGuard" };
        say(format!(
            "{:<7} {} {}  pods {}  {agent}{wg}",
            node.name,
            node.v4,
            node.pod_cidr_v4,
            node.pods
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ))?;
    }
    Ok(())
}
