//! Follow-ups of writes: CRDs register their types; deleting a namespace deletes its
//! objects; deleting a CRD deletes its objects; deleting an owner deletes its dependents
//! (background propagation) or orphans them.

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

/// Every `(collection, object)` whose ownerReferences name `uid`.
fn dependents(store: &Store, uid: &str) -> Vec<(String, Arc<Stored>)> {
    let mut out = Vec::new();
    for key in store.collection_keys() {
        let (items, _) = store.list(&key, None);
        out.extend(
            items
                .into_iter()
                .filter(|i| owner_uids(&i.value).contains(&uid))
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

/// Removes the ownerReference to `uid` from a dependent, retrying on races.
fn drop_owner_reference(store: &Store, key: &str, dependent: &Arc<Stored>, uid: &str) {
    let mut current = dependent.clone();
    for _ in 0..8 {
        let mut value = current.value.clone();
        if let Some(refs) = value
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
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
    for (key, dependent) in dependents(store, uid) {
        drop_owner_reference(store, &key, &dependent, uid);
    }
}

/// Deletes the dependents of a deleted owner whose other owners are gone too.
fn collect_garbage(api: &Api, uid: &str) {
    for (key, dependent) in dependents(&api.store, uid) {
        let others: Vec<&str> = owner_uids(&dependent.value)
            .into_iter()
            .filter(|o| *o != uid)
            .collect();
        if others.iter().any(|o| uid_exists(&api.store, o)) {
            drop_owner_reference(&api.store, &key, &dependent, uid);
            continue;
        }
        let (ns, name) = dependent.key();
        if let Ok(deleted) = api.store.delete(&key, &ns, &name, None) {
            after_delete_key(api, &key, &deleted, "Background");
        }
    }
}

/// The garbage collector: runs until the channel closes or the task is aborted.
pub async fn run(api: Arc<Api>, mut deleted: mpsc::UnboundedReceiver<String>) {
    while let Some(uid) = deleted.recv().await {
        collect_garbage(&api, &uid);
    }
}
