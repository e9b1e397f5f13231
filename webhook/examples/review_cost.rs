//! The webhook's own work per AdmissionReview, in process and without the network: judges the
//! webhook bench's review (an EncryptionConfig UPDATE against 4 cached pools) `N` times. Under
//! callgrind the instruction count is repeatable whatever else the machine does, so a change
//! to decoding, the rules or the answer can be weighed exactly:
//!
//! ```text
//! cargo build --release -p kube-encrypt-webhook --example review_cost
//! valgrind --tool=callgrind target/release/examples/review_cost 1     # setup only
//! valgrind --tool=callgrind target/release/examples/review_cost 1001  # setup + 1,000 reviews
//! ```
//!
//! (the difference of the two totals / 1,000 = instructions per review).

use std::sync::Arc;

use kube_encrypt_api::crd::{EncryptionConfig, EncryptionConfigSpec, IPPool, IPPoolSpec};
use kube_encrypt_webhook::admission::Admission;
use kube_encrypt_webhook::cluster::{ClusterSnapshot, SharedCluster};
use kube_encrypt_webhook::metrics::Metrics;
use kube_encrypt_webhook::policy::reload::PolicyHandle;
use kube_encrypt_webhook::policy::Policy;
use serde_json::{json, Value};

fn main() {
    let reviews: usize = match std::env::args().nth(1).map(|n| n.parse()) {
        None => 1_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("usage: review_cost [REVIEWS]: {e}");
            std::process::exit(2);
        }
    };
    let body = serde_json::to_vec(&review()).expect("a review serializes");
    let admission = admission();
    let mut answered = 0;
    for _ in 0..reviews {
        let answer = admission.review(std::hint::black_box(&body));
        answered += answer.expect("the review is answered").len();
    }
    println!(
        "{reviews} reviews of {} bytes, answers of {} bytes",
        body.len(),
        answered / reviews.max(1)
    );
}

/// The webhook's handler over a fixed cluster: the `default` config and 4 pools with NAT.
fn admission() -> Admission {
    let spec: EncryptionConfigSpec =
        serde_json::from_value(config(1400)["spec"].clone()).expect("a config spec");
    let config = Arc::new(EncryptionConfig::new("default", spec));
    let pools: Vec<IPPool> = (0..4)
        .map(|i| {
            let spec: IPPoolSpec = serde_json::from_value(
                json!({"cidr": format!("198.18.{i}.0/26"), "natOutgoing": true}),
            )
            .expect("a pool spec");
            IPPool::new(&format!("pool-{i:04}"), spec)
        })
        .collect();
    Admission::new(
        Arc::new(SharedCluster::fixed(ClusterSnapshot::of([config], &pools))),
        Arc::new(PolicyHandle::new(Policy::default())),
        Arc::new(Metrics::new()),
    )
}

/// The EncryptionConfig of the webhook bench's review, with this IPv4 MTU.
fn config(mtu: i64) -> Value {
    json!({
        "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "EncryptionConfig",
        "metadata": {"name": "default", "uid": "7d0a", "generation": 3, "resourceVersion": "1042"},
        "spec": {"ipv4": {"enabled": true, "mtu": mtu, "port": 51820, "interfaceName": "wg-encrypt"},
                 "ipv6": {"enabled": false, "port": 51821, "interfaceName": "wg-encrypt-v6", "mtu": 0},
                 "routingTable": 51820, "routingRulePriority": 99, "firewallMark": 1048576}
    })
}

/// The webhook bench's review: an UPDATE of the config (MTU 0 → 1400) by a GitOps controller.
fn review() -> Value {
    let gvk =
        json!({"group": "kube-encrypt.dev", "version": "v1alpha1", "kind": "EncryptionConfig"});
    let gvr = json!({"group": "kube-encrypt.dev", "version": "v1alpha1", "resource": "encryptionconfigs"});
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "5f1e2c3a-8f5e-4a43-9d59-0cfb9f3c1d77", "kind": gvk, "resource": gvr,
            "requestKind": gvk, "requestResource": gvr, "name": "default", "operation": "UPDATE",
            "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller", "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": config(1400), "oldObject": config(0), "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}
        }
    })
}
