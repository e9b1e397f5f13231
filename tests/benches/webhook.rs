//! The admission webhook over TLS with keep-alive on loopback, side by side with a bare
//! hyper + rustls server answering a fixed body, in the same run: latency at a steady
//! 1,000 requests/s (p99 target ≤ 2 ms) and the most requests/s each answers (webhook ≥ 0.8 ×
//! bare), then the webhook's RSS with 1,000 IPPools in its caches (≤ 30 MiB).
//!
//! The real `kube-encrypt-webhook` binary runs as its own process against the API emulator
//! (in this process), with `--self-signed`; the bare server is this bench binary re-run with
//! `--serve-bare`, also its own process. Each review is an EncryptionConfig UPDATE judged
//! against the cached pools: 4 pools for latency and throughput (a typical cluster; the
//! median of three alternating rounds per server), then 1,000 pools for RSS, with the
//! throughput at 1,000 pools shown for information (the NAT rule reads every pool per
//! review). Missing a target prints MISSED; only a broken function fails the bench.
//!
//! Run: `cargo build --release -p kube-encrypt-webhook && cargo bench -p kube-encrypt-tests --bench webhook`
//! (`KEB_WEBHOOK_BIN` overrides the binary's path).
//!
//! `--review-cost N` judges the same review `N` times in process, without the network, and
//! exits: under callgrind the instruction count is repeatable whatever else the machine
//! does, so a change to decoding, the rules or the answer can be weighed exactly (run it with
//! 1 and with 1,001; the difference / 1,000 is the cost of one review). The bench binary is
//! the path `cargo bench --no-run -p kube-encrypt-tests --bench webhook` prints.

#[allow(dead_code)]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::PostParams;
use kube::Api;
use kube_encrypt_webhook::tls::self_signed::Authority;
use serde_json::json;
use tokio::net::TcpStream;

use common::cluster::{create_config, create_pool, ipv4_config, Emulator};
use common::process::Spawned;
use common::report::{Goal, Row, Session};
use kube_encrypt_tests::procfs;

const FEW_POOLS: usize = 4;
const RATE: u32 = 1_000;
const RATE_CONNECTIONS: u32 = 4;
const THROUGHPUT_CONNECTIONS: usize = 16;

/// Pools cached for the RSS figure: 1,000, or 50 in a tiny run.
fn pool_count() -> usize {
    common::report::sized(1_000, 50)
}
/// Seconds at the steady rate: 10, or 1 in a tiny run.
fn rate_seconds() -> u64 {
    common::report::sized(10, 1)
}
/// Seconds of each throughput round: 4, or 1 in a tiny run.
fn throughput_seconds() -> u64 {
    common::report::sized(4, 1)
}
/// Alternating rounds per server: 3, or 1 in a tiny run.
fn rounds() -> usize {
    common::report::sized(3, 1)
}
const P99_TARGET_MS: f64 = 2.0;
const RATIO_TARGET: f64 = 0.8;
const RSS_TARGET_MIB: f64 = 30.0;
const READY_LIMIT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--review-cost") {
        return review_cost::run(&args[2..]);
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if args.get(1).map(String::as_str) == Some("--serve-bare") {
        return match runtime.block_on(bare::serve(&args[2..])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bare server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let session = Session::begin("webhook");
    match runtime.block_on(bench(session)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webhook bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The webhook binary: `KEB_WEBHOOK_BIN`, else next to the lab binary of this build.
fn webhook_binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("KEB_WEBHOOK_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            Path::new(env!("CARGO_BIN_EXE_kube-encrypt-lab")).with_file_name("kube-encrypt-webhook")
        }
    };
    if !path.is_file() {
        bail!(
            "webhook binary {} not found: build it first with `cargo build --release -p kube-encrypt-webhook` \
             (same CARGO_TARGET_DIR as the bench), or set KEB_WEBHOOK_BIN",
            path.display()
        );
    }
    Ok(path)
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn bench(session: Session) -> anyhow::Result<()> {
    let binary = webhook_binary()?;
    let scratch = Scratch(std::env::temp_dir().join(format!("keb-webhook-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)?;
    let emulator = Emulator::start("127.0.0.1:0".parse()?, &scratch.0).await?;
    emulator.install_crds().await?;
    let namespaces: Api<Namespace> = Api::all(emulator.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "kube-encrypt"}}))?,
        )
        .await?;
    create_config(&emulator.client, &ipv4_config()).await?;
    create_pools(&emulator, 0..FEW_POOLS).await?;

    let webhook_addr = free_addr()?;
    let mut webhook = start_webhook(&binary, webhook_addr, &emulator.kubeconfig, &scratch.0)?;
    let ca = webhook_ca(&emulator).await?;
    wait_ready(webhook_addr, &ca, &mut webhook).await?;

    let bare_ca = Authority::generate()?;
    let issued = bare_ca.issue(&["127.0.0.1".to_owned()])?;
    let (cert, key) = (scratch.0.join("bare.crt"), scratch.0.join("bare.key"));
    std::fs::write(&cert, &issued.cert_pem)?;
    std::fs::write(&key, &issued.key_pem)?;
    let bare_addr = free_addr()?;
    let mut bare = Spawned::start_logged(
        "bare server",
        Command::new(std::env::current_exe()?)
            .args(["--serve-bare", &bare_addr.to_string()])
            .arg(&cert)
            .arg(&key),
        &scratch.0.join("bare.log"),
    )?;
    wait_ready(bare_addr, bare_ca.cert_pem(), &mut bare).await?;

    let review = review_body();
    let webhook_target = Target {
        addr: webhook_addr,
        ca: ca.clone(),
        body: review.clone(),
        pid: webhook.pid(),
    };
    let bare_target = Target {
        addr: bare_addr,
        ca: bare_ca.cert_pem().to_owned(),
        body: review,
        pid: bare.pid(),
    };
    check_answer(&webhook_target).await?;

    let webhook_latency = steady_rate(&webhook_target).await?;
    let bare_latency = steady_rate(&bare_target).await?;
    let (mut webhook_rounds, mut bare_rounds) = (Vec::new(), Vec::new());
    for _ in 0..rounds() {
        bare_rounds.push(throughput(&bare_target).await?);
        webhook_rounds.push(throughput(&webhook_target).await?);
    }
    let (webhook_rates, bare_rates) = (Round::rates(&webhook_rounds), Round::rates(&bare_rounds));
    let (webhook_rate, bare_rate) = (common::median(&webhook_rates), common::median(&bare_rates));
    let (webhook_cpu, bare_cpu) = (
        Round::median_cpu(&webhook_rounds),
        Round::median_cpu(&bare_rounds),
    );

    create_pools(&emulator, FEW_POOLS..pool_count()).await?;
    wait_cached(&webhook_target, &pool_cidr(pool_count() - 1)).await?;
    let (rss_cached, _) = procfs::rss_kib(webhook.pid())?;
    let many = throughput(&webhook_target).await?;
    webhook.check_alive()?;
    bare.check_alive()?;
    let (rss_after, hwm) = procfs::rss_kib(webhook.pid())?;

    let rows = vec![
        Row::new("p99 at 1,000 req/s", webhook_latency.p99, "ms", Goal::AtMost(P99_TARGET_MS))
            .baseline(bare_latency.p99)
            .note(format!("p50 {:.3} ms (bare {:.3} ms), max {:.2} ms; baseline: bare hyper + rustls server",
                webhook_latency.p50, bare_latency.p50, webhook_latency.max)),
        Row::new("throughput", webhook_rate, "req/s", Goal::Info)
            .baseline(bare_rate)
            .note(format!("median of {} rounds {} (bare {})", rounds(), rates(&webhook_rates), rates(&bare_rates))),
        Row::new("throughput webhook / bare", webhook_rate / bare_rate, "x", Goal::AtLeast(RATIO_TARGET))
            .note(format!("{FEW_POOLS} pools cached, {THROUGHPUT_CONNECTIONS} keep-alive connections, {} s per round; client and servers share the machine's cores", throughput_seconds())),
        Row::new("server CPU per review", webhook_cpu, "µs", Goal::Info)
            .baseline(bare_cpu)
            .note("user + system time of the server process during the throughput rounds, per request (median round)"),
        Row::new(format!("throughput, {} pools", common::report::grouped(pool_count())), many.rate, "req/s", Goal::Info)
            .baseline(bare_rate)
            .note(format!("server CPU per review {:.1} µs", many.cpu_per_request)),
        Row::new(format!("RSS with {} pools cached", common::report::grouped(pool_count())), kib_to_mib(rss_after), "MiB", Goal::AtMost(RSS_TARGET_MIB))
            .note(format!("before load {:.1} MiB, peak {:.1} MiB", kib_to_mib(rss_cached), kib_to_mib(hwm))),
    ];
    session.publish(
        &format!(
            "kube-encrypt-webhook over TLS on loopback (keep-alive); load average {}",
            common::load_average()
        ),
        &rows,
    )?;
    drop(webhook);
    drop(bare);
    emulator.stop().await?;
    Ok(())
}

/// Disjoint /26s of 198.18.0.0/15.
fn pool_cidr(i: usize) -> String {
    format!(
        "198.{}.{}.{}/26",
        18 + i / 1024,
        (i / 4) % 256,
        (i % 4) * 64
    )
}

async fn create_pools(emulator: &Emulator, range: std::ops::Range<usize>) -> anyhow::Result<()> {
    for i in range {
        create_pool(&emulator.client, &format!("pool-{i:04}"), &pool_cidr(i)).await?;
    }
    Ok(())
}

/// Waits until the webhook's cache holds the pool with `cidr`: a new pool on that range is
/// then refused (pool-overlap).
async fn wait_cached(target: &Target, cidr: &str) -> anyhow::Result<()> {
    let gvk = json!({"group": "kube-encrypt.dev", "version": "v1alpha1", "kind": "IPPool"});
    let probe = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "probe", "kind": gvk, "name": "probe", "operation": "CREATE",
            "object": {"metadata": {"name": "probe"}, "spec": {"cidr": cidr, "natOutgoing": true}}}
    });
    let body = Bytes::from(serde_json::to_vec(&probe)?);
    let mut conn = connect(target.addr, &target.ca).await?;
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        let (_, answer) = request(&mut conn, "POST", "/validate", body.clone()).await?;
        let answer: serde_json::Value = serde_json::from_slice(&answer)?;
        if answer["response"]["allowed"] == false {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the webhook did not cache pool {cidr} within {READY_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rates(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn start_webhook(
    binary: &Path,
    addr: SocketAddr,
    kubeconfig: &Path,
    dir: &Path,
) -> anyhow::Result<Spawned> {
    let mut command = Command::new(binary);
    command
        .args([
            "--self-signed",
            "--self-signed-san",
            "127.0.0.1",
            "--pod-name",
            "bench-0",
            "--listen",
        ])
        .arg(addr.to_string())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("RUST_LOG", "warn");
    Spawned::start_logged(
        "kube-encrypt-webhook",
        &mut command,
        &dir.join("webhook.log"),
    )
}

/// The self-signed CA the webhook keeps in its Secret (created at its start).
async fn webhook_ca(emulator: &Emulator) -> anyhow::Result<String> {
    let secrets: Api<Secret> = Api::namespaced(emulator.client.clone(), "kube-encrypt");
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        if let Some(secret) = secrets.get_opt("kube-encrypt-webhook-ca").await? {
            let cert = secret
                .data
                .and_then(|d| d.get("tls.crt").cloned())
                .context("CA Secret without tls.crt")?;
            return Ok(String::from_utf8(cert.0)?);
        }
        if Instant::now() > deadline {
            bail!("the webhook created no CA Secret within {READY_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for `GET /readyz` to answer 200.
async fn wait_ready(addr: SocketAddr, ca: &str, process: &mut Spawned) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        process.check_alive()?;
        if let Ok(mut conn) = connect(addr, ca).await {
            if let Ok((200, _)) = request(&mut conn, "GET", "/readyz", Bytes::new()).await {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{addr} not ready within {READY_LIMIT:?}; log:\n{}",
                process.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An EncryptionConfig UPDATE as the API server sends it (IPv4 on, MTU changed).
fn review_body() -> Bytes {
    let gvk =
        json!({"group": "kube-encrypt.dev", "version": "v1alpha1", "kind": "EncryptionConfig"});
    let gvr = json!({"group": "kube-encrypt.dev", "version": "v1alpha1", "resource": "encryptionconfigs"});
    let object = |mtu: i64| {
        json!({
            "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "EncryptionConfig",
            "metadata": {"name": "default", "uid": "7d0a", "generation": 3, "resourceVersion": "1042"},
            "spec": {"ipv4": {"enabled": true, "mtu": mtu, "port": 51820, "interfaceName": "wg-encrypt"},
                     "ipv6": {"enabled": false, "port": 51821, "interfaceName": "wg-encrypt-v6", "mtu": 0},
                     "routingTable": 51820, "routingRulePriority": 99, "firewallMark": 1048576}
        })
    };
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "5f1e2c3a-8f5e-4a43-9d59-0cfb9f3c1d77", "kind": gvk, "resource": gvr,
            "requestKind": gvk, "requestResource": gvr, "name": "default", "operation": "UPDATE",
            "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller", "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object(1400), "oldObject": object(0), "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}
        }
    });
    Bytes::from(serde_json::to_vec(&review).expect("a review serializes"))
}

/// Where the load goes.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    ca: String,
    body: Bytes,
    /// The server's process, whose CPU time a throughput round reads.
    pid: u32,
}

type Conn = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr, ca_pem: &str) -> anyhow::Result<Conn> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn request(
    conn: &mut Conn,
    method: &str,
    path: &str,
    body: Bytes,
) -> anyhow::Result<(u16, Bytes)> {
    conn.ready().await?;
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let response = conn.send_request(req).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

/// The webhook judges the review (admitted, against the 1,000 pools), so load measures work.
async fn check_answer(target: &Target) -> anyhow::Result<()> {
    let mut conn = connect(target.addr, &target.ca).await?;
    let (status, body) = request(&mut conn, "POST", "/validate", target.body.clone()).await?;
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    if status != 200 || answer["response"]["allowed"] != true {
        bail!("unexpected answer {status}: {answer}");
    }
    Ok(())
}

/// Latency percentiles, in ms.
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Sends at a steady [`RATE`] over [`RATE_CONNECTIONS`] connections for [`rate_seconds`].
/// A request that waited for the one before it counts from its scheduled time, so a stall is
/// not hidden (coordinated omission); any other counts from when it was sent, so the
/// client's timer (tokio's wheel wakes up to 1 ms late) is not charged to the server.
async fn steady_rate(target: &Target) -> anyhow::Result<Latency> {
    let interval = Duration::from_secs(1) * RATE_CONNECTIONS / RATE;
    let per_connection = rate_seconds() * u64::from(RATE / RATE_CONNECTIONS);
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for c in 0..RATE_CONNECTIONS {
        let target = target.clone();
        let offset = Duration::from_secs(1) * c / RATE;
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(target.addr, &target.ca).await?;
            let mut samples = Vec::new();
            let mut previous_done = Instant::now();
            for i in 0..per_connection {
                let due = start + offset + interval * u32::try_from(i)?;
                tokio::time::sleep_until(due.into()).await;
                let sent = if previous_done > due {
                    due
                } else {
                    Instant::now()
                };
                let (status, _) =
                    request(&mut conn, "POST", "/validate", target.body.clone()).await?;
                if status != 200 {
                    bail!("status {status} under load");
                }
                previous_done = Instant::now();
                samples.push(previous_done - sent);
            }
            anyhow::Ok(samples)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |p: f64| ms(all[((all.len() - 1) as f64 * p).round() as usize]);
    Ok(Latency {
        p50: at(0.50),
        p99: at(0.99),
        max: ms(*all.last().context("no samples")?),
    })
}

/// One throughput round: requests per second, and the server's CPU time per request.
struct Round {
    rate: f64,
    cpu_per_request: f64,
}

impl Round {
    fn rates(rounds: &[Round]) -> Vec<f64> {
        rounds.iter().map(|r| r.rate).collect()
    }

    fn median_cpu(rounds: &[Round]) -> f64 {
        common::median(&rounds.iter().map(|r| r.cpu_per_request).collect::<Vec<_>>())
    }
}

/// Requests per second answered by [`THROUGHPUT_CONNECTIONS`] connections sending back to
/// back for [`throughput_seconds`], and the server's CPU time (µs) per request.
async fn throughput(target: &Target) -> anyhow::Result<Round> {
    let cpu_before = procfs::cpu_time(target.pid)?;
    let until = Instant::now() + Duration::from_secs(throughput_seconds());
    let mut tasks = Vec::new();
    for _ in 0..THROUGHPUT_CONNECTIONS {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect(target.addr, &target.ca).await?;
            let mut done = 0u64;
            while Instant::now() < until {
                let (status, _) =
                    request(&mut conn, "POST", "/validate", target.body.clone()).await?;
                if status != 200 {
                    bail!("status {status} under load");
                }
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let elapsed = started.elapsed();
    let cpu = procfs::cpu_time(target.pid)?.saturating_sub(cpu_before);
    Ok(Round {
        rate: total as f64 / elapsed.as_secs_f64(),
        cpu_per_request: cpu.as_secs_f64() * 1e6 / total.max(1) as f64,
    })
}

/// The baseline: hyper + rustls answering every request with a fixed AdmissionReview after
/// reading its body, with the same TLS and HTTP settings as the webhook.
mod bare {
    use std::convert::Infallible;
    use std::sync::Arc;

    use anyhow::Context;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use kube_encrypt_webhook::tls::{certified_key, server_config, CertStore};

    const ANSWER: &[u8] = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"5f1e2c3a-8f5e-4a43-9d59-0cfb9f3c1d77","allowed":true,"status":{}}}"#;

    /// `ADDR CERT KEY`: serves until killed.
    pub async fn serve(args: &[String]) -> anyhow::Result<()> {
        let [addr, cert, key] = args else {
            anyhow::bail!("usage: --serve-bare ADDR CERT KEY");
        };
        let key = certified_key(&std::fs::read(cert)?, &std::fs::read(key)?)?;
        let tls =
            tokio_rustls::TlsAcceptor::from(Arc::new(server_config(Arc::new(CertStore::new(key)))));
        let listener = tokio::net::TcpListener::bind(addr).await.context("bind")?;
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            ANSWER,
                        ))))
                    },
                );
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

/// The webhook's own work per review, in process (see the module doc).
mod review_cost {
    use std::process::ExitCode;
    use std::sync::Arc;

    use kube_encrypt_api::crd::{EncryptionConfig, IPPool, IPPoolSpec};
    use kube_encrypt_webhook::admission::Admission;
    use kube_encrypt_webhook::cluster::{ClusterSnapshot, SharedCluster};
    use kube_encrypt_webhook::metrics::Metrics;
    use kube_encrypt_webhook::policy::reload::PolicyHandle;
    use kube_encrypt_webhook::policy::Policy;

    use super::{pool_cidr, review_body, FEW_POOLS};

    /// `N`: judges the bench's review N times.
    pub fn run(args: &[String]) -> ExitCode {
        let Some(Ok(reviews)) = args.first().map(|n| n.parse::<usize>()) else {
            eprintln!("usage: --review-cost N (reviews to judge)");
            return ExitCode::FAILURE;
        };
        let body = review_body();
        let admission = admission(&body);
        let mut answered = 0;
        for _ in 0..reviews {
            match admission.review(std::hint::black_box(&body)) {
                Ok(answer) => answered += answer.len(),
                Err(e) => {
                    eprintln!("the review got no answer: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        println!(
            "{reviews} reviews of {} bytes, answers of {} bytes",
            body.len(),
            answered / reviews.max(1)
        );
        ExitCode::SUCCESS
    }

    /// The handler over the bench's cluster: the review's new config as the cluster's, and
    /// the first pools the bench creates (with NAT outgoing).
    fn admission(body: &[u8]) -> Admission {
        let review: serde_json::Value = serde_json::from_slice(body).expect("the bench's review");
        let config: EncryptionConfig = serde_json::from_value(review["request"]["object"].clone())
            .expect("the review's config");
        let pools: Vec<IPPool> = (0..FEW_POOLS)
            .map(|i| IPPool::new(&format!("pool-{i:04}"), IPPoolSpec::test(&pool_cidr(i))))
            .collect();
        Admission::new(
            Arc::new(SharedCluster::fixed(ClusterSnapshot::of(
                [Arc::new(config)],
                &pools,
            ))),
            Arc::new(PolicyHandle::new(Policy::default())),
            Arc::new(Metrics::new()),
        )
    }
}
