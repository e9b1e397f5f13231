use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use kube_encrypt_agent::args::{Args, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match args.into_config(std::env::var_os("PATH").as_deref()) {
        Ok(config) => kube_encrypt_agent::run::run(config).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("kube-encrypt-agent cannot start: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `RUST_LOG` when set; otherwise info, without kube's per-request error lines (the agent
/// logs each failed watch itself).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
