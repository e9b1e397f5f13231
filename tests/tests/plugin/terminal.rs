//! A terminal session (a pty from util-linux `script`): colour on a terminal, none with
//! NO_COLOR, and the progress bar of `--wait`.

use std::time::Duration;

use kube_encrypt_api::crd::IPPoolSpec;
use kube_encrypt_api::net::Family;
use serde_json::json;

use super::support::{
    encrypted, encrypted_cluster, finish, node, plugin_bin, Backend, Cluster, Output,
};

/// Runs the plugin with `args` inside a pty; the session's output is script's stdout.
async fn in_terminal(
    cluster: &Cluster,
    args: &str,
    no_color: bool,
) -> tokio::task::JoinHandle<Output> {
    let command = format!("{} {args}", plugin_bin().display());
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    tokio::spawn(finish(cmd))
}

kube_encrypt_tests::on_both_servers!(a_terminal_gets_colour_unless_no_color);
async fn a_terminal_gets_colour_unless_no_color(backend: Backend) {
    let cluster = encrypted_cluster(2, backend).await;
    let coloured = in_terminal(&cluster, "status", false).await.await.unwrap();
    assert_eq!(coloured.code, 0, "{}", coloured.all());
    assert!(
        coloured.stdout.contains("\x1b[32mHealthy"),
        "green on a terminal:\n{:?}",
        coloured.stdout
    );
    let plain = in_terminal(&cluster, "status", true).await.await.unwrap();
    assert_eq!(plain.code, 0, "{}", plain.all());
    assert!(
        plain.stdout.contains("Status: Healthy") && !plain.stdout.contains('\x1b'),
        "{:?}",
        plain.stdout
    );
}

kube_encrypt_tests::on_both_servers!(wait_draws_a_progress_bar_on_a_terminal);
async fn wait_draws_a_progress_bar_on_a_terminal(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    cluster.add_nodes([node(1), node(2)]).await;
    let pool = IPPoolSpec {
        cidr: "198.18.0.0/16".into(),
        nat_outgoing: true,
        disabled: false,
    };
    cluster.add_pool("pool-v4", pool).await;
    let session = in_terminal(&cluster, "enable --wait --timeout 30s", false).await;
    for name in ["node-1", "node-2"] {
        tokio::time::sleep(Duration::from_millis(800)).await;
        cluster
            .report(name, json!({"ipv4": encrypted(name, Family::V4, 1)}))
            .await;
    }
    let out = session.await.unwrap();
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("nodes final (encrypted)"),
        "the bar's text:\n{:?}",
        out.stdout
    );
    assert!(
        out.stdout.contains("0/2") && out.stdout.contains("1/2"),
        "the bar moves:\n{:?}",
        out.stdout
    );
    assert!(out.stdout.contains("waiting for node-"), "{:?}", out.stdout);
    assert!(
        out.stdout.contains("2/2 nodes encrypted"),
        "{:?}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("node-1: encrypted ("),
        "no plain progress lines on a terminal:\n{:?}",
        out.stdout
    );
}
