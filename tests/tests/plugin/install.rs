//! `install`, `manifests` and `uninstall` on a cluster with nothing installed.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};

use super::support::{Backend, Cluster};

kube_encrypt_tests::on_both_servers!(install_applies_and_waits_uninstall_removes);
async fn install_applies_and_waits_uninstall_removes(backend: Backend) {
    let cluster = Cluster::start_empty(backend).await;
    let before = cluster.run(&["status"]).await;
    assert_eq!(before.code, 1, "{}", before.all());
    assert!(
        before.stderr.contains("CRDs are not installed")
            && before.stderr.contains("kubectl encrypt install"),
        "{}",
        before.stderr
    );

    let out = cluster.run(&["install", "--timeout", "30s"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("CustomResourceDefinition encryptionconfigs.kube-encrypt.dev applied"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("objects ready"), "{}", out.stdout);
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let names: Vec<String> = crds
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let managed = crds
        .get("ippools.kube-encrypt.dev")
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap();
    assert!(managed
        .iter()
        .any(|m| m.manager.as_deref() == Some("kubectl-encrypt")));

    let status = cluster.run(&["status"]).await;
    assert_eq!(
        status.code,
        0,
        "installed, nothing enabled: {}",
        status.all()
    );

    cluster
        .apply_config(
            "someone",
            serde_json::json!({"spec": {"ipv4": {"enabled": true}}}),
        )
        .await;
    let refused = cluster.run(&["uninstall"]).await;
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("disable --all --wait"),
        "{}",
        refused.stderr
    );

    let removed = cluster.run(&["uninstall", "--force"]).await;
    assert_eq!(removed.code, 0, "{}", removed.all());
    assert!(crds
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn manifests_prints_the_embedded_base_offline() {
    let dir = super::support::TempDir::named("manifests");
    let mut cmd = tokio::process::Command::new(super::support::plugin_bin());
    cmd.arg("manifests")
        .env("KUBECONFIG", dir.path().join("none"));
    let out = super::support::finish(cmd).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&out.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(
        docs.iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
            .count(),
        3
    );
}
