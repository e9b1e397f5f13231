//! Startup (load state, default namespaces, garbage collector), the accept loop, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::api::{Api, NAMESPACE_KEY};
use super::request::ObjectPath;
use super::store::Store;
use super::{gc, meta, router, strategy, ServerConfig};

/// Namespaces every cluster has.
const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

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

    /// Stops accepting, drops open connections (watches end) and flushes the state to disk.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("apiserver task panicked")?
    }

    /// Waits until the server stops (only on an accept error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("apiserver task panicked")?
    }
}

pub(super) async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    let dir = config.state_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .context("loading the apiserver state")?
        .with_context(|| {
            format!(
                "loading the apiserver state from {}",
                config.state_dir.display()
            )
        })?;
    let (deleted_tx, deleted_rx) = mpsc::unbounded_channel();
    let api = Arc::new(Api::new(store, deleted_tx));
    api.register_stored_crds();
    create_default_namespaces(&api);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the apiserver to {}", config.listen))?;
    let addr = listener.local_addr()?;
    let gc_task = tokio::spawn(gc::run(api.clone(), deleted_rx));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let result = accept_loop(listener, api.clone(), stop_rx).await;
        gc_task.abort();
        let store = api.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .context("flushing the apiserver state")?;
        result
    });
    tracing::info!(%addr, state_dir = %config.state_dir.display(), "apiserver listening");
    Ok(RunningServer { addr, stop, task })
}

fn create_default_namespaces(api: &Api) {
    let ns_type = api
        .registry
        .by_key(NAMESPACE_KEY)
        .expect("namespaces are built in");
    let path = ObjectPath {
        group: String::new(),
        version: "v1".into(),
        resource: "namespaces".into(),
        namespace: None,
        name: None,
        subresource: None,
        watch: false,
    };
    for name in DEFAULT_NAMESPACES {
        if api.store.get(NAMESPACE_KEY, "", name).is_some() {
            continue;
        }
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let prepared = strategy::prepare_create(&ns_type, &path, &mut ns, &meta::now_rfc3339());
        if prepared.is_ok() {
            let _ = api.store.create(NAMESPACE_KEY, ns);
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    api: Arc<Api>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let api = api.clone();
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, std::convert::Infallible>(router::handle(api, req).await) }
                    });
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.changed() => {}
                    }
                });
            }
        }
    }
}
