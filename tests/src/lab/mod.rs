//! The lab: a whole cluster inside network namespaces on one machine (SPEC §7).
//!
//! ```text
//!  up ─► network (netns, veths, host-gw routes) ─► node mount namespaces
//!     ─► API emulator in ke-lab (+ forwarders for host clients) ─► Nodes, Pods, CRDs
//!     ─► supervisor ─► one kube-encrypt-agent per node (restarted when it dies)
//!  flows ─► live config ─► expectations ─► ping + tcpdump on the underlay ─► report
//!  down ─► stop recorded PIDs ─► remove recorded namespaces, mounts, dirs ─► state gone
//! ```
//!
//! Test infrastructure: the agents and the emulator run with their normal flags and never
//! learn they are in a lab. Traffic only flows between the lab's own namespaces, on the
//! documentation ranges 192.0.2.0/24, 198.18.0.0/15 and 2001:db8::/32.

pub mod apply;
pub mod cluster;
pub mod commands;
pub mod control_plane;
pub mod demo;
pub mod flows;
pub mod forward;
pub mod identities;
pub mod kubeconfig;
pub mod mounts;
pub mod network;
pub mod preflight;
pub mod process;
pub mod reimage;
pub mod services;
pub mod signals;
pub mod state;
pub mod supervisor;
pub mod sys;
pub mod teardown;
pub mod testing;
pub mod topology;
pub mod up;
pub mod webhook;
pub mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use state::{Paths, DEFAULT_STATE_DIR};
use topology::{ApiServerKind, LabSpec, DEFAULT_MTU};

/// Exit codes of `kube-encrypt-lab`.
pub mod exit {
    /// Done; `flows`: every flow as expected; `down` with no lab up (nothing to remove).
    pub const OK: u8 = 0;
    /// Any error (the message says what to do).
    pub const ERROR: u8 = 1;
    /// Bad command line (clap's usage errors).
    pub const USAGE: u8 = 2;
    /// The lab is in the wrong state: `up` while a lab is up, or a command that needs a lab
    /// (`exec`, `flows`, `apiserver`, `status`) while none is up.
    pub const LAB_STATE: u8 = 3;
    /// `flows` / `demo`: at least one flow was not as expected.
    pub const FLOWS_MISMATCH: u8 = 4;
}

/// The lab is up when it should not be, or not up when it should be.
#[derive(Debug, thiserror::Error)]
pub enum LabStateError {
    #[error("a lab is already up (state in {0}); run `kube-encrypt-lab down` first")]
    AlreadyUp(String),
    #[error("no lab is up; start one with `kube-encrypt-lab up`")]
    NotUp,
}

/// A whole Kubernetes-like cluster in network namespaces, for kube-encrypt's tests and demo.
///
/// Exit codes: 0 done (also `down` when no lab is up), 1 error, 2 usage, 3 lab already up /
/// not up, 4 a flow was not as expected.
#[derive(Debug, Parser)]
#[command(name = "kube-encrypt-lab", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the lab and print the kubeconfig path (needs root).
    Up(UpArgs),
    /// Remove everything the lab made, even after a crash (no lab up: says so, exit 0).
    Down,
    /// Run a command in a node's network and mount namespaces (or a pod's, ext's, lab's netns).
    Exec {
        /// node-1 (or 1), pod-1-1, ext or lab.
        target: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Stop or start the API server (kube-apiserver: etcd keeps the state; the emulator keeps
    /// it on disk).
    Apiserver {
        #[command(subcommand)]
        action: ApiserverAction,
    },
    /// Run the flow matrix against the live config; exit 4 on any mismatch.
    Flows,
    /// Reinstall a node: its agent's state (keys) and the kernel state it made are wiped, and
    /// a fresh agent starts, as on a replaced machine.
    Reimage {
        /// node-1 (or 1).
        node: String,
    },
    /// Show the lab's nodes, processes and kubeconfig.
    Status,
    /// Up, enable encryption with kubectl, show status and flows, down.
    Demo(DemoArgs),
    /// (internal) Forward connections, so host clients reach the API server.
    #[command(hide = true)]
    Forward {
        #[arg(long)]
        listen: forward::Endpoint,
        #[arg(long)]
        to: forward::Endpoint,
        #[arg(long)]
        port_file: Option<PathBuf>,
    },
    /// (internal) Run and restart the node agents.
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        state_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[arg(long, default_value_t = 3)]
    pub nodes: u8,
    /// Dual stack: IPv6 node addresses, pod CIDRs and pod IPs too.
    #[arg(long)]
    pub ipv6: bool,
    /// Underlay MTU.
    #[arg(long, default_value_t = DEFAULT_MTU)]
    pub mtu: u32,
    /// A node without a usable WireGuard (its agent gets `--userspace-implementation none`).
    #[arg(long = "no-wireguard", value_name = "NODE")]
    pub no_wireguard: Vec<String>,
    /// Network and API server only, no agents (for tests of the lab itself).
    #[arg(long)]
    pub no_agents: bool,
    /// The API server: `kube` (etcd, kube-apiserver, kube-controller-manager built by
    /// scripts/build-control-plane.sh) or `emulator`. Default: kube when it is built.
    #[arg(long, value_enum)]
    pub apiserver: Option<ApiServerKind>,
    /// Run etcd and kube-apiserver in this node's namespaces (labelled control-plane), as
    /// most clusters do, instead of in ke-lab.
    #[arg(long, value_name = "NODE")]
    pub control_plane_on: Option<String>,
    /// The kube-encrypt-agent binary (default: next to this binary).
    #[arg(long, env = "KE_LAB_AGENT_BIN")]
    pub agent_bin: Option<PathBuf>,
    /// No admission webhook (config writes are then checked by the CRDs' CEL rules only).
    #[arg(long)]
    pub no_webhook: bool,
    /// The kube-encrypt-webhook binary (default: next to this binary).
    #[arg(long, env = "KE_LAB_WEBHOOK_BIN")]
    pub webhook_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 3)]
    pub nodes: u8,
    /// The API server (default: kube when it is built, else the emulator).
    #[arg(long, value_enum)]
    pub apiserver: Option<ApiServerKind>,
    /// IPv4 only (the default demo is dual stack).
    #[arg(long)]
    pub ipv4_only: bool,
    #[arg(long, env = "KE_LAB_AGENT_BIN")]
    pub agent_bin: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ApiserverAction {
    Stop,
    Start,
    /// (internal) Serve the emulator in the foreground.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        state_dir: PathBuf,
    },
}

/// Runs one lab command.
pub fn run(cli: Cli, rt: &tokio::runtime::Runtime) -> anyhow::Result<ExitCode> {
    let paths = Paths::new(DEFAULT_STATE_DIR);
    match cli.command {
        Command::Up(args) => {
            let spec = LabSpec::new(args.nodes, args.ipv6, args.mtu, &args.no_wireguard)?
                .with_apiserver(choose_apiserver(args.apiserver));
            let spec = match &args.control_plane_on {
                Some(node) => spec.with_control_plane_on(node)?,
                None => spec,
            };
            let options = up::UpOptions {
                spec,
                agents: !args.no_agents,
                agent_bin: args.agent_bin,
                webhook: !args.no_webhook,
                webhook_bin: args.webhook_bin,
            };
            let kubeconfig = up::up(&paths, options, rt)?;
            println!("{}", kubeconfig.display());
        }
        Command::Down => commands::down(&paths)?,
        Command::Exec { target, command } => return commands::exec(&paths, &target, &command),
        Command::Apiserver {
            action: ApiserverAction::Stop,
        } => commands::apiserver_stop(&paths)?,
        Command::Apiserver {
            action: ApiserverAction::Start,
        } => commands::apiserver_start(&paths, rt)?,
        Command::Apiserver {
            action: ApiserverAction::Serve { listen, state_dir },
        } => {
            rt.block_on(crate::apiserver::serve(crate::apiserver::ServerConfig {
                listen,
                state_dir,
            }))?;
        }
        Command::Flows => {
            let store = commands::require_lab(&paths)?;
            let results = flows::run(&store, rt, flows::report::Style::detect())?;
            if !results.iter().all(|r| r.as_expected()) {
                return Ok(ExitCode::from(exit::FLOWS_MISMATCH));
            }
        }
        Command::Status => commands::status(&paths)?,
        Command::Reimage { node } => commands::reimage(&paths, &node)?,
        Command::Demo(args) => {
            let spec = LabSpec::new(args.nodes, !args.ipv4_only, DEFAULT_MTU, &[])?
                .with_apiserver(choose_apiserver(args.apiserver));
            if !demo::demo(&paths, spec, args.agent_bin, rt)? {
                return Ok(ExitCode::from(exit::FLOWS_MISMATCH));
            }
        }
        Command::Forward {
            listen,
            to,
            port_file,
        } => rt.block_on(forward::forward(listen, to, port_file.as_deref()))?,
        Command::Supervise { state_dir } => {
            rt.block_on(supervisor::supervise(Paths::new(state_dir)))?
        }
    }
    Ok(ExitCode::from(exit::OK))
}

/// The API server asked for, or the real control plane when it is built, else the emulator
/// (saying why on stderr).
pub fn choose_apiserver(asked: Option<ApiServerKind>) -> ApiServerKind {
    if let Some(kind) = asked {
        return kind;
    }
    match control_plane::KubeBinaries::locate() {
        Ok(_) => ApiServerKind::Kube,
        Err(e) => {
            eprintln!("kube-encrypt-lab: using the API emulator: {e}");
            ApiServerKind::Emulator
        }
    }
}

/// Writes a line to stdout; a closed pipe (`flows | head`) becomes an error that
/// [`is_broken_pipe`] recognises, so the command ends quietly instead of panicking.
pub fn say(text: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{text}")
}

/// The reader of stdout went away: not an error for a command whose output was cut short.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The exit code for an error: [`exit::LAB_STATE`] for a lab in the wrong state.
pub fn error_code(error: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(error) {
        ExitCode::from(exit::OK)
    } else if error.chain().any(|e| e.is::<LabStateError>()) {
        ExitCode::from(exit::LAB_STATE)
    } else {
        ExitCode::from(exit::ERROR)
    }
}

/// Whether the command runs long in the background (logs at info) or is a CLI (warnings).
pub fn is_daemon(command: &Command) -> bool {
    matches!(
        command,
        Command::Forward { .. }
            | Command::Supervise { .. }
            | Command::Apiserver {
                action: ApiserverAction::Serve { .. }
            }
    )
}
