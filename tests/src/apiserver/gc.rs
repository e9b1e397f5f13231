//! Follow-ups of writes: CRDs register their types; deleting a namespace deletes its
//! objects; deleting a CRD deletes its objects; deleting an owner deletes its dependents
//! (background propagation) or orphans them.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use super::api::{Api, CRD_KEY, NAMESPACE_KEY};
use super::meta;
use super::registry::{self, ResourceType};
use super::store::{Store, StoreError, Stored};

pub fn after_write(api: &Api, rt: &ResourceType, stored: &Stored) {
    if rt.storage_key() == CRD_KEY {
        api.registry.register_crd(&stored.value);
    }
}

pub fn after_delete(api: &Api, rt: &ResourceType, deleted: &Stored, propagation: &str) {
    after_delete_key(api, &rt.storage_key(), deleted, propagation);
}

fn after_delete_key(api: &Api, key: &str, deleted: &Stored, propagation: &str) {
    match key {
        NAMESPACE_KEY => delete_namespace_contents(api, meta::name(&deleted.value)),
        CRD_KEY => {
            if let Some(t) = registry::from_crd(&deleted.value) {
                delete_all(api, &t.storage_key(), None);
                api.registry.unregister(&t.storage_key());
            }
        }
        _ => {}
    }
    let uid = meta::uid(&deleted.value).to_string();
    if propagation == "Orphan" {
        orphan_dependents(&api.store, &uid);
    } else if !uid.is_empty() {
        let _ = api.deleted.send(uid);
    }
}

fn delete_namespace_contents(api: &Api, namespace: &str) {
    for key in api
        .store
        .collection_keys()
        .iter()
        .filter(|k| k.as_str() != NAMESPACE_KEY)
    {
        delete_all(api, key, Some(namespace));
    }
}

fn delete_all(api: &Api, key: &str, namespace: Option<&str>) {
    let (items, _) = api.store.list(key, namespace);
    for item in items {
        let (ns, name) = item.key();
        if let Ok(deleted) = api.store.delete(key, &ns, &name, None) {
            after_delete_key(api, key, &deleted, "Background");
        }
    }
}

fn owner_uids(obj: &Value) -> Vec<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// Every `(collection, object)` whose ownerReferences name one of `uids`.
fn dependents(store: &Store, uids: &HashSet<String>) -> Vec<(String, Arc<Stored>)> {
    let mut out = Vec::new();
    for key in store.collection_keys() {
        let (items, _) = store.list(&key, None);
        out.extend(
            items
                .into_iter()
                .filter(|i| owner_uids(&i.value).iter().any(|o| uids.contains(*o)))
                .map(|i| (key.clone(), i)),
        );
    }
    out
}

fn uid_exists(store: &Store, uid: &str) -> bool {
    store.collection_keys().iter().any(|key| {
        store
            .list(key, None)
            .0
            .iter()
            .any(|i| meta::uid(&i.value) == uid)
    })
}

/// Removes the ownerReferences to `uids` from a dependent, retrying on races.
fn drop_owner_references(
    store: &Store,
    key: &str,
    dependent: &Arc<Stored>,
    uids: &HashSet<String>,
) {
    let mut current = dependent.clone();
    for _ in 0..8 {
        let mut value = current.value.clone();
        if let Some(refs) = value
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| {
                r.get("uid")
                    .and_then(Value::as_str)
                    .is_none_or(|u| !uids.contains(u))
            });
        }
        match store.update(key, value, current.rv) {
            Err(StoreError::Conflict { .. }) => {
                let (ns, name) = current.key();
                match store.get(key, &ns, &name) {
                    Some(fresh) => current = fresh,
                    None => return,
                }
            }
            _ => return,
        }
    }
}

fn orphan_dependents(store: &Store, uid: &str) {
    let uids = HashSet::from([uid.to_string()]);
    for (key, dependent) in dependents(store, &uids) {
        drop_owner_references(store, &key, &dependent, &uids);
    }
}

/// Deletes the dependents of deleted owners whose other owners are gone too; dependents
/// with a living owner only lose the references to the deleted ones.
fn collect_garbage(api: &Api, deleted: &HashSet<String>) {
    for (key, dependent) in dependents(&api.store, deleted) {
        let owners = owner_uids(&dependent.value);
        let others: Vec<&str> = owners
            .into_iter()
            .filter(|o| !deleted.contains(*o))
            .collect();
        if others.iter().any(|o| uid_exists(&api.store, o)) {
            drop_owner_references(&api.store, &key, &dependent, deleted);
            continue;
        }
        let (ns, name) = dependent.key();
        if let Ok(gone) = api.store.delete(&key, &ns, &name, None) {
            after_delete_key(api, &key, &gone, "Background");
        }
    }
}

/// The garbage collector: takes the uids of deleted objects in batches (one scan of the
/// store per batch) and runs until the channel closes or the task is aborted.
pub async fn run(api: Arc<Api>, mut deleted: mpsc::UnboundedReceiver<String>) {
    while let Some(uid) = deleted.recv().await {
        let mut batch = HashSet::from([uid]);
        while let Ok(more) = deleted.try_recv() {
            batch.insert(more);
        }
        let api = api.clone();
        if tokio::task::spawn_blocking(move || collect_garbage(&api, &batch))
            .await
            .is_err()
        {
            tracing::error!("the garbage collector panicked");
        }
    }
}
