//! `kubectl encrypt`, the kube-encrypt kubectl plugin: turns encryption on and off, shows and
//! checks its state, installs kube-encrypt. It writes no admission rule of its own: every
//! pre-flight check is `kube_encrypt_api::rules`, every node is read through
//! `kube_encrypt_api::node::NodeView`.
//!
//! ```text
//!  argv ─► cli::Cli ─► one module per subcommand ─► cluster::Cluster (kube-rs, errors a user can act on)
//!                         │                           ├─ snapshot: config, pools, nodes, NodeEncryptions
//!                         │                           └─ apply: server-side apply as `kubectl-encrypt`
//!                         └─► report (serde) ─► table / wide (style, table) | json | yaml ─► stdout
//! ```
//!
//! Exit codes: 0 healthy or done, 1 error, 2 the cluster was reached but is degraded.
//! Nothing touches the network before the arguments are parsed, so `--help` is instant.

pub mod check;
pub mod cli;
pub mod cluster;
pub mod completion;
pub mod disable;
pub mod enable;
pub mod gitops;
pub mod install;
pub mod status;
pub mod style;
pub mod table;
pub mod version;
pub mod wait;

mod apply;
mod fleet;
mod format;
mod intent;
mod preflight;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod testing;

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, GlobalArgs, OutputFormat};
use crate::cluster::Cluster;
use crate::style::Style;

/// The namespace kube-encrypt is installed in unless `-n` says otherwise.
pub const INSTALL_NAMESPACE: &str = "kube-encrypt";
/// The field manager of everything the plugin writes.
pub const FIELD_MANAGER: &str = "kubectl-encrypt";

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Healthy, or the change is done: 0.
    Done,
    /// Reached the cluster, but it is degraded: 2.
    Degraded,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Degraded => 2,
        }
    }

    /// `Degraded` when `degraded` holds.
    pub fn degraded_if(degraded: bool) -> Self {
        if degraded {
            Exit::Degraded
        } else {
            Exit::Done
        }
    }
}

/// The exit code of an error: 1.
pub const ERROR_EXIT: u8 = 1;

/// What every command gets: how to print.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub style: Style,
    pub output: OutputFormat,
    /// Whether stdout is a terminal (progress bars and in-place redraws).
    pub terminal: bool,
}

impl Ui {
    /// From the global flags, `NO_COLOR` and whether stdout is a terminal.
    pub fn from_flags(global: &GlobalArgs) -> Self {
        let terminal = io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR");
        Self {
            style: Style::resolve(global.color, no_color.as_deref(), terminal),
            output: global.output,
            terminal,
        }
    }
}

/// Parses `args`, runs the command and returns the process exit code. A closed stdout (`|
/// head`) ends the command successfully.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    let ui = Ui::from_flags(&cli.global);
    match run(cli, ui) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: {}", one_line(&e));
            ExitCode::from(ERROR_EXIT)
        }
    }
}

/// Help and version go to stdout with 0; a usage error to stderr with 1 (2 means degraded).
fn usage(e: clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(ERROR_EXIT)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs one parsed command line. Only commands that need the cluster start a runtime.
pub fn run(cli: Cli, ui: Ui) -> anyhow::Result<Exit> {
    // Not locked for the whole run: a progress bar draws on stdout from its own calls.
    let mut out = io::stdout();
    let global = &cli.global;
    let exit = match &cli.command {
        Command::Version => version::run(ui, &mut out)?,
        Command::Manifests => install::print_manifests(ui, &mut out)?,
        Command::Enable(args) => block_on(async {
            enable::run(&Cluster::connect(global).await?, args, ui, &mut out).await
        })?,
        Command::Disable(args) => block_on(async {
            disable::run(&Cluster::connect(global).await?, args, ui, &mut out).await
        })?,
        Command::Status(args) => block_on(async {
            status::run(&Cluster::connect(global).await?, args, ui, &mut out).await
        })?,
        Command::Check(args) => block_on(async {
            check::run(&Cluster::connect(global).await?, args, ui, &mut out).await
        })?,
        Command::Install(args) => block_on(async {
            install::install(&Cluster::connect(global).await?, args, ui, &mut out).await
        })?,
        Command::Uninstall(args) => block_on(async {
            install::uninstall(&Cluster::connect(global).await?, args, ui, &mut out).await
        })?,
    };
    out.flush()?;
    Ok(exit)
}

fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}
