//! The policy in force, and the poller that reloads it when the file changes. A file that
//! cannot be read or parsed keeps the last good policy (at start: the built-in defaults),
//! logs why and counts `policy_reload_errors`; `policy_valid` stays 0 until a good file
//! arrives.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};

use super::Policy;
use crate::metrics::Metrics;
use crate::watched::WatchedFiles;

/// How often the policy file is read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The policy in force, shared by the admission handler and the reloader (read without a
/// lock, as [`crate::cluster::SharedCluster`]'s snapshot).
#[derive(Debug, Default)]
pub struct PolicyHandle {
    current: ArcSwap<Policy>,
}

impl PolicyHandle {
    pub fn new(policy: Policy) -> Self {
        Self {
            current: ArcSwap::from_pointee(policy),
        }
    }

    /// The policy in force now.
    pub fn current(&self) -> Guard<Arc<Policy>> {
        self.current.load()
    }

    fn replace(&self, policy: Policy) {
        self.current.store(Arc::new(policy));
    }
}

/// Reloads one policy file into a [`PolicyHandle`].
#[derive(Debug)]
pub struct PolicyReloader {
    file: WatchedFiles,
    handle: Arc<PolicyHandle>,
    metrics: Arc<Metrics>,
}

/// What one check of the file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Loaded,
    /// The file was refused; the message says why.
    Refused(String),
}

impl PolicyReloader {
    pub fn new(path: PathBuf, handle: Arc<PolicyHandle>, metrics: Arc<Metrics>) -> Self {
        Self {
            file: WatchedFiles::new(vec![path]),
            handle,
            metrics,
        }
    }

    /// Reads the file and swaps the policy in when it changed and parses.
    pub fn check(&mut self) -> Reload {
        let Some(contents) = self.file.poll() else {
            return Reload::Unchanged;
        };
        let path = self.file.paths()[0].display().to_string();
        let parsed = contents.and_then(|files| {
            let text = String::from_utf8(files.concat())
                .map_err(|_| format!("{path} is not UTF-8 text"))?;
            Policy::parse(&text).map_err(|e| format!("{path}: {e}"))
        });
        match parsed {
            Ok(policy) => {
                tracing::info!(file = %path, ?policy, "policy loaded");
                self.handle.replace(policy);
                self.metrics.policy_loaded(true);
                Reload::Loaded
            }
            Err(reason) => {
                tracing::error!(%reason, "policy file refused; the last good policy stays in force (fix the ConfigMap)");
                self.metrics.policy_loaded(false);
                Reload::Refused(reason)
            }
        }
    }

    /// Checks the file every [`POLL_INTERVAL`] until the task is dropped.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Action;
    use kube_encrypt_api::rules::Rule;

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("ke-policy-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir.join("policy.yaml"))
        }

        fn write(&self, text: &str) {
            std::fs::write(&self.0, text).unwrap();
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }

    #[test]
    fn reload_takes_good_files_and_keeps_the_last_good_one() {
        let file = TempFile::new("reload");
        let handle = Arc::new(PolicyHandle::default());
        let metrics = Arc::new(Metrics::new());
        let mut reloader = PolicyReloader::new(file.0.clone(), handle.clone(), metrics.clone());
        let overlap = || handle.current().action(Rule::PoolOverlap);

        let missing = reloader.check();
        assert!(
            matches!(&missing, Reload::Refused(r) if r.contains("cannot read")),
            "{missing:?}"
        );
        assert_eq!(overlap(), Action::Deny, "defaults until a file arrives");

        file.write("rules:\n  pool-overlap: warn\n");
        assert_eq!(reloader.check(), Reload::Loaded);
        assert_eq!(overlap(), Action::Warn);
        assert_eq!(reloader.check(), Reload::Unchanged);

        file.write("rules:\n  pool-overlap: sometimes\n");
        let refused = reloader.check();
        assert!(
            matches!(&refused, Reload::Refused(r) if r.contains("not an action")),
            "{refused:?}"
        );
        assert_eq!(overlap(), Action::Warn, "last good policy kept");
        assert!(metrics
            .encode()
            .contains("kube_encrypt_webhook_policy_valid 0"));

        file.write("rules:\n  pool-overlap: off\n");
        assert_eq!(reloader.check(), Reload::Loaded);
        assert_eq!(overlap(), Action::Off);
        let text = metrics.encode();
        assert!(
            text.contains("kube_encrypt_webhook_policy_valid 1"),
            "{text}"
        );
        assert!(
            text.contains("kube_encrypt_webhook_policy_reload_errors_total 2"),
            "{text}"
        );
        assert!(
            text.contains("kube_encrypt_webhook_policy_reloads_total 2"),
            "{text}"
        );
    }
}
