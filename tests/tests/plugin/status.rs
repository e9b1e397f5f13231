//! `status` and `check`: exit codes, formats, colour rules.

use kube_encrypt_api::net::Family;
use serde_json::json;

use super::support::{encrypted, encrypted_cluster, state, Backend};

kube_encrypt_tests::on_both_servers!(healthy_cluster_exits_0_and_shows_every_node);
async fn healthy_cluster_exits_0_and_shows_every_node(backend: Backend) {
    let cluster = encrypted_cluster(3, backend).await;
    let out = cluster.run(&["status"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    for expected in [
        "Encrypted: IPv4 3/3 nodes",
        "node-3   Encrypted",
        "Status: Healthy",
        "pool-v4",
    ] {
        assert!(
            out.stdout.contains(expected),
            "missing {expected:?}:\n{}",
            out.stdout
        );
    }
    let check = cluster.run(&["check"]).await;
    // No agent DaemonSet and no webhook in the emulator: check tells, and fails.
    assert_eq!(check.code, 2, "{}", check.all());
    assert!(
        check.stdout.contains("✓ CRDs installed") && check.stdout.contains("✗ agents installed"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("fix: kubectl encrypt install"),
        "{}",
        check.stdout
    );
}

kube_encrypt_tests::on_both_servers!(a_node_without_wireguard_is_unsupported_and_exits_2);
async fn a_node_without_wireguard_is_unsupported_and_exits_2(backend: Backend) {
    let cluster = encrypted_cluster(2, backend).await;
    cluster.add_nodes([super::support::node(3)]).await;
    cluster
        .report(
            "node-3",
            json!({"ipv4": state("Unsupported", "no WireGuard on this node")}),
        )
        .await;
    let out = cluster.run(&["status"]).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stdout.contains("node-3   Unsupported"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("✗ node-3: IPv4 Unsupported: no WireGuard on this node"),
        "{}",
        out.stdout
    );

    let one = cluster.run(&["status", "--node", "node-1"]).await;
    assert_eq!(one.code, 0, "--node looks at that node only: {}", one.all());
    assert!(!one.stdout.contains("node-3"), "{}", one.stdout);
}

kube_encrypt_tests::on_both_servers!(json_and_yaml_parse_and_agree);
async fn json_and_yaml_parse_and_agree(backend: Backend) {
    let cluster = encrypted_cluster(2, backend).await;
    let json_out = cluster.run(&["status", "-o", "json"]).await;
    let yaml_out = cluster.run(&["status", "-o", "yaml"]).await;
    assert_eq!(
        (json_out.code, yaml_out.code),
        (0, 0),
        "{}{}",
        json_out.all(),
        yaml_out.all()
    );
    let from_json: serde_json::Value =
        serde_json::from_str(&json_out.stdout).expect("status -o json is JSON");
    let from_yaml: serde_json::Value =
        serde_yaml::from_str(&yaml_out.stdout).expect("status -o yaml is YAML");
    assert_eq!(from_json, from_yaml);
    assert_eq!(
        from_json["nodes"][1]["ipv4"]["publicKey"],
        encrypted("node-2", Family::V4, 1)["publicKey"]
    );
    assert_eq!(from_json["config"]["counts"][0]["encrypted"], 2);
}

kube_encrypt_tests::on_both_servers!(colour_only_on_request_or_terminal);
async fn colour_only_on_request_or_terminal(backend: Backend) {
    let cluster = encrypted_cluster(2, backend).await;
    let plain = cluster.run(&["status"]).await;
    assert!(
        !plain.all().contains('\x1b'),
        "not a terminal: no escape codes:\n{}",
        plain.stdout
    );
    let always = cluster.run(&["status", "--color", "always"]).await;
    assert!(
        always.stdout.contains("\x1b["),
        "--color always colours:\n{}",
        always.stdout
    );
    let mut cmd = cluster.plugin(&["status", "--color", "auto"]);
    cmd.env("NO_COLOR", "1");
    let no_color = super::support::finish(cmd).await;
    assert!(!no_color.all().contains('\x1b'), "{}", no_color.stdout);
}

kube_encrypt_tests::on_both_servers!(a_closed_pipe_is_success);
async fn a_closed_pipe_is_success(backend: Backend) {
    let cluster = encrypted_cluster(2, backend).await;
    let script = format!(
        "{} status -o yaml | head -c 1 >/dev/null; exit ${{PIPESTATUS[0]}}",
        super::support::plugin_bin().display()
    );
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .env("KUBECONFIG", cluster.kubeconfig());
    let out = super::support::finish(cmd).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

kube_encrypt_tests::on_both_servers!(check_prints_json_and_yaml);
async fn check_prints_json_and_yaml(backend: Backend) {
    let cluster = encrypted_cluster(2, backend).await;
    for format in ["json", "yaml"] {
        let out = cluster.run(&["check", "-o", format]).await;
        assert_eq!(out.code, 2, "{}", out.all());
        let report: serde_json::Value =
            serde_yaml::from_str(&out.stdout).expect("check -o json|yaml parses");
        assert_eq!(report["passed"], false);
        let agents = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "agents installed")
            .unwrap();
        assert_eq!(agents["outcome"], "fail");
        assert_eq!(agents["fix"], "kubectl encrypt install (or -n NAMESPACE if kube-encrypt lives elsewhere than kube-encrypt)");
    }
}

kube_encrypt_tests::on_both_servers!(watch_prints_again_when_a_node_changes);
async fn watch_prints_again_when_a_node_changes(backend: Backend) {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let cluster = encrypted_cluster(2, backend).await;
    let mut cmd = cluster.plugin(&["status", "--watch"]);
    cmd.stdout(std::process::Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().expect("starting status --watch");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut verdicts = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("Status: ") {
                verdicts.push(line);
                if verdicts.len() == 1 {
                    cluster
                        .report(
                            "node-2",
                            json!({"ipv4": state("Error", "applying failed: test")}),
                        )
                        .await;
                } else {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(super::support::CALL_TIMEOUT, read)
        .await
        .expect("a second status within the limit");
    assert_eq!(verdicts[0], "Status: Healthy");
    assert!(verdicts[1].starts_with("Status: Degraded"), "{verdicts:?}");
    nix_interrupt(&child);
    let status = tokio::time::timeout(super::support::CALL_TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "Ctrl-C ends the watch with the last verdict"
    );
}

/// Ctrl-C for the child (by its PID).
fn nix_interrupt(child: &tokio::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id().expect("the child runs") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("sending SIGINT");
}
