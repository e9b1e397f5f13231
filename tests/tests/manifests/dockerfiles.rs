//! The Dockerfiles, checked without a container engine: the binary each one builds and copies
//! is a binary target of a workspace package (cargo metadata), its entrypoint is that binary,
//! and every flag the image's CMD and the manifests' containers pass — and every variable
//! they set — is one the binary's `--help` lists.

use std::path::PathBuf;

use serde_json::Value;
use tokio::process::Command;

use super::support::{documents, finish, kustomize, repo};

/// One image: its Dockerfile, the package and binary it builds, the workload running it.
struct Image {
    dockerfile: &'static str,
    package: &'static str,
    binary: &'static str,
    workload: (&'static str, &'static str),
    /// Packages the runtime stage must install.
    runtime_packages: &'static [&'static str],
}

const IMAGES: &[Image] = &[
    Image {
        dockerfile: "agent/Dockerfile",
        package: "kube-encrypt-agent",
        binary: "kube-encrypt-agent",
        workload: ("DaemonSet", "kube-encrypt-agent"),
        runtime_packages: &["nftables", "wireguard-go"],
    },
    Image {
        dockerfile: "webhook/Dockerfile",
        package: "kube-encrypt-webhook",
        binary: "kube-encrypt-webhook",
        workload: ("Deployment", "kube-encrypt-webhook"),
        runtime_packages: &[],
    },
];

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        match line.trim_end().strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    joined.push(current.trim().to_owned());
                }
                current.clear();
            }
        }
    }
    joined
}

fn json_array(instruction: &str, keyword: &str) -> Vec<String> {
    let rest = instruction.strip_prefix(keyword).unwrap().trim();
    serde_json::from_str(rest)
        .unwrap_or_else(|e| panic!("{keyword} must be a JSON array ({e}): {rest}"))
}

/// The workspace's packages and their binary targets (`cargo metadata`).
async fn workspace_binaries() -> Vec<(String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
        "--manifest-path",
    ])
    .arg(repo().join("Cargo.toml"));
    let metadata: Value =
        serde_json::from_str(&finish(cmd).await.expect_ok("cargo metadata")).unwrap();
    let mut binaries = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        for target in package["targets"].as_array().unwrap() {
            if target["kind"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == "bin")
            {
                binaries.push((
                    package["name"].as_str().unwrap().to_owned(),
                    target["name"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    binaries
}

/// This build's binary `name` (the workspace is built before its tests run).
fn built(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_kube-encrypt-lab"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

async fn help(name: &str) -> String {
    let mut cmd = Command::new(built(name));
    cmd.arg("--help");
    finish(cmd).await.expect_ok(&format!("{name} --help"))
}

/// `--flag` of `--flag=value` or `--flag`.
fn flag(arg: &str) -> Option<&str> {
    arg.starts_with("--")
        .then(|| arg.split('=').next().unwrap())
}

#[tokio::test]
async fn each_dockerfile_builds_and_runs_a_workspace_binary() {
    let binaries = workspace_binaries().await;
    for image in IMAGES {
        let text = std::fs::read_to_string(repo().join(image.dockerfile)).unwrap();
        let steps = instructions(&text);
        let what = image.dockerfile;
        assert!(
            binaries.contains(&(image.package.to_owned(), image.binary.to_owned())),
            "{what}: {} is not a binary of package {} in this workspace: {binaries:?}",
            image.binary,
            image.package
        );
        let build = steps
            .iter()
            .find(|s| s.contains("cargo build"))
            .unwrap_or_else(|| panic!("{what}: no cargo build"));
        assert!(
            build.contains(&format!("-p {}", image.package)),
            "{what}: builds another package: {build}"
        );
        assert!(
            build.contains(&format!("--bin {}", image.binary)),
            "{what}: builds another binary: {build}"
        );
        assert!(
            build.contains("--locked") && build.contains("--release"),
            "{what}: {build}"
        );
        let stages = steps.iter().filter(|s| s.starts_with("FROM ")).count();
        assert!(stages >= 2, "{what}: not multi-stage");
        let copy = steps
            .iter()
            .find(|s| s.starts_with("COPY --from=build"))
            .unwrap_or_else(|| panic!("{what}: copies nothing from the build stage"));
        let source = copy.split_whitespace().nth(2).unwrap();
        assert!(
            source.ends_with(&format!("/{}", image.binary)),
            "{what}: copies {source}"
        );
        let entrypoint = json_array(
            steps.iter().find(|s| s.starts_with("ENTRYPOINT")).unwrap(),
            "ENTRYPOINT",
        );
        assert!(
            entrypoint[0].ends_with(&format!("/{}", image.binary)),
            "{what}: runs {entrypoint:?}"
        );
        let help = help(image.binary).await;
        let cmd = steps
            .iter()
            .find(|s| s.starts_with("CMD"))
            .map(|s| json_array(s, "CMD"))
            .unwrap_or_default();
        for arg in entrypoint[1..].iter().chain(&cmd) {
            if let Some(flag) = flag(arg) {
                assert!(
                    help.contains(flag),
                    "{what}: {flag} is not a flag of {}:\n{help}",
                    image.binary
                );
            }
        }
        let runtime = steps.iter().rposition(|s| s.starts_with("FROM ")).unwrap();
        let install = steps[runtime..]
            .iter()
            .find(|s| s.contains("apt-get install"))
            .cloned()
            .unwrap_or_default();
        for package in image.runtime_packages {
            assert!(
                install.contains(package),
                "{what}: the runtime stage lacks {package}"
            );
        }
    }
    let webhook =
        instructions(&std::fs::read_to_string(repo().join("webhook/Dockerfile")).unwrap());
    let user = webhook
        .iter()
        .rev()
        .find(|s| s.starts_with("USER"))
        .expect("webhook/Dockerfile: a USER");
    assert!(
        !user.contains(" 0") && !user.contains("root"),
        "the webhook runs as non-root: {user}"
    );
}

#[tokio::test]
async fn the_manifests_pass_only_flags_and_variables_the_binaries_know() {
    let renderings = [
        kustomize("manifests").await,
        kustomize("manifests/overlays/cert-manager").await,
    ];
    for image in IMAGES {
        let help = help(image.binary).await;
        let (kind, name) = image.workload;
        for rendering in &renderings {
            let objects = documents(rendering);
            let workload = objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .unwrap();
            let container = &workload["spec"]["template"]["spec"]["containers"][0];
            for arg in container["args"].as_array().unwrap() {
                let arg = arg.as_str().unwrap();
                let flag = flag(arg).unwrap_or_else(|| panic!("{name}: {arg} is not a flag"));
                assert!(
                    help.contains(flag),
                    "{name}: {flag} is not a flag of {}:\n{help}",
                    image.binary
                );
            }
            for variable in container["env"].as_array().unwrap() {
                let env = format!("env: {}", variable["name"].as_str().unwrap());
                assert!(
                    help.contains(&env),
                    "{name}: {} reads no {env}:\n{help}",
                    image.binary
                );
            }
        }
    }
}
