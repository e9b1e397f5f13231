//! What a user sees with the real `kubectl`: the webhook's denial with every rule and what to
//! change, its warnings printed, printer columns with numbers, and
//! `kubectl wait --for=condition=Ready encryptionconfig/default` finishing once the agents
//! report.

use std::time::Duration;

use kube_encrypt_api::crd::EncryptionState;

use crate::fixtures::{
    ca_bundle, create_namespace, create_node, eventually, kubectl, report, write_report,
    RunningWebhook,
};
use crate::support::{bounded, install_crds, Backend, TestServer};

const POOL: &str = "apiVersion: kube-encrypt.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: v4\nspec:\n  cidr: 198.18.0.0/16\n  natOutgoing: NAT\n";
const DUAL_CONFIG: &str = "apiVersion: kube-encrypt.dev/v1alpha1\nkind: EncryptionConfig\nmetadata:\n  name: default\nspec:\n  ipv4:\n    enabled: true\n  ipv6:\n    enabled: true\n";
const HOST_CONFIG: &str = "apiVersion: kube-encrypt.dev/v1alpha1\nkind: EncryptionConfig\nmetadata:\n  name: default\nspec:\n  ipv4:\n    enabled: true\n  hostEncryption: true\n";

fn write(s: &TestServer, name: &str, text: &str) -> String {
    let path = s.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

kube_encrypt_tests::on_both_servers!(kubectl_shows_denials_warnings_and_waits_for_ready);
async fn kubectl_shows_denials_warnings_and_waits_for_ready(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        create_namespace(&s.client).await;
        create_node(&s.client, "node-a").await;
        let webhook = RunningWebhook::start(&s, "").await;
        eventually("caBundle written", Duration::from_secs(20), async || ca_bundle(&s.client).await).await;
        let pool = write(&s, "pool.yaml", &POOL.replace("NAT", "false"));
        let applied = kubectl(&s, &["apply", "-f", &pool]).await;
        assert!(applied.ok, "{applied:?}");

        let dual = write(&s, "dual.yaml", DUAL_CONFIG);
        // Until the webhook's caches hold the pool, the IPv4 rule has nothing to judge.
        let denied = eventually("the webhook judges with the pool", Duration::from_secs(20), async || {
            let out = kubectl(&s, &["apply", "-f", &dual]).await;
            out.stderr.contains("IPPool \"v4\" has natOutgoing: false").then_some(out)
        })
        .await;
        assert!(!denied.ok);
        for text in [
            "admission webhook \"validate.kube-encrypt.dev\" denied the request: EncryptionConfig \"default\" is refused by 2 kube-encrypt rules:",
            "- ipv4-nat-outgoing: spec.ipv4.enabled: IPv4 encryption needs natOutgoing: true on every enabled IPv4 IPPool, but IPPool \"v4\" has natOutgoing: false; set natOutgoing: true there",
            "- ipv6-nat-outgoing: spec.ipv6.enabled: IPv6 encryption needs NAT outgoing, but no enabled IPv6 IPPool exists; create one with natOutgoing: true",
        ] {
            assert!(denied.stderr.contains(text), "missing {text:?} in {}", denied.stderr);
        }

        let fixed = write(&s, "pool.yaml", &POOL.replace("NAT", "true"));
        let applied = kubectl(&s, &["apply", "-f", &fixed]).await;
        assert!(applied.ok, "{applied:?}");
        let host = write(&s, "host.yaml", HOST_CONFIG);
        let warned = kubectl(&s, &["apply", "-f", &host]).await;
        assert!(warned.ok, "{warned:?}");
        assert!(
            warned.stderr.contains("Warning: host-encryption-route-source: spec.routeSource: host encryption is on with routeSource PodCIDRs"),
            "{}",
            warned.stderr
        );

        write_report(&s.client, "node-a", &report(EncryptionState::Encrypted)).await;
        let waited = kubectl(&s, &["wait", "--for=condition=Ready", "encryptionconfig/default", "--timeout=25s"]).await;
        assert!(waited.ok, "{waited:?}");
        assert!(waited.stdout.contains("condition met"), "{}", waited.stdout);
        let table = kubectl(&s, &["get", "encryptionconfig", "default"]).await;
        let row: Vec<&str> = table.stdout.lines().nth(1).unwrap_or_default().split_whitespace().collect();
        assert_eq!(row[..6], ["default", "true", "false", "1", "1", "True"], "{}", table.stdout);
        webhook.stop().await;
    })
    .await;
}
