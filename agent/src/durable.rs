//! Files that survive a crash or a power cut: written to a temporary file with the final
//! mode, flushed, renamed over the old one, and the directory flushed too, so after a restart
//! either the old or the new content is there, never half of one or a missing name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably; the file gets `mode` (such as 0o600).
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let temporary = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let _ = fs::remove_file(&temporary);
    let written = write_new(&temporary, bytes, mode).and_then(|()| fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Removes `path` (absent is fine) and flushes the directory.
pub fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Flushes a directory's entries (a rename is durable only after this).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_whole_files_with_their_mode_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("ke-durable-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        replace_file(&path, b"one", 0o600).unwrap();
        replace_file(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
        remove_file(&path).unwrap();
        remove_file(&path).unwrap();
        assert!(!path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_old_content() {
        let dir = std::env::temp_dir().join(format!("ke-durable-fail-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        replace_file(&path, b"old", 0o600).unwrap();
        // A directory where the new content would go: the write fails, even for root.
        fs::create_dir_all(dir.join("state.json.d")).unwrap();
        let target = dir.join("state.json.d");
        assert!(replace_file(&target, b"new", 0o600).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert!(!dir.join(".state.json.d.tmp").exists(), "temporary removed");
        fs::remove_dir_all(&dir).unwrap();
    }
}
