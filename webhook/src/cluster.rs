//! What the admission rules read from the cluster: the `default` EncryptionConfig and every
//! IPPool, as the watch caches hold them (see [`crate::caches`]). Requests never call the API
//! server; they read the latest snapshot, rebuilt once per watch event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use kube_encrypt_api::crd::{EncryptionConfig, IPPool, SINGLETON_NAME};
use kube_encrypt_api::rules::{NamedPool, PoolSet};

/// The cluster as the rules see it at one moment.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    /// The EncryptionConfig named `default`, when it exists.
    pub config: Option<Arc<EncryptionConfig>>,
    /// Every IPPool, sorted by name, CIDRs parsed once per snapshot.
    pub pools: PoolSet,
}

impl ClusterSnapshot {
    /// A snapshot of these objects; configs not named `default` are not the cluster's config.
    pub fn of<'a>(
        configs: impl IntoIterator<Item = Arc<EncryptionConfig>>,
        pools: impl IntoIterator<Item = &'a IPPool>,
    ) -> Self {
        let config = configs
            .into_iter()
            .find(|c| c.metadata.name.as_deref() == Some(SINGLETON_NAME));
        let mut pools: Vec<NamedPool> = pools.into_iter().map(NamedPool::from).collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            config,
            pools: PoolSet::new(pools),
        }
    }
}

/// The latest snapshot and whether the caches behind it completed their first list. Reading
/// the snapshot takes no lock and writes no shared reference count (arc-swap), so reviews on
/// several threads do not contend for it.
#[derive(Debug, Default)]
pub struct SharedCluster {
    snapshot: ArcSwap<ClusterSnapshot>,
    synced: AtomicBool,
}

impl SharedCluster {
    /// A cluster that is synced and never changes (tests, benchmarks of the handler).
    pub fn fixed(snapshot: ClusterSnapshot) -> Self {
        let shared = Self::default();
        shared.publish(snapshot);
        shared.set_synced();
        shared
    }

    /// The latest snapshot, to read for the length of one review.
    pub fn snapshot(&self) -> Guard<Arc<ClusterSnapshot>> {
        self.snapshot.load()
    }

    pub fn publish(&self, snapshot: ClusterSnapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_encrypt_api::crd::{EncryptionConfigSpec, IPPoolSpec};

    #[test]
    fn snapshot_takes_the_default_config_and_sorts_pools() {
        let configs = [
            Arc::new(EncryptionConfig::new("other", EncryptionConfigSpec::test())),
            Arc::new(EncryptionConfig::new(
                "default",
                EncryptionConfigSpec::test(),
            )),
        ];
        let pools = [
            IPPool::new("b", IPPoolSpec::test("198.18.1.0/24")),
            IPPool::new("a", IPPoolSpec::test("198.18.0.0/24")),
        ];
        let snapshot = ClusterSnapshot::of(configs.clone(), &pools);
        let name = snapshot
            .config
            .as_ref()
            .and_then(|c| c.metadata.name.clone());
        assert_eq!(name.as_deref(), Some("default"));
        let names: Vec<&str> = snapshot
            .pools
            .pools()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let none = ClusterSnapshot::of([configs[0].clone()], &pools);
        assert!(
            none.config.is_none(),
            "only `default` is the cluster's config"
        );
    }
}
