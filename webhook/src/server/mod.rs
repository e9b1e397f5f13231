//! The HTTPS server: TLS (rustls) and HTTP/1.1 (hyper) with keep-alive, bounded in every way
//! a client could hold it: at most `max_connections` at once (the rest wait in the listen
//! backlog), a TLS handshake timeout, a header-read timeout that is also the idle timeout of
//! kept-alive connections, a body size limit and a body timeout (see [`routes`]). Shutdown
//! stops accepting, lets requests in flight finish (up to `shutdown_grace`) and closes.

pub mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::args::Limits;

pub use routes::App;

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = app.limits;
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopped) = watch::channel(false);
    futures::pin_mut!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &permits) => accepted,
        };
        let Some((tcp, permit)) = accepted else {
            continue;
        };
        let connection = Connection {
            acceptor: acceptor.clone(),
            app: app.clone(),
            stopped: stopped.clone(),
            _permit: permit,
        };
        tokio::spawn(connection.serve(tcp));
    }
    drop(listener);
    let _ = stop.send(true);
    drain(&permits, limits).await;
}

/// The next connection, once a permit is free; `None` after a failed accept (logged, after a
/// short pause so a full file table does not spin).
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    match listener.accept().await {
        Ok((tcp, _)) => {
            let _ = tcp.set_nodelay(true);
            Some((tcp, permit))
        }
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            None
        }
    }
}

/// Waits until every connection is closed, or the grace period ends.
async fn drain(permits: &Semaphore, limits: Limits) {
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all)).await;
    match drained {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "connections still open after the grace period; closing them")
        }
    }
}

/// One client connection and what it needs.
struct Connection {
    acceptor: TlsAcceptor,
    app: Arc<App>,
    stopped: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(mut self, tcp: TcpStream) {
        let limits = self.app.limits;
        let handshake = tokio::time::timeout(limits.handshake_timeout, self.acceptor.accept(tcp));
        let tls = match handshake.await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        };
        let app = self.app.clone();
        let service = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(tls), service);
        futures::pin_mut!(conn);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            () = stop_requested(&mut self.stopped) => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

/// Resolves once shutdown is requested (or the server is gone).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    while !*stopped.borrow_and_update() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}
