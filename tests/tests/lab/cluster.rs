//! The objects `up` registers in the API server, reached from the host through the lab's
//! kubeconfig; the API server keeps its state across `apiserver stop` / `start` (etcd, or the
//! emulator's files); on the real control plane each agent is its ServiceAccount, bound to
//! its node and to the RBAC of the install manifests.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use kube_encrypt_tests::lab::state::{Paths, DEFAULT_STATE_DIR};

use super::support::*;

async fn client(kubeconfig: &std::path::Path) -> Client {
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn nodes_and_pods_are_registered_like_a_real_cluster() {
    let session = session();
    let lab = session.up(&["--nodes", "2", "--ipv6", "--no-agents"]);
    let rt = runtime();
    let (nodes, pods) = rt.block_on(async {
        let client = client(&lab.kubeconfig()).await;
        let nodes = Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        let pods = Api::<Pod>::namespaced(client, "default")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        (nodes, pods)
    });
    assert_eq!(nodes.len(), 2);
    let node = nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some("node-2"))
        .expect("node-2");
    assert_eq!(
        node.metadata.labels.as_ref().unwrap()["kubernetes.io/hostname"],
        "node-2"
    );
    assert_eq!(
        node.spec.as_ref().unwrap().pod_cidrs.clone().unwrap(),
        ["198.18.2.0/24", "2001:db8:1:2::/64"]
    );
    let internal: Vec<String> = node
        .status
        .as_ref()
        .unwrap()
        .addresses
        .clone()
        .unwrap()
        .into_iter()
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .collect();
    assert_eq!(internal, ["192.0.2.12", "2001:db8::12"]);
    assert_eq!(pods.len(), 4);
    let pod = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("pod-2-1"))
        .expect("pod-2-1");
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-2")
    );
    let ips: Vec<String> = pod
        .status
        .as_ref()
        .unwrap()
        .pod_ips
        .clone()
        .unwrap()
        .into_iter()
        .map(|p| p.ip)
        .collect();
    assert_eq!(ips, ["198.18.2.2", "2001:db8:1:2::2"]);
}

#[test]
fn kube_apiserver_keeps_its_state_across_stop_and_start() {
    keeps_its_state_across_stop_and_start("kube");
}

#[test]
fn the_emulator_keeps_its_state_across_stop_and_start() {
    keeps_its_state_across_stop_and_start("emulator");
}

fn keeps_its_state_across_stop_and_start(apiserver: &str) {
    let session = session();
    let lab = session.up(&["--nodes", "2", "--no-agents", "--apiserver", apiserver]);
    let rt = runtime();
    let kubeconfig = lab.kubeconfig();
    let before = rt.block_on(async {
        let list = Api::<Node>::all(client(&kubeconfig).await)
            .list(&ListParams::default())
            .await
            .unwrap();
        list.metadata
            .resource_version
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    let stop = session.run(&["apiserver", "stop"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let down = rt.block_on(async {
        Api::<Node>::all(client(&kubeconfig).await)
            .list(&ListParams::default())
            .await
    });
    assert!(down.is_err(), "the API server is stopped");
    let start = session.run(&["apiserver", "start"]);
    assert!(start.status.success(), "{}", text(&start));
    let (names, after) = rt.block_on(async {
        let list = Api::<Node>::all(client(&kubeconfig).await)
            .list(&ListParams::default())
            .await
            .unwrap();
        let names: Vec<String> = list
            .items
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        (
            names,
            list.metadata
                .resource_version
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        )
    });
    assert_eq!(names, ["node-1", "node-2"]);
    assert!(
        after >= before,
        "resource versions continue: {before} → {after}"
    );
}

/// `kubectl` run inside `node`'s namespaces with that node's agent kubeconfig.
fn agent_kubectl(
    session: &kube_encrypt_tests::lab::testing::LabSession,
    node: &str,
    args: &[&str],
) -> std::process::Output {
    let kubeconfig = Paths::new(DEFAULT_STATE_DIR).node_kubeconfig(node);
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let kubectl = kubectl_bin();
    let mut command = vec![
        "exec",
        node,
        "--",
        kubectl.as_str(),
        "--kubeconfig",
        kubeconfig.as_str(),
    ];
    command.extend_from_slice(args);
    session.run(&command)
}

#[test]
fn agents_are_their_service_account_bound_to_their_node_and_rbac() {
    let session = session();
    let _lab = session.up(&["--nodes", "2", "--no-agents", "--apiserver", "kube"]);
    let whoami = agent_kubectl(&session, "node-1", &["auth", "whoami", "-o", "json"]);
    assert!(whoami.status.success(), "{}", text(&whoami));
    let review: serde_json::Value = serde_json::from_slice(&whoami.stdout).unwrap();
    let user = &review["status"]["userInfo"];
    assert_eq!(
        user["username"],
        "system:serviceaccount:kube-encrypt:kube-encrypt-agent"
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/node-name"][0],
        "node-1"
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-name"][0],
        "kube-encrypt-agent-node-1"
    );
    let can = |args: &[&str]| {
        let mut full = vec!["auth", "can-i"];
        full.extend_from_slice(args);
        stdout(&agent_kubectl(&session, "node-2", &full))
            .trim()
            .to_owned()
    };
    let cases: [(&[&str], &str); 7] = [
        (&["watch", "nodes"], "yes"),
        (&["patch", "nodes"], "yes"),
        (&["list", "ippools.kube-encrypt.dev"], "yes"),
        (
            &[
                "patch",
                "nodeencryptions.kube-encrypt.dev",
                "--subresource=status",
            ],
            "yes",
        ),
        (&["delete", "nodes"], "no"),
        (&["get", "secrets", "-n", "kube-system"], "no"),
        (&["update", "encryptionconfigs.kube-encrypt.dev"], "no"),
    ];
    for (args, want) in cases {
        assert_eq!(can(args), want, "can-i {args:?}");
    }
    let denied = agent_kubectl(&session, "node-2", &["delete", "node", "node-1"]);
    assert!(!denied.status.success());
    assert!(stderr(&denied).contains("Forbidden"), "{}", text(&denied));
}
