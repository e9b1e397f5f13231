//! A GitOps-style apply of manifests/examples reaches Ready on a real kube-apiserver with the
//! install base applied and its identities in use: the webhook runs (in this process) with a
//! token of its own ServiceAccount — so the base's RBAC must suffice for its Lease, its CA
//! Secret, the caBundle and the config's status — behind the base's
//! ValidatingWebhookConfiguration (pointed at loopback: no Service routing here), and the one
//! node's agent reports with its node-bound token through the admission policy. The examples
//! are applied server-side as Argo CD's field manager.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use kube_encrypt_api::crd::{
    EncryptionState, FamilyStatus, NodeEncryption, NodeEncryptionSpec, NodeEncryptionStatus,
};
use kube_encrypt_tests::test_cluster::TestCluster;
use serde_json::json;

use super::support::{
    agent_client, create_node, create_pod, install_base, kube_cluster, kubectl, pod_token, repo,
    token_kubeconfig,
};

/// Starts the webhook as the binary would run in its pod, with `kubeconfig`'s identity,
/// serving on `addr`; stops when `stop` fires.
fn start_webhook(
    kubeconfig: &std::path::Path,
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    use clap::Parser;
    let policy = repo().join("manifests/webhook/policy.yaml");
    let args = kube_encrypt_webhook::args::Args::try_parse_from([
        "kube-encrypt-webhook",
        "--self-signed",
        "--self-signed-san",
        "127.0.0.1",
        "--listen",
        &addr.to_string(),
        "--pod-name",
        "kube-encrypt-webhook-0",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--policy-file",
        policy.to_str().unwrap(),
    ])
    .unwrap();
    let config = args.into_config(None).unwrap();
    tokio::spawn(kube_encrypt_webhook::run::run_until(config, async {
        let _ = stop.await;
    }))
}

/// Points the base's webhook configuration at `addr` instead of the Service.
async fn route_webhook_to(cluster: &TestCluster, addr: std::net::SocketAddr) {
    let patch = json!([{
        "op": "replace",
        "path": "/webhooks/0/clientConfig",
        "value": {"url": format!("https://{addr}/validate")},
    }]);
    let args = [
        "patch",
        "validatingwebhookconfiguration/kube-encrypt-webhook",
        "--type=json",
        "-p",
        &patch.to_string(),
    ];
    kubectl(cluster, &args)
        .await
        .expect_ok("routing the webhook to loopback");
}

/// Waits (bounded) until the webhook wrote its CA into the configuration.
async fn wait_for_ca_bundle(client: &Client) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    for _ in 0..300 {
        let config = api.get("kube-encrypt-webhook").await.unwrap();
        let bundle = config.webhooks.unwrap_or_default()[0]
            .client_config
            .ca_bundle
            .clone();
        if bundle.is_some_and(|b| !b.0.is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the webhook did not write its caBundle within 30 s (its RBAC?)");
}

/// The node's agent reports both families encrypted, as itself.
async fn report_encrypted(agent: &Client, node: &Node) {
    let name = node.metadata.name.clone().unwrap();
    let mut report = NodeEncryption::new(&name, NodeEncryptionSpec {});
    report.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: name.clone(),
        uid: node.metadata.uid.clone().unwrap(),
        ..Default::default()
    }]);
    let api: Api<NodeEncryption> = Api::all(agent.clone());
    api.create(&PostParams::default(), &report)
        .await
        .expect("the agent creates its report");
    let family = |port, interface: &str, mtu| FamilyStatus {
        state: EncryptionState::Encrypted,
        listen_port: Some(port),
        interface: Some(interface.into()),
        mtu: Some(mtu),
        message: "encrypted".into(),
        ..Default::default()
    };
    let status = NodeEncryptionStatus {
        ipv4: Some(family(51820, "wg-encrypt", 1440)),
        ipv6: Some(family(51821, "wg-encrypt-v6", 1420)),
        last_update: Some(
            k8s_openapi::jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        ),
        ..Default::default()
    };
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .expect("the agent writes its report's status");
}

/// `kubectl apply --server-side` of the examples as Argo CD; retried (bounded) while the
/// webhook's caches are still filling after its start.
async fn apply_examples_as_argo_cd(cluster: &TestCluster) {
    let dir = repo().join("manifests/examples");
    let args = [
        "apply",
        "--server-side",
        "--field-manager=argocd-controller",
        "-k",
        dir.to_str().unwrap(),
    ];
    let mut last = String::new();
    for _ in 0..10 {
        let out = kubectl(cluster, &args).await;
        if out.ok {
            return;
        }
        last = out.all();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the examples were not accepted:\n{last}");
}

#[tokio::test]
async fn a_gitops_apply_of_the_examples_reaches_ready() {
    let Some(cluster) = kube_cluster().await else {
        return;
    };
    install_base(&cluster).await;
    let admin = cluster.client.clone();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    route_webhook_to(&cluster, addr).await;
    let webhook_pod = create_pod(
        &admin,
        "kube-encrypt-webhook-0",
        "kube-encrypt-webhook",
        None,
    )
    .await;
    let webhook_token = pod_token(&admin, "kube-encrypt-webhook", &webhook_pod).await;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let webhook = start_webhook(
        &token_kubeconfig(&cluster, &webhook_token, "webhook"),
        addr,
        stopped,
    );
    wait_for_ca_bundle(&admin).await;

    create_node(&admin, "node-1", 1).await;
    let node = Api::<Node>::all(admin.clone()).get("node-1").await.unwrap();
    let agent = agent_client(&cluster, "node-1").await;
    report_encrypted(&agent, &node).await;

    apply_examples_as_argo_cd(&cluster).await;
    let ready = kubectl(
        &cluster,
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            "encryptionconfig/default",
        ],
    )
    .await;
    let status = kubectl(
        &cluster,
        &[
            "get",
            "encryptionconfig/default",
            "-o",
            "jsonpath={.status}",
        ],
    )
    .await;
    assert!(ready.ok, "{}\nstatus: {}", ready.all(), status.all());
    let managers = kubectl(
        &cluster,
        &[
            "get",
            "encryptionconfig/default",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    )
    .await;
    assert!(
        managers.stdout.contains("argocd-controller"),
        "{}",
        managers.all()
    );

    // The base's webhook configuration sends pool changes to the webhook, which refuses one
    // that would break IPv6 encryption.
    let refused = kubectl(
        &cluster,
        &[
            "patch",
            "ippool/pods-ipv6",
            "--type=merge",
            "-p",
            r#"{"spec":{"natOutgoing":false}}"#,
            "--field-manager=argocd-controller",
        ],
    )
    .await;
    assert!(
        !refused.ok && refused.stderr.contains("ipv6-nat-outgoing"),
        "{}",
        refused.all()
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), webhook)
        .await
        .expect("the webhook stops within 30 s")
        .unwrap()
        .expect("the webhook ran without error");
}
