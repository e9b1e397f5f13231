//! The two-node mesh the namespace tests build: one WireGuard interface per node, the
//! other node as peer, the kube-encrypt table with a device route (and its unreachable
//! fallback) and a throw route, the rule, the firewall table and one sysctl, exactly as the
//! planner would ask.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use kube_encrypt_api::crd::BackendKind;
use kube_encrypt_api::dataplane::{
    Dataplane, FamilyDataplane, FirewallSpec, InterfaceMasquerade, InterfaceSpec, NatOutgoing,
    PeerSpec, Route, RouteKind, RpfMark, RuleSpec, Sysctl,
};
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::{Family, PerFamily};
use wireguard_control::Key;

use super::lab::Side;
use super::node::{Op, Step};

pub const FWMARK: u32 = 0x100000;
pub const TABLE: u32 = 51820;
pub const PRIORITY: u32 = 99;

/// One family's mesh settings.
#[derive(Clone, Debug)]
pub struct Mesh {
    pub family: Family,
    pub backend: BackendKind,
    pub port: u16,
    pub interface: &'static str,
    pub mtu: u32,
    /// A sysctl the family's plan sets, and the value it sets.
    pub sysctl: (&'static str, &'static str),
}

impl Mesh {
    pub fn v4(backend: BackendKind) -> Self {
        Mesh {
            family: Family::V4,
            backend,
            port: 51820,
            interface: "ket4",
            mtu: 1420,
            sysctl: ("net.ipv4.conf.all.src_valid_mark", "1"),
        }
    }

    pub fn v6(backend: BackendKind) -> Self {
        Mesh {
            family: Family::V6,
            backend,
            port: 51821,
            interface: "ket6",
            mtu: 1400,
            sysctl: ("net.ipv6.conf.all.forwarding", "1"),
        }
    }

    pub fn is_v6(&self) -> bool {
        self.family == Family::V6
    }

    /// The side's pod network: 198.18.N.0/24 or 2001:db8:N::/64.
    pub fn pod_net(&self, side: &Side) -> IpNet {
        let len = if self.is_v6() { 64 } else { 24 };
        IpNet::new(side.pod(self.is_v6()), len).unwrap().trunc()
    }

    /// The WireGuard interface's address: .254/32 or ::fe/128 of the pod network.
    pub fn interface_address(&self, side: &Side) -> IpNet {
        match self.pod_net(side) {
            IpNet::V4(net) => {
                let ip = Ipv4Addr::from(u32::from(net.network()) + 254);
                Ipv4Net::new(ip, 32).unwrap().into()
            }
            IpNet::V6(net) => {
                let ip = Ipv6Addr::from(u128::from(net.network()) + 0xfe);
                Ipv6Net::new(ip, 128).unwrap().into()
            }
        }
    }

    /// Both pod networks together.
    pub fn cluster(&self) -> IpNet {
        if self.is_v6() {
            "2001:db8::/32".parse().unwrap()
        } else {
            "198.18.0.0/15".parse().unwrap()
        }
    }

    pub fn interface_spec(&self, me: &Side) -> InterfaceSpec {
        InterfaceSpec {
            name: self.interface.into(),
            backend: self.backend,
            listen_port: self.port,
            fwmark: FWMARK,
            mtu: self.mtu,
            address: Some(self.interface_address(me)),
        }
    }

    pub fn rule(&self) -> RuleSpec {
        RuleSpec {
            family: self.family,
            priority: PRIORITY,
            table: TABLE,
            fwmark: FWMARK,
            mask: FWMARK,
        }
    }

    pub fn route(&self, destination: IpNet, kind: RouteKind) -> Route {
        Route {
            table: TABLE,
            destination,
            kind,
        }
    }

    /// The dataplane of `me` with `peer` as the one peer.
    pub fn dataplane(
        &self,
        me: &Side,
        peer: &Side,
        peer_key: WireGuardKey,
        peer_node: &str,
    ) -> Dataplane {
        let mut routes = vec![
            self.route(self.pod_net(peer), RouteKind::Device(self.interface.into())),
            self.route(self.pod_net(peer), RouteKind::Unreachable),
            self.route(self.pod_net(me), RouteKind::Throw),
        ];
        routes.sort();
        let family = FamilyDataplane {
            interface: Some(self.interface_spec(me)),
            peers: vec![PeerSpec {
                public_key: peer_key,
                node: peer_node.into(),
                endpoint: SocketAddr::new(peer.underlay(self.is_v6()), self.port),
                allowed_ips: vec![self.pod_net(peer)],
                // Off, as the product's default: with it on, each peer starts a handshake the
                // moment it is configured, the first node's handshakes go unanswered until the
                // second is built, and the two nodes' handshakes cross. WireGuard can come out
                // of that with keypairs that do not match and recovers only after 15 s (a new
                // handshake once sent data met no reply): the IPv6 mesh test's 0/5 pings.
                persistent_keepalive: None,
            }],
            routes,
            rule: Some(self.rule()),
        };
        let mut families = PerFamily::<FamilyDataplane>::default();
        *families.get_mut(self.family) = family;
        Dataplane {
            families,
            firewall: Some(FirewallSpec {
                wireguard_ports: vec![self.port],
                masquerade: vec![InterfaceMasquerade {
                    interface: self.interface.into(),
                    own_sources: vec![self.pod_net(me)],
                }],
                nat_outgoing: vec![NatOutgoing {
                    family: self.family,
                    sources: vec![self.pod_net(me)],
                    cluster: vec![self.cluster()],
                    exempt_interfaces: vec![self.interface.into()],
                }],
                rpf: Some(RpfMark {
                    mark: FWMARK,
                    interfaces: vec!["eth0".into()],
                }),
                clamp_mss: vec![self.interface.into()],
            }),
            sysctls: vec![Sysctl {
                key: self.sysctl.0.into(),
                value: self.sysctl.1.into(),
            }],
        }
    }

    /// A step for `side` with its private key and this mesh's scope.
    pub fn step(&self, side: &Side, key: &Key, ops: Vec<Op>) -> Step {
        let mut private_keys = PerFamily::<Option<String>>::default();
        *private_keys.get_mut(self.family) = Some(key.to_base64());
        Step {
            state_dir: side.state_dir(),
            userspace: Some(super::WIREGUARD_GO.into()),
            private_keys,
            scope: vec![(self.family, self.interface.into(), TABLE, PRIORITY)],
            ops,
            report: Default::default(),
        }
    }

    /// The sysctl's value in `side`'s namespace.
    pub fn sysctl_value(&self, side: &Side) -> String {
        let path = format!("/proc/sys/{}", self.sysctl.0.replace('.', "/"));
        let output = side.exec(&["cat", &path]);
        assert!(output.status.success(), "cannot read {path}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

pub fn public(key: &Key) -> WireGuardKey {
    WireGuardKey::from_bytes(key.get_public().0)
}
