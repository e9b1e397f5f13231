//! The node's WireGuard private keys: one per family, generated once, persisted in the state
//! directory with mode 0600 and reused across restarts. Only public keys ever leave this
//! module in a printable form.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::{Family, PerFamily};
use wireguard_control::Key;
use zeroize::Zeroizing;

use crate::dataplane::{PrivateKeys, SecretKey};
use crate::durable;

/// A failed read or write of a key file, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot create the state directory {path}: {error}; check --state-dir and that the agent runs as root")]
    StateDir { path: PathBuf, error: io::Error },
    #[error("cannot read the private key {path}: {error}")]
    Read { path: PathBuf, error: io::Error },
    #[error("the private key {path} is not a base64 WireGuard key; delete the file to generate a new key")]
    Corrupt { path: PathBuf },
    #[error("cannot write the private key {path}: {error}; check that --state-dir is writable")]
    Write { path: PathBuf, error: io::Error },
}

/// The node's private keys and their public halves.
#[derive(Clone)]
pub struct KeyStore {
    private: PrivateKeys,
    public: PerFamily<Option<WireGuardKey>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("private", &"<redacted>")
            .field("public", &self.public)
            .finish()
    }
}

/// The file holding `family`'s private key.
pub fn key_path(state_dir: &Path, family: Family) -> PathBuf {
    match family {
        Family::V4 => state_dir.join("private-key"),
        Family::V6 => state_dir.join("private-key-v6"),
    }
}

/// Creates the state directory (mode 0700) when it does not exist.
pub fn ensure_state_dir(state_dir: &Path) -> Result<(), KeyError> {
    let err = |error| KeyError::StateDir {
        path: state_dir.to_path_buf(),
        error,
    };
    fs::create_dir_all(state_dir).map_err(err)?;
    fs::set_permissions(state_dir, Permissions::from_mode(0o700)).map_err(err)
}

impl KeyStore {
    /// Loads both families' keys from `state_dir`, generating and persisting missing ones.
    pub fn load_or_generate(state_dir: &Path) -> Result<Self, KeyError> {
        ensure_state_dir(state_dir)?;
        let v4 = load_or_generate_key(&key_path(state_dir, Family::V4))?;
        let v6 = load_or_generate_key(&key_path(state_dir, Family::V6))?;
        Ok(Self::from_private(PerFamily {
            v4: Some(v4),
            v6: Some(v6),
        }))
    }

    /// A store holding the given private keys (tests and the loader).
    pub fn from_private(keys: PerFamily<Option<Key>>) -> Self {
        let public = PerFamily::from_fn(|family| keys.get(family).as_ref().map(public_key_of));
        let keys = PerFamily::from_fn(|family| keys.get(family).clone().map(SecretKey::new));
        Self {
            private: PrivateKeys { keys },
            public,
        }
    }

    /// The public keys, as published and planned with.
    pub fn public(&self) -> &PerFamily<Option<WireGuardKey>> {
        &self.public
    }

    /// The private keys, for the driver only.
    pub fn private(&self) -> &PrivateKeys {
        &self.private
    }
}

/// The public key belonging to `private`.
pub fn public_key_of(private: &Key) -> WireGuardKey {
    WireGuardKey::from_bytes(private.get_public().0)
}

fn load_or_generate_key(path: &Path) -> Result<Key, KeyError> {
    match fs::read_to_string(path).map(Zeroizing::new) {
        Ok(text) => {
            tighten_permissions(path)?;
            parse_key(path, &text)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = Key::generate_private();
            write_key(path, &key)?;
            tracing::info!(path = %path.display(), public_key = %public_key_of(&key), "generated a new WireGuard key");
            Ok(key)
        }
        Err(error) => Err(KeyError::Read {
            path: path.to_path_buf(),
            error,
        }),
    }
}

fn parse_key(path: &Path, text: &str) -> Result<Key, KeyError> {
    let key = Key::from_base64(text.trim()).map_err(|_| KeyError::Corrupt {
        path: path.to_path_buf(),
    })?;
    if key.0 == [0; 32] {
        return Err(KeyError::Corrupt {
            path: path.to_path_buf(),
        });
    }
    Ok(key)
}

/// Makes a key file written by someone else readable by root only again.
fn tighten_permissions(path: &Path) -> Result<(), KeyError> {
    let err = |error| KeyError::Read {
        path: path.to_path_buf(),
        error,
    };
    let mode = fs::metadata(path).map_err(err)?.permissions().mode() & 0o777;
    if mode != 0o600 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "private key file had loose permissions; setting 0600");
        fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

/// Writes the key to a temporary file created with mode 0600, renames it into place and
/// flushes the directory, so a crash never leaves a half-written or vanished key.
fn write_key(path: &Path, key: &Key) -> Result<(), KeyError> {
    let text = Zeroizing::new(format!("{}\n", key.to_base64()));
    durable::replace_file(path, text.as_bytes(), 0o600).map_err(|error| KeyError::Write {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ke-keys-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn keys_are_generated_with_mode_0600_and_reused() {
        let dir = temp_dir("reuse");
        let first = KeyStore::load_or_generate(&dir).unwrap();
        for family in Family::ALL {
            let mode = fs::metadata(key_path(&dir, family))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{family}");
        }
        let second = KeyStore::load_or_generate(&dir).unwrap();
        assert_eq!(first.public(), second.public());
        assert_ne!(first.public().v4, first.public().v6);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loose_permissions_are_tightened() {
        let dir = temp_dir("loose");
        KeyStore::load_or_generate(&dir).unwrap();
        let path = key_path(&dir, Family::V4);
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        KeyStore::load_or_generate(&dir).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_key_is_refused_with_what_to_do() {
        let dir = temp_dir("corrupt");
        ensure_state_dir(&dir).unwrap();
        for text in ["not a key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="] {
            fs::write(key_path(&dir, Family::V4), text).unwrap();
            let err = KeyStore::load_or_generate(&dir).unwrap_err().to_string();
            assert!(err.contains("delete the file"), "{text}: {err}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Every way the private key could be spelled in a debug line.
    pub(crate) fn spellings(key: &Key) -> [String; 3] {
        [
            key.to_base64(),
            key.0.iter().map(|b| format!("{b:02x}")).collect(),
            format!("{:?}", key.0).trim_matches(['[', ']']).to_owned(),
        ]
    }

    #[test]
    fn debug_output_of_every_type_holding_keys_never_shows_the_private_key() {
        let key = Key::generate_private();
        let store = KeyStore::from_private(PerFamily {
            v4: Some(key.clone()),
            v6: Some(Key::generate_private()),
        });
        let secret = SecretKey::new(key.clone());
        let printed = [
            format!("{store:?}"),
            format!("{:?}", store.private()),
            format!("{:#?}", store.private().keys),
            format!("{secret:?}"),
        ];
        for line in &printed {
            for spelling in spellings(&key) {
                assert!(!line.contains(&spelling), "{line}");
            }
        }
        assert!(printed[0].contains(&store.public().v4.unwrap().to_base64()));
    }
}
