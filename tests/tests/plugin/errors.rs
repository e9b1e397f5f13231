//! Broken kubeconfigs, unreachable servers and usage errors: exit 1 with one clear line.

use super::support::{finish, kubeconfig, plugin_bin, TempDir};

async fn run_with_kubeconfig(text: &str, args: &[&str]) -> super::support::Output {
    let dir = TempDir::named("errors");
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    let mut cmd = tokio::process::Command::new(plugin_bin());
    cmd.arg("--kubeconfig")
        .arg(&path)
        .args(args)
        .env("HOME", dir.path());
    finish(cmd).await
}

#[tokio::test]
async fn broken_kubeconfig_or_unreachable_server_exit_1_with_one_line() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let unreachable = kubeconfig("http://127.0.0.1:1");
    let cases = [
        ("not: [valid", "cannot read the kubeconfig"),
        ("apiVersion: v1\nkind: Config\n", "kubeconfig"),
        (
            unreachable.as_str(),
            "cannot reach the Kubernetes API server http://127.0.0.1:1/",
        ),
    ];
    for (text, expected) in cases {
        for args in [&["status"][..], &["enable"], &["check"]] {
            let out = run_with_kubeconfig(text, args).await;
            assert_eq!(out.code, 1, "{args:?} with {text:?}: {}", out.all());
            let lines: Vec<&str> = out.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "one line: {:?}", out.stderr);
            assert!(
                lines[0].starts_with("error: ") && lines[0].contains(expected),
                "{:?}",
                lines[0]
            );
            assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        }
    }
}

#[tokio::test]
async fn usage_errors_exit_1_and_help_exits_0_without_a_cluster() {
    let dir = TempDir::named("usage");
    let run = |args: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new(plugin_bin());
        cmd.args(args)
            .env("KUBECONFIG", dir.path().join("missing"))
            .env("HOME", dir.path());
        finish(cmd)
    };
    let help = run(&["--help"]).await;
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("Usage: kubectl encrypt"),
        "{}",
        help.stdout
    );
    let version = run(&["version"]).await;
    assert_eq!(
        (version.code, version.stdout.trim()),
        (0, concat!("kubectl-encrypt v", env!("CARGO_PKG_VERSION")))
    );
    let bad = run(&["enable", "--dry-run=sometimes"]).await;
    assert_eq!(bad.code, 1, "{}", bad.all());
    let conflicting = run(&["disable", "--ipv4", "--all"]).await;
    assert_eq!(conflicting.code, 1, "{}", conflicting.all());
}
