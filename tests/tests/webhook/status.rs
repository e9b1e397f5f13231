//! The status controller against the emulator: agents' NodeEncryptions in, the `default`
//! EncryptionConfig's status (counts, Ready, Degraded) out, written through the status
//! subresource by field manager `kube-encrypt-webhook`, and only when it changes.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use kube_encrypt_api::crd::{EncryptionConfig, EncryptionConfigSpec, EncryptionState};
use kube_encrypt_webhook::caches::AdmissionCaches;
use kube_encrypt_webhook::cluster::SharedCluster;
use kube_encrypt_webhook::metrics::Metrics;
use kube_encrypt_webhook::status::controller::StatusController;
use serde_json::json;
use tokio::sync::Notify;

use crate::fixtures::{create_node, eventually, report, write_report};
use crate::support::{bounded, install_crds, Backend, TestServer};

const CONVERGE: Duration = Duration::from_secs(15);

/// `(Ready status, Ready reason, Degraded status, [total, encrypted, error])` of the config.
async fn summary(configs: &Api<EncryptionConfig>) -> Option<(String, String, String, [i64; 3])> {
    let status = configs.get("default").await.ok()?.status?;
    let condition = |t: &str| status.conditions.iter().find(|c| c.type_ == t).cloned();
    let (ready, degraded) = (condition("Ready")?, condition("Degraded")?);
    let nodes = status.nodes?;
    Some((
        ready.status,
        ready.reason,
        degraded.status,
        [nodes.total, nodes.encrypted, nodes.error],
    ))
}

fn writes(metrics: &Metrics) -> String {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("kube_encrypt_webhook_status_writes_total"))
        .unwrap_or_default()
        .to_owned()
}

kube_encrypt_tests::on_both_servers!(status_follows_the_agents_reports);
async fn status_follows_the_agents_reports(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        for name in ["node-a", "node-b"] {
            create_node(&s.client, name).await;
        }
        let configs: Api<EncryptionConfig> = Api::all(s.client.clone());
        configs
            .create(
                &PostParams::default(),
                &EncryptionConfig::new("default", EncryptionConfigSpec::test()),
            )
            .await
            .unwrap();
        let changes = Arc::new(Notify::new());
        let caches = AdmissionCaches::start(
            &s.client,
            Arc::new(SharedCluster::default()),
            changes.clone(),
        );
        let metrics = Arc::new(Metrics::new());
        let controller = StatusController {
            client: s.client.clone(),
            configs: caches.configs.store.clone(),
            changes,
            metrics: metrics.clone(),
        };
        let running = tokio::spawn(async move { controller.run().await });

        write_report(&s.client, "node-a", &report(EncryptionState::Encrypted)).await;
        let pending = (
            "False".to_owned(),
            "NodesPending".to_owned(),
            "False".to_owned(),
            [2, 1, 0],
        );
        eventually("node-b pending", CONVERGE, async || {
            (summary(&configs).await? == pending).then_some(())
        })
        .await;

        write_report(&s.client, "node-b", &report(EncryptionState::Encrypted)).await;
        let ready = (
            "True".to_owned(),
            "Encrypted".to_owned(),
            "False".to_owned(),
            [2, 2, 0],
        );
        eventually("Ready", CONVERGE, async || {
            (summary(&configs).await? == ready).then_some(())
        })
        .await;
        let config = configs.get("default").await.unwrap();
        let status = config.status.clone().unwrap();
        assert_eq!(status.observed_generation, config.metadata.generation);
        let managers: Vec<_> = config
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|m| {
                (
                    m.manager.clone().unwrap_or_default(),
                    m.subresource.clone().unwrap_or_default(),
                )
            })
            .collect();
        assert!(
            managers.contains(&("kube-encrypt-webhook".into(), "status".into())),
            "{managers:?}"
        );

        // Nothing changes: no write. A node label the status does not depend on: no write.
        let before = writes(&metrics);
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(s.client.clone());
        nodes
            .patch(
                "node-a",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"zone": "a"}}})),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            writes(&metrics),
            before,
            "unchanged status is not written again"
        );

        let mut broken = report(EncryptionState::Error);
        broken.ipv4.as_mut().unwrap().message = "applying failed: no route".into();
        write_report(&s.client, "node-b", &broken).await;
        let degraded = (
            "False".to_owned(),
            "NodeErrors".to_owned(),
            "True".to_owned(),
            [2, 1, 1],
        );
        eventually("Degraded", CONVERGE, async || {
            (summary(&configs).await? == degraded).then_some(())
        })
        .await;
        let message = configs
            .get("default")
            .await
            .unwrap()
            .status
            .unwrap()
            .conditions[0]
            .message
            .clone();
        assert!(
            message.contains("node-b (IPv4: applying failed: no route)"),
            "{message}"
        );

        // A new generation is observed.
        configs
            .patch(
                "default",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"persistentKeepalive": 25}})),
            )
            .await
            .unwrap();
        eventually("generation 2 observed", CONVERGE, async || {
            let status = configs.get("default").await.ok()?.status?;
            (status.observed_generation == Some(2)).then_some(())
        })
        .await;
        running.abort();
    })
    .await;
}
