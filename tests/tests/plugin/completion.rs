//! Completion through kubectl (`kubectl_complete-encrypt`) and discovery as a plugin.

use std::ffi::OsString;

use super::support::{bin_dir, encrypted_cluster, finish, kubectl_bin, plugin_bin, Backend};

/// PATH with this build's binaries first.
fn path_with_plugin() -> OsString {
    plugin_bin();
    let mut paths = vec![bin_dir()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

kube_encrypt_tests::on_both_servers!(kubectl_finds_the_plugin_and_completes_through_it);
async fn kubectl_finds_the_plugin_and_completes_through_it(backend: Backend) {
    let cluster = encrypted_cluster(3, backend).await;
    let kubectl = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(kubectl_bin());
        cmd.args(args)
            .env("PATH", path_with_plugin())
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("HOME", cluster.dir());
        finish(cmd)
    };
    let list = kubectl(&["plugin", "list"]).await;
    let ours = bin_dir().join("kubectl-encrypt");
    assert!(
        list.stdout.lines().any(|l| l == ours.to_string_lossy()),
        "{}",
        list.all()
    );

    let version = kubectl(&["encrypt", "version"]).await;
    assert_eq!(version.code, 0, "{}", version.all());
    assert!(
        version.stdout.starts_with("kubectl-encrypt v"),
        "{}",
        version.stdout
    );

    let cases: [(&[&str], &[&str]); 3] = [
        (&["__complete", "encrypt", "st"], &["status"]),
        (&["__complete", "encrypt", "status", "--no"], &["--node"]),
        (
            &["__complete", "encrypt", "status", "--node", "node-"],
            &["node-1", "node-2", "node-3"],
        ),
    ];
    for (args, expected) in cases {
        let out = kubectl(args).await;
        let words: Vec<&str> = out.stdout.lines().filter(|l| !l.starts_with(':')).collect();
        assert_eq!(words, expected, "kubectl {args:?}: {}", out.all());
        assert!(
            out.stdout.lines().any(|l| l == ":4"),
            "no file completion: {}",
            out.stdout
        );
    }
}

#[tokio::test]
async fn node_names_are_silently_empty_when_the_cluster_is_unreachable() {
    let dir = super::support::TempDir::named("complete");
    std::fs::write(
        dir.path().join("kubeconfig"),
        super::support::kubeconfig("http://127.0.0.1:1"),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(bin_dir().join("kubectl_complete-encrypt"));
    cmd.args(["status", "--node", ""])
        .env("KUBECONFIG", dir.path().join("kubeconfig"));
    let started = std::time::Instant::now();
    let out = finish(cmd).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, ":4\n", "")
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
