//! The Kubernetes side of a bench: the API emulator in this process, the CRDs, pools, the
//! EncryptionConfig, Node objects, and waits on the agents' NodeEncryption status.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use kube_encrypt_api::crd::{
    EncryptionConfig, EncryptionConfigSpec, EncryptionState, FamilyStatus, IPPool, IPPoolSpec,
    NodeEncryption,
};
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::node::{INTERFACE_IPV4_ANNOTATION, PUBLIC_KEY_ANNOTATION};
use kube_encrypt_tests::apiserver::{start, RunningServer, ServerConfig};
use kube_encrypt_tests::lab::cluster::{kubeconfig_text, CRDS};
use serde_json::json;

/// The emulator running in this process, and a client for it.
pub struct Emulator {
    pub server: RunningServer,
    pub client: Client,
    /// A kubeconfig for agents, pointing at the emulator's address.
    pub kubeconfig: PathBuf,
}

impl Emulator {
    /// Starts the emulator on `listen` with its state in `dir`, writes a kubeconfig there.
    pub async fn start(listen: SocketAddr, dir: &Path) -> anyhow::Result<Self> {
        let server = start(ServerConfig {
            listen,
            state_dir: dir.join("apiserver"),
        })
        .await?;
        let url = format!("http://{}", server.addr());
        let client = Client::try_from(Config::new(url.parse()?))?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(&url))?;
        Ok(Self {
            server,
            client,
            kubeconfig,
        })
    }

    /// Installs the CRDs of `manifests/crds`.
    pub async fn install_crds(&self) -> anyhow::Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for (file, text) in CRDS {
            let crd: CustomResourceDefinition =
                serde_yaml::from_str(text).with_context(|| format!("parse {file}"))?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(
                &name,
                &PatchParams::apply("kube-encrypt-bench").force(),
                &Patch::Apply(&crd),
            )
            .await
            .with_context(|| format!("install CRD {name}"))?;
        }
        Ok(())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.shutdown().await
    }
}

/// An IPPool with NAT outgoing (the rule `ipv4-nat-outgoing` asks for one).
pub async fn create_pool(client: &Client, name: &str, cidr: &str) -> anyhow::Result<()> {
    let pool = IPPool::new(
        name,
        IPPoolSpec {
            cidr: cidr.into(),
            nat_outgoing: true,
            disabled: false,
        },
    );
    Api::<IPPool>::all(client.clone())
        .create(&PostParams::default(), &pool)
        .await
        .with_context(|| format!("create IPPool {name}"))?;
    Ok(())
}

/// The EncryptionConfig `default` with IPv4 on and everything else at its default.
pub fn ipv4_config() -> EncryptionConfig {
    let mut spec = EncryptionConfigSpec::default();
    spec.ipv4.enabled = true;
    EncryptionConfig::new("default", spec)
}

pub async fn create_config(client: &Client, config: &EncryptionConfig) -> anyhow::Result<()> {
    Api::<EncryptionConfig>::all(client.clone())
        .create(&PostParams::default(), config)
        .await
        .context("create EncryptionConfig default")?;
    Ok(())
}

pub async fn delete_config(client: &Client) -> anyhow::Result<()> {
    Api::<EncryptionConfig>::all(client.clone())
        .delete("default", &DeleteParams::default())
        .await
        .context("delete EncryptionConfig default")?;
    Ok(())
}

/// A Node as a kubelet registers it; `published` adds a key and interface address as
/// another node's agent would have published them.
pub fn node_object(
    name: &str,
    internal_ip: &str,
    pod_cidr: &str,
    published: Option<(&WireGuardKey, &str)>,
) -> Node {
    let annotations = match published {
        Some((key, interface)) => json!({
            PUBLIC_KEY_ANNOTATION: key.to_base64(),
            INTERFACE_IPV4_ANNOTATION: interface,
        }),
        None => json!({}),
    };
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            "annotations": annotations,
        },
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": internal_ip},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }))
    .expect("a valid Node")
}

pub async fn create_node(client: &Client, node: &Node) -> anyhow::Result<()> {
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), node)
        .await
        .with_context(|| {
            format!(
                "create Node {}",
                node.metadata.name.as_deref().unwrap_or("")
            )
        })?;
    Ok(())
}

/// A random 32-byte WireGuard public key (a Curve25519 point with overwhelming probability).
pub fn random_key() -> WireGuardKey {
    let mut bytes = [0u8; 32];
    bytes.iter_mut().for_each(|b| *b = fastrand::u8(..));
    WireGuardKey::from_bytes(bytes)
}

/// The IPv4 status of every NodeEncryption, by node name.
pub async fn ipv4_statuses(client: &Client) -> anyhow::Result<Vec<(String, FamilyStatus)>> {
    let list = Api::<NodeEncryption>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("list NodeEncryptions")?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|ne| {
            let name = ne.metadata.name.clone()?;
            Some((name, ne.status?.ipv4?))
        })
        .collect())
}

/// Whether `node` reports IPv4 Encrypted with `peers` configured peers.
pub fn encrypted_with(statuses: &[(String, FamilyStatus)], node: &str, peers: i64) -> bool {
    statuses.iter().any(|(name, s)| {
        name == node && s.state == EncryptionState::Encrypted && s.peers.configured == peers
    })
}

/// Waits until `node` reports IPv4 Encrypted with `peers` configured peers.
pub async fn wait_encrypted(
    client: &Client,
    node: &str,
    peers: i64,
    limit: Duration,
) -> anyhow::Result<()> {
    super::poll(
        &format!("NodeEncryption {node} Encrypted with {peers} peers"),
        limit,
        Duration::from_millis(100),
        async || Ok(encrypted_with(&ipv4_statuses(client).await?, node, peers).then_some(())),
    )
    .await
}

/// The node's published IPv4 key, once its agent published it.
pub async fn published_key(client: &Client, node: &str) -> anyhow::Result<Option<String>> {
    let node = Api::<Node>::all(client.clone()).get(node).await?;
    Ok(node
        .metadata
        .annotations
        .and_then(|a| a.get(PUBLIC_KEY_ANNOTATION).cloned()))
}
