//! `demo`: the whole story in under two minutes — a lab, pods talking in plaintext, one
//! EncryptionConfig applied with the real kubectl, every node encrypting, the flow matrix,
//! and the lab torn down again (also on failure and Ctrl-C).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kube::api::{Api, ListParams};
use kube_encrypt_api::crd::{EncryptionState, NodeEncryption};

use super::commands::down;
use super::flows::{self, report::Style};
use super::state::Paths;
use super::topology::LabSpec;
use super::up::{up, UpOptions};
use super::{cluster, control_plane, signals};

const WAIT_ENCRYPTED: Duration = Duration::from_secs(60);

/// Runs the demo; `Ok(false)` when a flow was not as expected.
pub fn demo(
    paths: &Paths,
    spec: LabSpec,
    agent_bin: Option<std::path::PathBuf>,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<bool> {
    if control_plane::kubectl().is_none() {
        bail!("the demo applies its config with kubectl, which is not installed: run `make deps` (it builds kubectl with the control plane) or install kubectl");
    }
    let ipv6 = spec.ipv6;
    step(&format!(
        "kube-encrypt-lab up --nodes {}{}",
        spec.nodes,
        if ipv6 { " --ipv6" } else { "" }
    ));
    let kubeconfig = up(
        paths,
        UpOptions {
            spec,
            agents: true,
            agent_bin,
            webhook: true,
            webhook_bin: None,
        },
        rt,
    )?;
    println!("kubeconfig: {}", kubeconfig.display());
    let result = encrypt_and_check(paths, &kubeconfig, ipv6, rt);
    step("kube-encrypt-lab down");
    let removed = down(paths);
    let ok = result?;
    removed?;
    Ok(ok)
}

fn step(text: &str) {
    let style = Style::detect();
    if style.color {
        use owo_colors::OwoColorize;
        println!("\n{}", format!("▶ {text}").bold());
    } else {
        println!("\n▶ {text}");
    }
}

fn encrypt_and_check(
    paths: &Paths,
    kubeconfig: &Path,
    ipv6: bool,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<bool> {
    let store = super::commands::require_lab(paths)?;
    step("flows before encryption: everything works, nothing is encrypted");
    let before = flows::run(&store, rt, Style::detect())?;
    signals::check()?;
    step("kubectl apply -f - (IPPools with natOutgoing, EncryptionConfig default)");
    kubectl(kubeconfig, &["apply", "-f", "-"], Some(&manifest(ipv6)))?;
    step(&format!(
        "waiting (≤ {}s) for every node to report Encrypted",
        WAIT_ENCRYPTED.as_secs()
    ));
    let families = if ipv6 {
        vec!["ipv4", "ipv6"]
    } else {
        vec!["ipv4"]
    };
    wait_encrypted(kubeconfig, &families, store.state.spec.nodes, rt)?;
    step("kubectl get nodeencryptions");
    kubectl(kubeconfig, &["get", "nodeencryptions"], None)?;
    step("flows with encryption on");
    let after = flows::run(&store, rt, Style::detect())?;
    Ok(before.iter().chain(&after).all(|r| r.as_expected()))
}

fn manifest(ipv6: bool) -> String {
    let mut text = String::from(
        "apiVersion: kube-encrypt.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: lab-pods-v4\nspec:\n  cidr: 198.18.0.0/16\n  natOutgoing: true\n---\n",
    );
    if ipv6 {
        text.push_str("apiVersion: kube-encrypt.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: lab-pods-v6\nspec:\n  cidr: 2001:db8:1::/48\n  natOutgoing: true\n---\n");
    }
    text.push_str(&format!(
        "apiVersion: kube-encrypt.dev/v1alpha1\nkind: EncryptionConfig\nmetadata:\n  name: default\nspec:\n  ipv4:\n    enabled: true\n  ipv6:\n    enabled: {ipv6}\n"
    ));
    text
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
    let program = control_plane::kubectl().context("kubectl is not installed")?;
    let mut cmd = Command::new(program);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().context("run kubectl")?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .context("write to kubectl")?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("kubectl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Polls NodeEncryptions until every node reports Encrypted for `families` (bounded).
fn wait_encrypted(
    kubeconfig: &Path,
    families: &[&str],
    nodes: u8,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    rt.block_on(async {
        let client = cluster::client(kubeconfig).await?;
        let api: Api<NodeEncryption> = Api::all(client);
        let deadline = Instant::now() + WAIT_ENCRYPTED;
        let mut last = String::new();
        loop {
            signals::check()?;
            let list = api
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            let done = list.iter().filter(|ne| is_encrypted(ne, families)).count();
            let progress = format!("{done}/{nodes} nodes encrypted");
            if progress != last {
                println!("  {progress}");
                last = progress;
            }
            if done == usize::from(nodes) {
                return Ok(());
            }
            if Instant::now() > deadline {
                println!(
                    "  not every node reported Encrypted within {}s; continuing to show what works",
                    WAIT_ENCRYPTED.as_secs()
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

fn is_encrypted(ne: &NodeEncryption, families: &[&str]) -> bool {
    let Some(status) = &ne.status else {
        return false;
    };
    families.iter().all(|f| {
        let family = if *f == "ipv4" {
            &status.ipv4
        } else {
            &status.ipv6
        };
        family
            .as_ref()
            .is_some_and(|s| s.state == EncryptionState::Encrypted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_encrypt_api::crd::{EncryptionConfig, IPPool};

    #[test]
    fn the_manifest_is_valid_kube_encrypt_yaml() {
        for ipv6 in [false, true] {
            let text = manifest(ipv6);
            let docs: Vec<&str> = text.split("---\n").collect();
            assert_eq!(docs.len(), if ipv6 { 3 } else { 2 });
            for pool in &docs[..docs.len() - 1] {
                let pool: IPPool = serde_yaml::from_str(pool).unwrap();
                assert!(pool.spec.nat_outgoing);
            }
            let config: EncryptionConfig = serde_yaml::from_str(docs.last().unwrap()).unwrap();
            assert!(config.spec.ipv4.enabled);
            assert_eq!(config.spec.ipv6.enabled, ipv6);
        }
    }
}
