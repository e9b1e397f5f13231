//! `kubectl encrypt` on the lab, as an admin uses it on a real cluster: found by kubectl,
//! `enable --ipv6` refused while an IPv6 pool lacks NAT outgoing, `enable --fix-nat-outgoing
//! --wait` until every node is Encrypted, `status` healthy; a node without WireGuard makes
//! `status` exit 2 and show it Unsupported; an Argo CD-managed config is left alone without
//! `--force`; a broken kubeconfig is one clear line and exit 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kube::api::PostParams;
use kube::api::{Api, Patch, PatchParams};
use kube_encrypt_api::crd::{EncryptionConfig, IPPool, IPPoolSpec};

use super::support::*;

fn plugin_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_kube-encrypt-lab")).with_file_name("kubectl-encrypt");
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace first",
        bin.display()
    );
    bin
}

/// `kubectl encrypt ARGS` through kubectl (the plugin found on PATH), on the lab.
fn kubectl_encrypt(kubeconfig: &Path, args: &[&str]) -> Output {
    let dir = plugin_bin().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    Command::new(kubectl_bin())
        .arg("encrypt")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .output()
        .expect("run kubectl encrypt")
}

async fn add_pools(client: &kube::Client, v6_nat: bool) {
    let pools: Api<IPPool> = Api::all(client.clone());
    for (name, cidr, nat) in [
        ("v4", "198.18.0.0/16", true),
        ("v6", "2001:db8:1::/48", v6_nat),
    ] {
        let spec = IPPoolSpec {
            cidr: cidr.into(),
            nat_outgoing: nat,
            disabled: false,
        };
        pools
            .create(&PostParams::default(), &IPPool::new(name, spec))
            .await
            .unwrap();
    }
}

#[test]
fn enable_refuses_ipv6_without_nat_then_fixes_it_and_waits_for_every_node() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&["--nodes", "3", "--ipv6", "--agent-bin", &agent]);
    let kubeconfig = lab.kubeconfig();
    let rt = runtime();
    let client = rt.block_on(client(&kubeconfig));
    rt.block_on(add_pools(&client, false));

    let listed = Command::new(kubectl_bin())
        .args(["plugin", "list"])
        .env(
            "PATH",
            format!(
                "{}:{}",
                plugin_bin().parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    assert!(
        stdout(&listed).contains("kubectl-encrypt"),
        "{}",
        text(&listed)
    );

    let refused = kubectl_encrypt(&kubeconfig, &["enable", "--ipv4", "--ipv6"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let said = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(
        said.contains("NAT outgoing") || said.contains("natOutgoing"),
        "{said}"
    );
    assert!(said.contains("--fix-nat-outgoing"), "{said}");
    let configs: Api<EncryptionConfig> = Api::all(client.clone());
    assert!(
        rt.block_on(configs.get_opt("default")).unwrap().is_none(),
        "nothing written"
    );

    let enabled = kubectl_encrypt(
        &kubeconfig,
        &[
            "enable",
            "--ipv4",
            "--ipv6",
            "--fix-nat-outgoing",
            "--wait",
            "--timeout",
            "90s",
        ],
    );
    assert_eq!(enabled.status.code(), Some(0), "{}", text(&enabled));
    let pools: Api<IPPool> = Api::all(client.clone());
    assert!(rt.block_on(pools.get("v6")).unwrap().spec.nat_outgoing);

    let status = kubectl_encrypt(&kubeconfig, &["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let table = stdout(&status);
    for node in ["node-1", "node-2", "node-3"] {
        let line = table
            .lines()
            .find(|l| l.trim_start().starts_with(node))
            .unwrap_or_else(|| panic!("{node} in {table}"));
        assert!(line.contains("Encrypted"), "{line}");
    }
    let flows = session.run(&["flows"]);
    assert!(flows.status.success(), "{}", text(&flows));
}

#[test]
fn status_is_degraded_for_a_node_without_wireguard_and_gitops_configs_are_left_alone() {
    let agent = agent_bin();
    let session = session();
    let lab = session.up(&[
        "--nodes",
        "2",
        "--no-wireguard",
        "node-2",
        "--agent-bin",
        &agent,
    ]);
    let kubeconfig = lab.kubeconfig();
    let rt = runtime();
    let client = rt.block_on(client(&kubeconfig));
    rt.block_on(add_pools(&client, true));
    let config = serde_json::json!({
        "apiVersion": "kube-encrypt.dev/v1alpha1",
        "kind": "EncryptionConfig",
        "metadata": {"name": "default", "annotations": {"argocd.argoproj.io/tracking-id": "kube-encrypt:kube-encrypt.dev/EncryptionConfig:/default"}},
        "spec": {"ipv4": {"enabled": true}},
    });
    let configs: Api<EncryptionConfig> = Api::all(client.clone());
    rt.block_on(configs.patch(
        "default",
        &PatchParams::apply("argocd-controller"),
        &Patch::Apply(&config),
    ))
    .unwrap();

    let row = |out: &Output, node: &str| {
        stdout(out)
            .lines()
            .find(|l| l.trim_start().starts_with(node))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    wait_until(
        "status: node-1 Encrypted, node-2 Unsupported, exit 2",
        std::time::Duration::from_secs(60),
        || {
            let out = kubectl_encrypt(&kubeconfig, &["status"]);
            let shown = row(&out, "node-1").contains("Encrypted")
                && row(&out, "node-2").contains("Unsupported");
            (shown && out.status.code() == Some(2))
                .then_some(())
                .ok_or_else(|| text(&out))
        },
    );

    let refused = kubectl_encrypt(&kubeconfig, &["disable", "--all"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        format!("{}{}", stdout(&refused), stderr(&refused)).contains("Argo CD"),
        "{}",
        text(&refused)
    );
    let after = rt.block_on(configs.get("default")).unwrap();
    assert!(
        after.spec.ipv4.enabled,
        "the Argo CD-managed config is untouched"
    );

    let broken = kubectl_encrypt(Path::new("/nonexistent/kubeconfig"), &["status"]);
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    assert_eq!(
        stderr(&broken).trim().lines().count(),
        1,
        "{}",
        text(&broken)
    );
}
