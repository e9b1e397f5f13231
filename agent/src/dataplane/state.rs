//! The driver's small JSON files in the state directory: what it cannot read back from the
//! kernel (the firewall intent, sysctl values it replaced, the node name of each peer).
//! Files are replaced atomically (write a temporary file, then rename).

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::io_text;
use super::DriverError;

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
        })
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
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

    /// Writes a JSON file atomically, mode 0600.
    pub(crate) fn write<T: Serialize>(&self, file: &str, value: &T) -> Result<(), DriverError> {
        let path = self.path(file);
        let operation = || format!("write {}", path.display());
        let text =
            serde_json::to_string_pretty(value).map_err(|e| DriverError::new(operation(), e))?;
        let temporary = self.path(&format!(".{file}.tmp"));
        write_private(&temporary, text.as_bytes())
            .and_then(|()| fs::rename(&temporary, &path))
            .map_err(|e| DriverError::new(operation(), io_text(&e)))
    }

    /// Removes a file; a missing file is fine.
    pub(crate) fn remove(&self, file: &str) -> Result<(), DriverError> {
        let path = self.path(file);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DriverError::new(
                format!("remove {}", path.display()),
                io_text(&e),
            )),
        }
    }

    pub(crate) fn peer_names(&self) -> Result<PeerNames, DriverError> {
        Ok(self.read(PEER_NAMES_FILE)?.unwrap_or_default())
    }

    /// Applies `edit` to the peer names and saves them.
    pub(crate) fn edit_peer_names(
        &self,
        edit: impl FnOnce(&mut PeerNames),
    ) -> Result<(), DriverError> {
        let mut names = self.peer_names()?;
        edit(&mut names);
        names.retain(|_, peers| !peers.is_empty());
        if names.is_empty() {
            self.remove(PEER_NAMES_FILE)
        } else {
            self.write(PEER_NAMES_FILE, &names)
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
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
    fn corrupt_files_say_what_to_do() {
        let (state, dir) = temp_state();
        fs::write(state.path("bad.json"), "{").unwrap();
        let err = state.read::<Vec<u16>>("bad.json").unwrap_err().to_string();
        assert!(err.contains("delete the file to start over"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }
}
