//! State on disk, like etcd: a snapshot (`snapshot.jsonl`) plus an append-only log of
//! mutations (`log.jsonl`), one JSON record per line. A writer thread appends buffered
//! records and compacts the log into a new snapshot when it grows.
//!
//! Replay rule: each collection's snapshot records the resourceVersion it is complete up
//! to (`floor`); log records at or below their collection's floor are already in it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

/// Log records after which the writer compacts into a new snapshot.
const COMPACT_AFTER: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("creating the state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} line {line} is not a state record ({source}); move the file away to start empty"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One line of the snapshot or the log.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op")]
pub enum Record {
    /// The global resourceVersion counter.
    #[serde(rename = "rv")]
    Rv { rv: u64 },
    /// The snapshot of collection `c` is complete up to `rv`.
    #[serde(rename = "floor")]
    Floor {
        #[serde(rename = "c")]
        collection: String,
        rv: u64,
    },
    #[serde(rename = "put")]
    Put {
        #[serde(rename = "c")]
        collection: String,
        rv: u64,
        #[serde(rename = "obj")]
        object: Value,
    },
    #[serde(rename = "del")]
    Delete {
        #[serde(rename = "c")]
        collection: String,
        rv: u64,
        #[serde(rename = "ns")]
        namespace: String,
        name: String,
    },
}

/// What `load` found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub snapshot: Vec<Record>,
    pub log: Vec<Record>,
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("snapshot.jsonl")
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("log.jsonl")
}

/// Reads the snapshot and the log of `dir` (missing files are empty).
pub fn load(dir: &Path) -> Result<Loaded, PersistError> {
    fs::create_dir_all(dir).map_err(|source| PersistError::CreateDir {
        path: dir.into(),
        source,
    })?;
    Ok(Loaded {
        snapshot: read_records(&snapshot_path(dir))?,
        log: read_records(&log_path(dir))?,
    })
}

fn read_records(path: &Path) -> Result<Vec<Record>, PersistError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PersistError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|source| PersistError::Read {
            path: path.into(),
            source,
        })?;
    let last = lines.len();
    let mut records = Vec::with_capacity(lines.len());
    for (i, line) in lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            // A torn final line from a crash mid-write loses only that write.
            Err(_) if i + 1 == last => {
                tracing::warn!(path = %path.display(), "ignoring a torn last record")
            }
            Err(source) => {
                return Err(PersistError::Corrupt {
                    path: path.into(),
                    line: i + 1,
                    source,
                })
            }
        }
    }
    Ok(records)
}

/// Produces the snapshot lines of the current state.
pub type SnapshotFn = Box<dyn Fn() -> Vec<Bytes> + Send>;

enum Msg {
    Line(Bytes),
    Stop(mpsc::Sender<()>),
}

/// The log writer.
pub struct Log {
    tx: mpsc::Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Log")
    }
}

impl Log {
    /// Writes `snapshot` as the new snapshot, empties the log and starts the writer.
    pub fn open(
        dir: &Path,
        snapshot: &[Bytes],
        snapshot_fn: SnapshotFn,
    ) -> Result<Self, PersistError> {
        write_snapshot(dir, snapshot)?;
        let path = log_path(dir);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| PersistError::Write {
                path: path.clone(),
                source,
            })?;
        file.set_len(0).map_err(|source| PersistError::Write {
            path: path.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.into(),
            out: BufWriter::with_capacity(1 << 20, file),
            lines: 0,
            snapshot_fn,
        };
        let thread = std::thread::Builder::new()
            .name("apiserver-log".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| PersistError::Write { path, source })?;
        Ok(Self {
            tx,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn append(&self, line: Bytes) {
        let _ = self.tx.send(Msg::Line(line));
    }

    /// Flushes everything appended so far and stops the writer.
    pub fn close(&self) {
        let (ack, done) = mpsc::channel();
        if self.tx.send(Msg::Stop(ack)).is_ok() {
            let _ = done.recv();
        }
        if let Some(thread) = self.thread.lock().expect("log thread lock").take() {
            let _ = thread.join();
        }
    }
}

fn write_snapshot(dir: &Path, lines: &[Bytes]) -> Result<(), PersistError> {
    let path = snapshot_path(dir);
    let tmp = dir.join("snapshot.jsonl.tmp");
    let write = || -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(&tmp)?);
        for line in lines {
            out.write_all(line)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|source| PersistError::Write { path, source })
}

struct Writer {
    dir: PathBuf,
    out: BufWriter<File>,
    lines: usize,
    snapshot_fn: SnapshotFn,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let msg = match rx.try_recv() {
                Ok(msg) => msg,
                Err(mpsc::TryRecvError::Empty) => {
                    self.flush();
                    match rx.recv() {
                        Ok(msg) => msg,
                        Err(_) => return self.flush(),
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => return self.flush(),
            };
            match msg {
                Msg::Line(line) => self.write(&line),
                Msg::Stop(ack) => {
                    self.flush();
                    let _ = ack.send(());
                    return;
                }
            }
        }
    }

    fn write(&mut self, line: &[u8]) {
        if let Err(e) = self
            .out
            .write_all(line)
            .and_then(|_| self.out.write_all(b"\n"))
        {
            tracing::error!(error = %e, "appending to the apiserver log");
        }
        self.lines += 1;
        if self.lines >= COMPACT_AFTER {
            self.compact();
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::error!(error = %e, "flushing the apiserver log");
        }
    }

    /// Snapshot first, then empty the log: records still queued for the log are at or
    /// below their collection's snapshot floor and are skipped on replay.
    fn compact(&mut self) {
        self.flush();
        let lines = (self.snapshot_fn)();
        match write_snapshot(&self.dir, &lines) {
            Ok(()) => {
                if let Err(e) = self.out.get_ref().set_len(0) {
                    tracing::error!(error = %e, "truncating the apiserver log");
                }
                self.lines = 0;
            }
            Err(e) => tracing::error!(error = %e, "compacting the apiserver log"),
        }
    }
}
