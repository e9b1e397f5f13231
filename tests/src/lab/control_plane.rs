//! The real Kubernetes control plane of the lab: etcd, kube-apiserver and
//! kube-controller-manager, built from the Go modules pinned in `tests/kube` by
//! `scripts/build-control-plane.sh`, run as lab services inside the API server's network
//! namespace (`ke-lab`, or a node's with `up --control-plane-on`).
//!
//! ```text
//!  pki (CA, serving, admin, controller-manager, service-account key)
//!   └─► etcd 127.0.0.1:2379 ─► kube-apiserver https://<api addr>:6443 (Node,RBAC) ─► kube-controller-manager
//! ```
//!
//! The controller-manager runs the garbage collector, namespace lifecycle and the
//! service-account controllers. The node lifecycle controller is off on purpose: the lab has
//! no kubelets, so no Node heartbeats (status and Lease every 10 s); with it on, every node
//! would be tainted unreachable after 40 s. The lab writes what a kubelet would write once
//! (Ready condition, addresses, node info) and nothing in kube-encrypt reads taints.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::services::{self, ServiceError, APISERVER};
use super::state::{Paths, Store};
use super::sys;
use super::topology::{Topology, API_PORT};
use crate::pki::{self, Ca};

pub const ETCD: &str = "etcd";
pub const CONTROLLER_MANAGER: &str = "controller-manager";
/// Where the binaries are looked for first (a directory holding all four).
pub const BIN_DIR_ENV: &str = "KE_LAB_KUBE_BIN_DIR";
/// The cache `scripts/build-control-plane.sh` builds into.
pub const CACHE_ENV: &str = "KE_KUBE_CACHE";
pub const DEFAULT_CACHE: &str = "/var/cache/kube-encrypt/control-plane";
/// The binaries the lab needs.
pub const BINARIES: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
];
/// Must equal `recipe` in `scripts/build-control-plane.sh` (a test checks).
pub const RECIPE: u32 = 1;
/// The Service range kube-apiserver allocates from (inside 198.18.0.0/15, never routed).
pub const SERVICE_CIDR: &str = "198.19.0.0/24";
/// The `kubernetes` Service's address: the first of [`SERVICE_CIDR`].
pub const KUBERNETES_SERVICE_IP: &str = "198.19.0.1";
const GO_MOD: &str = include_str!("../../kube/go.mod");
const GO_SUM: &str = include_str!("../../kube/go.sum");
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Why the real control plane cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error(
        "the real control plane is not built ({missing} missing in {dir}); build it with \
         `scripts/build-control-plane.sh` (needs Go; `make deps` does it) or use `--apiserver emulator`"
    )]
    NotBuilt { dir: String, missing: String },
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} already exists: a leftover etcd data directory of another lab; \
         remove it (`rm -rf {path}`) if no lab is up"
    )]
    LeftoverData { path: String },
}

/// The directory holding etcd, kube-apiserver, kube-controller-manager and kubectl.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeBinaries {
    pub dir: PathBuf,
}

impl KubeBinaries {
    /// `$KE_LAB_KUBE_BIN_DIR`, else the build script's cache entry for the pinned `go.sum`.
    pub fn locate() -> Result<Self, ControlPlaneError> {
        let dir = std::env::var_os(BIN_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(cache_dir);
        let missing: Vec<&str> = BINARIES
            .iter()
            .copied()
            .filter(|b| !dir.join(b).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(ControlPlaneError::NotBuilt {
                dir: dir.display().to_string(),
                missing: missing.join(", "),
            });
        }
        Ok(Self { dir })
    }

    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The kubectl the lab and the tests use: `$KUBECTL`, else the one built with the control
/// plane (the API server's own version), else `kubectl` on `PATH`; `None` when there is none.
pub fn kubectl() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return Some(path.into());
    }
    if let Ok(binaries) = KubeBinaries::locate() {
        return Some(binaries.program("kubectl"));
    }
    super::sys::have_command("kubectl").then(|| PathBuf::from("kubectl"))
}

/// The cache directory `scripts/build-control-plane.sh` builds the pinned modules into.
pub fn cache_dir() -> PathBuf {
    let root = std::env::var_os(CACHE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE));
    root.join(cache_key(RECIPE, GO_MOD, GO_SUM))
}

/// `sha256("recipe N\n" + go.mod + go.sum)`, first 16 hex digits, as the script computes it.
pub fn cache_key(recipe: u32, go_mod: &str, go_sum: &str) -> String {
    let text = format!("recipe {recipe}\n{go_mod}{go_sum}");
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The lab's control-plane files under the state dir.
#[derive(Clone, Debug)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    pub fn new(paths: &Paths) -> Self {
        Self::at(paths.root.join("control-plane"))
    }
    /// The files of a control plane kept in `dir`.
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }
    pub fn pki(&self, name: &str) -> PathBuf {
        self.dir.join("pki").join(name)
    }
    pub fn etcd_data(&self) -> PathBuf {
        self.dir.join("etcd")
    }
    pub fn controller_manager_kubeconfig(&self) -> PathBuf {
        self.dir.join("controller-manager.kubeconfig")
    }
}

/// The credentials the lab hands out once the PKI exists.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub ca_pem: String,
    pub admin: pki::Issued,
}

/// Creates the CA, the serving and client certificates, the service-account key and the
/// controller-manager's kubeconfig; returns the CA and the admin client certificate.
pub fn write_pki(paths: &Paths, topo: &Topology) -> Result<Credentials, ControlPlaneError> {
    let files = Files::new(paths);
    let etcd = files.etcd_data();
    if etcd.exists() {
        return Err(ControlPlaneError::LeftoverData {
            path: etcd.display().to_string(),
        });
    }
    let (ca, credentials) = write_pki_files(&files, &topo.api_addr().ip().to_string())?;
    let server = format!("https://{}", topo.api_addr());
    write_controller_manager_kubeconfig(&files, &ca, &server)?;
    Ok(credentials)
}

/// The controller-manager's kubeconfig: its client certificate for API server `server`.
pub fn write_controller_manager_kubeconfig(
    files: &Files,
    ca: &Ca,
    server: &str,
) -> Result<(), ControlPlaneError> {
    let manager = ca.client("system:kube-controller-manager", &[])?;
    let kubeconfig = super::kubeconfig::client_cert(server, ca.cert_pem(), &manager);
    write_private(&files.controller_manager_kubeconfig(), &kubeconfig)
}

/// Writes the CA, kube-apiserver's serving certificate (for `api_ip` and loopback) and the
/// service-account key pair into `files`; returns the CA and an admin client certificate.
pub fn write_pki_files(
    files: &Files,
    api_ip: &str,
) -> Result<(Ca, Credentials), ControlPlaneError> {
    let ca = Ca::new("kube-encrypt-lab CA")?;
    let names = serving_names(api_ip);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let serving = ca.serving("kube-apiserver", &names)?;
    let admin = ca.client("kube-encrypt-lab-admin", &["system:masters"])?;
    let signing = pki::signing_key()?;
    let pem_files = [
        ("ca.crt", ca.cert_pem().to_owned()),
        ("ca.key", ca.key_pem()),
        ("apiserver.crt", serving.cert_pem),
        ("apiserver.key", serving.key_pem),
        ("service-account.key", signing.private_pem),
        ("service-account.pub", signing.public_pem),
    ];
    for (name, text) in pem_files {
        write_private(&files.pki(name), &text)?;
    }
    let credentials = Credentials {
        ca_pem: ca.cert_pem().to_owned(),
        admin,
    };
    Ok((ca, credentials))
}

/// The API server's certificate names: its address, loopback (the host forwarder), the
/// `kubernetes` Service's address and DNS names.
fn serving_names(api_ip: &str) -> Vec<String> {
    let mut names = vec![
        api_ip.to_owned(),
        "127.0.0.1".to_owned(),
        KUBERNETES_SERVICE_IP.to_owned(),
        "localhost".to_owned(),
    ];
    for suffix in ["", ".default", ".default.svc", ".default.svc.cluster.local"] {
        names.push(format!("kubernetes{suffix}"));
    }
    names
}

/// Writes `text` to `path` (mode 0600), creating its directory.
pub fn write_private(path: &Path, text: &str) -> Result<(), ControlPlaneError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| ControlPlaneError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(err)
}

fn binaries(store: &Store) -> KubeBinaries {
    KubeBinaries {
        dir: store
            .state
            .kube_bin
            .clone()
            .expect("a kube lab records its binaries"),
    }
}

fn start(
    store: &mut Store,
    role: &'static str,
    netns: &str,
    program: PathBuf,
    args: Vec<String>,
) -> Result<(), ServiceError> {
    let mut full = vec![program.to_string_lossy().into_owned()];
    full.extend(args);
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    services::start(store, role, sys::in_netns(netns, &full))
}

/// Starts etcd on the API server's loopback, its data in the lab's state dir.
pub fn start_etcd(store: &mut Store, topo: &Topology) -> Result<(), ServiceError> {
    let data = Files::new(&store.paths).etcd_data();
    let args = etcd_args(&data, 2379, 2380);
    let program = binaries(store).program("etcd");
    start(store, ETCD, topo.api_netns(), program, args)
}

/// etcd's flags: one member serving clients and peers on loopback ports.
pub fn etcd_args(data: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        format!("--data-dir={}", data.display()),
        "--name=ke-lab".into(),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=ke-lab={peer}"),
        "--log-level=warn".into(),
    ]
}

/// Starts kube-apiserver (also used by `apiserver start`; etcd keeps the state).
pub fn start_apiserver(store: &mut Store, topo: &Topology) -> Result<(), ServiceError> {
    let flags = ApiServerFlags {
        pki: Files::new(&store.paths),
        etcd: "http://127.0.0.1:2379".into(),
        bind: "0.0.0.0".parse().expect("an address"),
        port: API_PORT,
        advertise: topo.api_addr().ip(),
    };
    let program = binaries(store).program("kube-apiserver");
    start(store, APISERVER, topo.api_netns(), program, flags.args())
}

/// Where kube-apiserver finds its keys and etcd, and where it serves.
#[derive(Clone, Debug)]
pub struct ApiServerFlags {
    pub pki: Files,
    pub etcd: String,
    pub bind: IpAddr,
    pub port: u16,
    /// The address published for the `kubernetes` Service (never loopback).
    pub advertise: IpAddr,
}

impl ApiServerFlags {
    /// kube-apiserver's command line.
    pub fn args(&self) -> Vec<String> {
        let pki = |name: &str| self.pki.pki(name).display().to_string();
        vec![
            format!("--etcd-servers={}", self.etcd),
            format!("--bind-address={}", self.bind),
            format!("--secure-port={}", self.port),
            format!("--advertise-address={}", self.advertise),
            format!("--tls-cert-file={}", pki("apiserver.crt")),
            format!("--tls-private-key-file={}", pki("apiserver.key")),
            format!("--client-ca-file={}", pki("ca.crt")),
            format!("--service-account-issuer={ISSUER}"),
            format!("--service-account-key-file={}", pki("service-account.pub")),
            format!(
                "--service-account-signing-key-file={}",
                pki("service-account.key")
            ),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            // Webhook Services resolve to their endpoints: the lab has no kube-proxy.
            "--enable-aggregator-routing=true".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            // Stop within seconds (`apiserver stop`, `down`): close open watches instead of
            // waiting up to a minute for them to end.
            "--shutdown-watch-termination-grace-period=2s".into(),
        ]
    }
}

/// Starts kube-controller-manager: garbage collector, namespace lifecycle, service accounts.
pub fn start_controller_manager(store: &mut Store, topo: &Topology) -> Result<(), ServiceError> {
    let args = controller_manager_args(&Files::new(&store.paths));
    let program = binaries(store).program("kube-controller-manager");
    start(store, CONTROLLER_MANAGER, topo.api_netns(), program, args)
}

/// kube-controller-manager's command line: the garbage collector, namespace lifecycle and
/// service-account controllers, each with its own ServiceAccount's credentials.
pub fn controller_manager_args(files: &Files) -> Vec<String> {
    let kubeconfig = files.controller_manager_kubeconfig().display().to_string();
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--leader-elect=false".into(),
        "--use-service-account-credentials=true".into(),
        "--controllers=garbagecollector,namespace,serviceaccount,serviceaccount-token".into(),
        format!("--root-ca-file={}", files.pki("ca.crt").display()),
        format!(
            "--service-account-private-key-file={}",
            files.pki("service-account.key").display()
        ),
        "--secure-port=0".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_cache_key_is_the_build_scripts() {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/build-control-plane.sh"
        );
        let output = Command::new("bash")
            .args([script, "--print-dir"])
            .env(CACHE_ENV, "/cache-root")
            .output()
            .expect("run the build script");
        let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(output.status.success(), "{output:?}");
        let expected = Path::new("/cache-root").join(cache_key(RECIPE, GO_MOD, GO_SUM));
        assert_eq!(printed, expected.display().to_string());
    }

    #[test]
    fn cache_keys_change_with_any_input() {
        let base = cache_key(1, "mod", "sum");
        assert_eq!(base.len(), 16);
        assert_ne!(base, cache_key(2, "mod", "sum"));
        assert_ne!(base, cache_key(1, "mod2", "sum"));
        assert_ne!(base, cache_key(1, "mod", "sum2"));
    }

    #[test]
    fn serving_names_cover_every_way_in() {
        let names = serving_names("192.0.2.11");
        for name in [
            "192.0.2.11",
            "127.0.0.1",
            KUBERNETES_SERVICE_IP,
            "kubernetes.default.svc",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
    }
}
