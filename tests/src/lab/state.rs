//! The lab's state on disk: what `up` built (recorded BEFORE each thing is made, so `down`
//! can undo a crashed or interrupted `up`), the processes it started, and the lock that keeps
//! two lab commands (or two labs) from running at once.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::process::ProcessRecord;
use super::topology::{LabSpec, Topology};

/// Where a lab keeps its state (runtime data: namespaces do not survive a reboot either).
pub const DEFAULT_STATE_DIR: &str = "/run/kube-encrypt-lab";
/// Held (flock) by every lab command that changes the lab, and by tests for a whole lab's life.
pub const LOCK_FILE: &str = "/run/kube-encrypt-lab.lock";

/// Something `up` made on the host that `down` must remove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Resource {
    /// A network namespace under /run/netns.
    Netns { name: String },
    /// A mount point (bind mount of a mount namespace, or the private mount holding them).
    Mount { path: PathBuf },
    /// An empty directory created on the host as a mount point; removed when still empty.
    Dir { path: PathBuf },
}

/// Everything `down` needs, written as `state.json` in the state directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabState {
    pub spec: LabSpec,
    /// Whether the lab runs node agents (`up --no-agents` builds the network only).
    pub agents: bool,
    /// The lab binary, re-executed for the emulator, the forwarders and the supervisor.
    pub lab_bin: PathBuf,
    pub agent_bin: Option<PathBuf>,
    /// The admission webhook binary, when the lab runs the webhook.
    #[serde(default)]
    pub webhook_bin: Option<PathBuf>,
    /// The directory of etcd, kube-apiserver and kube-controller-manager (real control plane).
    #[serde(default)]
    pub kube_bin: Option<PathBuf>,
    /// The loopback port of the host-side forwarder to the emulator.
    pub api_port: Option<u16>,
    /// True once `up` has finished.
    pub ready: bool,
    /// In creation order; `down` walks them backwards.
    pub resources: Vec<Resource>,
    pub processes: Vec<ProcessRecord>,
}

impl LabState {
    pub fn topology(&self) -> Topology {
        Topology::new(self.spec.clone())
    }
}

/// The files of one lab.
#[derive(Clone, Debug)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// Kubeconfig for clients on the host (kubectl, the plugin, tests): a loopback forwarder.
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    /// Kubeconfig of `node`'s agent: the API server's underlay address and, with the real
    /// control plane, the token of the agent's ServiceAccount bound to its Pod on that node.
    pub fn node_kubeconfig(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(format!("{node}.kubeconfig"))
    }
    /// The webhook's kubeconfig (its ServiceAccount's token on the real control plane).
    pub fn webhook_kubeconfig(&self) -> PathBuf {
        self.root.join("webhook").join("kubeconfig")
    }
    /// The webhook's policy file (the example policy; tests rewrite it, the webhook reloads).
    pub fn webhook_policy(&self) -> PathBuf {
        self.root.join("webhook").join("policy.yaml")
    }
    /// Admin kubeconfig for lab processes inside the lab's namespaces (the API server's
    /// underlay address).
    pub fn lab_kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig-lab")
    }
    pub fn apiserver_dir(&self) -> PathBuf {
        self.root.join("apiserver")
    }
    pub fn api_socket(&self) -> PathBuf {
        self.root.join("apiserver.sock")
    }
    pub fn api_port_file(&self) -> PathBuf {
        self.root.join("apiserver.port")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs().join(format!("{name}.log"))
    }
    /// A private mount holding the nodes' persisted mount namespaces.
    pub fn mntns_dir(&self) -> PathBuf {
        self.root.join("mntns")
    }
    pub fn node_mntns(&self, node: &str) -> PathBuf {
        self.mntns_dir().join(node)
    }
    /// The node's agent state dir, bind-mounted on the agent's state dir inside the node.
    pub fn node_state(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node)
    }
    /// While this file exists the supervisor does not start `node`'s agent (`reimage`).
    pub fn agent_hold_file(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(format!("{node}.hold"))
    }
    /// Written by the supervisor: the PID record of the node's running agent.
    pub fn agent_pid_file(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(format!("{node}.agent.json"))
    }
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lab state {path} is corrupt ({source}); remove the lab's namespaces by hand (`ip netns list | grep ke-`) and delete {path}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "another kube-encrypt-lab command has held {LOCK_FILE} for {0:?}; wait for it to finish"
    )]
    LockTimeout(Duration),
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The state of a lab, saved after every change.
#[derive(Debug)]
pub struct Store {
    pub paths: Paths,
    pub state: LabState,
}

impl Store {
    /// Loads the state of the lab that is up, if any.
    pub fn load(paths: &Paths) -> Result<Option<Self>, StateError> {
        let file = paths.state_file();
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &file)(e)),
        };
        let state = serde_json::from_str(&text)
            .map_err(|source| StateError::Corrupt { path: file, source })?;
        Ok(Some(Self {
            paths: paths.clone(),
            state,
        }))
    }

    /// Creates the state directory and the first state file.
    pub fn create(paths: &Paths, state: LabState) -> Result<Self, StateError> {
        for dir in [paths.root.clone(), paths.logs(), paths.root.join("nodes")] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        let store = Self {
            paths: paths.clone(),
            state,
        };
        store.save()?;
        Ok(store)
    }

    /// Writes the state atomically (temp file + rename).
    pub fn save(&self) -> Result<(), StateError> {
        let file = self.paths.state_file();
        let tmp = file.with_extension("json.tmp");
        let text =
            serde_json::to_string_pretty(&self.state).expect("the lab state always serializes");
        fs::write(&tmp, text).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &file).map_err(io_err("write", &file))
    }

    /// Records a resource before it is made.
    pub fn record(&mut self, resource: Resource) -> Result<(), StateError> {
        if !self.state.resources.contains(&resource) {
            self.state.resources.push(resource);
        }
        self.save()
    }

    pub fn record_process(&mut self, process: ProcessRecord) -> Result<(), StateError> {
        self.state.processes.retain(|p| p.role != process.role);
        self.state.processes.push(process);
        self.save()
    }

    pub fn process(&self, role: &str) -> Option<&ProcessRecord> {
        self.state.processes.iter().find(|p| p.role == role)
    }

    pub fn forget_process(&mut self, role: &str) -> Result<(), StateError> {
        self.state.processes.retain(|p| p.role != role);
        self.save()
    }

    /// Removes the whole state directory (the last step of `down`).
    pub fn remove(self) -> Result<(), StateError> {
        fs::remove_dir_all(&self.paths.root).map_err(io_err("remove", &self.paths.root))
    }
}

/// An exclusive lock on [`LOCK_FILE`], released on drop.
#[derive(Debug)]
pub struct LabLock {
    _file: File,
}

impl LabLock {
    /// Waits up to `timeout` for the lock.
    pub fn acquire(timeout: Duration) -> Result<Self, StateError> {
        Self::acquire_at(Path::new(LOCK_FILE), timeout)
    }

    pub fn acquire_at(path: &Path, timeout: Duration) -> Result<Self, StateError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err("open", path))?;
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(fs::TryLockError::WouldBlock) => return Err(StateError::LockTimeout(timeout)),
                Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", path)(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::DEFAULT_MTU;

    fn state() -> LabState {
        LabState {
            spec: LabSpec::new(2, false, DEFAULT_MTU, &[]).unwrap(),
            agents: false,
            lab_bin: "/bin/true".into(),
            agent_bin: None,
            webhook_bin: None,
            kube_bin: None,
            api_port: None,
            ready: false,
            resources: vec![],
            processes: vec![],
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ke-lab-state-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn records_survive_a_reload_in_order_without_duplicates() {
        let paths = Paths::new(temp_dir("reload"));
        let mut store = Store::create(&paths, state()).unwrap();
        let a = Resource::Netns {
            name: "ke-lab".into(),
        };
        let b = Resource::Mount { path: "/x".into() };
        store.record(a.clone()).unwrap();
        store.record(b.clone()).unwrap();
        store.record(a.clone()).unwrap();
        let loaded = Store::load(&paths).unwrap().unwrap();
        assert_eq!(loaded.state.resources, vec![a, b]);
        loaded.remove().unwrap();
        assert!(Store::load(&paths).unwrap().is_none());
    }

    #[test]
    fn a_corrupt_state_file_says_what_to_do() {
        let paths = Paths::new(temp_dir("corrupt"));
        fs::create_dir_all(&paths.root).unwrap();
        fs::write(paths.state_file(), "{not json").unwrap();
        let err = Store::load(&paths).unwrap_err().to_string();
        assert!(err.contains("ip netns list"), "{err}");
        fs::remove_dir_all(&paths.root).unwrap();
    }

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let path = temp_dir("lock");
        let first = LabLock::acquire_at(&path, Duration::ZERO).unwrap();
        let second = LabLock::acquire_at(&path, Duration::from_millis(300));
        assert!(matches!(second, Err(StateError::LockTimeout(_))));
        drop(first);
        LabLock::acquire_at(&path, Duration::ZERO).unwrap();
        fs::remove_file(path).unwrap();
    }
}
