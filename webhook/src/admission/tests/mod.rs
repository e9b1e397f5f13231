//! Handler tests: AdmissionReview fixtures built like the API server sends them, for every rule
//! and operation (table rows), and bounded property-style loops of hostile bodies.

mod answer;
mod decode;
mod fuzz;
mod rules;
mod skim;

use std::sync::Arc;

use kube_encrypt_api::crd::{EncryptionConfig, IPPool, IPPoolSpec};
use serde_json::{json, Value};

use super::Admission;
use crate::cluster::{ClusterSnapshot, SharedCluster};
use crate::metrics::Metrics;
use crate::policy::reload::PolicyHandle;
use crate::policy::Policy;

/// The cluster the webhook's caches hold.
#[derive(Clone, Default)]
struct Cluster {
    config: Option<Value>,
    pools: Vec<(String, IPPoolSpec)>,
}

impl Cluster {
    fn new() -> Self {
        Self::default()
    }

    /// The `default` config with this spec (JSON, defaults filled in like the API server).
    fn config(mut self, spec: Value) -> Self {
        self.config = Some(spec);
        self
    }

    fn pool(mut self, name: &str, spec: IPPoolSpec) -> Self {
        self.pools.push((name.into(), spec));
        self
    }

    fn snapshot(&self) -> ClusterSnapshot {
        let config = self.config.clone().map(|spec| {
            Arc::new(EncryptionConfig::new(
                "default",
                serde_json::from_value(spec).unwrap(),
            ))
        });
        let pools: Vec<IPPool> = self
            .pools
            .iter()
            .map(|(name, spec)| IPPool::new(name, spec.clone()))
            .collect();
        ClusterSnapshot::of(config, &pools)
    }

    fn admission(&self, policy: Policy) -> (Admission, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let admission = Admission::new(
            Arc::new(SharedCluster::fixed(self.snapshot())),
            Arc::new(PolicyHandle::new(policy)),
            metrics.clone(),
        );
        (admission, metrics)
    }
}

/// An AdmissionReview request as the API server sends it.
#[derive(Clone)]
struct Review {
    kind: &'static str,
    resource: &'static str,
    name: String,
    operation: &'static str,
    object: Option<Value>,
    old_object: Option<Value>,
    dry_run: bool,
    sub_resource: Option<&'static str>,
    username: String,
    groups: Vec<String>,
}

impl Review {
    fn of(kind: &'static str, resource: &'static str, operation: &'static str, name: &str) -> Self {
        Self {
            kind,
            resource,
            name: name.into(),
            operation,
            object: None,
            old_object: None,
            dry_run: false,
            sub_resource: None,
            username: "kubernetes-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    fn create_config(name: &str, spec: Value) -> Self {
        Self::of("EncryptionConfig", "encryptionconfigs", "CREATE", name)
            .object(config_object(name, spec))
    }

    fn update_config(old: Value, new: Value) -> Self {
        Self::of("EncryptionConfig", "encryptionconfigs", "UPDATE", "default")
            .object(config_object("default", new))
            .old(config_object("default", old))
    }

    fn create_pool(name: &str, spec: IPPoolSpec) -> Self {
        Self::of("IPPool", "ippools", "CREATE", name).object(pool_object(name, &spec))
    }

    fn update_pool(name: &str, old: IPPoolSpec, new: IPPoolSpec) -> Self {
        Self::of("IPPool", "ippools", "UPDATE", name)
            .object(pool_object(name, &new))
            .old(pool_object(name, &old))
    }

    fn delete_pool(name: &str, old: IPPoolSpec) -> Self {
        Self::of("IPPool", "ippools", "DELETE", name).old(pool_object(name, &old))
    }

    fn object(mut self, object: Value) -> Self {
        self.object = Some(object);
        self
    }

    fn old(mut self, object: Value) -> Self {
        self.old_object = Some(object);
        self
    }

    fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    fn sub_resource(mut self, sub: &'static str) -> Self {
        self.sub_resource = Some(sub);
        self
    }

    fn by(mut self, username: &str, groups: &[&str]) -> Self {
        self.username = username.into();
        self.groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    fn json(&self) -> Value {
        let gvk = json!({"group": "kube-encrypt.dev", "version": "v1alpha1", "kind": self.kind});
        let gvr =
            json!({"group": "kube-encrypt.dev", "version": "v1alpha1", "resource": self.resource});
        let mut request = json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": self.name,
            "operation": self.operation,
            "userInfo": {"username": self.username, "uid": "014fbff9a07c", "groups": self.groups},
            "object": self.object,
            "oldObject": self.old_object,
            "dryRun": self.dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        });
        if let Some(sub) = self.sub_resource {
            request["subResource"] = json!(sub);
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
    }

    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.json()).unwrap()
    }
}

fn config_object(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "EncryptionConfig",
        "metadata": {"name": name, "uid": "b5d8", "generation": 2, "managedFields": [{"manager": "kubectl"}]},
        "spec": spec,
    })
}

fn pool_object(name: &str, spec: &IPPoolSpec) -> Value {
    json!({
        "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "IPPool",
        "metadata": {"name": name, "labels": {"team": "net"}},
        "spec": spec,
    })
}

/// The answer to `review`, checked to be a well-formed response to it.
fn answer(admission: &Admission, review: &Review) -> Value {
    let body = admission
        .review(&review.bytes())
        .expect("a review gets an answer");
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], review.json()["request"]["uid"]);
    answer["response"].clone()
}

fn v6_pool() -> IPPoolSpec {
    IPPoolSpec::test("2001:db8:1::/48")
}

fn v4_pool() -> IPPoolSpec {
    IPPoolSpec::test("198.18.0.0/16")
}
