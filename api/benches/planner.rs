//! Planner and diff at cluster scale. Targets: full plan of 5,000 nodes (PodCIDRs) ≤ 20 ms;
//! conversion + plan of 5,000 nodes × 30 pods (WorkloadIPs) ≤ 100 ms; diff of 5,000 peers with
//! one changed ≤ 5 ms.
//!
//! `cargo bench -p kube-encrypt-api --bench planner -- --warm-up-time 1 --measurement-time 3`
//!
//! With `KUBE_ENCRYPT_BENCH_OUT=<dir>` the medians criterion measured are also written as
//! `<dir>/planner-<KUBE_ENCRYPT_BENCH_RUN>.json`, the run file of `make bench` (its schema:
//! `kube_encrypt_tests::bench_report::schema`, which this crate cannot depend on).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use criterion::{criterion_group, Criterion};
use serde_json::{json, Value};

use kube_encrypt_api::crd::{EncryptionConfigSpec, IPPoolSpec, RouteSource};
use kube_encrypt_api::dataplane::{Dataplane, RouteKind};
use kube_encrypt_api::diff::diff;
use kube_encrypt_api::fixtures::cluster;
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::{node_views, workload_ips_by_node, NodeView};
use kube_encrypt_api::plan::{plan, LocalFacts, NodePlan, Snapshot};

const NODES: usize = 5_000;
const PODS_PER_NODE: usize = 30;
const OWN: &str = "node-02500";
/// (benchmark id, target in ms).
const TARGETS: [(&str, f64); 3] = [
    (PLAN_POD_CIDRS, 20.0),
    (PLAN_WORKLOAD_IPS, 100.0),
    (DIFF_ONE, 5.0),
];
const PLAN_POD_CIDRS: &str = "plan 5000 nodes, PodCIDRs";
const PLAN_WORKLOAD_IPS: &str = "convert + plan 5000 nodes x 30 pods, WorkloadIPs";
const DIFF_ONE: &str = "diff 5000 peers, one changed";

fn plan_for(config: &EncryptionConfigSpec, views: &[NodeView]) -> NodePlan {
    let pools = [IPPoolSpec::test("10.0.0.0/8")];
    let snapshot = Snapshot {
        config: Some(config),
        pools: &pools,
        nodes: views,
    };
    plan(&snapshot, &LocalFacts::test(OWN)).expect("plan")
}

fn peers(plan: &NodePlan) -> usize {
    plan.dataplane.family(Family::V4).peers.len()
}

fn plan_pod_cidrs(c: &mut Criterion) {
    let generated = cluster(NODES, 0);
    let views = node_views(&generated.nodes, None);
    let config = EncryptionConfigSpec::test();
    assert_eq!(peers(&plan_for(&config, &views)), NODES - 1);
    c.bench_function(PLAN_POD_CIDRS, |b| {
        b.iter(|| plan_for(black_box(&config), black_box(&views)))
    });
}

fn plan_workload_ips(c: &mut Criterion) {
    let generated = cluster(NODES, PODS_PER_NODE);
    let config = EncryptionConfigSpec::test().with_route_source(RouteSource::WorkloadIps);
    let convert_and_plan = || {
        let ips = workload_ips_by_node(black_box(&generated.pods));
        let views = node_views(black_box(&generated.nodes), Some(&ips));
        plan_for(&config, &views)
    };
    let first = convert_and_plan();
    assert_eq!(peers(&first), NODES - 1);
    // Every peer's pod is routed through the device (each route also has an unreachable
    // fallback under it, so the table holds more than one route per pod).
    let through_device = first
        .dataplane
        .family(Family::V4)
        .routes
        .iter()
        .filter(|r| matches!(r.kind, RouteKind::Device(_)))
        .count();
    assert!(through_device >= (NODES - 1) * PODS_PER_NODE);
    c.bench_function(PLAN_WORKLOAD_IPS, |b| b.iter(convert_and_plan));
}

fn diff_one_changed(c: &mut Criterion) {
    let generated = cluster(NODES, 0);
    let views = node_views(&generated.nodes, None);
    let desired: Dataplane = plan_for(&EncryptionConfigSpec::test(), &views).dataplane;
    let mut observed = desired.clone();
    let peer = &mut observed.families.v4.peers[NODES / 2];
    peer.endpoint.set_port(51999);
    assert_eq!(diff(&desired, &observed).len(), 1);
    c.bench_function(DIFF_ONE, |b| {
        b.iter(|| diff(black_box(&desired), black_box(&observed)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).output_directory(&criterion_dir());
    targets = plan_pod_cidrs, plan_workload_ips, diff_one_changed
}

/// Where criterion keeps its results: `<target dir>/criterion`, as it does by default.
fn criterion_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target tmp dir is inside the target dir")
        .join("criterion")
}

fn main() {
    let started = SystemTime::now();
    let load_before = load();
    benches();
    Criterion::default().configure_from_args().final_summary();
    if let Some(dir) = std::env::var_os("KUBE_ENCRYPT_BENCH_OUT") {
        let rows = TARGETS
            .iter()
            .map(|(id, target)| row(id, *target, started))
            .collect::<Result<Vec<_>, String>>()
            .unwrap_or_else(|e| panic!("{e}"));
        write_run_file(Path::new(&dir), rows, load_before);
    }
}

/// The median criterion measured for `id` in this run (its `new/estimates.json`), in ms.
fn median_ms(id: &str, since: SystemTime) -> Result<f64, String> {
    let entries = std::fs::read_dir(criterion_dir()).map_err(|e| format!("{e}"))?;
    for dir in entries.filter_map(Result::ok).map(|e| e.path().join("new")) {
        let Some(meta) = read_json(&dir.join("benchmark.json")) else {
            continue;
        };
        if meta["full_id"] != id {
            continue;
        }
        let estimates = dir.join("estimates.json");
        let fresh = std::fs::metadata(&estimates)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since);
        if !fresh {
            return Err(format!("{id}: not measured in this run (filtered out?)"));
        }
        let ns = read_json(&estimates).and_then(|e| e["median"]["point_estimate"].as_f64());
        return ns
            .map(|ns| ns / 1e6)
            .ok_or_else(|| format!("{}: no median", estimates.display()));
    }
    Err(format!(
        "{id}: no criterion result under {}",
        criterion_dir().display()
    ))
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn row(id: &str, target_ms: f64, since: SystemTime) -> Result<Value, String> {
    Ok(json!({
        "name": id, "value": median_ms(id, since)?, "unit": "ms", "goal": "at_most",
        "target": target_ms, "baseline": null, "note": "criterion median, 10 samples"
    }))
}

fn load() -> (Vec<f64>, String) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().collect();
    let averages = fields
        .iter()
        .take(3)
        .filter_map(|f| f.parse().ok())
        .collect();
    (averages, fields.get(3).unwrap_or(&"").to_string())
}

fn first_number(path: &str, prefix: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn write_run_file(dir: &Path, rows: Vec<Value>, (load_before, procs_before): (Vec<f64>, String)) {
    let (load_after, procs_after) = load();
    let run: u32 = std::env::var("KUBE_ENCRYPT_BENCH_RUN")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let file = json!({
        "schema": 1, "bench": "planner", "run": run,
        "title": "planner and diff at 5,000 nodes (criterion)", "params": {},
        "date": jiff::Timestamp::now().round(jiff::Unit::Second).expect("rounds").to_string(),
        "machine": {
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "kernel": kernel.trim(), "memory_mib": first_number("/proc/meminfo", "MemTotal:") / 1024,
            "load_before": load_before, "load_after": load_after,
            "procs_before": procs_before, "procs_after": procs_after,
        },
        "rows": rows,
    });
    let path = dir.join(format!("planner-{run}.json"));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, serde_json::to_string_pretty(&file).expect("json")))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("written: {}", path.display());
}
