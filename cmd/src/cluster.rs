//! The connection to the cluster and every read the commands share. Errors say what the user
//! can do: an unreachable server names the server and the flags, missing CRDs name `install`.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_encrypt_api::crd::{EncryptionConfig, IPPool, NodeEncryption, SINGLETON_NAME};
use kube_encrypt_api::rules::NamedPool;

use crate::cli::GlobalArgs;

/// How long connecting to the API server may take before the command gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client plus what error messages need to name: the server and the install namespace.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    server: String,
    namespace: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// Everything `status` and `check` look at, read in one go.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub config: Option<EncryptionConfig>,
    pub pools: Vec<IPPool>,
    pub nodes: Vec<Node>,
    pub encryptions: Vec<NodeEncryption>,
}

impl Snapshot {
    /// The pools as the rules see them.
    pub fn named_pools(&self) -> Vec<NamedPool> {
        self.pools.iter().map(NamedPool::from).collect()
    }
}

/// Which nodes a snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeScope<'a> {
    All,
    One(&'a str),
}

impl Cluster {
    /// A client from `--kubeconfig` (else `$KUBECONFIG` or `~/.kube/config`, else the in-cluster
    /// service account) and `--context`. Nothing is sent yet.
    pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Self> {
        let mut config = client_config(global).await?;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config)
            .with_context(|| format!("cannot build a client for the API server {server}"))?;
        Ok(Self {
            client,
            server,
            namespace: global.namespace.clone(),
        })
    }

    /// A cluster on an existing client (tests, benchmarks).
    pub fn from_client(client: Client, server: &str, namespace: &str) -> Self {
        Self {
            client,
            server: server.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The install namespace (`-n`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Turns a client error into one a user can act on; `doing` says what was attempted
    /// ("listing IPPools").
    pub fn explain(&self, e: kube::Error, doing: &str) -> anyhow::Error {
        match &e {
            // By code, not reason: kube-apiserver answers an API group it does not serve with a
            // plain-text "404 page not found", which carries no reason.
            kube::Error::Api(status) if status.code == 404 && is_kube_encrypt(doing) => anyhow!(
                "{doing}: the kube-encrypt CRDs are not installed on {}; run `kubectl encrypt install` first",
                self.server
            ),
            kube::Error::Api(status) if status.code == 401 || status.code == 403 => anyhow!(
                "{doing}: the API server {} refused ({} {}): {}; check the credentials of the kubeconfig context",
                self.server, status.code, status.reason, status.message
            ),
            kube::Error::Api(status) => anyhow!(
                "{doing}: {} ({} {})",
                status.message,
                status.code,
                status.reason
            ),
            kube::Error::HyperError(_) | kube::Error::Service(_) => anyhow!(
                "cannot reach the Kubernetes API server {} ({doing}): {}; check --kubeconfig and --context",
                self.server,
                root_cause(&e)
            ),
            _ => anyhow!("{doing}: {}", root_cause(&e)),
        }
    }

    pub fn configs(&self) -> Api<EncryptionConfig> {
        Api::all(self.client.clone())
    }

    pub fn pools_api(&self) -> Api<IPPool> {
        Api::all(self.client.clone())
    }

    pub fn encryptions_api(&self) -> Api<NodeEncryption> {
        Api::all(self.client.clone())
    }

    /// The EncryptionConfig `default`, if it exists.
    pub async fn config(&self) -> anyhow::Result<Option<EncryptionConfig>> {
        match self.configs().get_opt(SINGLETON_NAME).await {
            Ok(config) => Ok(config),
            Err(e) => Err(self.explain(e, "reading the kube-encrypt EncryptionConfig")),
        }
    }

    pub async fn pools(&self) -> anyhow::Result<Vec<IPPool>> {
        let list = self.pools_api().list(&ListParams::default()).await;
        list.map(|l| l.items)
            .map_err(|e| self.explain(e, "listing kube-encrypt IPPools"))
    }

    pub async fn nodes(&self, scope: NodeScope<'_>) -> anyhow::Result<Vec<Node>> {
        let api: Api<Node> = Api::all(self.client.clone());
        match scope {
            NodeScope::All => api
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .map_err(|e| self.explain(e, "listing nodes")),
            NodeScope::One(name) => match api.get_opt(name).await {
                Ok(Some(node)) => Ok(vec![node]),
                Ok(None) => Err(anyhow!(
                    "node {name:?} not found on {}; `kubectl get nodes` lists them",
                    self.server
                )),
                Err(e) => Err(self.explain(e, &format!("reading node {name}"))),
            },
        }
    }

    pub async fn encryptions(&self, scope: NodeScope<'_>) -> anyhow::Result<Vec<NodeEncryption>> {
        let api = self.encryptions_api();
        let doing = "listing kube-encrypt NodeEncryptions";
        match scope {
            NodeScope::All => api
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .map_err(|e| self.explain(e, doing)),
            NodeScope::One(name) => api
                .get_opt(name)
                .await
                .map(|o| o.into_iter().collect())
                .map_err(|e| self.explain(e, doing)),
        }
    }

    /// Config, pools, nodes and NodeEncryptions, read concurrently.
    pub async fn snapshot(&self, scope: NodeScope<'_>) -> anyhow::Result<Snapshot> {
        let (config, pools, nodes, encryptions) = tokio::try_join!(
            self.config(),
            self.pools(),
            self.nodes(scope),
            self.encryptions(scope)
        )?;
        Ok(Snapshot {
            config,
            pools,
            nodes,
            encryptions,
        })
    }
}

fn is_kube_encrypt(doing: &str) -> bool {
    doing.contains("kube-encrypt")
}

/// The innermost cause of an error: the part that says what really happened.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

async fn client_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..Default::default()
    };
    if let Some(path) = &global.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
            anyhow!(
                "cannot read the kubeconfig {}: {}",
                path.display(),
                root_cause(&e)
            )
        })?;
        return Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| {
                anyhow!(
                    "the kubeconfig {} cannot be used: {}",
                    path.display(),
                    root_cause(&e)
                )
            });
    }
    match Config::from_kubeconfig(&options).await {
        Ok(config) => Ok(config),
        Err(e) if global.context.is_none() => Config::incluster().map_err(|_| {
            anyhow!(
                "no usable kubeconfig ({}); pass --kubeconfig, set KUBECONFIG, or run in a pod",
                root_cause(&e)
            )
        }),
        Err(e) => Err(anyhow!("the kubeconfig cannot be used: {}", root_cause(&e))),
    }
}
