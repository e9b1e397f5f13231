use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use kube_encrypt_webhook::args::{Args, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match args.into_config(hostname()) {
        Ok(config) => kube_encrypt_webhook::run::run(config).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("kube-encrypt-webhook cannot start: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The host name, the identity when no `--pod-name` is given.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// `RUST_LOG` when set; otherwise info, without kube's per-request error lines (the webhook
/// logs each failed watch itself).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
