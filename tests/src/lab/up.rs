//! `up`: builds the lab. Everything is recorded in the state file before it is made, and a
//! failed or interrupted `up` is rolled back through `down`'s teardown.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use super::cluster;
use super::control_plane::{self, Credentials, KubeBinaries};
use super::identities;
use super::kubeconfig;
use super::mounts;
use super::network;
use super::services;
use super::signals;
use super::state::{LabLock, LabState, Paths, Store};
use super::teardown::teardown;
use super::topology::{ApiServerKind, LabSpec, Topology};
use super::webhook;
use super::workloads;
use super::{preflight, LabStateError};

/// How `up` was asked to build the lab.
#[derive(Clone, Debug)]
pub struct UpOptions {
    pub spec: LabSpec,
    /// Run one agent per node (off: the network and the emulator only, for tests).
    pub agents: bool,
    pub agent_bin: Option<PathBuf>,
    /// Run the admission webhook (off: writes are not validated by it; the CEL rules hold).
    pub webhook: bool,
    pub webhook_bin: Option<PathBuf>,
}

/// Builds the lab; returns the kubeconfig path for host clients.
pub fn up(
    paths: &Paths,
    options: UpOptions,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<PathBuf> {
    preflight::check()?;
    let _lock = LabLock::acquire(Duration::from_secs(60))?;
    if let Some(existing) = Store::load(paths)? {
        return Err(LabStateError::AlreadyUp(existing.paths.root.display().to_string()).into());
    }
    let topo = Topology::new(options.spec.clone());
    let leftovers = network::existing_netns(&topo)?;
    if !leftovers.is_empty() {
        bail!(
            "network namespaces {} exist but no lab state does; they are not this lab's to remove: \
             if they are leftovers, delete them with `ip netns del NAME`",
            leftovers.join(", ")
        );
    }
    let agent_bin = options
        .agents
        .then(|| {
            find_binary(
                "kube-encrypt-agent",
                options.agent_bin.clone(),
                "--no-agents",
            )
        })
        .transpose()?;
    let webhook_bin = options
        .webhook
        .then(|| {
            find_binary(
                "kube-encrypt-webhook",
                options.webhook_bin.clone(),
                "--no-webhook",
            )
        })
        .transpose()?;
    let kube_bin = match options.spec.apiserver {
        ApiServerKind::Kube => Some(KubeBinaries::locate()?.dir),
        ApiServerKind::Emulator => None,
    };
    let state = LabState {
        spec: options.spec,
        agents: options.agents,
        lab_bin: std::env::current_exe().context("cannot find the lab binary")?,
        agent_bin,
        webhook_bin,
        kube_bin,
        api_port: None,
        ready: false,
        resources: vec![],
        processes: vec![],
    };
    let mut store = Store::create(paths, state)?;
    match build(&topo, &mut store, rt) {
        Ok(()) => Ok(paths.kubeconfig()),
        Err(e) => {
            eprintln!("kube-encrypt-lab: up failed, rolling back: {e:#}");
            keep_logs(paths);
            teardown(store).context("rollback of the failed `up` was incomplete")?;
            Err(e)
        }
    }
}

/// Where the logs of a failed `up` are kept (the state dir itself is removed).
pub const FAILED_UP_LOGS: &str = "/tmp/kube-encrypt-lab-failed-up-logs";
/// Test hook: `KE_LAB_FAIL_AT=<step>` makes `up` fail at that step (network, mounts,
/// apiserver, objects, webhook, agents, done), to test the rollback.
pub const FAIL_AT_ENV: &str = "KE_LAB_FAIL_AT";

fn keep_logs(paths: &Paths) {
    let target = std::path::Path::new(FAILED_UP_LOGS);
    let _ = std::fs::remove_dir_all(target);
    if std::fs::rename(paths.logs(), target).is_ok() {
        eprintln!("kube-encrypt-lab: the logs of the failed `up` are in {FAILED_UP_LOGS}");
    }
}

fn build(topo: &Topology, store: &mut Store, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let fail_at = std::env::var(FAIL_AT_ENV).ok();
    let step = |name: &str| -> anyhow::Result<()> {
        signals::check()?;
        if fail_at.as_deref() == Some(name) {
            bail!("failing at step `{name}` as asked by {FAIL_AT_ENV}");
        }
        tracing::info!("up: {name}");
        Ok(())
    };
    step("network")?;
    network::build(topo, store)?;
    step("mounts")?;
    mounts::prepare(store)?;
    for node in &topo.nodes {
        mounts::create_node(node, store)?;
    }
    step("apiserver")?;
    let credentials = start_apiserver(topo, store)?;
    let port = services::start_forwarders(store)?;
    write_kubeconfigs(&store.paths, topo, port, credentials.as_ref())?;
    step("objects")?;
    let log = store.paths.log(services::APISERVER);
    let kubeconfig = store.paths.kubeconfig();
    let client = rt
        .block_on(async {
            let client = cluster::client(&kubeconfig).await?;
            cluster::wait_ready(&client, API_READY, &log).await?;
            Ok::<_, cluster::ClusterError>(client)
        })
        .map_err(|e| services::explain_dead(store, e.into()))?;
    if credentials.is_some() {
        services::start_controller_manager(store)?;
    }
    let paths = store.paths.clone();
    let ca_pem = credentials.as_ref().map(|c| c.ca_pem.as_str());
    let webhook = store.state.webhook_bin.is_some();
    rt.block_on(async {
        cluster::seed(&client, topo, webhook).await?;
        match ca_pem {
            Some(ca) => identities::issue_agent_tokens(&client, &paths, topo, ca).await,
            None => identities::write_anonymous_kubeconfigs(&paths, topo),
        }
    })
    .map_err(|e| services::explain_dead(store, e.into()))?;
    if let Some(program) = store.state.webhook_bin.clone() {
        step("webhook")?;
        rt.block_on(webhook::register(&client, &paths, topo, ca_pem))?;
        webhook::start(store, &program)?;
        let log = store.paths.log(webhook::WEBHOOK);
        let record = store.process(webhook::WEBHOOK).cloned();
        let alive = || record.as_ref().is_some_and(|r| r.is_alive());
        rt.block_on(webhook::wait_ready(&client, &log, alive))
            .map_err(|e| services::explain_dead(store, e.into()))?;
    }
    if store.state.agents {
        step("agents")?;
        services::start_supervisor(store)?;
    }
    let (agents, webhook_runs) = (store.state.agents, store.state.webhook_bin.is_some());
    rt.block_on(workloads::report(&client, topo, agents, webhook_runs))?;
    step("done")?;
    store.state.ready = true;
    store.save()?;
    Ok(())
}

/// How long the API server may take to answer after it was started.
const API_READY: Duration = Duration::from_secs(60);

/// Starts the API server of the spec; for the real control plane, first its PKI.
fn start_apiserver(topo: &Topology, store: &mut Store) -> anyhow::Result<Option<Credentials>> {
    match topo.spec.apiserver {
        ApiServerKind::Kube => {
            let credentials = control_plane::write_pki(&store.paths, topo)?;
            services::start_control_plane(store)?;
            Ok(Some(credentials))
        }
        ApiServerKind::Emulator => {
            services::start_apiserver(store)?;
            Ok(None)
        }
    }
}

/// The host's admin kubeconfig (through the loopback forwarder on `port`) and the lab's own
/// (the API server's underlay address, for lab processes inside the namespaces).
fn write_kubeconfigs(
    paths: &Paths,
    topo: &Topology,
    port: u16,
    credentials: Option<&Credentials>,
) -> anyhow::Result<()> {
    let (host, lab) = match credentials {
        Some(c) => (
            kubeconfig::client_cert(&format!("https://127.0.0.1:{port}"), &c.ca_pem, &c.admin),
            kubeconfig::client_cert(&format!("https://{}", topo.api_addr()), &c.ca_pem, &c.admin),
        ),
        None => (
            kubeconfig::anonymous(&format!("http://127.0.0.1:{port}")),
            kubeconfig::anonymous(&format!("http://{}", topo.api_addr())),
        ),
    };
    control_plane::write_private(&paths.kubeconfig(), &host)?;
    control_plane::write_private(&paths.lab_kubeconfig(), &lab)?;
    Ok(())
}

/// A workspace binary: the explicit path, else next to the lab binary.
fn find_binary(name: &str, explicit: Option<PathBuf>, skip_flag: &str) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("the lab binary has no directory")?
            .join(name),
    };
    if !path.is_file() {
        bail!(
            "{name} binary {} not found: build it (`cargo build -p {name}`), pass its path, \
             or start the lab without it ({skip_flag})",
            path.display()
        );
    }
    Ok(std::fs::canonicalize(&path)?)
}
