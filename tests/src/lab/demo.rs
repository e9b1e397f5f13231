//! `demo`: the whole story in a few minutes — a lab on the real control plane, pods talking in
//! plaintext; the GitOps path (pools and a config as files, `kubectl apply`) refused by the
//! admission webhook in the API server's words; `kubectl encrypt check`, `enable` refused with
//! its fix, `enable --fix-nat-outgoing --wait`; `kubectl wait --for=condition=Ready`; the
//! same file now admitted; `kubectl encrypt status`; the flow matrix; and the lab torn down
//! again (also on failure and Ctrl-C).

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context};

use super::commands::down;
use super::flows::{self, report::Style};
use super::state::Paths;
use super::topology::LabSpec;
use super::up::{up, UpOptions};
use super::{control_plane, signals};

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
    let families: &[&str] = if ipv6 {
        &["--ipv4", "--ipv6"]
    } else {
        &["--ipv4"]
    };
    let shown = families.join(" ");
    step("flows before encryption: everything works, nothing is encrypted");
    let before = flows::run(&store, rt, Style::detect())?;
    signals::check()?;
    step("the GitOps path: kubectl apply -f ippools.yaml (one pool without natOutgoing)");
    kubectl(kubeconfig, &["apply", "-f", "-"], Some(&pools(ipv6, false)))?;
    step("kubectl apply -f encryptionconfig.yaml: the admission webhook refuses it, in the API server's words");
    let applied = kubectl_status(kubeconfig, &["apply", "-f", "-"], Some(&config(ipv6)))?;
    expect_refused(applied, "the webhook")?;
    step("kubectl encrypt check");
    plugin(kubeconfig, &["check"])?;
    step(&format!(
        "kubectl encrypt enable {shown}: refused before writing anything, with the fix"
    ));
    let mut enable = vec!["enable"];
    enable.extend_from_slice(families);
    expect_refused(plugin(kubeconfig, &enable)?, "kubectl encrypt enable")?;
    step(&format!(
        "kubectl encrypt enable {shown} --fix-nat-outgoing --wait"
    ));
    enable.extend(["--fix-nat-outgoing", "--wait", "--timeout", "90s"]);
    if !plugin(kubeconfig, &enable)?.success() {
        println!("  not every node reported Encrypted; continuing to show what works");
    }
    signals::check()?;
    step("kubectl wait --for=condition=Ready encryptionconfig/default");
    let ready = [
        "wait",
        "--for=condition=Ready",
        "encryptionconfig/default",
        "--timeout=60s",
    ];
    kubectl(kubeconfig, &ready, None)?;
    step("the GitOps path again: the same file now passes the webhook (server-side dry run)");
    let dry_run = ["apply", "--dry-run=server", "-f", "-"];
    kubectl(kubeconfig, &dry_run, Some(&config(ipv6)))?;
    step("kubectl encrypt status");
    plugin(kubeconfig, &["status"])?;
    step("kubectl get encryptionconfig,nodeencryptions");
    kubectl(
        kubeconfig,
        &["get", "encryptionconfig,nodeencryptions"],
        None,
    )?;
    step("flows with encryption on");
    let after = flows::run(&store, rt, Style::detect())?;
    Ok(before.iter().chain(&after).all(|r| r.as_expected()))
}

/// The pools as a GitOps repository holds them; the last one with NAT outgoing as given.
fn pools(ipv6: bool, last_nat: bool) -> String {
    let pool = |name: &str, cidr: &str, nat: bool| {
        format!(
            "apiVersion: kube-encrypt.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: {name}\nspec:\n  cidr: \"{cidr}\"\n  natOutgoing: {nat}\n"
        )
    };
    if ipv6 {
        let v4 = pool("lab-pods-v4", "198.18.0.0/16", true);
        let v6 = pool("lab-pods-v6", "2001:db8:1::/48", last_nat);
        format!("{v4}---\n{v6}")
    } else {
        pool("lab-pods-v4", "198.18.0.0/16", last_nat)
    }
}

/// The EncryptionConfig as a GitOps repository holds it.
fn config(ipv6: bool) -> String {
    format!(
        "apiVersion: kube-encrypt.dev/v1alpha1\nkind: EncryptionConfig\nmetadata:\n  name: default\nspec:\n  ipv4:\n    enabled: true\n  ipv6:\n    enabled: {ipv6}\n"
    )
}

fn expect_refused(status: ExitStatus, who: &str) -> anyhow::Result<()> {
    if status.success() {
        bail!("{who} was expected to refuse this, but it went through");
    }
    println!("  (refused, as it should be)");
    Ok(())
}

/// `kubectl encrypt ARGS` through kubectl, with the plugin of this build first on `PATH`.
fn plugin(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<ExitStatus> {
    let dir = std::env::current_exe()?
        .parent()
        .context("the lab binary has no directory")?
        .to_path_buf();
    if !dir.join("kubectl-encrypt").is_file() {
        bail!("kubectl-encrypt is not built next to the lab: `cargo build -p kubectl-encrypt`");
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&search)))?;
    let mut full = vec!["encrypt"];
    full.extend_from_slice(args);
    // kubectl takes no flags before a plugin's name: the plugin reads KUBECONFIG.
    let program = control_plane::kubectl().context("kubectl is not installed")?;
    Command::new(program)
        .args(&full)
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .stdin(Stdio::null())
        .status()
        .context("run kubectl encrypt")
}

fn kubectl_command(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<Command> {
    let program = control_plane::kubectl().context("kubectl is not installed")?;
    let mut cmd = Command::new(program);
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    Ok(cmd)
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
    let status = kubectl_status(kubeconfig, args, stdin)?;
    if !status.success() {
        bail!("kubectl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn kubectl_status(
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<ExitStatus> {
    let mut cmd = kubectl_command(kubeconfig, args)?;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().context("run kubectl")?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .context("write to kubectl")?;
    }
    Ok(child.wait()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_encrypt_api::crd::{EncryptionConfig, IPPool};

    #[test]
    fn the_files_are_valid_kube_encrypt_yaml() {
        for ipv6 in [false, true] {
            for nat in [false, true] {
                let text = pools(ipv6, nat);
                let docs: Vec<&str> = text.split("---\n").collect();
                assert_eq!(docs.len(), if ipv6 { 2 } else { 1 });
                let last: IPPool = serde_yaml::from_str(docs.last().unwrap()).unwrap();
                assert_eq!(last.spec.nat_outgoing, nat);
            }
            let config: EncryptionConfig = serde_yaml::from_str(&config(ipv6)).unwrap();
            assert!(config.spec.ipv4.enabled);
            assert_eq!(config.spec.ipv6.enabled, ipv6);
        }
    }
}
