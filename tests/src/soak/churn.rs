//! The soak's writes to the cluster: encryption on (pools and the EncryptionConfig), fake
//! Nodes added and removed, EncryptionConfig changes the webhook admits, an extra IPPool
//! added and removed. Every write is one bounded API call; a refusal by the admission
//! webhook is an outcome, not an error.

use std::collections::VecDeque;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use kube_encrypt_api::crd::{EncryptionConfig, EncryptionConfigSpec, IPPool, IPPoolSpec};
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::node::{
    INTERFACE_IPV4_ANNOTATION, INTERFACE_IPV6_ANNOTATION, PUBLIC_KEY_ANNOTATION,
    PUBLIC_KEY_V6_ANNOTATION,
};
use serde_json::{json, Value};

/// At most this many fake Nodes exist at once (address slots 150…157).
pub const MAX_FAKE_NODES: u8 = 8;
/// Fake Node names start with this, so log lines naming them are known to come from churn.
pub const FAKE_NODE_PREFIX: &str = "soak-node-";
/// The pools of the lab's pod ranges (as the demo names them).
pub const POOLS: [(&str, &str); 2] = [
    ("lab-pods-v4", "198.18.0.0/16"),
    ("lab-pods-v6", "2001:db8:1::/48"),
];
/// The pool that comes and goes: a documentation range no lab address or Service uses.
pub const EXTRA_POOL: (&str, &str) = ("soak-extra", "198.19.128.0/17");
const FIELD_MANAGER: &str = "kube-encrypt-soak";

/// The EncryptionConfig changes, applied in turn (each is a merge patch of `spec`).
pub const CONFIG_STEPS: [(&str, &str); 6] = [
    ("persistentKeepalive 25", r#"{"persistentKeepalive": 25}"#),
    ("ipv4.mtu 1380", r#"{"ipv4": {"mtu": 1380}}"#),
    ("hostEncryption on", r#"{"hostEncryption": true}"#),
    ("persistentKeepalive 0", r#"{"persistentKeepalive": 0}"#),
    ("ipv4.mtu 0 (auto)", r#"{"ipv4": {"mtu": 0}}"#),
    ("hostEncryption off", r#"{"hostEncryption": false}"#),
];

/// What one write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    /// The API server (its admission webhook or a CRD rule) refused the write.
    Refused {
        what: String,
        why: String,
    },
}

/// A Node as another kube-encrypt node would leave it: both families' keys and interface
/// addresses published, pod CIDRs in the lab's pools. Nothing runs behind it.
#[derive(Clone, Debug)]
pub struct FakeNode {
    pub name: String,
    pub slot: u8,
}

impl FakeNode {
    pub fn new(serial: u32, slot: u8) -> Self {
        Self {
            name: format!("{FAKE_NODE_PREFIX}{serial}"),
            slot,
        }
    }

    /// The slot's number in its addresses: 150 … 157.
    fn octet(&self) -> u16 {
        150 + u16::from(self.slot)
    }

    pub fn object(&self) -> Node {
        let n = self.octet();
        let (v4, v6) = (format!("192.0.2.{n}"), format!("2001:db8::{n}"));
        let (cidr_v4, cidr_v6) = (format!("198.18.{n}.0/24"), format!("2001:db8:1:{n}::/64"));
        serde_json::from_value(json!({
            "metadata": {
                "name": self.name,
                "labels": {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux"},
                "annotations": {
                    PUBLIC_KEY_ANNOTATION: random_key().to_base64(),
                    PUBLIC_KEY_V6_ANNOTATION: random_key().to_base64(),
                    INTERFACE_IPV4_ANNOTATION: format!("198.18.{n}.254"),
                    INTERFACE_IPV6_ANNOTATION: format!("2001:db8:1:{n}::fffe"),
                },
            },
            "spec": {"podCIDR": cidr_v4, "podCIDRs": [cidr_v4, cidr_v6]},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": v4},
                    {"type": "InternalIP", "address": v6},
                    {"type": "Hostname", "address": self.name},
                ],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            },
        }))
        .expect("a valid Node")
    }
}

/// A random 32-byte WireGuard public key (a Curve25519 point with overwhelming probability).
fn random_key() -> WireGuardKey {
    let mut bytes = [0u8; 32];
    bytes.iter_mut().for_each(|b| *b = fastrand::u8(..));
    WireGuardKey::from_bytes(bytes)
}

/// The soak's view of what it changed, so every change can be undone or cycled.
pub struct Churn {
    client: Client,
    rng: fastrand::Rng,
    serial: u32,
    live: VecDeque<FakeNode>,
    config_step: usize,
    extra_pool: bool,
}

impl Churn {
    pub fn new(client: Client, seed: u64) -> Self {
        Self {
            client,
            rng: fastrand::Rng::with_seed(seed),
            serial: 0,
            live: VecDeque::new(),
            config_step: 0,
            extra_pool: false,
        }
    }

    pub fn live_fake_nodes(&self) -> usize {
        self.live.len()
    }

    /// Pools with NAT outgoing for both families, and an EncryptionConfig enabling both.
    pub async fn enable_encryption(&self) -> anyhow::Result<()> {
        for (name, cidr) in POOLS {
            create_pool(&self.client, name, cidr).await?;
        }
        let mut spec = EncryptionConfigSpec::default();
        spec.ipv4.enabled = true;
        spec.ipv6.enabled = true;
        Api::<EncryptionConfig>::all(self.client.clone())
            .create(&post(), &EncryptionConfig::new("default", spec))
            .await
            .map_err(|e| anyhow::anyhow!("create EncryptionConfig default: {e}"))?;
        Ok(())
    }

    /// Adds a fake Node, or removes the oldest (always adds when none, removes when full).
    pub async fn node_churn(&mut self) -> Result<Outcome, kube::Error> {
        let full = self.live.len() >= usize::from(MAX_FAKE_NODES);
        let add = self.live.is_empty() || (!full && self.rng.bool());
        if add {
            self.add_node().await
        } else {
            self.remove_oldest_node().await
        }
    }

    async fn add_node(&mut self) -> Result<Outcome, kube::Error> {
        let slot = (0..MAX_FAKE_NODES)
            .find(|s| self.live.iter().all(|n| n.slot != *s))
            .expect("a free slot while not full");
        self.serial += 1;
        let node = FakeNode::new(self.serial, slot);
        Api::<Node>::all(self.client.clone())
            .create(&post(), &node.object())
            .await?;
        let done = Outcome::Done(format!("added {}", node.name));
        self.live.push_back(node);
        Ok(done)
    }

    async fn remove_oldest_node(&mut self) -> Result<Outcome, kube::Error> {
        let Some(node) = self.live.front().cloned() else {
            return Ok(Outcome::Done("no fake Node to remove".into()));
        };
        delete_node(&self.client, &node.name).await?;
        self.live.pop_front();
        Ok(Outcome::Done(format!("removed {}", node.name)))
    }

    /// Removes every fake Node still there (the end of the run).
    pub async fn remove_all_nodes(&mut self) -> Result<usize, kube::Error> {
        let mut removed = 0;
        while let Some(node) = self.live.front().cloned() {
            delete_node(&self.client, &node.name).await?;
            self.live.pop_front();
            removed += 1;
        }
        Ok(removed)
    }

    /// Applies the next step of [`CONFIG_STEPS`].
    pub async fn config_change(&mut self) -> Result<Outcome, kube::Error> {
        let (what, patch) = CONFIG_STEPS[self.config_step % CONFIG_STEPS.len()];
        self.config_step += 1;
        let spec: Value = serde_json::from_str(patch).expect("the steps are JSON");
        let result = Api::<EncryptionConfig>::all(self.client.clone())
            .patch(
                "default",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await;
        judge(what, result)
    }

    /// Adds [`EXTRA_POOL`], or removes it when it is there.
    pub async fn pool_change(&mut self) -> Result<Outcome, kube::Error> {
        let (name, cidr) = EXTRA_POOL;
        if self.extra_pool {
            let what = format!("removed IPPool {name}");
            let result = Api::<IPPool>::all(self.client.clone())
                .delete(name, &DeleteParams::default())
                .await;
            let outcome = judge(&what, result)?;
            self.extra_pool = matches!(outcome, Outcome::Refused { .. });
            Ok(outcome)
        } else {
            let what = format!("added IPPool {name} {cidr}");
            let outcome = judge(&what, create_pool(&self.client, name, cidr).await)?;
            self.extra_pool = matches!(outcome, Outcome::Done(_));
            Ok(outcome)
        }
    }
}

fn post() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

async fn create_pool(client: &Client, name: &str, cidr: &str) -> Result<IPPool, kube::Error> {
    let spec = IPPoolSpec {
        cidr: cidr.into(),
        nat_outgoing: true,
        disabled: false,
    };
    Api::<IPPool>::all(client.clone())
        .create(&post(), &IPPool::new(name, spec))
        .await
}

async fn delete_node(client: &Client, name: &str) -> Result<(), kube::Error> {
    match Api::<Node>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// A write the API server refused on admission (webhook or CRD rule: 400, 403, 422) is an
/// outcome; any other error is an error.
fn judge<T>(what: &str, result: Result<T, kube::Error>) -> Result<Outcome, kube::Error> {
    match result {
        Ok(_) => Ok(Outcome::Done(what.to_owned())),
        Err(kube::Error::Api(e)) if [400, 403, 422].contains(&e.code) => Ok(Outcome::Refused {
            what: what.to_owned(),
            why: e.message,
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube_encrypt_api::net::Family;

    #[test]
    fn fake_nodes_use_documentation_ranges_inside_the_lab_pools() {
        let pools: Vec<ipnet::IpNet> = POOLS.iter().map(|(_, c)| c.parse().unwrap()).collect();
        let underlay_v4: ipnet::IpNet = "192.0.2.0/24".parse().unwrap();
        let underlay_v6: ipnet::IpNet = "2001:db8::/64".parse().unwrap();
        for slot in 0..MAX_FAKE_NODES {
            let node = FakeNode::new(u32::from(slot) + 1, slot).object();
            let spec = node.spec.unwrap();
            let cidrs = spec.pod_cidrs.unwrap();
            assert_eq!(cidrs.len(), Family::ALL.len());
            for cidr in &cidrs {
                let net: ipnet::IpNet = cidr.parse().unwrap();
                assert!(pools.iter().any(|p| p.contains(&net)), "{cidr}");
            }
            let addresses = node.status.unwrap().addresses.unwrap();
            for a in addresses.iter().filter(|a| a.type_ == "InternalIP") {
                let ip: std::net::IpAddr = a.address.parse().unwrap();
                assert!(
                    underlay_v4.contains(&ip) || underlay_v6.contains(&ip),
                    "{ip}"
                );
            }
            let annotations = node.metadata.annotations.unwrap();
            assert_ne!(
                annotations[PUBLIC_KEY_ANNOTATION],
                annotations[PUBLIC_KEY_V6_ANNOTATION]
            );
        }
    }

    #[test]
    fn fake_node_addresses_stay_clear_of_lab_nodes_and_ext() {
        let lab = largest_lab_last_octet();
        for slot in [0, MAX_FAKE_NODES - 1] {
            let octet = FakeNode::new(1, slot).octet();
            assert!(octet > lab && octet < 200, "{octet}");
        }
    }

    /// The last octet of the largest lab's last node (`192.0.2.1<i>`).
    fn largest_lab_last_octet() -> u16 {
        use crate::lab::topology::{LabSpec, Topology, MAX_NODES};
        let topo = Topology::new(LabSpec::new(MAX_NODES, true, 1500, &[]).unwrap());
        let last = topo.nodes.last().unwrap().v4.octets()[3];
        u16::from(last)
    }

    #[test]
    fn the_extra_pool_overlaps_nothing_the_lab_uses() {
        let extra: ipnet::IpNet = EXTRA_POOL.1.parse().unwrap();
        let used = [
            POOLS[0].1,
            POOLS[1].1,
            "192.0.2.0/24",
            crate::lab::control_plane::SERVICE_CIDR,
        ];
        for cidr in used {
            let net: ipnet::IpNet = cidr.parse().unwrap();
            assert!(
                !extra.contains(&net) && !net.contains(&extra),
                "{extra} overlaps {net}"
            );
        }
    }

    #[test]
    fn config_steps_are_spec_patches_that_undo_themselves() {
        let mut spec = serde_json::to_value(EncryptionConfigSpec::default()).unwrap();
        let start = spec.clone();
        for (what, patch) in CONFIG_STEPS {
            let patch: Value = serde_json::from_str(patch).unwrap();
            json_patch::merge(&mut spec, &patch);
            let typed: Result<EncryptionConfigSpec, _> = serde_json::from_value(spec.clone());
            assert!(typed.is_ok(), "{what}: {typed:?}");
        }
        assert_eq!(spec, start, "a whole cycle ends where it began");
    }
}
