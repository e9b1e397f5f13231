//! Runs the Kubernetes API emulator alone: `cargo run -p kube-encrypt-tests --example
//! apiserver -- 127.0.0.1:6443 /tmp/apiserver-state`.

use kube_encrypt_tests::apiserver::{serve, ServerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:6443".into())
        .parse()?;
    let state_dir = args
        .next()
        .unwrap_or_else(|| "/tmp/apiserver-state".into())
        .into();
    serve(ServerConfig { listen, state_dir }).await
}
