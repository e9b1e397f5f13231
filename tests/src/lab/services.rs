//! The lab's background processes: the API server (the emulator, or the real control plane of
//! [`super::control_plane`]), the two forwarders that let host clients reach it, and the agent
//! supervisor. The emulator, the forwarders and the supervisor are this binary re-executed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::control_plane;
use super::process::{spawn_daemon, SpawnError};
use super::state::{StateError, Store};
use super::sys;
use super::topology::{ApiServerKind, Topology, LAB_NETNS};

pub const APISERVER: &str = "apiserver";
pub const FORWARD_LAB: &str = "forward-lab";
pub const FORWARD_HOST: &str = "forward-host";
pub const SUPERVISOR: &str = "supervisor";

/// A background process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{role} did not come up within {timeout:?}; see its log {log}")]
    Timeout {
        role: &'static str,
        timeout: Duration,
        log: String,
    },
}

/// Starts `cmd` as the lab service `role`, its output in the role's log.
pub(super) fn start(
    store: &mut Store,
    role: &'static str,
    mut cmd: Command,
) -> Result<(), ServiceError> {
    let log = store.paths.log(role);
    let record = spawn_daemon(role, &mut cmd, &log)?;
    store.record_process(record)?;
    Ok(())
}

fn lab_command(store: &Store, args: &[String]) -> Command {
    let mut cmd = Command::new(&store.state.lab_bin);
    cmd.args(args);
    cmd
}

/// Starts the lab's API server: kube-apiserver (its etcd keeps running across a stop), or
/// the emulator keeping its data in the lab's state dir.
pub fn start_apiserver(store: &mut Store) -> Result<(), ServiceError> {
    let topo = store.state.topology();
    match store.state.spec.apiserver {
        ApiServerKind::Kube => control_plane::start_apiserver(store, &topo),
        ApiServerKind::Emulator => start_emulator(store, &topo),
    }
}

/// Starts the real control plane's etcd and kube-apiserver; the controller-manager follows
/// once the API server is ready ([`start_controller_manager`]).
pub fn start_control_plane(store: &mut Store) -> Result<(), ServiceError> {
    let topo = store.state.topology();
    control_plane::start_etcd(store, &topo)?;
    control_plane::start_apiserver(store, &topo)
}

/// Starts kube-controller-manager. Only after kube-apiserver is ready: before its RBAC
/// bootstrap, the controller-manager is refused and gives up.
pub fn start_controller_manager(store: &mut Store) -> Result<(), ServiceError> {
    let topo = store.state.topology();
    control_plane::start_controller_manager(store, &topo)
}

fn start_emulator(store: &mut Store, topo: &Topology) -> Result<(), ServiceError> {
    let lab_bin = store.state.lab_bin.to_string_lossy().to_string();
    let state_dir = store.paths.apiserver_dir().to_string_lossy().to_string();
    let listen = topo.api_addr().to_string();
    let cmd = sys::in_netns(
        LAB_NETNS,
        &[
            &lab_bin,
            "apiserver",
            "serve",
            "--listen",
            &listen,
            "--state-dir",
            &state_dir,
        ],
    );
    start(store, APISERVER, cmd)
}

/// Starts both forwarders and returns the loopback port of the host-side one.
pub fn start_forwarders(store: &mut Store) -> Result<u16, ServiceError> {
    let lab_bin = store.state.lab_bin.to_string_lossy().to_string();
    let socket = format!("unix:{}", store.paths.api_socket().display());
    let in_lab = sys::in_netns(
        LAB_NETNS,
        &[
            &lab_bin,
            "forward",
            "--listen",
            &socket,
            "--to",
            &format!("tcp:{}", store.state.topology().api_addr()),
        ],
    );
    start(store, FORWARD_LAB, in_lab)?;
    let port_file = store.paths.api_port_file();
    let _ = std::fs::remove_file(&port_file);
    let args = [
        "forward",
        "--listen",
        "tcp:127.0.0.1:0",
        "--to",
        &socket,
        "--port-file",
        &port_file.to_string_lossy(),
    ];
    let on_host = lab_command(store, &args.map(String::from));
    start(store, FORWARD_HOST, on_host)?;
    let port = wait_for_port(
        &port_file,
        Duration::from_secs(10),
        &store.paths.log(FORWARD_HOST),
    )?;
    store.state.api_port = Some(port);
    store.save()?;
    Ok(port)
}

fn wait_for_port(file: &Path, timeout: Duration, log: &Path) -> Result<u16, ServiceError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(port) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return Ok(port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ServiceError::Timeout {
        role: FORWARD_HOST,
        timeout,
        log: log.display().to_string(),
    })
}

/// Starts the supervisor that runs one agent per node and restarts it when it dies.
pub fn start_supervisor(store: &mut Store) -> Result<(), ServiceError> {
    let args = [
        "supervise".to_string(),
        "--state-dir".into(),
        store.paths.root.to_string_lossy().into(),
    ];
    let cmd = lab_command(store, &args);
    start(store, SUPERVISOR, cmd)
}

/// Stops a recorded service and forgets it.
pub fn stop(store: &mut Store, role: &str) -> Result<bool, StateError> {
    let Some(record) = store.process(role).cloned() else {
        return Ok(false);
    };
    record.stop(Duration::from_secs(5));
    store.forget_process(role)?;
    Ok(true)
}

/// Adds to `error` which recorded services have died, with the last lines of their logs
/// (a half-started control plane says why it stopped).
pub fn explain_dead(store: &Store, error: anyhow::Error) -> anyhow::Error {
    let dead: Vec<String> = store
        .state
        .processes
        .iter()
        .filter(|p| !p.is_alive())
        .map(|p| {
            let log = store.paths.log(&p.role);
            format!(
                "{} exited; the end of {}:\n{}",
                p.role,
                log.display(),
                log_tail(&log, 8)
            )
        })
        .collect();
    if dead.is_empty() {
        return error;
    }
    error.context(dead.join("\n"))
}

/// The last `lines` lines of a log file.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
