//! Planner and diff at cluster scale. Targets: full plan of 5,000 nodes (PodCIDRs) ≤ 20 ms;
//! conversion + plan of 5,000 nodes × 30 pods (WorkloadIPs) ≤ 100 ms; diff of 5,000 peers with
//! one changed ≤ 5 ms.
//!
//! `cargo bench -p kube-encrypt-api --bench planner -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

use kube_encrypt_api::crd::{EncryptionConfigSpec, IPPoolSpec, RouteSource};
use kube_encrypt_api::dataplane::Dataplane;
use kube_encrypt_api::diff::diff;
use kube_encrypt_api::fixtures::cluster;
use kube_encrypt_api::net::Family;
use kube_encrypt_api::node::{node_views, workload_ips_by_node, NodeView};
use kube_encrypt_api::plan::{plan, LocalFacts, NodePlan, Snapshot};

const NODES: usize = 5_000;
const PODS_PER_NODE: usize = 30;
const OWN: &str = "node-02500";

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
    c.bench_function("plan 5000 nodes, PodCIDRs", |b| {
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
    let routes = first.dataplane.family(Family::V4).routes.len();
    assert_eq!(routes, NODES * PODS_PER_NODE + NODES - 1);
    c.bench_function("convert + plan 5000 nodes x 30 pods, WorkloadIPs", |b| {
        b.iter(convert_and_plan)
    });
}

fn diff_one_changed(c: &mut Criterion) {
    let generated = cluster(NODES, 0);
    let views = node_views(&generated.nodes, None);
    let desired: Dataplane = plan_for(&EncryptionConfigSpec::test(), &views).dataplane;
    let mut observed = desired.clone();
    let peer = &mut observed.families.v4.peers[NODES / 2];
    peer.endpoint.set_port(51999);
    assert_eq!(diff(&desired, &observed).len(), 1);
    c.bench_function("diff 5000 peers, one changed", |b| {
        b.iter(|| diff(black_box(&desired), black_box(&observed)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = plan_pod_cidrs, plan_workload_ips, diff_one_changed
}
criterion_main!(benches);
