//! A real kube-apiserver with its own etcd and kube-controller-manager (garbage collector,
//! namespace lifecycle, service accounts) on loopback, for one test: the binaries
//! `scripts/build-control-plane.sh` built, free ports, a temporary directory, the lab's PKI and
//! an admin client certificate. The API test suites run against it and against the emulator.
//!
//! ```text
//!  KubeApiServer::start(dir) ─► PKI ─► etcd 127.0.0.1:<free> ─► kube-apiserver https://127.0.0.1:<free>
//!                                   └─► admin kubeconfig ─► ready ─► kube-controller-manager
//!                                                                 └─► `default` ServiceAccount exists
//!  drop ─► stop all three (their data lives in the test's directory)
//! ```

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::ServiceAccount;

use crate::lab::control_plane::{
    controller_manager_args, etcd_args, write_controller_manager_kubeconfig, write_pki_files,
    write_private, ApiServerFlags, ControlPlaneError, Files, KubeBinaries,
};
use crate::lab::kubeconfig;

/// How long kube-apiserver may take to become ready (cold caches on a busy machine).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The address kube-apiserver publishes for the `kubernetes` Service (documentation range;
/// nothing is ever sent to it).
const ADVERTISE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Whether a real control plane can run here: `Ok` with its binaries, or why not.
pub fn binaries() -> Result<KubeBinaries, ControlPlaneError> {
    KubeBinaries::locate()
}

/// Whether Go is on `PATH` (without it the real control plane cannot be built here).
pub fn have_go() -> bool {
    crate::lab::sys::have_command("go")
}

/// A running etcd + kube-apiserver pair owned by one test.
pub struct KubeApiServer {
    dir: PathBuf,
    binaries: KubeBinaries,
    flags: ApiServerFlags,
    etcd: Child,
    apiserver: Option<Child>,
    controller_manager: Option<Child>,
}

impl std::fmt::Debug for KubeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApiServer")
            .field("dir", &self.dir)
            .field("port", &self.flags.port)
            .finish_non_exhaustive()
    }
}

impl KubeApiServer {
    /// Starts etcd and kube-apiserver with their data and logs in `dir`, and waits until the
    /// API server is ready.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(dir, Ipv4Addr::LOCALHOST).await
    }

    /// [`Self::start`] with kube-apiserver serving on `ip` (such as a bench namespace's own
    /// address, so that processes in other namespaces reach it); etcd stays on loopback.
    pub async fn start_on(dir: &Path, ip: Ipv4Addr) -> anyhow::Result<Self> {
        let binaries = binaries()?;
        let files = Files::at(dir.join("control-plane"));
        let (ca, credentials) = write_pki_files(&files, &ip.to_string())?;
        let [etcd_client, etcd_peer, port] =
            free_ports([Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, ip])?;
        let server = format!("https://{ip}:{port}");
        write_controller_manager_kubeconfig(&files, &ca, &server)?;
        let etcd = spawn(
            &binaries.program("etcd"),
            &etcd_args(&files.etcd_data(), etcd_client, etcd_peer),
            &dir.join("etcd.log"),
        )?;
        wait_listening(etcd_client, &dir.join("etcd.log")).await?;
        let flags = ApiServerFlags {
            pki: files,
            etcd: format!("http://127.0.0.1:{etcd_client}"),
            bind: IpAddr::V4(ip),
            port,
            advertise: IpAddr::V4(ADVERTISE),
        };
        let text = kubeconfig::client_cert(&server, &credentials.ca_pem, &credentials.admin);
        write_private(&dir.join("kubeconfig"), &text)?;
        let mut running = Self {
            dir: dir.to_path_buf(),
            binaries,
            flags,
            etcd,
            apiserver: None,
            controller_manager: None,
        };
        running.start_apiserver().await?;
        running.start_controller_manager().await?;
        Ok(running)
    }

    /// Starts the controller-manager (after the API server is ready: before its RBAC
    /// bootstrap the controller-manager is refused) and waits for the `default`
    /// ServiceAccount it creates, which every Pod in `default` needs.
    async fn start_controller_manager(&mut self) -> anyhow::Result<()> {
        let log = self.dir.join("controller-manager.log");
        let args = controller_manager_args(&self.flags.pki);
        let program = self.binaries.program("kube-controller-manager");
        self.controller_manager = Some(spawn(&program, &args, &log)?);
        let accounts: kube::Api<ServiceAccount> =
            kube::Api::namespaced(self.client().await?, "default");
        let deadline = Instant::now() + READY_TIMEOUT;
        while accounts.get_opt("default").await?.is_none() {
            if Instant::now() > deadline {
                bail!(
                    "no default ServiceAccount within {READY_TIMEOUT:?}; the end of {}:\n{}",
                    log.display(),
                    tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// `https://<ip>:<port>` (`127.0.0.1` unless started with [`Self::start_on`]).
    pub fn url(&self) -> String {
        format!("https://{}:{}", self.flags.bind, self.flags.port)
    }

    /// The admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A kube-rs client on the admin kubeconfig.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        use kube::config::{KubeConfigOptions, Kubeconfig};
        let file = Kubeconfig::read_from(self.kubeconfig())?;
        let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
            .await
            .context("the test kubeconfig")?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Stops kube-apiserver (SIGTERM, as a restart would) and starts it again on the same
    /// etcd.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.apiserver.take() {
            stop(child, Duration::from_secs(10));
        }
        self.start_apiserver().await
    }

    async fn start_apiserver(&mut self) -> anyhow::Result<()> {
        let log = self.dir.join("apiserver.log");
        let child = spawn(
            &self.binaries.program("kube-apiserver"),
            &self.flags.args(),
            &log,
        )?;
        self.apiserver = Some(child);
        self.wait_ready(&log).await
    }

    async fn wait_ready(&mut self, log: &Path) -> anyhow::Result<()> {
        let client = self.client().await?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let request = hyper::http::Request::get("/readyz").body(Vec::new())?;
            if client.request_text(request).await.is_ok() {
                return Ok(());
            }
            let exited = self
                .apiserver
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                bail!(
                    "kube-apiserver exited ({status}); the end of {}:\n{}",
                    log.display(),
                    tail(log)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready within {READY_TIMEOUT:?}; the end of {}:\n{}",
                    log.display(),
                    tail(log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.controller_manager.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(child) = self.apiserver.take() {
            stop(child, Duration::ZERO);
        }
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}

fn spawn(program: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("start {}", program.display()))
}

/// SIGTERM, then SIGKILL after `grace`.
fn stop(mut child: Child, grace: Duration) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until etcd accepts connections on its client `port` (on a loaded machine it may
/// take longer than kube-apiserver waits for its storage).
async fn wait_listening(port: u16, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!(
                "etcd did not listen on 127.0.0.1:{port} within {READY_TIMEOUT:?}; the end of {}:\n{}",
                log.display(),
                tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A free TCP port on each of `ips`, distinct (all held until every one is chosen).
fn free_ports<const N: usize>(ips: [Ipv4Addr; N]) -> anyhow::Result<[u16; N]> {
    let listeners: Vec<TcpListener> = ips
        .iter()
        .map(|ip| TcpListener::bind((*ip, 0)))
        .collect::<Result<_, _>>()
        .context("find free ports")?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

fn tail(log: &Path) -> String {
    crate::lab::services::log_tail(log, 15)
}
