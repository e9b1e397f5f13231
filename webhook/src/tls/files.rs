//! The serving certificate from PEM files, reloaded when they change (cert-manager renews the
//! Secret, the kubelet swaps the mounted files). A pair that does not load keeps the last good
//! one in use, logs why and counts `certificate_reload_errors`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{certified_key, CertError, CertStore};
use crate::metrics::Metrics;
use crate::watched::WatchedFiles;

/// How often the files are read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why the files could not be served at start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Read(String),
    #[error("{cert} / {key}: {source}")]
    Invalid {
        cert: String,
        key: String,
        #[source]
        source: CertError,
    },
}

/// Watches a certificate file and a key file.
#[derive(Debug)]
pub struct CertReloader {
    files: WatchedFiles,
    store: Arc<CertStore>,
    metrics: Arc<Metrics>,
}

impl CertReloader {
    /// Loads the pair once (it must be valid to start serving) and returns the reloader with
    /// its store.
    pub fn start(cert: PathBuf, key: PathBuf, metrics: Arc<Metrics>) -> Result<Self, LoadError> {
        let mut files = WatchedFiles::new(vec![cert, key]);
        let contents = files
            .poll()
            .expect("the first poll always reports")
            .map_err(LoadError::Read)?;
        let loaded =
            certified_key(&contents[0], &contents[1]).map_err(|source| LoadError::Invalid {
                cert: files.paths()[0].display().to_string(),
                key: files.paths()[1].display().to_string(),
                source,
            })?;
        Ok(Self {
            files,
            store: Arc::new(CertStore::new(loaded)),
            metrics,
        })
    }

    pub fn store(&self) -> Arc<CertStore> {
        self.store.clone()
    }

    /// Reloads when the files changed; `Some(ok)` when a load was attempted.
    pub fn check(&mut self) -> Option<bool> {
        let contents = self.files.poll()?;
        let loaded = contents.and_then(|c| certified_key(&c[0], &c[1]).map_err(|e| e.to_string()));
        let ok = match loaded {
            Ok(key) => {
                self.store.replace(key);
                tracing::info!(cert = %self.files.paths()[0].display(), "serving certificate reloaded");
                true
            }
            Err(reason) => {
                tracing::error!(%reason, "serving certificate not reloaded; the previous one stays in use");
                false
            }
        };
        self.metrics.certificate_loaded(ok);
        Some(ok)
    }

    /// Checks the files every [`POLL_INTERVAL`] until the task is dropped.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check();
        }
    }
}
