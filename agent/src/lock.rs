//! One agent per node: the state directory is locked (`flock` on `<state-dir>/agent.lock`)
//! before any key is read or generated, and stays locked for the agent's life. A second agent
//! on the same node (a DaemonSet rollout overlapping, a manual start) exits with a message
//! naming the holder instead of fighting the first over keys, interfaces and routes.
//!
//! The kernel releases the lock when the holder exits, however it exits: no stale lock files.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file inside the state directory.
pub const LOCK_FILE: &str = "agent.lock";

/// Why the state directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the lock file {path}: {error}; check --state-dir")]
    Open { path: PathBuf, error: io::Error },
    #[error("another kube-encrypt-agent ({holder}) holds {path}: run one agent per node; stop the other one, or give this one its own --state-dir")]
    Held { path: PathBuf, holder: String },
}

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// Locks `state_dir` (which must exist) without waiting, and records this process's pid.
    pub fn acquire(state_dir: &Path) -> Result<Self, LockError> {
        let path = state_dir.join(LOCK_FILE);
        let open_error = |error| LockError::Open {
            path: path.clone(),
            error,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(open_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    holder: holder(&mut file),
                    path,
                })
            }
            Err(TryLockError::Error(error)) => return Err(open_error(error)),
        }
        record_holder(&mut file).map_err(open_error)?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `pid 1234` as the holder wrote it, or why it is not known.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    match file.read_to_string(&mut text) {
        Ok(_) if text.trim().starts_with("pid ") => text.trim().to_owned(),
        _ => "pid unknown".to_owned(),
    }
}

fn record_holder(file: &mut File) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "pid {}", std::process::id())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_agent_is_refused_with_the_holders_pid_until_the_first_exits() {
        let dir = std::env::temp_dir().join(format!("ke-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = StateLock::acquire(&dir).unwrap();
        let err = StateLock::acquire(&dir).unwrap_err().to_string();
        let pid = format!("(pid {})", std::process::id());
        assert!(err.contains(&pid), "{err}");
        assert!(err.contains("run one agent per node"), "{err}");
        drop(first);
        let again = StateLock::acquire(&dir).unwrap();
        assert_eq!(again.path(), dir.join(LOCK_FILE));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
