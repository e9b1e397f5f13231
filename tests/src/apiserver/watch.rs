//! Watches: chunked JSON lines of `{"type": ..., "object": ...}`. Starts from the current
//! state (synthetic ADDED events) or after a resourceVersion (from the kept history, else
//! an ERROR event with a 410 Status), then follows live events until `timeoutSeconds`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::context::Req;
use super::errors::ApiError;
use super::http::Body;
use super::read;
use super::selectors::Selectors;
use super::store::{Event, EventType, Stored, WatchFrom};
use super::table;

/// Watches end after this long unless `timeoutSeconds` says otherwise (the real server
/// picks 30-60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);
/// Initial events are sent in frames of about this size.
const FRAME_BYTES: usize = 64 * 1024;

/// What a watcher wants to see.
struct Filter {
    namespace: Option<String>,
    name: Option<String>,
    selectors: Selectors,
}

impl Filter {
    fn matches(&self, stored: &Stored) -> bool {
        let (ns, name) = stored.key();
        self.namespace.as_ref().is_none_or(|n| *n == ns)
            && self.name.as_ref().is_none_or(|n| *n == name)
            && self.selectors.matches(&stored.value)
    }

    /// The event type this watcher sees, given selector transitions.
    fn event_type(&self, ev: &Event) -> Option<EventType> {
        let now = self.matches(&ev.object);
        let before = ev.prev.as_ref().is_some_and(|p| self.matches(p));
        match (ev.kind, before, now) {
            (EventType::Added, _, true) => Some(EventType::Added),
            (EventType::Modified, true, true) => Some(EventType::Modified),
            (EventType::Modified, false, true) => Some(EventType::Added),
            (EventType::Modified, true, false) => Some(EventType::Deleted),
            (EventType::Deleted, b, n) if b || n => Some(EventType::Deleted),
            _ => None,
        }
    }
}

struct Watch {
    req: Req,
    filter: Filter,
    table: bool,
    pending: VecDeque<Bytes>,
    live: broadcast::Receiver<Arc<Event>>,
    last_rv: u64,
    deadline: Instant,
    bookmarks: bool,
    next_bookmark: Instant,
    done: bool,
}

pub fn watch(req: &Req) -> Result<Response<Body>, ApiError> {
    let selectors = read::selectors(req)?;
    let filter = Filter {
        namespace: req.path.namespace.clone(),
        name: req
            .path
            .name
            .clone()
            .or_else(|| selectors.fields.exact_name().map(String::from)),
        selectors,
    };
    let initial_events = req.query.get("sendInitialEvents") == Some("true");
    let from = match req.query.get("resourceVersion") {
        _ if initial_events => WatchFrom::Now,
        None | Some("0") => WatchFrom::Now,
        Some(rv) => WatchFrom::After(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?,
        ),
    };
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let start = match req.api.store.watch(&req.key(), from) {
        Ok(start) => start,
        Err(oldest) => {
            let WatchFrom::After(requested) = from else {
                unreachable!("only resumed watches expire")
            };
            let status = ApiError::gone(requested, oldest).status();
            return Ok(stream_response(
                VecDeque::from([event_line("ERROR", &status)]),
                None,
            ));
        }
    };
    let mut w = Watch {
        req: req.clone(),
        filter,
        table: super::http::wants_table(&req.headers),
        pending: VecDeque::new(),
        live: start.live,
        last_rv: start.rv,
        deadline: Instant::now() + timeout,
        bookmarks: req.query.flag("allowWatchBookmarks"),
        next_bookmark: Instant::now() + BOOKMARK_EVERY,
        done: false,
    };
    let mut batch = BytesMut::new();
    for obj in start.initial.iter().filter(|o| w.filter.matches(o)) {
        batch.extend_from_slice(&w.line(EventType::Added, obj));
        if batch.len() >= FRAME_BYTES {
            w.pending.push_back(batch.split().freeze());
        }
    }
    for ev in &start.backlog {
        if let Some(kind) = w.filter.event_type(ev) {
            batch.extend_from_slice(&w.line(kind, &ev.object));
        }
        w.last_rv = w.last_rv.max(ev.rv);
    }
    if initial_events {
        batch.extend_from_slice(&w.bookmark(true));
    }
    if !batch.is_empty() {
        w.pending.push_back(batch.freeze());
    }
    let pending = std::mem::take(&mut w.pending);
    Ok(stream_response(pending, Some(w)))
}

impl Watch {
    fn line(&self, kind: EventType, obj: &Stored) -> Bytes {
        if self.table {
            let t = table::table(
                &self.req.rt,
                &self.req.path.version,
                &[&obj.value],
                self.req.query.get("includeObject"),
                obj.rv,
            );
            return event_line(kind.as_str(), &t);
        }
        let mut line = Vec::with_capacity(obj.json.len() + 32);
        line.extend_from_slice(br#"{"type":""#);
        line.extend_from_slice(kind.as_str().as_bytes());
        line.extend_from_slice(br#"","object":"#);
        line.extend_from_slice(&self.req.encode(obj));
        line.extend_from_slice(b"}\n");
        Bytes::from(line)
    }

    fn bookmark(&self, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.req.rt.kind, "apiVersion": self.req.api_version(), "metadata": metadata});
        event_line("BOOKMARK", &object)
    }

    /// The next chunk to send, or `None` when the watch is over.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.pending.pop_front() {
            return Some(chunk);
        }
        while !self.done {
            let bookmark_at = if self.bookmarks {
                self.next_bookmark
            } else {
                self.deadline
            };
            tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => return None,
                _ = tokio::time::sleep_until(bookmark_at), if self.bookmarks => {
                    self.next_bookmark = Instant::now() + BOOKMARK_EVERY;
                    return Some(self.bookmark(false));
                }
                received = self.live.recv() => match received {
                    Ok(ev) => {
                        let mut chunk = BytesMut::new();
                        self.append(&ev, &mut chunk);
                        self.drain_ready(&mut chunk);
                        if !chunk.is_empty() {
                            return Some(chunk.freeze());
                        }
                    }
                    // A watcher that fell this far behind starts over, as after a
                    // dropped connection.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => self.done = true,
                }
            }
        }
        None
    }
}

impl Watch {
    fn append(&mut self, ev: &Event, chunk: &mut BytesMut) {
        if ev.rv <= self.last_rv {
            return;
        }
        self.last_rv = ev.rv;
        if let Some(kind) = self.filter.event_type(ev) {
            chunk.extend_from_slice(&self.line(kind, &ev.object));
        }
    }

    /// Events already queued go out in the same chunk: under load, one write per burst
    /// instead of one per event.
    fn drain_ready(&mut self, chunk: &mut BytesMut) {
        while chunk.len() < FRAME_BYTES {
            match self.live.try_recv() {
                Ok(ev) => self.append(&ev, chunk),
                Err(broadcast::error::TryRecvError::Lagged(_))
                | Err(broadcast::error::TryRecvError::Closed) => {
                    self.done = true;
                    return;
                }
                Err(broadcast::error::TryRecvError::Empty) => return,
            }
        }
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": kind, "object": object})).expect("serializes");
    line.push(b'\n');
    Bytes::from(line)
}

fn stream_response(first: VecDeque<Bytes>, watch: Option<Watch>) -> Response<Body> {
    let initial = futures::stream::iter(first);
    let live = futures::stream::unfold(watch, |w| async move {
        let mut w = w?;
        w.next().await.map(|chunk| (chunk, Some(w)))
    });
    let frames = initial
        .chain(live)
        .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
    let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
