//! `kubectl encrypt` end to end: `status` against 5,000 nodes and their NodeEncryption objects
//! on the in-process API emulator (127.0.0.1), and `--help` (no network, no runtime). Targets:
//! status ≤ 1 s, --help ≤ 20 ms (medians of a few runs, wall clock, process start included).
//!
//! The plugin binary is the release build next to this bench's lab binary, or
//! `KEB_PLUGIN_BIN`: `cargo build --release -p kubectl-encrypt && cargo bench -p
//! kube-encrypt-tests --bench plugin`.

// The report rows of the other benches; this bench needs neither the rest of `common` (network
// namespaces, the agent) nor every kind of row.
#[path = "common/report.rs"]
#[allow(dead_code)]
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use kube_encrypt_api::crd::NodeEncryption;
use kube_encrypt_tests::apiserver::{start, ServerConfig};
use report::{Goal, Row, Session};
use serde_json::json;

/// Nodes (with their NodeEncryption objects) seeded: 5,000, or 50 in a tiny run.
fn node_count() -> usize {
    report::sized(5_000, 50)
}
const IN_FLIGHT: usize = 64;
const STATUS_TARGET: Duration = Duration::from_secs(1);
const HELP_TARGET: Duration = Duration::from_millis(20);
const STATUS_RUNS: usize = 3;
const HELP_RUNS: usize = 15;
const SEED_LIMIT: Duration = Duration::from_secs(300);

fn plugin_binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("KEB_PLUGIN_BIN") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_BIN_EXE_kube-encrypt-lab")).with_file_name("kubectl-encrypt"),
    };
    if !path.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release -p kubectl-encrypt` (same target dir), or set KEB_PLUGIN_BIN",
            path.display()
        );
    }
    Ok(path)
}

fn node(i: usize) -> Node {
    let key =
        kube_encrypt_api::fixtures::key(&format!("node-{i:05}"), kube_encrypt_api::net::Family::V4);
    serde_json::from_value(json!({
        "metadata": {"name": format!("node-{i:05}"), "annotations": {"kube-encrypt.dev/public-key": key.to_base64()}},
        "spec": {"podCIDR": format!("10.{}.{}.0/24", i / 256, i % 256)},
        "status": {"addresses": [{"type": "InternalIP", "address": format!("172.16.{}.{}", i / 250, i % 250 + 1)}]}
    }))
    .unwrap()
}

fn report_status(i: usize) -> serde_json::Value {
    let key =
        kube_encrypt_api::fixtures::key(&format!("node-{i:05}"), kube_encrypt_api::net::Family::V4);
    let peers = node_count() as i64 - 1;
    json!({"ipv4": {
        "state": "Encrypted", "backend": "kernel", "interface": "wg-encrypt", "publicKey": key.to_base64(),
        "listenPort": 51820, "mtu": 1440, "peers": {"configured": peers, "handshaken": peers, "ratio": format!("{peers}/{peers}")},
        "oldestHandshakeSeconds": 42, "rxBytes": 1_000_000, "txBytes": 2_000_000
    }})
}

async fn seed(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in kube_encrypt_api::crd::all() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    let configs = kube::Api::<kube_encrypt_api::crd::EncryptionConfig>::all(client.clone());
    let config = kube_encrypt_api::crd::EncryptionConfig::new(
        "default",
        kube_encrypt_api::crd::EncryptionConfigSpec::test(),
    );
    configs.create(&PostParams::default(), &config).await?;
    let pools = kube::Api::<kube_encrypt_api::crd::IPPool>::all(client.clone());
    let pool = kube_encrypt_api::crd::IPPool::new(
        "pool-v4",
        kube_encrypt_api::crd::IPPoolSpec::test("10.0.0.0/8"),
    );
    pools.create(&PostParams::default(), &pool).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let reports: Api<NodeEncryption> = Api::all(client.clone());
    stream::iter(0..node_count())
        .map(|i| {
            let (nodes, reports) = (nodes.clone(), reports.clone());
            async move {
                nodes.create(&PostParams::default(), &node(i)).await?;
                let name = format!("node-{i:05}");
                let object = json!({"apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "NodeEncryption",
                    "metadata": {"name": name}, "spec": {}, "status": report_status(i)});
                reports.patch(&name, &PatchParams::apply("kube-encrypt-agent"), &Patch::Apply(&object)).await?;
                reports.patch_status(&name, &PatchParams::apply("kube-encrypt-agent"), &Patch::Apply(&object)).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn timed(mut command: Command) -> anyhow::Result<(Duration, std::process::Output)> {
    let started = Instant::now();
    let output = command.output().context("running the plugin")?;
    Ok((started.elapsed(), output))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure_status(bin: &Path, kubeconfig: &Path) -> anyhow::Result<(Duration, usize)> {
    let mut samples = Vec::new();
    let mut lines = 0;
    for _ in 0..STATUS_RUNS {
        let mut cmd = Command::new(bin);
        cmd.arg("status").env("KUBECONFIG", kubeconfig);
        let (elapsed, output) = timed(cmd)?;
        if output.status.code() != Some(0) {
            bail!(
                "status exited {:?}: {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        lines = output.stdout.iter().filter(|b| **b == b'\n').count();
        samples.push(elapsed);
    }
    Ok((median(samples), lines))
}

fn measure_help(bin: &Path) -> anyhow::Result<Duration> {
    let mut samples = Vec::new();
    for _ in 0..HELP_RUNS {
        let mut cmd = Command::new(bin);
        cmd.arg("--help").env("KUBECONFIG", "/nonexistent");
        let (elapsed, output) = timed(cmd)?;
        if !output.status.success() {
            bail!("--help failed");
        }
        samples.push(elapsed);
    }
    Ok(median(samples))
}

fn main() -> anyhow::Result<()> {
    let session = Session::begin("plugin");
    let bin = plugin_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir =
        std::env::temp_dir().join(format!("kube-encrypt-plugin-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = runtime.block_on(async {
        let server = start(ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            state_dir: dir.join("state"),
        })
        .await?;
        let url = format!("http://{}", server.addr());
        let client = Client::try_from(Config::new(url.parse()?))?;
        let seeded = Instant::now();
        tokio::time::timeout(SEED_LIMIT, seed(&client)).await.context("seeding took too long")??;
        let seed_time = seeded.elapsed();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e\n  cluster: {{server: {url}}}\ncontexts:\n- name: e\n  context: {{cluster: e, user: u}}\ncurrent-context: e\nusers:\n- name: u\n  user: {{token: x}}\n"
        ))?;
        let (bin2, kc) = (bin.clone(), kubeconfig.clone());
        let (status, lines) = tokio::task::spawn_blocking(move || measure_status(&bin2, &kc)).await??;
        let help = measure_help(&bin)?;
        server.shutdown().await?;
        anyhow::Ok((seed_time, status, lines, help))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (seed_time, status, lines, help) = result?;
    let rows = [
        Row::new(
            format!("status, {} nodes", report::grouped(node_count())),
            status.as_secs_f64() * 1000.0,
            "ms",
            Goal::AtMost(STATUS_TARGET.as_secs_f64() * 1000.0),
        )
        .note(format!(
            "median of {STATUS_RUNS}, {lines} lines printed, seeded in {:.1} s",
            seed_time.as_secs_f64()
        )),
        Row::new(
            "--help",
            help.as_secs_f64() * 1000.0,
            "ms",
            Goal::AtMost(HELP_TARGET.as_secs_f64() * 1000.0),
        )
        .note(format!("median of {HELP_RUNS}")),
    ];
    session.publish(&format!("kubectl-encrypt ({})", bin.display()), &rows)
}
