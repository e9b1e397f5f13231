//! `enable` and `disable`: the shared rules first, NAT outgoing fixed on request, server-side
//! apply as kubectl-encrypt, GitOps refusals, conflicts, and `--wait`.

use std::time::Duration;

use kube_encrypt_api::crd::IPPoolSpec;
use kube_encrypt_api::net::Family;
use serde_json::json;

use super::support::{encrypted, finish, node, state, Backend, Cluster};

fn pool(cidr: &str, nat_outgoing: bool) -> IPPoolSpec {
    IPPoolSpec {
        cidr: cidr.into(),
        nat_outgoing,
        disabled: false,
    }
}

/// Two dual-stack nodes, an IPv4 pool with NAT outgoing and an IPv6 pool without.
async fn dual_stack(backend: Backend) -> Cluster {
    let cluster = Cluster::start(backend).await;
    cluster.add_nodes([node(1), node(2)]).await;
    cluster
        .add_pool("pool-v4", pool("198.18.0.0/16", true))
        .await;
    cluster
        .add_pool("pool-v6", pool("2001:db8:1::/48", false))
        .await;
    cluster
}

fn managers(config: &kube_encrypt_api::crd::EncryptionConfig) -> Vec<String> {
    let fields = config.metadata.managed_fields.iter().flatten();
    fields.filter_map(|f| f.manager.clone()).collect()
}

kube_encrypt_tests::on_both_servers!(ipv6_is_refused_while_an_ipv6_pool_lacks_nat_outgoing);
async fn ipv6_is_refused_while_an_ipv6_pool_lacks_nat_outgoing(backend: Backend) {
    let cluster = dual_stack(backend).await;
    let out = cluster.run(&["enable", "--ipv6"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout
            .contains("✗ pool-v6 (2001:db8:1::/48) natOutgoing: false"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("ipv6-nat-outgoing"), "{}", out.stdout);
    let error = out.stderr.trim();
    assert!(
        error.contains("NAT outgoing") && error.contains("--fix-nat-outgoing"),
        "{error}"
    );
    assert!(cluster.config().await.is_none(), "nothing was written");
}

kube_encrypt_tests::on_both_servers!(fix_nat_outgoing_lists_then_applies_the_pool_changes);
async fn fix_nat_outgoing_lists_then_applies_the_pool_changes(backend: Backend) {
    let cluster = dual_stack(backend).await;
    let dry = cluster
        .run(&["enable", "--ipv6", "--fix-nat-outgoing", "--dry-run=server"])
        .await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stdout
            .contains("IPPool \"pool-v6\": natOutgoing false → true"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("(server dry run)"), "{}", dry.stdout);
    assert!(
        !cluster.pool("pool-v6").await.spec.nat_outgoing,
        "a dry run changes nothing"
    );
    assert!(cluster.config().await.is_none());

    let client = cluster
        .run(&["enable", "--ipv6", "--fix-nat-outgoing", "--dry-run"])
        .await;
    assert_eq!(client.code, 0, "{}", client.all());
    assert!(
        client.stdout.contains("natOutgoing: true") && client.stdout.contains("nothing was sent"),
        "{}",
        client.stdout
    );

    let out = cluster
        .run(&[
            "enable",
            "--ipv4",
            "--ipv6",
            "--fix-nat-outgoing",
            "--mtu",
            "1400",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(cluster.pool("pool-v6").await.spec.nat_outgoing);
    let config = cluster.config().await.expect("the config was applied");
    assert!(
        config.spec.ipv4.enabled && config.spec.ipv6.enabled,
        "{:?}",
        config.spec
    );
    assert_eq!((config.spec.ipv4.mtu, config.spec.ipv6.mtu), (1400, 1400));
    assert!(
        managers(&config).contains(&"kubectl-encrypt".to_owned()),
        "{:?}",
        managers(&config)
    );

    // Enabling one family later keeps what the plugin set before (server-side apply would
    // otherwise drop the fields it no longer sends).
    let again = cluster.run(&["enable", "--ipv4", "--port", "51900"]).await;
    assert_eq!(again.code, 0, "{}", again.all());
    let config = cluster.config().await.unwrap();
    assert!(
        config.spec.ipv6.enabled && config.spec.ipv6.mtu == 1400,
        "{:?}",
        config.spec
    );
    assert_eq!(config.spec.ipv4.port, 51900);

    let off = cluster.run(&["disable", "--ipv6"]).await;
    assert_eq!(off.code, 0, "{}", off.all());
    let config = cluster.config().await.unwrap();
    assert!(
        config.spec.ipv4.enabled && !config.spec.ipv6.enabled,
        "{:?}",
        config.spec
    );
}

kube_encrypt_tests::on_both_servers!(gitops_managed_config_is_left_alone_without_force);
async fn gitops_managed_config_is_left_alone_without_force(backend: Backend) {
    let cases = [
        (
            json!({"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "enc:kube-encrypt.dev/EncryptionConfig:/default"}}}),
            "Argo CD",
            "gitless",
        ),
        (
            json!({"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "infra"}}}),
            "Flux",
            "gitless",
        ),
        (json!({}), "Argo CD", "argocd-controller"),
    ];
    for (marker, tool, manager) in cases {
        let cluster = dual_stack(backend).await;
        let mut body = json!({"spec": {"ipv4": {"enabled": false}}});
        body.as_object_mut()
            .unwrap()
            .extend(marker.as_object().unwrap().clone());
        cluster.apply_config(manager, body).await;
        let out = cluster.run(&["enable"]).await;
        assert_eq!(out.code, 1, "{}", out.all());
        let error = out.stderr.trim();
        assert!(
            error.contains(tool) && error.contains("Git") && error.contains("--force"),
            "{error}"
        );
        assert!(
            !cluster.config().await.unwrap().spec.ipv4.enabled,
            "left untouched"
        );
        let disable = cluster.run(&["disable"]).await;
        assert_eq!(disable.code, 1, "disable refuses too: {}", disable.all());

        let forced = cluster.run(&["enable", "--force"]).await;
        assert_eq!(forced.code, 0, "{}", forced.all());
        assert!(cluster.config().await.unwrap().spec.ipv4.enabled);
    }
}

kube_encrypt_tests::on_both_servers!(a_conflict_names_the_manager_and_the_field);
async fn a_conflict_names_the_manager_and_the_field(backend: Backend) {
    let cluster = dual_stack(backend).await;
    cluster
        .apply_config(
            "platform-team",
            json!({"spec": {"ipv4": {"enabled": false, "mtu": 1300}}}),
        )
        .await;
    let out = cluster.run(&["enable", "--mtu", "1400"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    let error = out.stderr.trim();
    assert!(
        error.contains(".spec.ipv4.enabled is owned by \"platform-team\""),
        "{error}"
    );
    assert!(
        error.contains(".spec.ipv4.mtu is owned by \"platform-team\""),
        "{error}"
    );
    assert!(error.contains("--force"), "{error}");
}

kube_encrypt_tests::on_both_servers!(wait_follows_the_nodes_until_each_is_final);
async fn wait_follows_the_nodes_until_each_is_final(backend: Backend) {
    let cluster = dual_stack(backend).await;
    cluster.add_nodes([node(3)]).await;
    let mut cmd = cluster.plugin(&["enable", "--wait", "--timeout", "30s"]);
    cmd.stdout(std::process::Stdio::piped());
    let run = tokio::spawn(finish(cmd));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["node-1", "node-2"] {
        cluster
            .report(name, json!({"ipv4": encrypted(name, Family::V4, 2)}))
            .await;
    }
    cluster
        .report(
            "node-3",
            json!({"ipv4": state("Unsupported", "no WireGuard on this node")}),
        )
        .await;
    let out = run.await.unwrap();
    assert_eq!(
        out.code,
        2,
        "one node Unsupported: reached but degraded\n{}",
        out.all()
    );
    assert!(
        out.stdout.contains("node-1: encrypted"),
        "plain lines off a terminal:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("2/3 nodes encrypted; not encrypted: node-3 (IPv4 Unsupported: no WireGuard on this node)"), "{}", out.stdout);
    assert!(!out.stdout.contains('\x1b'), "{}", out.stdout);
}

kube_encrypt_tests::on_both_servers!(wait_times_out_with_the_nodes_it_waited_for);
async fn wait_times_out_with_the_nodes_it_waited_for(backend: Backend) {
    let cluster = dual_stack(backend).await;
    let out = cluster.run(&["enable", "--wait", "--timeout", "1s"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    let error = out.stderr.trim();
    assert!(
        error.contains("timed out after 1s") && error.contains("node-1 (no report yet)"),
        "{error}"
    );
}

kube_encrypt_tests::on_both_servers!(disable_waits_until_the_agents_report_disabled);
async fn disable_waits_until_the_agents_report_disabled(backend: Backend) {
    // The config was applied by another manager: --force takes spec.ipv4.enabled over.
    let cluster = super::support::encrypted_cluster(2, backend).await;
    let args = ["disable", "--force", "--wait", "--timeout", "30s"];
    let run = tokio::spawn(finish(cluster.plugin(&args)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["node-1", "node-2"] {
        cluster
            .report(
                name,
                json!({"ipv4": state("Disabled", "encryption is off")}),
            )
            .await;
    }
    let out = run.await.unwrap();
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("2/2 nodes disabled"), "{}", out.stdout);
    let config = cluster.config().await.unwrap();
    assert!(!config.spec.ipv4.enabled && !config.spec.ipv6.enabled);
}
