//! The run file: one bench, one run, its rows and the machine it ran on. Version 1:
//!
//! ```json
//! {"schema": 1, "bench": "webhook", "run": 1, "title": "…", "params": {"nodes": "5000"},
//!  "date": "2026-12-02T01:53:16Z",
//!  "machine": {"cpus": 2, "kernel": "6.8.0", "memory_mib": 24151,
//!              "load_before": [0.5, 0.4, 0.3], "load_after": [1.2, 0.6, 0.4],
//!              "procs_before": "1/300", "procs_after": "3/310"},
//!  "rows": [{"name": "p99", "value": 1.2, "unit": "ms", "goal": "at_most", "target": 2.0,
//!            "baseline": 0.9, "note": "…"}]}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const SCHEMA: u32 = 1;

/// What a measured value must reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    AtMost,
    AtLeast,
    /// Shown for context, no target.
    Info,
}

/// One measured value of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowRecord {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub goal: Goal,
    /// `None` exactly when `goal` is `Info`.
    pub target: Option<f64>,
    /// The same figure of a reference measured in the same run (a bare server, a
    /// hand-configured pair), when the bench has one.
    #[serde(default)]
    pub baseline: Option<f64>,
    #[serde(default)]
    pub note: String,
}

/// The machine as the bench saw it: measured, never hard-coded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs this process may run on (`sched_getaffinity` / cgroup quota).
    pub cpus: usize,
    pub kernel: String,
    pub memory_mib: u64,
    /// 1, 5 and 15 minute load averages before and after the bench (empty when unreadable).
    pub load_before: Vec<f64>,
    pub load_after: Vec<f64>,
    /// Runnable / total scheduling entities (the 4th field of /proc/loadavg).
    #[serde(default)]
    pub procs_before: String,
    #[serde(default)]
    pub procs_after: String,
}

/// One run of one bench.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    pub schema: u32,
    pub bench: String,
    pub run: u32,
    #[serde(default)]
    pub title: String,
    /// What the bench was run with (such as the cluster size); part of a figure's identity.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// RFC 3339, UTC, when the bench finished.
    pub date: String,
    pub machine: Machine,
    pub rows: Vec<RowRecord>,
}

/// Errors reading or writing run files.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source} (is KUBE_ENCRYPT_BENCH_OUT a writable directory?)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a bench run file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has schema {found}, this report reads schema {SCHEMA}: rerun the bench")]
    Version { path: PathBuf, found: u32 },
}

impl RunFile {
    /// `<dir>/<bench>[-<param>-<value>…]-<run>.json`.
    pub fn file_name(&self) -> String {
        let mut name = self.bench.clone();
        for (key, value) in &self.params {
            name.push_str(&format!("-{key}{value}"));
        }
        format!("{name}-{}.json", self.run)
    }

    /// Writes the file into `dir` (created if missing); returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, SchemaError> {
        let path = dir.join(self.file_name());
        let text = serde_json::to_string_pretty(self).expect("a run file serializes");
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|source| SchemaError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(path)
    }

    pub fn read(path: &Path) -> Result<Self, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: RunFile = serde_json::from_str(&text).map_err(|source| SchemaError::Parse {
            path: path.to_owned(),
            source,
        })?;
        if file.schema != SCHEMA {
            return Err(SchemaError::Version {
                path: path.to_owned(),
                found: file.schema,
            });
        }
        Ok(file)
    }

    /// Every `*.json` run file in `dir`, sorted by file name.
    pub fn read_dir(dir: &Path) -> Result<Vec<Self>, SchemaError> {
        let read_err = |source| SchemaError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths.iter().map(|p| Self::read(p)).collect()
    }
}
