//! `kube-encrypt-lab`: a whole cluster in network namespaces (see `kube_encrypt_tests::lab`).

use std::process::ExitCode;

use clap::Parser;
use kube_encrypt_tests::lab::{self, signals, Cli};
use tracing_subscriber::EnvFilter;

/// Colour logs only on a terminal, never with NO_COLOR (daemons log to files).
fn colour_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // kube's client logs every refused connection while the API server starts; the lab
    // reports what matters itself.
    let default_level = if lab::is_daemon(&cli.command) {
        "info"
    } else {
        "warn,kube_client::client::builder=off"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_stderr())
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kube-encrypt-lab: cannot start the async runtime: {e}");
            return ExitCode::from(lab::exit::ERROR);
        }
    };
    if !lab::is_daemon(&cli.command) {
        signals::install(&rt);
    }
    match lab::run(cli, &rt) {
        Ok(code) => code,
        Err(e) => {
            if !lab::is_broken_pipe(&e) {
                eprintln!("kube-encrypt-lab: {e:#}");
            }
            lab::error_code(&e)
        }
    }
}
