//! The whole webhook (`run_until`, as the binary runs it) with `--self-signed`, registered by
//! the repository's ValidatingWebhookConfiguration (pointed at 127.0.0.1), called by the
//! emulator's admission chain over TLS for real writes: the CA goes into a Secret and the
//! caBundle, denials name the rule and what to change, the policy file switches a rule off
//! without a restart, and shutdown releases the Lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use kube_encrypt_api::crd::{EncryptionConfig, EncryptionConfigSpec, IPPool, IPPoolSpec};
use serde_json::json;

use crate::fixtures::{ca_bundle, create_namespace, eventually, RunningWebhook, NAMESPACE};
use crate::support::{api_error, bounded, install_crds, Backend, TestServer};

const UP: Duration = Duration::from_secs(20);

fn v6_pool(nat: bool) -> IPPool {
    let spec = IPPoolSpec::test("2001:db8:1::/48");
    IPPool::new("v6", if nat { spec } else { spec.without_nat() })
}

fn v6_config() -> EncryptionConfig {
    EncryptionConfig::new("default", EncryptionConfigSpec::default().with_ipv6())
}

/// The webhook's denial message for a refused write.
fn denial<T: std::fmt::Debug>(result: kube::Result<T>) -> String {
    let (code, _, message) = api_error(result);
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("admission webhook \"validate.kube-encrypt.dev\" denied the request"),
        "{message}"
    );
    message
}

kube_encrypt_tests::on_both_servers!(the_api_server_calls_the_webhook_for_real_writes);
async fn the_api_server_calls_the_webhook_for_real_writes(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        create_namespace(&s.client).await;
        let webhook = RunningWebhook::start(&s, "rules: {}\n").await;

        let bundle = eventually("caBundle written", UP, async || ca_bundle(&s.client).await).await;
        let secrets: Api<Secret> = Api::namespaced(s.client.clone(), NAMESPACE);
        let secret = secrets.get("kube-encrypt-webhook-ca").await.unwrap();
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(
            secret.data.unwrap()["tls.crt"].0,
            bundle,
            "the caBundle is the CA of the Secret"
        );

        let pools: Api<IPPool> = Api::all(s.client.clone());
        let configs: Api<EncryptionConfig> = Api::all(s.client.clone());
        pools
            .create(&PostParams::default(), &v6_pool(false))
            .await
            .unwrap();
        // The caches see the pool; then IPv6 encryption without NAT outgoing is refused.
        let message = eventually(
            "the config is judged against the pool",
            UP,
            async || match configs.create(&PostParams::default(), &v6_config()).await {
                Err(kube::Error::Api(status)) if status.message.contains("ipv6-nat-outgoing") => {
                    Some(status.message.clone())
                }
                _ => None,
            },
        )
        .await;
        assert!(
            message.contains("- ipv6-nat-outgoing: spec.ipv6.enabled: "),
            "{message}"
        );
        assert!(
            message.contains("IPPool \"v6\" has natOutgoing: false; set natOutgoing: true there"),
            "{message}"
        );

        pools
            .patch(
                "v6",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"natOutgoing": true}})),
            )
            .await
            .unwrap();
        eventually("the fixed pool admits the config", UP, async || {
            configs
                .create(&PostParams::default(), &v6_config())
                .await
                .ok()
        })
        .await;

        // The webhook judges from its caches: wait (with a dry run, which changes nothing)
        // until they hold the new config, or a real write below could slip through first.
        let dry_run_patch = PatchParams {
            dry_run: true,
            ..Default::default()
        };
        let nat_off = Patch::Merge(json!({"spec": {"natOutgoing": false}}));
        eventually("the caches see the config", UP, async || {
            pools.patch("v6", &dry_run_patch, &nat_off).await.err()
        })
        .await;

        // Pool changes that would break enabled IPv6 encryption.
        let message = denial(pools.patch("v6", &PatchParams::default(), &nat_off).await);
        assert!(
            message.contains("keep natOutgoing: true on IPPool \"v6\""),
            "{message}"
        );
        denial(
            pools
                .patch(
                    "v6",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"disabled": true}})),
                )
                .await,
        );
        let message = denial(pools.delete("v6", &DeleteParams::default()).await);
        assert!(
            message.contains("deleting IPPool \"v6\" would leave IPv6 encryption"),
            "{message}"
        );
        let dry_run = DeleteParams {
            dry_run: true,
            ..Default::default()
        };
        denial(pools.delete("v6", &dry_run).await);
        // Every failing rule in one answer.
        let bad = serde_json::from_value::<EncryptionConfig>(json!({
            "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "EncryptionConfig",
            "metadata": {"name": "default"},
            "spec": {"ipv4": {"enabled": true}, "ipv6": {"enabled": true}}
        }))
        .unwrap();
        let message = denial(
            configs
                .replace(
                    "default",
                    &PostParams::default(),
                    &with_version(&configs, bad).await,
                )
                .await,
        );
        assert!(message.contains("ipv4-nat-outgoing"), "{message}");

        // The policy switches the rule off without a restart.
        std::fs::write(&webhook.policy, "rules:\n  ipv6-nat-outgoing: off\n").unwrap();
        eventually("the policy reloads", UP, async || {
            pools.delete("v6", &dry_run).await.ok()
        })
        .await;

        webhook.stop().await;
        let leases: Api<Lease> = Api::namespaced(s.client.clone(), NAMESPACE);
        let lease = leases.get("kube-encrypt-webhook").await.unwrap();
        assert_eq!(
            lease.spec.unwrap().holder_identity,
            None,
            "the Lease is released on shutdown"
        );
    })
    .await;
}

/// `object` with the stored object's resourceVersion, for a replace.
async fn with_version(
    api: &Api<EncryptionConfig>,
    mut object: EncryptionConfig,
) -> EncryptionConfig {
    let current = api.get("default").await.unwrap();
    object.metadata.resource_version = current.metadata.resource_version;
    object
}
