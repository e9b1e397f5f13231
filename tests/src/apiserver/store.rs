//! The object store: one ordered map per resource, one global resourceVersion counter,
//! a bounded event history per resource for watch resumption, a broadcast channel per
//! resource for live watches, and a mutation log on disk (see `persist`).
//!
//! Every write to a resource happens under that resource's write lock, which assigns the
//! resourceVersion, serializes the object once, records the event and hands the record to
//! the log writer, so events of a resource are totally ordered by resourceVersion.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, Weak};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::meta;
use super::persist::{self, Log, Record};

/// Events kept per resource for watches resuming from a resourceVersion.
pub const HISTORY_LIMIT: usize = 10_000;
/// Live events a watcher may fall behind before it is dropped.
const BROADCAST_CAPACITY: usize = 32_768;

/// `(namespace or "", name)`
pub type ObjectKey = (String, String);

/// A stored object with its serialized form.
#[derive(Debug)]
pub struct Stored {
    pub value: Value,
    pub json: Bytes,
    pub rv: u64,
}

impl Stored {
    fn new(value: Value, rv: u64) -> Self {
        let json = Bytes::from(serde_json::to_vec(&value).expect("JSON values serialize"));
        Self { value, json, rv }
    }

    pub fn key(&self) -> ObjectKey {
        (
            meta::namespace(&self.value).unwrap_or("").to_string(),
            meta::name(&self.value).to_string(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of one object.
#[derive(Debug)]
pub struct Event {
    pub kind: EventType,
    pub rv: u64,
    pub object: Arc<Stored>,
    /// The object before the change (for selector transitions).
    pub prev: Option<Arc<Stored>>,
}

/// Why a store write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("object already exists")]
    AlreadyExists,
    #[error("object not found")]
    NotFound,
    #[error("resourceVersion {expected} is stale (current {current})")]
    Conflict { expected: u64, current: u64 },
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<ObjectKey, Arc<Stored>>,
    history: VecDeque<Arc<Event>>,
    /// Events at or below this resourceVersion are no longer in `history`.
    floor: u64,
}

/// The objects of one resource.
#[derive(Debug)]
pub struct Collection {
    inner: RwLock<Inner>,
    sender: broadcast::Sender<Arc<Event>>,
}

impl Collection {
    fn new(floor: u64) -> Self {
        let (sender, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            inner: RwLock::new(Inner {
                floor,
                ..Inner::default()
            }),
            sender,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().expect("collection lock")
    }
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum WatchFrom {
    /// Synthetic ADDED events for the current state, then live events.
    Now,
    /// Every event after this resourceVersion, then live events.
    After(u64),
}

/// A watch's starting point: what to send first, and the live feed.
#[derive(Debug)]
pub struct WatchStart {
    pub initial: Vec<Arc<Stored>>,
    pub backlog: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
    /// The resourceVersion the initial state or backlog is complete up to.
    pub rv: u64,
}

#[derive(Debug)]
struct StoreInner {
    rv: AtomicU64,
    collections: RwLock<HashMap<String, Arc<Collection>>>,
    log: OnceLock<Log>,
}

/// Shared handle to the store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

impl Store {
    /// An empty store that keeps nothing on disk.
    pub fn in_memory() -> Self {
        Self {
            inner: Arc::new(StoreInner {
                rv: AtomicU64::new(0),
                collections: RwLock::new(HashMap::new()),
                log: OnceLock::new(),
            }),
        }
    }

    /// Loads the state kept in `dir`, compacts it, and logs every later write there.
    pub fn open(dir: &Path) -> Result<Self, persist::PersistError> {
        let store = Self::in_memory();
        let loaded = persist::load(dir)?;
        loaded.snapshot.into_iter().for_each(|r| store.restore(r));
        loaded.log.into_iter().for_each(|r| store.replay(r));
        let weak = Arc::downgrade(&store.inner);
        let log = Log::open(
            dir,
            &store.snapshot_lines(),
            Box::new(move || snapshot_of(&weak)),
        )?;
        store.inner.log.set(log).expect("log set once");
        Ok(store)
    }

    /// Writes everything pending to disk and stops the log writer.
    pub fn close(&self) {
        if let Some(log) = self.inner.log.get() {
            log.close();
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.inner.rv.load(Ordering::SeqCst)
    }

    /// The collection stored under `key`, created when missing.
    pub fn collection(&self, key: &str) -> Arc<Collection> {
        if let Some(c) = self.inner.collections.read().expect("store lock").get(key) {
            return c.clone();
        }
        let mut all = self.inner.collections.write().expect("store lock");
        all.entry(key.to_string())
            .or_insert_with(|| Arc::new(Collection::new(0)))
            .clone()
    }

    /// Keys of every collection holding or having held objects.
    pub fn collection_keys(&self) -> Vec<String> {
        self.inner
            .collections
            .read()
            .expect("store lock")
            .keys()
            .cloned()
            .collect()
    }

    pub fn get(&self, key: &str, namespace: &str, name: &str) -> Option<Arc<Stored>> {
        let c = self.collection(key);
        let inner = c.read();
        inner
            .objects
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of the collection (of one namespace when given) and the list resourceVersion.
    pub fn list(&self, key: &str, namespace: Option<&str>) -> (Vec<Arc<Stored>>, u64) {
        let c = self.collection(key);
        let inner = c.read();
        let rv = self.current_rv();
        let items = match namespace {
            Some(ns) => inner
                .objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, o)| o.clone())
                .collect(),
            None => inner.objects.values().cloned().collect(),
        };
        (items, rv)
    }

    pub fn create(&self, key: &str, value: Value) -> Result<Arc<Stored>, StoreError> {
        let c = self.collection(key);
        let mut inner = c.inner.write().expect("collection lock");
        let id = object_key(&value);
        if inner.objects.contains_key(&id) {
            return Err(StoreError::AlreadyExists);
        }
        Ok(self.commit(key, &c, &mut inner, EventType::Added, value, None))
    }

    /// Replaces the object if its stored resourceVersion is still `expected`.
    pub fn update(
        &self,
        key: &str,
        value: Value,
        expected: u64,
    ) -> Result<Arc<Stored>, StoreError> {
        let c = self.collection(key);
        let mut inner = c.inner.write().expect("collection lock");
        let prev = inner
            .objects
            .get(&object_key(&value))
            .cloned()
            .ok_or(StoreError::NotFound)?;
        if prev.rv != expected {
            return Err(StoreError::Conflict {
                expected,
                current: prev.rv,
            });
        }
        Ok(self.commit(key, &c, &mut inner, EventType::Modified, value, Some(prev)))
    }

    /// Deletes the object (if its resourceVersion is `expected`, when given). Returns the
    /// deleted object carrying the deletion's resourceVersion.
    pub fn delete(
        &self,
        key: &str,
        namespace: &str,
        name: &str,
        expected: Option<u64>,
    ) -> Result<Arc<Stored>, StoreError> {
        let c = self.collection(key);
        let mut inner = c.inner.write().expect("collection lock");
        let id = (namespace.to_string(), name.to_string());
        let prev = inner
            .objects
            .get(&id)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        if let Some(expected) = expected.filter(|e| *e != prev.rv) {
            return Err(StoreError::Conflict {
                expected,
                current: prev.rv,
            });
        }
        let value = prev.value.clone();
        Ok(self.commit(key, &c, &mut inner, EventType::Deleted, value, Some(prev)))
    }

    /// Subscribes to the collection's events from `from`; `Err(oldest)` when the requested
    /// resourceVersion is older than the kept history.
    pub fn watch(&self, key: &str, from: WatchFrom) -> Result<WatchStart, u64> {
        let c = self.collection(key);
        let inner = c.read();
        let live = c.sender.subscribe();
        let rv = self.current_rv();
        match from {
            WatchFrom::Now => Ok(WatchStart {
                initial: inner.objects.values().cloned().collect(),
                backlog: Vec::new(),
                live,
                rv,
            }),
            WatchFrom::After(after) if after < inner.floor => Err(inner.floor),
            WatchFrom::After(after) => {
                let start = inner.history.partition_point(|e| e.rv <= after);
                let backlog = inner.history.range(start..).cloned().collect();
                Ok(WatchStart {
                    initial: Vec::new(),
                    backlog,
                    live,
                    rv,
                })
            }
        }
    }

    fn commit(
        &self,
        key: &str,
        c: &Collection,
        inner: &mut Inner,
        kind: EventType,
        value: Value,
        prev: Option<Arc<Stored>>,
    ) -> Arc<Stored> {
        let rv = self.inner.rv.fetch_add(1, Ordering::SeqCst) + 1;
        let stored = apply_event(c, inner, kind, value, prev, rv);
        if let Some(log) = self.inner.log.get() {
            log.append(record_line(key, kind, &stored));
        }
        stored
    }

    /// Applies a snapshot record: state only, no events.
    fn restore(&self, record: Record) {
        match record {
            Record::Rv { rv } => {
                self.inner.rv.fetch_max(rv, Ordering::SeqCst);
            }
            Record::Floor { collection, rv } => {
                let c = self.collection(&collection);
                c.inner.write().expect("collection lock").floor = rv;
            }
            Record::Put {
                collection,
                rv,
                mut object,
            } => {
                self.inner.rv.fetch_max(rv, Ordering::SeqCst);
                set_rv(&mut object, rv);
                let c = self.collection(&collection);
                let id = object_key(&object);
                c.inner
                    .write()
                    .expect("collection lock")
                    .objects
                    .insert(id, Arc::new(Stored::new(object, rv)));
            }
            Record::Delete { .. } => {}
        }
    }

    /// Applies a log record newer than its collection's snapshot as an event.
    fn replay(&self, record: Record) {
        let (key, rv, object, id) = match record {
            Record::Put {
                collection,
                rv,
                object,
            } => {
                let id = object_key(&object);
                (collection, rv, Some(object), id)
            }
            Record::Delete {
                collection,
                rv,
                namespace,
                name,
            } => (collection, rv, None, (namespace, name)),
            other => return self.restore(other),
        };
        self.inner.rv.fetch_max(rv, Ordering::SeqCst);
        let c = self.collection(&key);
        let mut inner = c.inner.write().expect("collection lock");
        if rv <= inner.floor {
            return;
        }
        let prev = inner.objects.get(&id).cloned();
        let (kind, value) = match (object, prev.as_ref()) {
            (Some(o), None) => (EventType::Added, o),
            (Some(o), Some(_)) => (EventType::Modified, o),
            (None, Some(p)) => (EventType::Deleted, p.value.clone()),
            (None, None) => return,
        };
        apply_event(&c, &mut inner, kind, value, prev, rv);
    }

    fn snapshot_lines(&self) -> Vec<Bytes> {
        snapshot_of(&Arc::downgrade(&self.inner))
    }
}

fn snapshot_of(store: &Weak<StoreInner>) -> Vec<Bytes> {
    let Some(store) = store.upgrade() else {
        return Vec::new();
    };
    let collections: Vec<(String, Arc<Collection>)> = store
        .collections
        .read()
        .expect("store lock")
        .iter()
        .map(|(k, c)| (k.clone(), c.clone()))
        .collect();
    let mut lines = Vec::new();
    for (key, c) in collections {
        let inner = c.read();
        let floor = store.rv.load(Ordering::SeqCst);
        lines.push(Bytes::from(
            json!({"op": "floor", "c": key, "rv": floor}).to_string(),
        ));
        lines.extend(
            inner
                .objects
                .values()
                .map(|o| record_line(&key, EventType::Added, o)),
        );
    }
    lines.insert(
        0,
        Bytes::from(json!({"op": "rv", "rv": store.rv.load(Ordering::SeqCst)}).to_string()),
    );
    lines
}

fn apply_event(
    c: &Collection,
    inner: &mut Inner,
    kind: EventType,
    mut value: Value,
    prev: Option<Arc<Stored>>,
    rv: u64,
) -> Arc<Stored> {
    set_rv(&mut value, rv);
    let id = object_key(&value);
    let stored = Arc::new(Stored::new(value, rv));
    match kind {
        EventType::Deleted => inner.objects.remove(&id),
        _ => inner.objects.insert(id, stored.clone()),
    };
    let event = Arc::new(Event {
        kind,
        rv,
        object: stored.clone(),
        prev,
    });
    inner.history.push_back(event.clone());
    while inner.history.len() > HISTORY_LIMIT {
        if let Some(old) = inner.history.pop_front() {
            inner.floor = old.rv;
        }
    }
    let _ = c.sender.send(event);
    stored
}

fn set_rv(value: &mut Value, rv: u64) {
    meta::metadata_mut(value).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

fn object_key(value: &Value) -> ObjectKey {
    (
        meta::namespace(value).unwrap_or("").to_string(),
        meta::name(value).to_string(),
    )
}

fn record_line(key: &str, kind: EventType, stored: &Stored) -> Bytes {
    let line = match kind {
        EventType::Deleted => {
            let (ns, name) = stored.key();
            json!({"op": "del", "c": key, "rv": stored.rv, "ns": ns, "name": name})
                .to_string()
                .into_bytes()
        }
        _ => {
            let mut line = format!(
                r#"{{"op":"put","c":{},"rv":{},"obj":"#,
                json!(key),
                stored.rv
            )
            .into_bytes();
            line.extend_from_slice(&stored.json);
            line.push(b'}');
            line
        }
    };
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, value: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "data": {"k": value}})
    }

    const KEY: &str = "/configmaps";

    #[test]
    fn writes_version_and_conflict() {
        let store = Store::in_memory();
        let a = store.create(KEY, cm("a", "1")).unwrap();
        assert_eq!(
            store.create(KEY, cm("a", "1")).unwrap_err(),
            StoreError::AlreadyExists
        );
        let b = store.update(KEY, cm("a", "2"), a.rv).unwrap();
        assert!(b.rv > a.rv);
        assert_eq!(b.value["metadata"]["resourceVersion"], b.rv.to_string());
        assert_eq!(
            store.update(KEY, cm("a", "3"), a.rv).unwrap_err(),
            StoreError::Conflict {
                expected: a.rv,
                current: b.rv
            }
        );
        let gone = store.delete(KEY, "default", "a", Some(b.rv)).unwrap();
        assert!(gone.rv > b.rv);
        assert!(store.get(KEY, "default", "a").is_none());
        assert_eq!(
            store.delete(KEY, "default", "a", None).unwrap_err(),
            StoreError::NotFound
        );
    }

    #[test]
    fn watches_start_now_or_after_a_version() {
        let store = Store::in_memory();
        let a = store.create(KEY, cm("a", "1")).unwrap();
        store.update(KEY, cm("a", "2"), a.rv).unwrap();
        let now = store.watch(KEY, WatchFrom::Now).unwrap();
        assert_eq!(now.initial.len(), 1);
        assert!(now.backlog.is_empty());
        let mut after = store.watch(KEY, WatchFrom::After(a.rv)).unwrap();
        let kinds: Vec<EventType> = after.backlog.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventType::Modified]);
        store.create(KEY, cm("b", "1")).unwrap();
        assert_eq!(after.live.try_recv().unwrap().kind, EventType::Added);
    }

    #[test]
    fn history_is_bounded() {
        let store = Store::in_memory();
        let mut current = store.create(KEY, cm("a", "0")).unwrap();
        let first = current.rv;
        for i in 0..HISTORY_LIMIT {
            current = store
                .update(KEY, cm("a", &i.to_string()), current.rv)
                .unwrap();
        }
        assert_eq!(
            store.watch(KEY, WatchFrom::After(first - 1)).unwrap_err(),
            first
        );
        assert_eq!(
            store
                .watch(KEY, WatchFrom::After(first))
                .unwrap()
                .backlog
                .len(),
            HISTORY_LIMIT
        );
    }

    #[test]
    fn state_survives_reopening() {
        let dir =
            std::env::temp_dir().join(format!("kube-encrypt-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let a = store.create(KEY, cm("a", "1")).unwrap();
        let b = store.create(KEY, cm("b", "1")).unwrap();
        store.update(KEY, cm("a", "2"), a.rv).unwrap();
        store.delete(KEY, "default", "b", Some(b.rv)).unwrap();
        let last = store.current_rv();
        store.close();

        // First reopen: the log replays as events.
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.current_rv(), last);
        assert_eq!(
            store.get(KEY, "default", "a").unwrap().value["data"]["k"],
            "2"
        );
        assert!(store.get(KEY, "default", "b").is_none());
        assert_eq!(
            store
                .watch(KEY, WatchFrom::After(a.rv))
                .unwrap()
                .backlog
                .len(),
            3,
            "create b, update a, delete b"
        );
        assert!(store.create(KEY, cm("c", "1")).unwrap().rv > last);
        store.close();

        // Second reopen: from the snapshot written at the first; older versions are gone.
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.list(KEY, Some("default")).0.len(), 2);
        assert!(store.watch(KEY, WatchFrom::After(a.rv)).is_err());
        store.close();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
