//! Builders for the plugin's tests: NodeEncryption reports, configs, pools and whole
//! snapshots (addresses from documentation ranges, keys from `kube_encrypt_api::fixtures`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_encrypt_api::crd::{
    BackendKind, EncryptionConfig, EncryptionConfigSpec, EncryptionState, FamilyStatus, IPPool,
    IPPoolSpec, NodeEncryption, NodeEncryptionSpec, NodeEncryptionStatus, PeerCounts, PeerHealth,
    SkippedPeerStatus, SINGLETON_NAME,
};
use kube_encrypt_api::fixtures::{key, TestNode};
use kube_encrypt_api::net::Family;

use crate::cluster::Snapshot;

/// A node's NodeEncryption, family by family.
pub struct TestReport {
    name: String,
    status: NodeEncryptionStatus,
}

impl TestReport {
    pub fn new(node: &str) -> Self {
        Self {
            name: node.to_owned(),
            status: NodeEncryptionStatus {
                last_update: Some("2026-01-01T00:00:00Z".into()),
                ..Default::default()
            },
        }
    }

    fn slot(&mut self, family: Family) -> &mut Option<FamilyStatus> {
        match family {
            Family::V4 => &mut self.status.ipv4,
            Family::V6 => &mut self.status.ipv6,
        }
    }

    /// `family` Encrypted with `handshaken` of `configured` peers and fixed counters.
    pub fn encrypted(mut self, family: Family, configured: i64, handshaken: i64) -> Self {
        let (port, mtu, interface) = match family {
            Family::V4 => (51820, 1440, "wg-encrypt"),
            Family::V6 => (51821, 1420, "wg-encrypt-v6"),
        };
        let name = self.name.clone();
        *self.slot(family) = Some(FamilyStatus {
            state: EncryptionState::Encrypted,
            backend: Some(BackendKind::Userspace),
            interface: Some(interface.into()),
            public_key: Some(key(&name, family).to_base64()),
            listen_port: Some(port),
            mtu: Some(mtu),
            peers: PeerCounts::new(configured, handshaken),
            oldest_handshake_seconds: (handshaken > 0).then_some(65),
            rx_bytes: 3 << 20,
            tx_bytes: 1536,
            ..Default::default()
        });
        self
    }

    /// `family` in `state` with `message`.
    pub fn state(mut self, family: Family, state: EncryptionState, message: &str) -> Self {
        *self.slot(family) = Some(FamilyStatus {
            state,
            message: message.into(),
            ..Default::default()
        });
        self
    }

    pub fn mtu(mut self, family: Family, mtu: i64) -> Self {
        if let Some(s) = self.slot(family).as_mut() {
            s.mtu = Some(mtu);
        }
        self
    }

    pub fn worst_peer(mut self, family: Family, peer: &str, age: Option<i64>) -> Self {
        if let Some(s) = self.slot(family).as_mut() {
            s.worst_peers.push(PeerHealth {
                node: peer.into(),
                handshake_age_seconds: age,
            });
        }
        self
    }

    pub fn skipped(mut self, family: Family, peer: &str, reason: &str) -> Self {
        if let Some(s) = self.slot(family).as_mut() {
            s.skipped_peers.push(SkippedPeerStatus {
                node: peer.into(),
                reason: reason.into(),
            });
            s.skipped_peer_count += 1;
        }
        self
    }

    pub fn degraded(mut self, message: &str) -> Self {
        self.status.conditions.push(Condition {
            type_: "Degraded".into(),
            status: "True".into(),
            reason: "ConfigRefused".into(),
            message: message.into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Default::default(),
            ),
            observed_generation: None,
        });
        self
    }

    pub fn build(self) -> NodeEncryption {
        let mut object = NodeEncryption::new(&self.name, NodeEncryptionSpec {});
        object.status = Some(self.status);
        object
    }
}

pub fn config(spec: EncryptionConfigSpec) -> EncryptionConfig {
    EncryptionConfig::new(SINGLETON_NAME, spec)
}

pub fn pool(name: &str, spec: IPPoolSpec) -> IPPool {
    IPPool::new(name, spec)
}

/// Node `i` (1-based) with its documentation addresses and both keys published.
pub fn node(i: u8) -> TestNode {
    let name = format!("node-{i}");
    TestNode::new(&name)
        .internal_ip(&format!("192.0.2.1{i}"))
        .internal_ip(&format!("2001:db8::1{i}"))
        .pod_cidr(&format!("198.18.{i}.0/24"))
        .pod_cidr(&format!("2001:db8:1:{i}::/64"))
        .test_key(Family::V4)
        .test_key(Family::V6)
}

/// A dual-stack cluster of three nodes: node-1 and node-2 encrypted on both families, node-3
/// without WireGuard (Unsupported, no keys), one IPv6 peer never handshaken.
pub fn dual_stack_snapshot() -> Snapshot {
    let spec = EncryptionConfigSpec::test().with_ipv6();
    let unsupported = "this node has no WireGuard (no kernel module, no userspace implementation)";
    Snapshot {
        config: Some(config(spec)),
        pools: vec![
            pool("pool-v4", IPPoolSpec::test("198.18.0.0/16")),
            pool("pool-v6", IPPoolSpec::test("2001:db8:1::/48")),
        ],
        nodes: vec![
            node(1).build(),
            node(2).build(),
            TestNode::new("node-3")
                .internal_ip("192.0.2.13")
                .pod_cidr("198.18.3.0/24")
                .build(),
        ],
        encryptions: vec![
            TestReport::new("node-1")
                .encrypted(Family::V4, 1, 1)
                .encrypted(Family::V6, 1, 0)
                .worst_peer(Family::V6, "node-2", None)
                .skipped(Family::V4, "node-3", "publishes no IPv4 key")
                .build(),
            TestReport::new("node-2")
                .encrypted(Family::V4, 1, 1)
                .encrypted(Family::V6, 1, 1)
                .build(),
            TestReport::new("node-3")
                .state(Family::V4, EncryptionState::Unsupported, unsupported)
                .state(Family::V6, EncryptionState::Unsupported, unsupported)
                .build(),
        ],
    }
}

/// `count` nodes, all encrypted on IPv4 with every peer handshaken.
pub fn healthy_snapshot(count: u8) -> Snapshot {
    let peers = i64::from(count) - 1;
    Snapshot {
        config: Some(config(EncryptionConfigSpec::test())),
        pools: vec![pool("pool-v4", IPPoolSpec::test("198.18.0.0/16"))],
        nodes: (1..=count).map(|i| node(i).build()).collect(),
        encryptions: (1..=count)
            .map(|i| {
                TestReport::new(&format!("node-{i}"))
                    .encrypted(Family::V4, peers, peers)
                    .build()
            })
            .collect(),
    }
}
