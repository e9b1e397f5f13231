//! Files polled for a change of contents. Polling the contents (not inotify) follows a
//! ConfigMap's or Secret's `..data` symlink swap and any editor's rename dance alike; the
//! files the webhook watches are a few KiB, read every second or two.

use std::path::{Path, PathBuf};

/// A set of files read together, remembering what they held last time.
#[derive(Debug)]
pub struct WatchedFiles {
    paths: Vec<PathBuf>,
    last: Option<Result<Vec<Vec<u8>>, String>>,
}

impl WatchedFiles {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self { paths, last: None }
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The files' contents when they differ from the last call (the first call always
    /// reports), or the read error when that differs from the last one; `None` when nothing
    /// changed.
    pub fn poll(&mut self) -> Option<Result<Vec<Vec<u8>>, String>> {
        let now = read_all(&self.paths);
        if self.last.as_ref() == Some(&now) {
            return None;
        }
        self.last = Some(now.clone());
        Some(now)
    }
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    paths.iter().map(|p| read(p)).collect()
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_read_and_every_change_once() {
        let dir = std::env::temp_dir().join(format!("ke-watched-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("policy.yaml");
        std::fs::write(&file, "a").unwrap();
        let mut watched = WatchedFiles::new(vec![file.clone()]);
        assert_eq!(watched.poll(), Some(Ok(vec![b"a".to_vec()])));
        assert_eq!(watched.poll(), None, "unchanged");
        // A ConfigMap update: a new file renamed over the old one.
        std::fs::write(dir.join("next"), "b").unwrap();
        std::fs::rename(dir.join("next"), &file).unwrap();
        assert_eq!(watched.poll(), Some(Ok(vec![b"b".to_vec()])));
        std::fs::remove_file(&file).unwrap();
        let gone = watched.poll().expect("a removal is a change");
        assert!(gone.unwrap_err().contains("cannot read"));
        assert_eq!(watched.poll(), None, "the same error is reported once");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
