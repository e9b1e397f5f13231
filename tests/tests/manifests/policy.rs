//! The ValidatingAdmissionPolicy pinning each agent to its own node, on a real kube-apiserver
//! with real tokens: the agent's ServiceAccount token bound to a Pod on node-1 (so it carries
//! `authentication.kubernetes.io/node-name: node-1`) may change node-1's kube-encrypt.dev/
//! annotations and node-1's NodeEncryption, and nothing else on any Node.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use kube_encrypt_api::crd::{NodeEncryption, NodeEncryptionSpec};
use serde_json::{json, Value};

use super::support::{
    agent_client, create_node, install_base, kube_cluster, kubectl_file, token_client,
    unbound_token,
};

const POLICY: &str = "kube-encrypt-agent-own-node";

/// What the API server said to one write: `Ok` or the refusal's message.
type Verdict = Result<(), String>;

fn verdict<T>(result: Result<T, kube::Error>) -> Verdict {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 403 => Err(status.message),
        Err(e) => panic!("neither admitted nor refused: {e}"),
    }
}

async fn patch_node(client: &Client, node: &str, patch: Value) -> Verdict {
    let nodes: Api<Node> = Api::all(client.clone());
    let params = PatchParams {
        field_manager: Some("kube-encrypt-agent".into()),
        ..Default::default()
    };
    verdict(nodes.patch(node, &params, &Patch::Merge(patch)).await)
}

async fn create_report(client: &Client, node: &str) -> Verdict {
    let api: Api<NodeEncryption> = Api::all(client.clone());
    verdict(
        api.create(
            &PostParams::default(),
            &NodeEncryption::new(node, NodeEncryptionSpec {}),
        )
        .await,
    )
}

async fn patch_report_status(client: &Client, node: &str) -> Verdict {
    let api: Api<NodeEncryption> = Api::all(client.clone());
    let patch =
        json!({"status": {"ipv4": {"state": "Disabled", "message": "IPv4 encryption is off"}}});
    verdict(
        api.patch_status(node, &PatchParams::default(), &Patch::Merge(patch))
            .await,
    )
}

/// Waits (bounded) until the API server enforces the policy: it loads policies and bindings
/// from watches, a moment after they are created. Probes with a dry run that `client` may not
/// make (admission runs on dry runs too; nothing is written).
async fn wait_until_in_force(client: &Client, node: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let params = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let probe = annotation("kube-encrypt.dev/public-key", json!("probe"));
    for _ in 0..300 {
        match verdict(nodes.patch(node, &params, &Patch::Merge(&probe)).await) {
            Err(message) if message.contains(POLICY) => return,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("the policy {POLICY} was not in force within 30 s");
}

fn annotation(key: &str, value: Value) -> Value {
    json!({"metadata": {"annotations": {key: value}}})
}

/// Expect `got` to be admitted (`refusal` None) or refused by the policy with every fragment.
fn check(what: &str, got: Verdict, refusal: Option<&[&str]>) {
    match (got, refusal) {
        (Ok(()), None) => {}
        (Ok(()), Some(_)) => panic!("{what}: admitted, but the policy must refuse it"),
        (Err(message), None) => panic!("{what}: refused, but must be admitted: {message}"),
        (Err(message), Some(fragments)) => {
            assert!(
                message.contains(POLICY),
                "{what}: refused by something else than the policy: {message}"
            );
            for fragment in fragments {
                assert!(
                    message.contains(fragment),
                    "{what}: {fragment:?} missing from: {message}"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_agent_writes_only_its_own_nodes_annotations_and_report() {
    let Some(cluster) = kube_cluster().await else {
        return;
    };
    install_base(&cluster).await;
    let admin = cluster.client.clone();
    create_node(&admin, "node-1", 1).await;
    create_node(&admin, "node-2", 2).await;
    let agent = agent_client(&cluster, "node-1").await;
    wait_until_in_force(&agent, "node-2").await;
    let key = "kube-encrypt.dev/public-key";
    let wg_key = json!("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=");

    let other_node: &[&str] = &[
        "UPDATE of Node node-2",
        "agent of node node-1",
        "only its own Node and NodeEncryption (node-1)",
    ];
    let cases: Vec<(&str, Verdict, Option<&[&str]>)> = vec![
        ("own key annotation", patch_node(&agent, "node-1", annotation(key, wg_key.clone())).await, None),
        ("another node's key annotation", patch_node(&agent, "node-2", annotation(key, wg_key.clone())).await, Some(other_node)),
        (
            "own node's label",
            patch_node(&agent, "node-1", json!({"metadata": {"labels": {"kube-encrypt.dev/encryption": "disabled"}}})).await,
            Some(&["this request changes labels"]),
        ),
        (
            "own node's other annotation",
            patch_node(&agent, "node-1", annotation("example.com/owner", json!("agent"))).await,
            Some(&["changes annotations outside kube-encrypt.dev/"]),
        ),
        (
            "a new annotation outside kube-encrypt.dev",
            patch_node(&agent, "node-1", annotation("kube-encrypt.dev.evil.example/x", json!("1"))).await,
            Some(&["changes annotations outside kube-encrypt.dev/"]),
        ),
        (
            "own node's taints",
            patch_node(&agent, "node-1", json!({"spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}})).await,
            Some(&["changes spec"]),
        ),
        (
            "own node's schedulability",
            patch_node(&agent, "node-1", json!({"spec": {"unschedulable": true}})).await,
            Some(&["changes spec"]),
        ),
        (
            "own node's finalizers",
            patch_node(&agent, "node-1", json!({"metadata": {"finalizers": ["example.com/keep"]}})).await,
            Some(&["changes finalizers"]),
        ),
        (
            "own node's owner references",
            patch_node(&agent, "node-1", json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Namespace", "name": "default", "uid": "00000000-0000-0000-0000-000000000001"}]}})).await,
            Some(&["changes ownerReferences"]),
        ),
        ("own key annotation removed", patch_node(&agent, "node-1", annotation(key, Value::Null)).await, None),
        ("own NodeEncryption created", create_report(&agent, "node-1").await, None),
        ("own NodeEncryption status", patch_report_status(&agent, "node-1").await, None),
        (
            "another node's NodeEncryption created",
            create_report(&agent, "node-2").await,
            Some(&["CREATE of NodeEncryption node-2", "only its own Node and NodeEncryption (node-1)"]),
        ),
    ];
    for (what, got, refusal) in cases {
        check(what, got, refusal);
    }

    create_report(&admin, "node-2")
        .await
        .expect("the admin creates node-2's report");
    check(
        "another node's NodeEncryption status",
        patch_report_status(&agent, "node-2").await,
        Some(&[
            "UPDATE of NodeEncryption node-2 (status)",
            "agent of node node-1",
        ]),
    );
    // The policy matches agents only: an admin still labels any node.
    patch_node(
        &admin,
        "node-2",
        json!({"metadata": {"labels": {"kube-encrypt.dev/encryption": "disabled"}}}),
    )
    .await
    .expect("the admin labels node-2");
}

#[tokio::test]
async fn a_token_without_a_node_and_deletes_are_refused() {
    let Some(cluster) = kube_cluster().await else {
        return;
    };
    install_base(&cluster).await;
    let admin = cluster.client.clone();
    create_node(&admin, "node-1", 1).await;
    create_node(&admin, "node-2", 2).await;
    let unbound = token_client(
        &cluster,
        &unbound_token(&admin, "kube-encrypt-agent").await,
        "unbound",
    )
    .await;
    wait_until_in_force(&unbound, "node-1").await;
    check(
        "a key annotation with a token bound to no pod",
        patch_node(
            &unbound,
            "node-1",
            annotation("kube-encrypt.dev/public-key", json!("x")),
        )
        .await,
        Some(&[
            "its token names no node",
            "authentication.kubernetes.io/node-name",
        ]),
    );

    // An agent of another install (namespace `other`) that someone granted deletes: still
    // pinned to its node, DELETE judged on the request's name.
    let grant = r#"
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: kube-encrypt-agent, namespace: other}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: test-delete-reports}
rules:
  - apiGroups: ["kube-encrypt.dev"]
    resources: ["nodeencryptions"]
    verbs: ["delete"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: test-delete-reports}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: test-delete-reports}
subjects: [{kind: ServiceAccount, name: kube-encrypt-agent, namespace: other}]
"#;
    kubectl_file(&cluster, grant, &["apply", "--server-side"])
        .await
        .expect_ok("the test's grant");
    for node in ["node-1", "node-2"] {
        create_report(&admin, node)
            .await
            .expect("the admin creates the reports");
    }
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), "other");
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": "other"},
        "spec": {"nodeName": "node-1", "serviceAccountName": "kube-encrypt-agent", "containers": [{"name": "main", "image": "example.invalid/none:v0"}]},
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let token =
        kube_encrypt_tests::lab::identities::bound_token(&admin, "kube-encrypt-agent", &pod)
            .await
            .unwrap();
    let other = token_client(&cluster, &token, "other-agent").await;
    let reports: Api<NodeEncryption> = Api::all(other);
    check(
        "another node's NodeEncryption deleted",
        verdict(reports.delete("node-2", &DeleteParams::default()).await),
        Some(&["DELETE of NodeEncryption node-2", "agent of node node-1"]),
    );
    check(
        "own NodeEncryption deleted",
        verdict(reports.delete("node-1", &DeleteParams::default()).await),
        None,
    );
}
