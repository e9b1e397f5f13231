//! Which names and numbers the agent looks at: those of the current configuration plus those
//! it managed before, remembered in the state directory so that a disable, a rename or a
//! changed table is cleaned up even across restarts.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kube_encrypt_api::crd::EncryptionConfigSpec;
use kube_encrypt_api::net::{Family, PerFamily};
use serde::{Deserialize, Serialize};

use crate::dataplane::{FamilyScope, Scope};

const FILE_NAME: &str = "managed-scope.json";

/// The scope `config` describes (the defaults when there is no config).
pub fn scope_of(config: Option<&EncryptionConfigSpec>) -> Scope {
    let defaults = EncryptionConfigSpec::default();
    let config = config.unwrap_or(&defaults);
    let families = PerFamily::from_fn(|family| {
        vec![FamilyScope {
            interface: config.family(family).interface_name.to_owned(),
            table: u32::try_from(config.routing_table).unwrap_or(0),
            rule_priority: u32::try_from(config.routing_rule_priority).unwrap_or(0),
        }]
    });
    Scope { families }
}

/// Everything in `a` or `b`, without duplicates, in a stable order.
pub fn union(a: &Scope, b: &Scope) -> Scope {
    let families = PerFamily::from_fn(|family| {
        let mut all: Vec<FamilyScope> = Vec::new();
        for entry in a.families.get(family).iter().chain(b.families.get(family)) {
            if !all.contains(entry) {
                all.push(entry.clone());
            }
        }
        all
    });
    Scope { families }
}

/// A failed read or write of the remembered scope.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: io::Error },
    #[error("cannot write {path}: {error}; check that --state-dir is writable")]
    Write { path: PathBuf, error: io::Error },
}

/// The scope managed so far, persisted in the state directory.
#[derive(Debug)]
pub struct ScopeMemory {
    path: PathBuf,
    remembered: Scope,
}

impl ScopeMemory {
    /// Loads the remembered scope; a missing or unreadable file means nothing remembered
    /// (a corrupt file is logged and replaced at the next save).
    pub fn load(state_dir: &Path) -> Result<Self, ScopeError> {
        let path = state_dir.join(FILE_NAME);
        let remembered = match fs::read_to_string(&path) {
            Ok(text) => parse_or_forget(&path, &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Scope::default(),
            Err(error) => return Err(ScopeError::Read { path, error }),
        };
        Ok(Self { path, remembered })
    }

    pub fn remembered(&self) -> &Scope {
        &self.remembered
    }

    /// Remembers `scope` (only writes when it changed).
    pub fn save(&mut self, scope: Scope) -> Result<(), ScopeError> {
        if scope == self.remembered {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(&StoredScope::from(&scope))
            .expect("a scope always serializes");
        let tmp = self.path.with_extension("tmp");
        let write = fs::write(&tmp, text).and_then(|()| fs::rename(&tmp, &self.path));
        write.map_err(|error| ScopeError::Write {
            path: self.path.clone(),
            error,
        })?;
        self.remembered = scope;
        Ok(())
    }
}

fn parse_or_forget(path: &Path, text: &str) -> Scope {
    match serde_json::from_str::<StoredScope>(text) {
        Ok(stored) => stored.into(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable managed-scope file");
            Scope::default()
        }
    }
}

/// The on-disk form of a [`Scope`].
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredScope {
    #[serde(default)]
    ipv4: Vec<StoredFamilyScope>,
    #[serde(default)]
    ipv6: Vec<StoredFamilyScope>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredFamilyScope {
    interface: String,
    table: u32,
    rule_priority: u32,
}

impl From<&Scope> for StoredScope {
    fn from(scope: &Scope) -> Self {
        let convert = |family: Family| {
            scope
                .families
                .get(family)
                .iter()
                .map(|f| StoredFamilyScope {
                    interface: f.interface.clone(),
                    table: f.table,
                    rule_priority: f.rule_priority,
                })
                .collect()
        };
        Self {
            ipv4: convert(Family::V4),
            ipv6: convert(Family::V6),
        }
    }
}

impl From<StoredScope> for Scope {
    fn from(stored: StoredScope) -> Self {
        let convert = |entries: Vec<StoredFamilyScope>| {
            entries
                .into_iter()
                .map(|f| FamilyScope {
                    interface: f.interface,
                    table: f.table,
                    rule_priority: f.rule_priority,
                })
                .collect()
        };
        Scope {
            families: PerFamily {
                v4: convert(stored.ipv4),
                v6: convert(stored.ipv6),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_scope_survives_a_restart_and_unions_with_the_current_one() {
        let dir = std::env::temp_dir().join(format!("ke-scope-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut old = EncryptionConfigSpec::default();
        old.ipv4.interface_name = "wg-old".into();
        old.routing_table = 700;

        let mut memory = ScopeMemory::load(&dir).unwrap();
        assert_eq!(memory.remembered(), &Scope::default());
        memory.save(scope_of(Some(&old))).unwrap();

        let reloaded = ScopeMemory::load(&dir).unwrap();
        assert_eq!(reloaded.remembered(), &scope_of(Some(&old)));

        let both = union(&scope_of(None), reloaded.remembered());
        let names: Vec<_> = both
            .families
            .v4
            .iter()
            .map(|f| f.interface.as_str())
            .collect();
        assert_eq!(names, ["wg-encrypt", "wg-old"]);
        assert_eq!(both.families.v6.len(), 2, "same v6 name, other table");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_forgotten_not_fatal() {
        let dir = std::env::temp_dir().join(format!("ke-scope-bad-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(FILE_NAME), "{not json").unwrap();
        assert_eq!(
            ScopeMemory::load(&dir).unwrap().remembered(),
            &Scope::default()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
