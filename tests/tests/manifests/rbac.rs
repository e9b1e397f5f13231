//! `kubectl auth can-i --list` for each ServiceAccount of the install, on a real
//! kube-apiserver with the base applied: exactly the expected permissions beyond what every
//! ServiceAccount has (those of a ServiceAccount the install does not bind).

use std::collections::BTreeSet;

use kube_encrypt_tests::test_cluster::TestCluster;

use super::support::{
    install_base, kube_cluster, kubectl, kubectl_file, kustomize_with_components, NAMESPACE,
};

/// The agent: read the config, pools and nodes; patch nodes; create NodeEncryptions, patch
/// their status. (Which node: the admission policy's business, see `policy`.)
const AGENT: &[&str] = &[
    "encryptionconfigs.kube-encrypt.dev [] [list watch]",
    "ippools.kube-encrypt.dev [] [list watch]",
    "nodeencryptions.kube-encrypt.dev [] [create]",
    "nodeencryptions.kube-encrypt.dev/status [] [patch]",
    "nodes [] [list patch watch]",
];

/// The webhook: read what it validates and reports on, its Lease, the config's status, and
/// (self-signed mode) its CA Secret and its own webhook configuration.
const WEBHOOK: &[&str] = &[
    "encryptionconfigs.kube-encrypt.dev [] [get list watch]",
    "encryptionconfigs.kube-encrypt.dev/status [] [patch]",
    "ippools.kube-encrypt.dev [] [get list watch]",
    "leases.coordination.k8s.io [] [create]",
    "leases.coordination.k8s.io [kube-encrypt-webhook] [get update]",
    "nodeencryptions.kube-encrypt.dev [] [get list watch]",
    "nodes [] [list watch]",
    "secrets [] [create]",
    "secrets [kube-encrypt-webhook-ca] [get]",
    "validatingwebhookconfigurations.admissionregistration.k8s.io [kube-encrypt-webhook] [get update]",
];

/// What the workload-ips component adds to the agent.
const WORKLOAD_IPS: &str = "pods [] [list watch]";

/// The rows of `kubectl auth can-i --list` as `resource [names] [verbs]` (verbs sorted),
/// sliced at the header's column positions.
fn rows(table: &str) -> BTreeSet<String> {
    let mut lines = table.lines();
    let header = lines.next().expect("a header line");
    let column = |name: &str| {
        header
            .find(name)
            .unwrap_or_else(|| panic!("no {name} column: {header}"))
    };
    let (urls, names, verbs) = (
        column("Non-Resource URLs"),
        column("Resource Names"),
        column("Verbs"),
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cell = |from: usize, to: usize| {
                line.get(from..to.min(line.len()))
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            };
            let resource = cell(0, urls);
            let url = cell(urls, names);
            let mut verb_list: Vec<&str> = line
                .get(verbs..)
                .unwrap_or("")
                .trim()
                .trim_matches(['[', ']'])
                .split(' ')
                .collect();
            verb_list.sort();
            let subject = if resource.is_empty() { url } else { resource };
            format!("{subject} {} [{}]", cell(names, verbs), verb_list.join(" "))
        })
        .collect()
}

async fn can_i_list(cluster: &TestCluster, account: &str) -> BTreeSet<String> {
    let user = format!("--as=system:serviceaccount:{NAMESPACE}:{account}");
    let out = kubectl(
        cluster,
        &["auth", "can-i", "--list", "-n", NAMESPACE, &user],
    )
    .await
    .expect_ok("kubectl auth can-i --list");
    rows(&out)
}

/// What `account` may do beyond a ServiceAccount the install does not bind.
async fn granted(cluster: &TestCluster, account: &str) -> Vec<String> {
    let everyone = can_i_list(cluster, "nobody").await;
    can_i_list(cluster, account)
        .await
        .difference(&everyone)
        .cloned()
        .collect()
}

#[tokio::test]
async fn each_service_account_has_exactly_the_expected_permissions() {
    let Some(cluster) = kube_cluster().await else {
        return;
    };
    install_base(&cluster).await;
    assert_eq!(
        granted(&cluster, "kube-encrypt-agent").await,
        AGENT,
        "agent"
    );
    assert_eq!(
        granted(&cluster, "kube-encrypt-webhook").await,
        WEBHOOK,
        "webhook"
    );

    let with_component = kustomize_with_components(&["manifests/components/workload-ips"]).await;
    kubectl_file(
        &cluster,
        &with_component,
        &["apply", "--server-side", "--field-manager=kubectl-encrypt"],
    )
    .await
    .expect_ok("applying the base with the workload-ips component");
    let mut with_pods: Vec<&str> = AGENT.to_vec();
    with_pods.push(WORKLOAD_IPS);
    with_pods.sort();
    assert_eq!(
        granted(&cluster, "kube-encrypt-agent").await,
        with_pods,
        "agent with workload-ips"
    );
}

#[test]
fn rows_are_read_at_the_header_columns() {
    let table = "\
Resources   Non-Resource URLs   Resource Names              Verbs
nodes       []                  []                          [watch list patch]
secrets     []                  [kube-encrypt-webhook-ca]   [get]
            [/healthz]          []                          [get]
";
    let got: Vec<String> = rows(table).into_iter().collect();
    assert_eq!(
        got,
        [
            "[/healthz] [] [get]",
            "nodes [] [list patch watch]",
            "secrets [kube-encrypt-webhook-ca] [get]"
        ]
    );
}
