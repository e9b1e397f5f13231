//! The whole path from Kubernetes Nodes and Pods: conversion, then planning.

use crate::crd::{EncryptionConfigSpec, IPPoolSpec, RouteSource};
use crate::dataplane::RouteKind;
use crate::fixtures::{cluster, test_pools, TestNode, TestPod};
use crate::net::Family::V4;
use crate::node::{node_views, workload_ips_by_node};
use crate::plan::LocalFacts;

use super::{facts, peers, routes, run, strings};

#[test]
fn workload_ips_are_the_pod_ips_of_each_node() {
    let nodes = [
        TestNode::new("node-1")
            .internal_ip("192.0.2.11")
            .pod_cidr("198.18.1.0/24")
            .test_key(V4)
            .build(),
        TestNode::new("node-2")
            .internal_ip("192.0.2.12")
            .pod_cidr("198.18.2.0/24")
            .test_key(V4)
            .interface_addr(V4, "198.18.2.0")
            .build(),
        TestNode::new("node-3")
            .internal_ip("192.0.2.13")
            .test_key(V4)
            .build(),
    ];
    let pods = [
        TestPod::new("web", "node-2").ip("198.18.2.10").build(),
        TestPod::new("dual", "node-2")
            .ip("198.18.2.11")
            .ip("2001:db8:1:2::11")
            .build(),
        TestPod::new("kube-proxy", "node-2")
            .ip("192.0.2.12")
            .host_network()
            .build(),
        TestPod::new("job", "node-2")
            .ip("198.18.2.12")
            .phase("Succeeded")
            .build(),
        TestPod::new("crashed", "node-2")
            .ip("198.18.2.13")
            .phase("Failed")
            .build(),
        TestPod::new("local", "node-1").ip("198.18.1.7").build(),
        TestPod::new("vnet", "node-3").ip("198.18.3.9").build(),
    ];
    let views = node_views(&nodes, Some(&workload_ips_by_node(&pods)));
    let config = EncryptionConfigSpec::test().with_route_source(RouteSource::WorkloadIps);
    let plan = run(Some(&config), &test_pools(), &views, &facts());
    assert_eq!(
        peers(&plan, V4),
        strings(&[
            "node-2 192.0.2.12:51820 198.18.2.0/32,198.18.2.10/32,198.18.2.11/32",
            "node-3 192.0.2.13:51820 198.18.3.9/32",
        ])
    );
    assert_eq!(
        routes(&plan, V4),
        strings(&[
            "throw 198.18.1.7/32",
            "198.18.2.0/32 dev wg-encrypt",
            "198.18.2.10/32 dev wg-encrypt",
            "198.18.2.11/32 dev wg-encrypt",
            "198.18.3.9/32 dev wg-encrypt",
        ])
    );
}

#[test]
fn a_generated_cluster_plans_every_other_node() {
    let generated = cluster(300, 2);
    let rows = [(RouteSource::PodCidrs, 1), (RouteSource::WorkloadIps, 3)];
    for (source, per_peer) in rows {
        let pods =
            (source == RouteSource::WorkloadIps).then(|| workload_ips_by_node(&generated.pods));
        let views = node_views(&generated.nodes, pods.as_ref());
        let config = EncryptionConfigSpec::test().with_route_source(source);
        let pools = [IPPoolSpec::test("10.0.0.0/8")];
        let plan = run(
            Some(&config),
            &pools,
            &views,
            &LocalFacts::test("node-00007"),
        );
        let dp = plan.dataplane.family(V4);
        assert_eq!(dp.peers.len(), 299, "{source:?}");
        assert!(
            dp.peers.iter().all(|p| p.allowed_ips.len() == per_peer),
            "{source:?}"
        );
        let thrown = dp
            .routes
            .iter()
            .filter(|r| r.kind == RouteKind::Throw)
            .count();
        assert_eq!(
            thrown,
            if per_peer == 1 { 1 } else { 2 },
            "{source:?}: own destinations"
        );
        assert_eq!(dp.routes.len(), thrown + 2 * 299 * per_peer, "{source:?}");
        assert!(
            plan.skipped.is_empty() && plan.problems.is_empty(),
            "{source:?}"
        );
    }
}
