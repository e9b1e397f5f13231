//! The Helm chart (charts/kube-encrypt) with the pinned Helm: `helm lint`, and `helm template`
//! renders the same objects as kustomize — the defaults as the base, certificates.mode
//! cert-manager as the overlay, rbac.workloadIPs as the base with the workload-ips component.
//! Compared object by object after parsing. The intended differences, removed before
//! comparing: Helm's own labels (`helm.sh/chart`, `app.kubernetes.io/managed-by`) on every
//! object's metadata, and the Namespace, which the chart renders only with namespace.create
//! (`helm install --create-namespace` makes it otherwise). The policy ConfigMap's file is
//! compared as YAML (the chart writes it from values, without the base file's comments).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tokio::process::Command;

use super::support::{
    by_key, documents, finish, helm_bin, kustomize, kustomize_with_components, repo,
};

/// Labels only Helm puts on objects.
const HELM_LABELS: [&str; 2] = ["helm.sh/chart", "app.kubernetes.io/managed-by"];

async fn helm(helm: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(helm);
    cmd.args(args).env(
        "HELM_CACHE_HOME",
        std::env::temp_dir().join("kube-encrypt-helm-cache"),
    );
    finish(cmd).await.expect_ok(&format!("helm {args:?}"))
}

/// `helm template` of the chart into the namespace kube-encrypt, CRDs included.
async fn template(binary: &Path, set: &[&str]) -> BTreeMap<String, Value> {
    let chart = repo().join("charts/kube-encrypt");
    let mut args = vec![
        "template",
        "kube-encrypt",
        chart.to_str().unwrap(),
        "--namespace",
        "kube-encrypt",
        "--include-crds",
    ];
    for value in set {
        args.extend(["--set", value]);
    }
    normalized(documents(&helm(binary, &args).await))
}

/// Objects by key, Helm's labels removed and the policy file parsed.
fn normalized(objects: Vec<Value>) -> BTreeMap<String, Value> {
    let mut objects = by_key(objects);
    for object in objects.values_mut() {
        if let Some(labels) = object["metadata"]["labels"].as_object_mut() {
            for label in HELM_LABELS {
                labels.remove(label);
            }
        }
        if let Some(policy) = object["data"]["policy.yaml"].as_str() {
            let parsed: Value = serde_yaml::from_str(policy).expect("the policy file is YAML");
            object["data"]["policy.yaml"] = parsed;
        }
    }
    objects
}

fn assert_same(what: &str, helm: &BTreeMap<String, Value>, kustomize: &BTreeMap<String, Value>) {
    let only_helm: Vec<&String> = helm
        .keys()
        .filter(|k| !kustomize.contains_key(*k))
        .collect();
    let only_kustomize: Vec<&String> = kustomize
        .keys()
        .filter(|k| !helm.contains_key(*k))
        .collect();
    assert!(
        only_helm.is_empty() && only_kustomize.is_empty(),
        "{what}: only in Helm {only_helm:?}, only in kustomize {only_kustomize:?}"
    );
    for (key, object) in kustomize {
        if let Some(difference) = difference(&helm[key], object, String::new()) {
            panic!("{what}: {key} differs at {difference}");
        }
    }
}

/// Where `helm` and `kustomize` first differ: `path: helm value != kustomize value`.
fn difference(helm: &Value, kustomize: &Value, path: String) -> Option<String> {
    match (helm, kustomize) {
        (Value::Object(h), Value::Object(k)) => {
            let keys: std::collections::BTreeSet<&String> = h.keys().chain(k.keys()).collect();
            keys.into_iter().find_map(|key| {
                let (a, b) = (
                    h.get(key).unwrap_or(&Value::Null),
                    k.get(key).unwrap_or(&Value::Null),
                );
                difference(a, b, format!("{path}/{key}"))
            })
        }
        (Value::Array(h), Value::Array(k)) if h.len() == k.len() => h
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (a, b))| difference(a, b, format!("{path}/{i}"))),
        _ => (helm != kustomize).then(|| format!("{path}: helm {helm} != kustomize {kustomize}")),
    }
}

#[tokio::test]
async fn the_chart_lints_in_every_mode() {
    let Some(binary) = helm_bin().await else {
        return;
    };
    let chart = repo().join("charts/kube-encrypt");
    let chart = chart.to_str().unwrap();
    let modes: &[&[&str]] = &[
        &[],
        &[
            "--set",
            "certificates.mode=cert-manager",
            "--set",
            "namespace.create=true",
            "--set",
            "rbac.workloadIPs=true",
        ],
        &[
            "--set",
            "certificates.mode=cert-manager",
            "--set",
            "certificates.certManager.issuerRef.name=corp-ca",
            "--set",
            "certificates.certManager.issuerRef.kind=ClusterIssuer",
        ],
    ];
    for extra in modes {
        let mut args = vec!["lint", chart, "--strict", "--namespace", "kube-encrypt"];
        args.extend_from_slice(extra);
        let out = helm(&binary, &args).await;
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[tokio::test]
async fn the_chart_renders_the_kustomize_base() {
    let Some(binary) = helm_bin().await else {
        return;
    };
    let base = normalized(documents(&kustomize("manifests").await));
    assert_same(
        "namespace.create=true",
        &template(&binary, &["namespace.create=true"]).await,
        &base,
    );
    let mut without_namespace = base.clone();
    without_namespace.remove("Namespace kube-encrypt");
    assert_same(
        "defaults",
        &template(&binary, &[]).await,
        &without_namespace,
    );
}

#[tokio::test]
async fn the_chart_renders_the_overlay_and_the_component() {
    let Some(binary) = helm_bin().await else {
        return;
    };
    let overlay = normalized(documents(
        &kustomize("manifests/overlays/cert-manager").await,
    ));
    assert_same(
        "certificates.mode=cert-manager",
        &template(
            &binary,
            &["namespace.create=true", "certificates.mode=cert-manager"],
        )
        .await,
        &overlay,
    );
    let component = normalized(documents(
        &kustomize_with_components(&["manifests/components/workload-ips"]).await,
    ));
    assert_same(
        "rbac.workloadIPs=true",
        &template(&binary, &["namespace.create=true", "rbac.workloadIPs=true"]).await,
        &component,
    );
}

#[tokio::test]
async fn the_chart_refuses_an_unknown_certificate_mode() {
    let Some(binary) = helm_bin().await else {
        return;
    };
    let chart = repo().join("charts/kube-encrypt");
    let mut cmd = Command::new(binary);
    cmd.args([
        "template",
        "x",
        chart.to_str().unwrap(),
        "--set",
        "certificates.mode=vault",
    ]);
    let out = finish(cmd).await;
    assert!(
        !out.ok
            && out
                .stderr
                .contains("certificates.mode must be self-signed or cert-manager"),
        "{}",
        out.all()
    );
}
