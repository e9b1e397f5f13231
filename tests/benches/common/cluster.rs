//! The Kubernetes side of a bench: the API emulator in this process or the real
//! kube-apiserver, the CRDs, pools, the EncryptionConfig, Node objects, and waits on the
//! agents' NodeEncryption status.

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
use kube_encrypt_tests::kube_apiserver::KubeApiServer;
use kube_encrypt_tests::lab::cluster::{kubeconfig_text, CRDS};
use serde_json::json;

/// The API server a bench runs against: `--apiserver kube|emulator` (or `KEB_APISERVER`);
/// the emulator unless asked.
pub enum Server {
    Emulator(Emulator),
    Kube(KubeApiServer),
}

impl Server {
    /// `--apiserver` (after cargo's `--bench`), else `KEB_APISERVER`, else `kube` when the
    /// real control plane is built (as the lab chooses), else `emulator`.
    pub fn kind_from_args() -> anyhow::Result<&'static str> {
        let args: Vec<String> = std::env::args().collect();
        let flag = args
            .iter()
            .position(|a| a == "--apiserver")
            .and_then(|i| args.get(i + 1).cloned());
        match flag
            .or_else(|| std::env::var("KEB_APISERVER").ok())
            .as_deref()
        {
            None if kube_encrypt_tests::kube_apiserver::binaries().is_ok() => Ok("kube"),
            None | Some("emulator") => Ok("emulator"),
            Some("kube") => Ok("kube"),
            Some(other) => anyhow::bail!("--apiserver {other}: choose kube or emulator"),
        }
    }

    /// Starts `kind` serving on `ip` (inside the bench's hub namespace), state in `dir`.
    pub async fn start(kind: &str, ip: std::net::Ipv4Addr, dir: &Path) -> anyhow::Result<Self> {
        match kind {
            "kube" => Ok(Self::Kube(KubeApiServer::start_on(dir, ip).await?)),
            _ => Ok(Self::Emulator(
                Emulator::start(SocketAddr::new(ip.into(), 0), dir).await?,
            )),
        }
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        match self {
            Self::Emulator(e) => Ok(e.client.clone()),
            Self::Kube(k) => k.client().await,
        }
    }

    /// A kubeconfig for agents (admin on kube-apiserver).
    pub fn kubeconfig(&self) -> PathBuf {
        match self {
            Self::Emulator(e) => e.kubeconfig.clone(),
            Self::Kube(k) => k.kubeconfig(),
        }
    }

    /// Installs the CRDs and waits until they are served.
    pub async fn install_crds(&self) -> anyhow::Result<()> {
        let client = self.client().await?;
        apply_crds(&client).await?;
        wait_crds_served(&client).await
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        match self {
            Self::Emulator(e) => e.stop().await,
            Self::Kube(k) => {
                drop(k);
                Ok(())
            }
        }
    }
}

/// How long CRDs may take to be served after they are created.
const CRDS_SERVED: Duration = Duration::from_secs(30);

/// Lists each kube-encrypt resource until the API server serves it.
async fn wait_crds_served(client: &Client) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + CRDS_SERVED;
    let one = ListParams::default().limit(1);
    loop {
        let pools = Api::<IPPool>::all(client.clone()).list(&one).await;
        let configs = Api::<EncryptionConfig>::all(client.clone())
            .list(&one)
            .await;
        let states = Api::<NodeEncryption>::all(client.clone()).list(&one).await;
        if pools.is_ok() && configs.is_ok() && states.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the CRDs were not served within {CRDS_SERVED:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Server-side applies the CRDs of `manifests/crds`.
async fn apply_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
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
        apply_crds(&self.client).await
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

/// A Node as the kubelet, the cloud provider and the node controller leave it on a real
/// cluster (about 6 KB of JSON before the API server adds managedFields): labels and
/// annotations of a cloud node, a provider ID, three addresses, capacity and allocatable,
/// five conditions with heartbeats, twenty container images with digests and sizes, node
/// info; plus, when `published`, the key and interface address another agent published.
pub fn realistic_node_object(
    name: &str,
    internal_ip: &str,
    pod_cidr: &str,
    published: Option<(&WireGuardKey, &str)>,
) -> Node {
    let mut node = node_object(name, internal_ip, pod_cidr, published);
    let zone = format!("us-east-1{}", ["a", "b", "c"][name.len() % 3]);
    let value = json!({
        "metadata": {
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": "m6i.2xlarge",
                "beta.kubernetes.io/os": "linux",
                "failure-domain.beta.kubernetes.io/region": "us-east-1",
                "failure-domain.beta.kubernetes.io/zone": zone,
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "m6i.2xlarge",
                "topology.kubernetes.io/region": "us-east-1",
                "topology.kubernetes.io/zone": zone,
                "topology.ebs.csi.aws.com/zone": zone,
                "eks.amazonaws.com/nodegroup": "workers-2026-01",
                "eks.amazonaws.com/capacityType": "ON_DEMAND",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "csi.volume.kubernetes.io/nodeid": format!("{{\"ebs.csi.aws.com\":\"i-0{:016x}\"}}", fastrand::u64(..)),
                "alpha.kubernetes.io/provided-node-ip": internal_ip,
            },
        },
        "spec": {"providerID": format!("aws:///{zone}/i-0{:016x}", fastrand::u64(..))},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": internal_ip},
                {"type": "Hostname", "address": name},
                {"type": "InternalDNS", "address": format!("{name}.ec2.internal")},
            ],
            "capacity": resources("8", "32475336Ki", "104845292Ki"),
            "allocatable": resources("7910m", "31458504Ki", "95551679892"),
            "conditions": conditions("2026-01-01T00:00:00Z"),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": images(),
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": uuid(),
                "containerRuntimeVersion": "containerd://1.7.27",
                "kernelVersion": "6.1.141-155.222.amzn2023.x86_64",
                "kubeProxyVersion": "v1.35.4",
                "kubeletVersion": "v1.35.4",
                "machineID": format!("{:032x}", fastrand::u128(..)),
                "operatingSystem": "linux",
                "osImage": "Amazon Linux 2023.7.20260101",
                "systemUUID": uuid(),
            },
        },
    });
    let mut merged = serde_json::to_value(&node).expect("a Node serializes");
    merge_json(&mut merged, &value);
    node = serde_json::from_value(merged).expect("a valid Node");
    node
}

fn resources(cpu: &str, memory: &str, storage: &str) -> serde_json::Value {
    json!({
        "cpu": cpu, "memory": memory, "ephemeral-storage": storage, "pods": "58",
        "hugepages-1Gi": "0", "hugepages-2Mi": "0", "attachable-volumes-aws-ebs": "39",
    })
}

/// The five conditions a kubelet and a CNI report, all heartbeating at `now`.
pub fn conditions(now: &str) -> serde_json::Value {
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": "2026-01-01T00:00:00Z",
        })
    };
    json!([
        condition(
            "NetworkUnavailable",
            "False",
            "CalicoIsUp",
            "Calico is running on this node"
        ),
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

fn images() -> serde_json::Value {
    let repositories = [
        "registry.k8s.io/kube-proxy",
        "docker.io/calico/node",
        "docker.io/calico/cni",
        "registry.k8s.io/coredns/coredns",
        "quay.io/prometheus/node-exporter",
        "registry.k8s.io/pause",
        "docker.io/library/nginx",
        "quay.io/jetstack/cert-manager-controller",
        "registry.k8s.io/metrics-server/metrics-server",
        "docker.io/fluent/fluent-bit",
        "public.ecr.aws/eks/aws-ebs-csi-driver",
        "registry.k8s.io/sig-storage/csi-node-driver-registrar",
        "registry.k8s.io/sig-storage/livenessprobe",
        "docker.io/grafana/promtail",
        "ghcr.io/kube-encrypt/kube-encrypt-agent",
        "docker.io/library/redis",
        "docker.io/bitnami/postgresql",
        "quay.io/argoproj/argocd",
        "docker.io/istio/proxyv2",
        "registry.k8s.io/ingress-nginx/controller",
    ];
    let list: Vec<serde_json::Value> = repositories
        .iter()
        .map(|repository| {
            json!({
                "names": [
                    format!("{repository}@sha256:{:032x}{:032x}", fastrand::u128(..), fastrand::u128(..)),
                    format!("{repository}:v1.{}.{}", fastrand::u8(0..40), fastrand::u8(0..20)),
                ],
                "sizeBytes": fastrand::u64(10_000_000..400_000_000),
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

fn uuid() -> String {
    let v = fastrand::u128(..);
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// JSON merge of `patch` into `target` (objects merged, everything else replaced).
fn merge_json(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(target), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                merge_json(
                    target.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// The field manager the kubelet writes with.
pub const KUBELET: &str = "kubelet";

/// Creates a Node as its kubelet registers it (field manager `kubelet`, so the API server
/// records managedFields as it would on a real cluster).
pub async fn create_node_as_kubelet(client: &Client, node: &Node) -> anyhow::Result<()> {
    let params = PostParams {
        field_manager: Some(KUBELET.into()),
        ..Default::default()
    };
    Api::<Node>::all(client.clone())
        .create(&params, node)
        .await
        .with_context(|| {
            format!(
                "create Node {}",
                node.metadata.name.as_deref().unwrap_or("")
            )
        })?;
    Ok(())
}

/// A kubelet heartbeat: the node's conditions with a new `lastHeartbeatTime`, written to the
/// status subresource as a merge patch.
pub async fn heartbeat(client: &Client, name: &str, now: &str) -> anyhow::Result<()> {
    let params = PatchParams {
        field_manager: Some(KUBELET.into()),
        ..Default::default()
    };
    let patch = json!({"status": {"conditions": conditions(now)}});
    Api::<Node>::all(client.clone())
        .patch_status(name, &params, &Patch::Merge(&patch))
        .await
        .with_context(|| format!("heartbeat of Node {name}"))?;
    Ok(())
}

/// The size of a Node as the API server serves it (managedFields included), in bytes.
pub async fn served_size(client: &Client, name: &str) -> anyhow::Result<usize> {
    let node = Api::<Node>::all(client.clone()).get(name).await?;
    Ok(serde_json::to_vec(&node)?.len())
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
