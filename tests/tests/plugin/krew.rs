//! krew/encrypt.yaml proven by krew itself: krew and validate-krew-manifest built from the Go
//! module pinned in tests/krew (scripts/build-krew.sh, cached on go.sum), the manifest
//! validated, the plugin installed from a freshly built archive into a throwaway KREW_ROOT and
//! run through kubectl. Skipped, saying so, only when Go is not installed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::support::{finish, kubectl_bin, plugin_bin, Output, TempDir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory with krew and validate-krew-manifest, or `None` when Go is missing.
async fn krew_tools() -> Option<PathBuf> {
    let out = finish(Command::new(repo().join("scripts/build-krew.sh"))).await;
    match out.code {
        0 => Some(PathBuf::from(out.stdout.trim())),
        3 => None,
        _ => panic!("scripts/build-krew.sh failed:\n{}", out.all()),
    }
}

/// `scripts/krew-release.sh` on this build's plugin, into `dir`; returns the archive.
async fn release_into(dir: &Path) -> PathBuf {
    let mut cmd = Command::new(repo().join("scripts/krew-release.sh"));
    cmd.arg("--binary")
        .arg(plugin_bin())
        .arg("--out")
        .arg(dir)
        .arg("--manifest")
        .arg(dir.join("encrypt.yaml"));
    let out = finish(cmd).await;
    assert_eq!(out.code, 0, "krew-release.sh: {}", out.all());
    // (strip + gzip of a debug build: seconds, within support::CALL_TIMEOUT)
    PathBuf::from(out.stdout.trim())
}

fn sha256_of(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["spec"]["platforms"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_committed_manifest_is_the_scripts_output_with_a_real_checksum() {
    let committed = repo().join("krew/encrypt.yaml");
    let sha = sha256_of(&committed);
    assert!(
        sha.len() == 64
            && sha
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{sha}"
    );
    assert!(sha.chars().any(|c| c != '0'), "placeholder checksum {sha}");
    let mut cmd = Command::new(repo().join("scripts/krew-release.sh"));
    cmd.arg("--print-manifest").arg(&sha);
    let rendered = finish(cmd).await;
    assert_eq!(rendered.code, 0, "{}", rendered.all());
    assert_eq!(
        std::fs::read_to_string(&committed).unwrap(),
        rendered.stdout,
        "krew/encrypt.yaml is not what `make krew` writes for version v{}: run `make krew` and commit it",
        env!("CARGO_PKG_VERSION")
    );
}

#[tokio::test]
async fn the_release_archive_is_reproducible() {
    let (a, b) = (TempDir::named("krew-a"), TempDir::named("krew-b"));
    let (first, second) = (release_into(a.path()).await, release_into(b.path()).await);
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
    let listing = finish({
        let mut cmd = Command::new("tar");
        cmd.arg("-tvzf").arg(&first);
        cmd
    })
    .await;
    let names: Vec<&str> = listing
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(
        names,
        ["LICENSE", "README.md", "kubectl-encrypt"],
        "{}",
        listing.stdout
    );
    assert!(
        listing
            .stdout
            .lines()
            .all(|l| l.contains("0/0") && l.contains("1970-01-01")),
        "{}",
        listing.stdout
    );
}

#[tokio::test]
async fn krew_validates_the_manifest_and_installs_the_plugin() {
    let Some(tools) = krew_tools().await else {
        eprintln!("SKIPPED krew_validates_the_manifest_and_installs_the_plugin: Go is not installed, so krew cannot be built (install Go >= 1.25)");
        return;
    };
    let work = TempDir::named("krew");
    let archive = release_into(work.path()).await;
    let manifest = work.path().join("encrypt.yaml");
    for candidate in [manifest.clone(), repo().join("krew/encrypt.yaml")] {
        // -skip-install: its own install step downloads the uri; the install below uses the
        // archive built here instead.
        let mut cmd = Command::new(tools.join("validate-krew-manifest"));
        cmd.arg("-skip-install").arg("-manifest").arg(&candidate);
        let out = finish(cmd).await;
        assert_eq!(
            out.code,
            0,
            "validate-krew-manifest {}: {}",
            candidate.display(),
            out.all()
        );
    }

    // kubectl finds krew as a plugin; krew installs into a throwaway root.
    let krew_root = work.path().join("krew-root");
    let tool_bin = work.path().join("bin");
    std::fs::create_dir_all(&tool_bin).unwrap();
    std::os::unix::fs::symlink(tools.join("krew"), tool_bin.join("kubectl-krew")).unwrap();
    let path = {
        let mut paths = vec![tool_bin, krew_root.join("bin")];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(paths).unwrap()
    };
    let kubectl = |args: Vec<OsString>| {
        let mut cmd = Command::new(kubectl_bin());
        cmd.args(args)
            .env("PATH", &path)
            .env("KREW_ROOT", &krew_root)
            .env("HOME", work.path())
            .env("KUBECONFIG", work.path().join("no-cluster"));
        finish(cmd)
    };
    let install: Output = kubectl(vec![
        "krew".into(),
        "install".into(),
        format!("--manifest={}", manifest.display()).into(),
        format!("--archive={}", archive.display()).into(),
    ])
    .await;
    assert_eq!(install.code, 0, "kubectl krew install: {}", install.all());
    assert!(
        krew_root.join("bin/kubectl-encrypt").exists(),
        "{}",
        install.all()
    );
    let installed = krew_root
        .join("store/encrypt")
        .join(concat!("v", env!("CARGO_PKG_VERSION")));
    assert!(
        installed.join("LICENSE").is_file(),
        "the license is installed: {}",
        installed.display()
    );

    let version = kubectl(vec!["encrypt".into(), "version".into()]).await;
    assert_eq!(version.code, 0, "{}", version.all());
    assert_eq!(
        version.stdout.trim(),
        concat!("kubectl-encrypt v", env!("CARGO_PKG_VERSION"))
    );
    let list = kubectl(vec!["plugin".into(), "list".into()]).await;
    let krew_bin = krew_root.join("bin/kubectl-encrypt");
    assert!(
        list.stdout.contains(&*krew_bin.to_string_lossy()),
        "{}",
        list.all()
    );
}
