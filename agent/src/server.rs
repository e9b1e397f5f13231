//! The agent's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the reconcile loop
//! is alive: a round completed recently) and `/readyz` (the caches synced and a reconcile
//! succeeded).
//!
//! The server is small on purpose and hardened like one facing the node's network: request
//! headers must arrive within [`HEADER_TIMEOUT`], a connection lives at most
//! [`CONNECTION_LIFETIME`] (idle keep-alive connections are closed after the header timeout),
//! and at most [`MAX_CONNECTIONS`] are served at once (further ones are closed on accept).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// A client has this long to send a request's headers, also between keep-alive requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection is served longer than this, however it behaves.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Connections served at the same time.
pub const MAX_CONNECTIONS: usize = 32;

/// Liveness and readiness of the agent, updated by the reconcile loop.
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    /// When the loop last finished a round (or the agent started).
    last_round: Mutex<Instant>,
    /// Without a finished round for this long, `/healthz` fails.
    stale_after: Duration,
}

impl Default for Health {
    /// Stale after three default resync intervals.
    fn default() -> Self {
        Self::new(Duration::from_secs(3 * 60))
    }
}

impl Health {
    /// `/healthz` fails when no round finished for `stale_after` (three resync intervals).
    pub fn new(stale_after: Duration) -> Self {
        Self {
            ready: AtomicBool::new(false),
            last_round: Mutex::new(Instant::now()),
            stale_after,
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The loop finished a round (successful or not) now.
    pub fn round_finished(&self) {
        self.round_finished_at(Instant::now());
    }

    pub fn round_finished_at(&self, at: Instant) {
        *self.last_round.lock().expect("health lock") = at;
    }

    /// `None` while rounds keep finishing; otherwise how long the loop has been silent.
    pub fn stalled_at(&self, now: Instant) -> Option<Duration> {
        let silent = now.saturating_duration_since(*self.last_round.lock().expect("health lock"));
        (silent > self.stale_after).then_some(silent)
    }
}

/// Binds the server's socket; fails at start when the address is taken or invalid.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves connections until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "metrics server: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics server: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        let (metrics, health) = (metrics.clone(), health.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = respond(&req, &metrics, &health);
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "metrics server: connection ended with an error")
                }
                Err(_) => {
                    tracing::debug!(%peer, "metrics server: connection closed after {CONNECTION_LIFETIME:?}")
                }
            }
            drop(slot);
        });
    }
}

/// The response to one request.
pub fn respond(
    req: &Request<Incoming>,
    metrics: &Metrics,
    health: &Health,
) -> Response<Full<Bytes>> {
    route(
        req.method(),
        req.uri().path(),
        metrics,
        health,
        Instant::now(),
    )
}

fn route(
    method: &Method,
    path: &str,
    metrics: &Metrics,
    health: &Health,
    now: Instant,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match path {
        "/metrics" => {
            let mut response = text(StatusCode::OK, &metrics.encode());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        "/healthz" => match health.stalled_at(now) {
            None => text(StatusCode::OK, "ok\n"),
            Some(silent) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "unhealthy: no reconcile round finished for {}s (limit {}s); the loop is stuck\n",
                    silent.as_secs(),
                    health.stale_after.as_secs()
                ),
            ),
        },
        "/readyz" if health.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the caches to sync and a reconcile to succeed\n",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz\n",
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests;
