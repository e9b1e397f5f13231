//! Kernel settings through `/proc/sys`. The first time the agent sets a key it saves the
//! value it replaced, so `RestoreSysctl` can put the host back exactly as it was.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use kube_encrypt_api::dataplane::Sysctl;

use super::error::io_text;
use super::state::{StateDir, SYSCTL_FILE};
use super::DriverError;

/// Key → the value it had before the agent first set it.
type Saved = BTreeMap<String, String>;

/// Sysctls under `root` (normally `/proc/sys`) with their saved previous values.
pub(crate) struct Sysctls<'a> {
    state: &'a StateDir,
    root: &'a Path,
}

impl<'a> Sysctls<'a> {
    pub(crate) fn new(state: &'a StateDir, root: &'a Path) -> Self {
        Self { state, root }
    }

    /// Writes the value, saving the current one first if the agent has not touched the key.
    pub(crate) fn set(&self, sysctl: &Sysctl) -> Result<(), DriverError> {
        let operation = format!("set sysctl {} = {}", sysctl.key, sysctl.value);
        let path = key_path(self.root, &sysctl.key).map_err(|m| DriverError::new(&operation, m))?;
        let mut saved = self.saved()?;
        let first_time = !saved.contains_key(&sysctl.key);
        if first_time {
            let previous = read_value(&path).map_err(|e| DriverError::new(&operation, e))?;
            saved.insert(sysctl.key.clone(), previous);
            self.state.write(SYSCTL_FILE, &saved)?;
        }
        if let Err(e) = write_value(&path, &sysctl.value) {
            if first_time {
                saved.remove(&sysctl.key);
                self.save(&saved)?;
            }
            return Err(DriverError::new(operation, e));
        }
        Ok(())
    }

    /// Writes back the saved value and forgets the key. Unknown keys are already restored;
    /// a key whose file is gone (its interface was removed) is forgotten.
    pub(crate) fn restore(&self, key: &str) -> Result<(), DriverError> {
        let mut saved = self.saved()?;
        let Some(previous) = saved.get(key).cloned() else {
            return Ok(());
        };
        let operation = format!("restore sysctl {key} = {previous}");
        let path = key_path(self.root, key).map_err(|m| DriverError::new(&operation, m))?;
        match write_value(&path, &previous) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(DriverError::new(operation, io_text(&e))),
        }
        saved.remove(key);
        self.save(&saved)
    }

    /// The keys the agent has set, with their current values (empty when the key is gone).
    pub(crate) fn observe(&self) -> Result<Vec<Sysctl>, DriverError> {
        self.saved()?
            .into_keys()
            .map(|key| {
                let path = key_path(self.root, &key)
                    .map_err(|m| DriverError::new(format!("read sysctl {key}"), m))?;
                let value = match read_value(&path) {
                    Ok(value) => value,
                    Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
                    Err(e) => {
                        return Err(DriverError::new(format!("read sysctl {key}"), io_text(&e)))
                    }
                };
                Ok(Sysctl { key, value })
            })
            .collect()
    }

    fn saved(&self) -> Result<Saved, DriverError> {
        Ok(self.state.read(SYSCTL_FILE)?.unwrap_or_default())
    }

    fn save(&self, saved: &Saved) -> Result<(), DriverError> {
        if saved.is_empty() {
            self.state.remove(SYSCTL_FILE)
        } else {
            self.state.write(SYSCTL_FILE, saved)
        }
    }
}

/// `net.ipv4.conf.all.src_valid_mark` → `<root>/net/ipv4/conf/all/src_valid_mark`.
fn key_path(root: &Path, key: &str) -> Result<PathBuf, String> {
    let valid = !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !valid {
        return Err(format!(
            "{key:?} is not a sysctl key such as net.ipv4.conf.all.src_valid_mark"
        ));
    }
    Ok(key
        .split('.')
        .fold(root.to_path_buf(), |path, part| path.join(part)))
}

fn read_value(path: &Path) -> std::io::Result<String> {
    Ok(fs::read_to_string(path)?.trim().to_owned())
}

fn write_value(path: &Path, value: &str) -> std::io::Result<()> {
    // Open without create: a sysctl that does not exist must not become a plain file.
    use std::io::Write;
    let mut file = fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: PathBuf,
        state: StateDir,
        root: PathBuf,
    }

    impl Fixture {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("ket-sysctl-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            let root = dir.join("proc-sys");
            fs::create_dir_all(root.join("net/ipv4/conf/all")).unwrap();
            fs::write(root.join("net/ipv4/conf/all/src_valid_mark"), "0\n").unwrap();
            let state = StateDir::open(&dir.join("state")).unwrap();
            Self { dir, state, root }
        }

        fn sysctls(&self) -> Sysctls<'_> {
            Sysctls::new(&self.state, &self.root)
        }

        fn kernel_value(&self) -> String {
            read_value(&self.root.join("net/ipv4/conf/all/src_valid_mark")).unwrap()
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    fn src_valid_mark(value: &str) -> Sysctl {
        Sysctl {
            key: "net.ipv4.conf.all.src_valid_mark".into(),
            value: value.into(),
        }
    }

    #[test]
    fn set_saves_the_first_previous_value_and_restore_puts_it_back() {
        let fx = Fixture::new("restore");
        fx.sysctls().set(&src_valid_mark("1")).unwrap();
        fx.sysctls().set(&src_valid_mark("2")).unwrap();
        assert_eq!(fx.kernel_value(), "2");
        assert_eq!(fx.sysctls().observe().unwrap(), vec![src_valid_mark("2")]);

        fx.sysctls()
            .restore("net.ipv4.conf.all.src_valid_mark")
            .unwrap();
        assert_eq!(fx.kernel_value(), "0");
        assert_eq!(fx.sysctls().observe().unwrap(), vec![]);
        // Restoring again is a no-op.
        fx.sysctls()
            .restore("net.ipv4.conf.all.src_valid_mark")
            .unwrap();
        assert_eq!(fx.kernel_value(), "0");
    }

    #[test]
    fn a_missing_key_fails_without_being_remembered() {
        let fx = Fixture::new("missing");
        let err = fx
            .sysctls()
            .set(&Sysctl {
                key: "net.ipv4.conf.nope.rp_filter".into(),
                value: "0".into(),
            })
            .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("set sysctl net.ipv4.conf.nope.rp_filter = 0: "));
        assert!(!fx.root.join("net/ipv4/conf/nope").exists());
        assert_eq!(fx.sysctls().observe().unwrap(), vec![]);
    }

    #[test]
    fn keys_are_validated() {
        let root = Path::new("/proc/sys");
        let cases = [
            ("net.ipv4.ip_forward", Some("/proc/sys/net/ipv4/ip_forward")),
            (
                "net.ipv4.conf.eth-0.rp_filter",
                Some("/proc/sys/net/ipv4/conf/eth-0/rp_filter"),
            ),
            ("net..ip_forward", None),
            ("net/ipv4/ip_forward", None),
            ("", None),
            ("net.ipv4.conf.../x", None),
        ];
        for (key, expected) in cases {
            let got = key_path(root, key).ok();
            assert_eq!(got.as_deref(), expected.map(Path::new), "{key}");
        }
    }
}
