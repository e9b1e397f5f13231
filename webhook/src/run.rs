//! The webhook's life: connect, load the policy and the certificate, start the watch caches,
//! serve HTTPS, and run the status controller whenever this replica holds the Lease; on
//! SIGTERM stop accepting, drain, release the Lease and exit.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::admission::Admission;
use crate::args::{Config, SelfSigned, TlsSource};
use crate::caches::AdmissionCaches;
use crate::cluster::SharedCluster;
use crate::leader::{self, Elector, Timings};
use crate::metrics::Metrics;
use crate::policy::reload::{PolicyHandle, PolicyReloader};
use crate::server::{self, App};
use crate::status::controller::StatusController;
use crate::tls::files::CertReloader;
use crate::tls::self_signed::{self, shared_authority};
use crate::tls::{self, ca_bundle, CertStore};

/// How long shutdown waits for the election task to release the Lease.
const RELEASE_GRACE: Duration = Duration::from_secs(5);

/// Runs the webhook until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    run_until(config, shutdown_signal()).await
}

/// Runs the webhook until `shutdown` resolves; errors only when it cannot start.
pub async fn run_until(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let client = kube_client(config.kubeconfig.as_deref()).await?;
    let mut tasks = Tasks::default();
    let policy = load_policy(&config, &metrics, &mut tasks);
    let certificates = certificates(&config, &client, &metrics, &mut tasks).await?;
    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "cannot listen on --listen {}; choose a free address",
            config.listen
        )
    })?;

    let cluster = Arc::new(SharedCluster::default());
    let changes = Arc::new(Notify::new());
    let caches = AdmissionCaches::start(&client, cluster.clone(), changes.clone());
    let app = Arc::new(App {
        admission: Admission::new(cluster.clone(), policy, metrics.clone()),
        cluster,
        metrics: metrics.clone(),
        limits: config.limits,
    });
    let (stop, stopped) = watch::channel(false);
    let tls = Arc::new(tls::server_config(certificates));
    let serving = tokio::spawn(server::serve(
        listener,
        tls,
        app,
        stop_requested(stopped.clone()),
    ));
    tracing::info!(listen = %config.listen, identity = %config.identity, "kube-encrypt webhook serving");

    let controller = StatusController {
        client: client.clone(),
        configs: caches.configs.store.clone(),
        changes,
        metrics: metrics.clone(),
    };
    let elector = Elector::new(
        Api::namespaced(client, &config.service.namespace),
        &config.lease_name,
        &config.identity,
        Timings::default(),
    );
    let election = tokio::spawn(leader::run_elected(
        elector,
        stop_requested(stopped),
        move |leader| metrics.set_leader(leader),
        move || {
            let controller = controller.clone();
            async move { controller.run().await }
        },
    ));

    shutdown.await;
    tracing::info!("shutting down: draining connections and releasing the Lease");
    let _ = stop.send(true);
    let _ = serving.await;
    let _ = tokio::time::timeout(RELEASE_GRACE, election).await;
    drop(caches);
    drop(tasks);
    Ok(())
}

/// Background tasks, aborted when dropped.
#[derive(Default)]
struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task));
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The policy in force: the file's when given (reloaded on change), else the defaults.
fn load_policy(config: &Config, metrics: &Arc<Metrics>, tasks: &mut Tasks) -> Arc<PolicyHandle> {
    let policy = Arc::new(PolicyHandle::default());
    match &config.policy_file {
        Some(path) => {
            let mut reloader = PolicyReloader::new(path.clone(), policy.clone(), metrics.clone());
            reloader.check();
            tasks.spawn(reloader.run());
        }
        None => tracing::info!("no --policy-file: every rule at its default (deny; host-encryption-route-source warns)"),
    }
    policy
}

/// The certificate store, fed from files or the self-signed CA.
async fn certificates(
    config: &Config,
    client: &Client,
    metrics: &Arc<Metrics>,
    tasks: &mut Tasks,
) -> anyhow::Result<Arc<CertStore>> {
    match &config.tls {
        TlsSource::Files { cert, key } => {
            let reloader = CertReloader::start(cert.clone(), key.clone(), metrics.clone())
                .context("cannot serve --tls-cert-file / --tls-key-file")?;
            let store = reloader.store();
            tasks.spawn(reloader.run());
            Ok(store)
        }
        TlsSource::SelfSigned(self_signed) => {
            self_signed_certificates(config, self_signed, client, tasks).await
        }
    }
}

async fn self_signed_certificates(
    config: &Config,
    settings: &SelfSigned,
    client: &Client,
    tasks: &mut Tasks,
) -> anyhow::Result<Arc<CertStore>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.service.namespace);
    let authority = shared_authority(&secrets, &settings.ca_secret)
        .await
        .context(
            "--self-signed needs the CA Secret (RBAC: get and create secrets in the namespace)",
        )?;
    let authority = Arc::new(authority);
    let mut names = config.service.dns_names();
    names.extend(settings.extra_sans.iter().cloned());
    let issued = authority
        .issue(&names)
        .context("issuing the serving certificate")?;
    let store = Arc::new(CertStore::new(issued.key));
    tracing::info!(?names, "serving a certificate of the self-signed CA");
    tasks.spawn(self_signed::reissue_daily(
        authority.clone(),
        names,
        store.clone(),
    ));
    tasks.spawn(ca_bundle::keep(
        Api::all(client.clone()),
        settings.webhook_configuration.clone(),
        authority.ca_bundle(),
    ));
    Ok(store)
}

/// A Kubernetes client from `kubeconfig` (a file or a `:`-separated list), else in-cluster
/// configuration.
pub async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(paths) => {
            let kubeconfig = read_kubeconfigs(paths)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("the kubeconfig {} cannot be used", paths.display()))?
        }
        None => kube::Config::infer().await.context(
            "no --kubeconfig given and no in-cluster service account found; pass --kubeconfig or run the webhook as a pod",
        )?,
    };
    Client::try_from(config).context("building the Kubernetes client")
}

fn read_kubeconfigs(paths: &Path) -> anyhow::Result<Kubeconfig> {
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(paths.as_os_str()).filter(|p| !p.as_os_str().is_empty()) {
        let next = Kubeconfig::read_from(&path)
            .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
        merged = Some(match merged {
            Some(done) => done.merge(next)?,
            None => next,
        });
    }
    merged.with_context(|| format!("--kubeconfig {paths:?} names no file"))
}

async fn stop_requested(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow_and_update() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
