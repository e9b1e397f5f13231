//! `install`, `manifests` and `uninstall` on a cluster with nothing installed.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

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

    // No kubelet or workload controller runs here: while install waits, roll the webhook
    // Deployment and the agent DaemonSet out as their controllers would report it.
    let (out, ()) = tokio::join!(
        cluster.run(&["install", "--timeout", "30s"]),
        report_rolled_out(&cluster.client)
    );
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

    // The webhook configuration is installed (failurePolicy: Fail) but no webhook runs here:
    // config writes are refused until it does. Stand in for a running webhook by removing it.
    let refused = cluster
        .try_apply_config("someone", serde_json::json!({"spec": {}}))
        .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("failed calling webhook \"validate.kube-encrypt.dev\"")),
        "{refused:?}"
    );
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(cluster.client.clone());
    webhooks
        .delete("kube-encrypt-webhook", &DeleteParams::default())
        .await
        .unwrap();
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

/// Waits (bounded) for the install's Deployment and DaemonSet and writes the status their
/// controllers would: every replica updated and available (the DaemonSet has no node to run
/// on: nothing desired).
async fn report_rolled_out(client: &kube::Client) {
    let workloads = [
        (
            "Deployment",
            "kube-encrypt-webhook",
            json!({"updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2, "replicas": 2}),
        ),
        (
            "DaemonSet",
            "kube-encrypt-agent",
            json!({"desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}),
        ),
    ];
    for (kind, name, status) in workloads {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind));
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "kube-encrypt", &resource);
        let mut live = None;
        for _ in 0..300 {
            live = api.get_opt(name).await.unwrap();
            if live.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let live = live.unwrap_or_else(|| panic!("{kind} {name} was not applied within 30 s"));
        let mut status = status;
        status["observedGeneration"] = json!(live.metadata.generation.unwrap_or(1));
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap_or_else(|e| panic!("writing the status of {kind} {name}: {e}"));
    }
}
