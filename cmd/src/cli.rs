//! The command line: global flags and one subcommand enum, each variant's arguments in the
//! module of that subcommand. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{check, disable, enable, install, status};

/// Encrypt the traffic between the nodes of a Kubernetes cluster with WireGuard.
///
/// Exit codes: 0 healthy or done, 1 error, 2 reached but degraded.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-encrypt",
    bin_name = "kubectl encrypt",
    version,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The help heading of the global flags.
const GLOBAL: &str = "Global options";

/// Flags every subcommand accepts, as kubectl spells them.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file [default: $KUBECONFIG, else ~/.kube/config]
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use [default: the current context]
    #[arg(long, global = true, value_name = "NAME", help_heading = GLOBAL)]
    pub context: Option<String>,
    /// The namespace kube-encrypt is installed in
    #[arg(
        short = 'n',
        long,
        global = true,
        value_name = "NAMESPACE",
        help_heading = GLOBAL,
        default_value = crate::INSTALL_NAMESPACE
    )]
    pub namespace: String,
    /// When to colour the output: auto = on a terminal unless NO_COLOR is set
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN", help_heading = GLOBAL)]
    pub color: ColorChoice,
    /// Output format, where a command prints a report
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table, value_name = "FORMAT", help_heading = GLOBAL)]
    pub output: OutputFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Turn encryption on (after checking the cluster against the admission rules)
    Enable(enable::EnableArgs),
    /// Turn encryption off for one family or all
    Disable(disable::DisableArgs),
    /// Show the config, the pools and every node's encryption state
    Status(status::StatusArgs),
    /// Run every pre-flight and health check, each with its fix
    Check(check::CheckArgs),
    /// Install kube-encrypt (the embedded manifests, applied server-side) and wait for it
    Install(install::InstallArgs),
    /// Remove what `install` created, in reverse order
    Uninstall(install::UninstallArgs),
    /// Print the embedded install manifests
    Manifests,
    /// Print the plugin's version
    Version,
}

/// When to colour the output.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How a report is printed.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Human-readable tables
    Table,
    /// Tables with more columns
    Wide,
    Json,
    Yaml,
}

impl OutputFormat {
    /// Whether the format is for people (a table) rather than for programs.
    pub fn is_table(self) -> bool {
        matches!(self, Self::Table | Self::Wide)
    }
}
