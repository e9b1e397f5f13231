//! The real kubectl (1.32) against the emulator: discovery after applying the CRDs
//! (`api-resources`), client-side `apply` twice (`unchanged`), `get --watch`, server-side
//! apply conflicts between field managers and `--force-conflicts`, and `wait
//! --for=condition=Ready` on a custom resource whose status changes, and `kubectl create`
//! of built-in kinds, whose typed clients send protobuf bodies.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{bounded, kube_encrypt_api, Backend, StateDir, TestServer};

/// The lab's kubectl (`$KUBECTL`, the control plane's build, or `kubectl` on `PATH`).
fn kubectl_binary() -> PathBuf {
    kube_encrypt_tests::lab::control_plane::kubectl().unwrap_or_else(|| {
        panic!("kubectl is not installed: run `make deps` (it builds kubectl with the control plane) or set KUBECTL")
    })
}
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// kubectl with its own kubeconfig and discovery cache.
struct Kubectl {
    binary: PathBuf,
    dir: StateDir,
}

#[derive(Debug)]
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(server: &TestServer) -> Self {
        let binary = kubectl_binary();
        let dir = StateDir::new();
        let kubeconfig = server.kubeconfig_text();
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        Self { binary, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::time::timeout(CALL_TIMEOUT, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within {CALL_TIMEOUT:?}"))
            .expect("running kubectl");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.ok, "kubectl {args:?} failed: {out:?}");
        out.stdout
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

fn crds_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/crds")
        .display()
        .to_string()
}

kube_encrypt_tests::on_both_servers!(api_resources_lists_the_crds_after_apply);
async fn api_resources_lists_the_crds_after_apply(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let k = Kubectl::new(&s);
        let applied = k.ok(&["apply", "-k", &crds_dir()]).await;
        assert!(applied.contains("customresourcedefinition.apiextensions.k8s.io/encryptionconfigs.kube-encrypt.dev created"), "{applied}");
        let resources = k.ok(&["api-resources", "--api-group=kube-encrypt.dev", "--no-headers"]).await;
        for (plural, short) in [("encryptionconfigs", "encconf"), ("ippools", "ippool"), ("nodeencryptions", "nodeenc")] {
            let line = resources.lines().find(|l| l.starts_with(plural)).unwrap_or_else(|| panic!("{plural} missing: {resources}"));
            assert!(line.contains(short) && line.contains("kube-encrypt.dev/v1alpha1"), "{line}");
        }
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(apply_twice_reports_unchanged);
async fn apply_twice_reports_unchanged(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let k = Kubectl::new(&s);
        k.ok(&["apply", "-k", &crds_dir()]).await;
        let manifest = k.write(
            "objects.yaml",
            "apiVersion: kube-encrypt.dev/v1alpha1\nkind: EncryptionConfig\nmetadata:\n  name: default\nspec:\n  ipv4:\n    enabled: true\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  mode: strict\n",
        );
        let file = manifest.display().to_string();
        let first = k.ok(&["apply", "-f", &file]).await;
        assert!(first.contains("encryptionconfig.kube-encrypt.dev/default created"), "{first}");
        assert!(first.contains("configmap/settings created"), "{first}");
        let second = k.ok(&["apply", "-f", &file]).await;
        assert!(second.contains("encryptionconfig.kube-encrypt.dev/default unchanged"), "{second}");
        assert!(second.contains("configmap/settings unchanged"), "{second}");
        let got = k.ok(&["get", "encconf", "default", "-o", "jsonpath={.spec.ipv4.port}"]).await;
        assert_eq!(got, "51820", "the CRD default is applied");
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(get_watch_delivers_a_change);
async fn get_watch_delivers_a_change(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let k = Kubectl::new(&s);
        let mut child = k
            .command(&["get", "configmaps", "--watch", "--request-timeout=25s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting kubectl get --watch");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let apply = |value: &str| {
                Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched"}, "data": {"k": value}}))
            };
            cms.patch("watched", &PatchParams::apply("test"), &apply("v1")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            cms.patch("watched", &PatchParams::apply("test"), &apply("v2")).await.unwrap();
        });
        // One row when it is created, one when it changes.
        let rows = tokio::time::timeout(Duration::from_secs(20), async {
            let mut rows = Vec::new();
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("watched ") {
                    rows.push(line);
                }
                if rows.len() == 2 {
                    return rows;
                }
            }
            panic!("kubectl get --watch ended after {rows:?}");
        })
        .await
        .expect("both changes within 20 s");
        assert_eq!(rows.len(), 2);
        writer.await.unwrap();
        let _ = child.kill().await;
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(server_side_apply_conflicts_and_force);
async fn server_side_apply_conflicts_and_force(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let k = Kubectl::new(&s);
        let first = k.write("first.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: default\ndata:\n  owner: first\n");
        let second = k.write("second.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: default\ndata:\n  owner: second\n");
        let out = k.ok(&["apply", "--server-side", "--field-manager=first", "-f", &first.display().to_string()]).await;
        assert!(out.contains("configmap/shared serverside-applied"), "{out}");
        let refused = k.run(&["apply", "--server-side", "--field-manager=second", "-f", &second.display().to_string()]).await;
        assert!(!refused.ok);
        assert!(refused.stderr.contains("Apply failed with 1 conflict: conflict with \"first\": .data.owner"), "{refused:?}");
        k.ok(&["apply", "--server-side", "--field-manager=second", "--force-conflicts", "-f", &second.display().to_string()]).await;
        let owner = k.ok(&["get", "configmap", "shared", "-o", "jsonpath={.data.owner} {.metadata.managedFields[*].manager}"]).await;
        assert_eq!(owner, "second second");
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(wait_for_ready_condition);
async fn wait_for_ready_condition(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let k = Kubectl::new(&s);
        k.ok(&["apply", "-k", &crds_dir()]).await;
        let manifest = k.write("config.yaml", "apiVersion: kube-encrypt.dev/v1alpha1\nkind: EncryptionConfig\nmetadata:\n  name: default\nspec: {}\n");
        k.ok(&["apply", "-f", &manifest.display().to_string()]).await;
        let waiting = k.command(&["wait", "--for=condition=Ready", "encryptionconfig/default", "--timeout=20s"]).output();
        let configs = kube_encrypt_api(&s.client, "EncryptionConfig", "encryptionconfigs");
        let status = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let ready = Patch::Merge(json!({"status": {"observedGeneration": 1, "conditions": [{
                "type": "Ready", "status": "True", "reason": "Encrypted", "message": "all nodes encrypted",
                "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1
            }]}}));
            configs.patch_status("default", &PatchParams::default(), &ready).await.unwrap();
        });
        let out = tokio::time::timeout(CALL_TIMEOUT, waiting).await.expect("kubectl wait within 30 s").unwrap();
        status.await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "kubectl wait failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("encryptionconfig.kube-encrypt.dev/default condition met"), "{stdout}");
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(create_sends_protobuf_bodies);
async fn create_sends_protobuf_bodies(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let k = Kubectl::new(&s);
        assert!(k
            .ok(&["create", "namespace", "kube-encrypt"])
            .await
            .contains("namespace/kube-encrypt created"));
        let created = k
            .ok(&[
                "create",
                "configmap",
                "c",
                "-n",
                "kube-encrypt",
                "--from-literal=mode=strict",
            ])
            .await;
        assert!(created.contains("configmap/c created"), "{created}");
        k.ok(&[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            "kube-encrypt",
            "--from-literal=key=value",
        ])
        .await;
        let data = k
            .ok(&[
                "get",
                "configmap",
                "c",
                "-n",
                "kube-encrypt",
                "-o",
                "jsonpath={.data.mode}",
            ])
            .await;
        assert_eq!(data, "strict");
        let secret = k
            .ok(&[
                "get",
                "secret",
                "s",
                "-n",
                "kube-encrypt",
                "-o",
                "jsonpath={.data.key}",
            ])
            .await;
        assert_eq!(secret, "dmFsdWU=");
    })
    .await;
}
