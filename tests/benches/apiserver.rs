//! Emulator throughput and watch latency: 5,000 Nodes created by concurrent POSTs while 10
//! watchers (plain HTTP clients decoding every event) follow them. Targets: creation within 3 s, watch delivery p99 within 50 ms
//! (measured from the creating request's response, i.e. after the write committed, to
//! each watcher's receipt). Run with `cargo bench -p kube-encrypt-tests --bench apiserver`.

// The report rows of the other benches (see plugin.rs).
#[path = "common/report.rs"]
#[allow(dead_code)]
mod report;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Node;
use kube::api::PostParams;
use kube::{Api, Client, Config, ResourceExt};
use kube_encrypt_tests::apiserver::{start, ServerConfig};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use report::{Goal, Row, Session};

/// Nodes created: 5,000, or 50 in a tiny run.
fn node_count() -> usize {
    report::sized(5_000, 50)
}
const WATCHERS: usize = 10;
const IN_FLIGHT: usize = 64;
const CREATE_TARGET: Duration = Duration::from_secs(3);
const P99_TARGET: Duration = Duration::from_millis(50);
const LIMIT: Duration = Duration::from_secs(120);

fn node(i: usize) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("node-{i:05}"), "labels": {"kubernetes.io/hostname": format!("node-{i:05}")}},
        "spec": {"podCIDR": format!("198.18.{}.{}/30", i / 64, (i % 64) * 4)},
        "status": {"addresses": [{"type": "InternalIP", "address": format!("198.19.{}.{}", i / 250, i % 250 + 1)}]}
    }))
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[derive(serde::Deserialize)]
struct WatchLine<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    object: Object<'a>,
}

#[derive(serde::Deserialize)]
struct Object<'a> {
    #[serde(borrow)]
    metadata: Metadata<'a>,
}

#[derive(serde::Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    name: &'a str,
}

/// A plain HTTP watcher: one connection, reads the chunked JSON lines, decodes each.
async fn watcher(addr: SocketAddr, seen: Arc<Mutex<Vec<(String, Instant)>>>) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/api/v1/nodes?watch=true&resourceVersion=0&timeoutSeconds=290")
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let mut body = sender.send_request(req).await?.into_body();
    let (mut buf, mut count) = (Vec::new(), 0);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let now = Instant::now();
        buf.extend_from_slice(&data);
        let mut start = 0;
        while let Some(end) = buf[start..].iter().position(|b| *b == b'\n') {
            let line: WatchLine = serde_json::from_slice(&buf[start..start + end])?;
            if line.kind == "ADDED" {
                seen.lock()
                    .await
                    .push((line.object.metadata.name.to_string(), now));
                count += 1;
            }
            start += end + 1;
        }
        buf.drain(..start);
        if count == node_count() {
            return Ok(());
        }
    }
    anyhow::bail!("the watch ended after {count} events")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let session = Session::begin("apiserver");
    let dir = std::env::temp_dir().join(format!(
        "kube-encrypt-apiserver-bench-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let server = start(ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        state_dir: dir.clone(),
    })
    .await?;
    let client = Client::try_from(Config::new(format!("http://{}", server.addr()).parse()?))?;
    let nodes: Api<Node> = Api::all(client.clone());

    let mut watch_tasks = Vec::new();
    let mut receipts = Vec::new();
    for _ in 0..WATCHERS {
        let seen = Arc::new(Mutex::new(Vec::with_capacity(node_count())));
        receipts.push(seen.clone());
        watch_tasks.push(tokio::spawn(watcher(server.addr(), seen)));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let timings: HashMap<String, (Instant, Instant)> = futures::stream::iter(0..node_count())
        .map(|i| {
            let nodes = nodes.clone();
            async move {
                let sent = Instant::now();
                let created = nodes
                    .create(&PostParams::default(), &node(i))
                    .await
                    .expect("creating a node");
                (created.name_any(), (sent, Instant::now()))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let create_time = started.elapsed();

    for task in watch_tasks {
        tokio::time::timeout(LIMIT, task)
            .await
            .expect("watchers finish")??;
    }
    let (mut latencies, mut from_send) = (Vec::with_capacity(node_count() * WATCHERS), Vec::new());
    for seen in receipts {
        for (name, at) in seen.lock().await.iter() {
            let (sent, committed) = timings[name];
            latencies.push(at.saturating_duration_since(committed));
            from_send.push(at.saturating_duration_since(sent));
        }
    }
    latencies.sort();
    from_send.sort();
    let (p50, p99, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        *latencies.last().unwrap(),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rows = [
        Row::new(
            format!(
                "create {} Nodes ({IN_FLIGHT} in flight)",
                report::grouped(node_count())
            ),
            create_time.as_secs_f64(),
            "s",
            Goal::AtMost(CREATE_TARGET.as_secs_f64()),
        )
        .note(format!(
            "{:.0} creates/s",
            node_count() as f64 / create_time.as_secs_f64()
        )),
        Row::new(
            format!("watch delivery p99, {WATCHERS} watchers"),
            ms(p99),
            "ms",
            Goal::AtMost(ms(P99_TARGET)),
        )
        .note(format!(
            "{} events; p50 {:.1} ms, max {:.1} ms, from the committed write",
            latencies.len(),
            ms(p50),
            ms(max)
        )),
        Row::new(
            "watch delivery p99 from sending the POST",
            ms(percentile(&from_send, 0.99)),
            "ms",
            Goal::Info,
        )
        .note(format!(
            "includes queueing behind {IN_FLIGHT} in flight; p50 {:.1} ms",
            ms(percentile(&from_send, 0.5))
        )),
    ];
    session.publish("API emulator: creates and watch delivery", &rows)?;
    server.shutdown().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
