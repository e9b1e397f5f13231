//! The driver's small JSON files in the state directory: what it cannot read back from the
//! kernel (the firewall intent, sysctl values it replaced, the node name of each peer).
//! Files are replaced atomically and durably ([`crate::durable`]).
//!
//! Peer names and the firewall intent are also kept in memory, and the memory is what the
//! driver observes with: when the directory turns read-only or full, a change that reached
//! the kernel is not undone or redone every round because its record could not be written.
//! The record stays unsaved, is retried at every observation, and is reported
//! ([`StateDir::unsaved`]) until it is written.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use kube_encrypt_api::dataplane::FirewallSpec;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::io_text;
use super::DriverError;
use crate::durable;

/// The firewall spec last applied.
pub(crate) const FIREWALL_FILE: &str = "firewall.json";
/// Sysctls the agent set: key → value before the agent touched it.
pub(crate) const SYSCTL_FILE: &str = "sysctls.json";
/// Node name of each programmed peer: interface → public key → node.
pub(crate) const PEER_NAMES_FILE: &str = "peer-names.json";

/// Interface name → public key (base64) → node name.
pub(crate) type PeerNames = BTreeMap<String, BTreeMap<String, String>>;

/// The state directory of the driver.
#[derive(Clone, Debug)]
pub(crate) struct StateDir {
    dir: PathBuf,
    memory: Arc<Mutex<Memory>>,
}

/// The records the driver keeps in memory, loaded from disk on first use.
#[derive(Debug, Default)]
struct Memory {
    /// Shared with the observations reading it (copied only when edited).
    peer_names: Option<Arc<PeerNames>>,
    /// `Some(spec)` once known; the inner `None` means no table was applied.
    firewall: Option<Option<FirewallSpec>>,
    /// File → why its latest content could not be written.
    unsaved: BTreeMap<&'static str, String>,
}

impl StateDir {
    /// Creates the directory (mode 0700) when missing.
    pub(crate) fn open(dir: &Path) -> Result<Self, DriverError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                DriverError::new(
                    format!("create state directory {}", dir.display()),
                    format!(
                        "{}; check --state-dir and that the agent runs as root",
                        io_text(&e)
                    ),
                )
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            memory: Arc::default(),
        })
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn lock(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().expect("state lock")
    }

    /// Reads a JSON file; `None` when it does not exist.
    pub(crate) fn read<T: DeserializeOwned>(&self, file: &str) -> Result<Option<T>, DriverError> {
        let path = self.path(file);
        let operation = || format!("read {}", path.display());
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DriverError::new(operation(), io_text(&e))),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            DriverError::new(operation(), format!("{e}; delete the file to start over"))
        })
    }

    /// Writes a JSON file atomically and durably, mode 0600.
    pub(crate) fn write<T: Serialize>(&self, file: &str, value: &T) -> Result<(), DriverError> {
        let path = self.path(file);
        let operation = || format!("write {}", path.display());
        let text =
            serde_json::to_string_pretty(value).map_err(|e| DriverError::new(operation(), e))?;
        durable::replace_file(&path, text.as_bytes(), 0o600)
            .map_err(|e| DriverError::new(operation(), write_advice(&e)))
    }

    /// Removes a file; a missing file is fine.
    pub(crate) fn remove(&self, file: &str) -> Result<(), DriverError> {
        let path = self.path(file);
        durable::remove_file(&path)
            .map_err(|e| DriverError::new(format!("remove {}", path.display()), write_advice(&e)))
    }

    /// The node name of every programmed peer, as last recorded.
    pub(crate) fn peer_names(&self) -> Result<Arc<PeerNames>, DriverError> {
        let mut memory = self.lock();
        Ok(self.loaded_peer_names(&mut memory)?.clone())
    }

    /// Applies `edit` to the peer names; saves them when they changed.
    pub(crate) fn edit_peer_names(
        &self,
        edit: impl FnOnce(&mut PeerNames),
    ) -> Result<(), DriverError> {
        let mut memory = self.lock();
        let names = self.loaded_peer_names(&mut memory)?;
        let mut edited = names.as_ref().clone();
        edit(&mut edited);
        edited.retain(|_, peers| !peers.is_empty());
        if edited == **names {
            return Ok(());
        }
        memory.peer_names = Some(Arc::new(edited));
        self.save(&mut memory, PEER_NAMES_FILE);
        Ok(())
    }

    /// The firewall spec last applied, `None` when none was.
    pub(crate) fn firewall(&self) -> Result<Option<FirewallSpec>, DriverError> {
        let mut memory = self.lock();
        if memory.firewall.is_none() {
            memory.firewall = Some(self.read(FIREWALL_FILE)?);
        }
        Ok(memory.firewall.clone().flatten())
    }

    /// Records the firewall spec just applied (`None`: the table was deleted).
    pub(crate) fn set_firewall(&self, spec: Option<&FirewallSpec>) {
        let mut memory = self.lock();
        if memory.firewall.as_ref().map(Option::as_ref) == Some(spec) {
            return;
        }
        memory.firewall = Some(spec.cloned());
        self.save(&mut memory, FIREWALL_FILE);
    }

    /// Tries again to write every record that could not be saved.
    pub(crate) fn retry_unsaved(&self) {
        let mut memory = self.lock();
        let files: Vec<&'static str> = memory.unsaved.keys().copied().collect();
        for file in files {
            self.save(&mut memory, file);
        }
    }

    /// Why records could not be written, one line per file; empty when all are saved.
    pub(crate) fn unsaved(&self) -> Vec<String> {
        self.lock()
            .unsaved
            .values()
            .map(|why| format!("{why}; the dataplane is applied but a restarted agent would not know all it made"))
            .collect()
    }

    fn loaded_peer_names<'m>(
        &self,
        memory: &'m mut Memory,
    ) -> Result<&'m Arc<PeerNames>, DriverError> {
        if memory.peer_names.is_none() {
            let names: PeerNames = self.read(PEER_NAMES_FILE)?.unwrap_or_default();
            memory.peer_names = Some(Arc::new(names));
        }
        Ok(memory.peer_names.get_or_insert_with(Arc::default))
    }

    /// Writes `file` from memory (removes it when there is nothing to record); a failure is
    /// remembered and logged, not returned.
    fn save(&self, memory: &mut Memory, file: &'static str) {
        let result = match file {
            PEER_NAMES_FILE => match memory.peer_names.as_ref().filter(|n| !n.is_empty()) {
                Some(names) => self.write(file, names.as_ref()),
                None => self.remove(file),
            },
            FIREWALL_FILE => match memory.firewall.as_ref().and_then(Option::as_ref) {
                Some(spec) => self.write(file, spec),
                None => self.remove(file),
            },
            _ => Ok(()),
        };
        match result {
            Ok(()) => {
                if memory.unsaved.remove(file).is_some() {
                    tracing::info!(file, "state saved again");
                }
            }
            Err(e) => {
                if memory.unsaved.insert(file, e.to_string()).is_none() {
                    tracing::error!(error = %e, "cannot save the agent's state; retried every round");
                }
            }
        }
    }
}

/// The I/O error, with what to do for the usual causes.
fn write_advice(err: &std::io::Error) -> String {
    let text = io_text(err);
    match err.raw_os_error() {
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => {
            format!("{text}; make --state-dir writable")
        }
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => format!("{text}; free space on --state-dir"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_state() -> (StateDir, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "ket-state-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        (StateDir::open(&dir).unwrap(), dir)
    }

    #[test]
    fn round_trips_and_reports_missing_files_as_none() {
        let (state, dir) = temp_state();
        assert_eq!(state.read::<Vec<u16>>("x.json").unwrap(), None);
        state.write("x.json", &vec![51820u16]).unwrap();
        assert_eq!(state.read::<Vec<u16>>("x.json").unwrap(), Some(vec![51820]));
        state.remove("x.json").unwrap();
        state.remove("x.json").unwrap();
        assert_eq!(state.read::<Vec<u16>>("x.json").unwrap(), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn peer_names_drop_empty_interfaces_and_the_file() {
        let (state, dir) = temp_state();
        state
            .edit_peer_names(|names| {
                names
                    .entry("wg0".into())
                    .or_default()
                    .insert("k".into(), "node-b".into());
            })
            .unwrap();
        assert_eq!(state.peer_names().unwrap()["wg0"]["k"], "node-b");
        state
            .edit_peer_names(|names| names.get_mut("wg0").unwrap().clear())
            .unwrap();
        assert!(!state.path(PEER_NAMES_FILE).exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_record_that_cannot_be_written_is_kept_in_memory_reported_and_retried() {
        let (state, dir) = temp_state();
        assert!(state.peer_names().unwrap().is_empty());
        // From now on a directory where the file goes: every write fails, even for root.
        fs::create_dir_all(state.path(PEER_NAMES_FILE)).unwrap();
        let add = |names: &mut PeerNames| {
            names
                .entry("wg0".into())
                .or_default()
                .insert("k".into(), "node-b".into());
        };
        state.edit_peer_names(add).unwrap();
        assert_eq!(
            state.peer_names().unwrap()["wg0"]["k"],
            "node-b",
            "the device holds the peer: memory says so"
        );
        let problems = state.unsaved();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains(PEER_NAMES_FILE), "{problems:?}");

        state.retry_unsaved();
        assert_eq!(state.unsaved().len(), 1, "still failing");
        fs::remove_dir(state.path(PEER_NAMES_FILE)).unwrap();
        state.retry_unsaved();
        assert!(state.unsaved().is_empty());
        let reopened = StateDir::open(&dir).unwrap();
        assert_eq!(reopened.peer_names().unwrap()["wg0"]["k"], "node-b");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn records_are_written_only_when_they_change() {
        let (state, dir) = temp_state();
        let spec = FirewallSpec {
            wireguard_ports: vec![51820],
            ..Default::default()
        };
        state.set_firewall(Some(&spec));
        let path = state.path(FIREWALL_FILE);
        assert!(path.exists());
        // Were it written again, the directory in its place would make that fail.
        fs::remove_file(&path).unwrap();
        fs::create_dir_all(&path).unwrap();
        state.set_firewall(Some(&spec));
        state
            .edit_peer_names(|names| {
                names.clear();
            })
            .unwrap();
        assert!(state.unsaved().is_empty(), "{:?}", state.unsaved());
        assert_eq!(state.firewall().unwrap(), Some(spec));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_files_say_what_to_do() {
        let (state, dir) = temp_state();
        fs::write(state.path("bad.json"), "{").unwrap();
        let err = state.read::<Vec<u16>>("bad.json").unwrap_err().to_string();
        assert!(err.contains("delete the file to start over"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }
}
