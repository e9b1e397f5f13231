//! WireGuard devices through wireguard-control: programming key, port, fwmark and peers,
//! and reading them back. wireguard-control blocks, so calls run on tokio's blocking pool.

use std::net::{Ipv4Addr, SocketAddr};

use ipnet::IpNet;
use kube_encrypt_api::crd::BackendKind;
use kube_encrypt_api::dataplane::PeerSpec;
use kube_encrypt_api::key::WireGuardKey;
use wireguard_control::{
    AllowedIp, Backend, Device, DeviceUpdate, InterfaceName, Key, PeerConfigBuilder, PeerInfo,
};

use super::error::io_text;
use super::PeerStats;

pub(crate) fn backend(kind: &BackendKind) -> Backend {
    match kind {
        BackendKind::Kernel => Backend::Kernel,
        BackendKind::Userspace => Backend::Userspace,
    }
}

pub(crate) fn device_key(key: &WireGuardKey) -> Key {
    Key(*key.as_bytes())
}

/// The public key as the API spells it; `None` for the all-zero key of an unset device.
pub(crate) fn api_key(key: &Key) -> Option<WireGuardKey> {
    (key.0 != [0; 32]).then(|| WireGuardKey::from_bytes(key.0))
}

/// The peer exactly as specified: endpoint, keepalive (0 = off) and the full allowed-IP
/// list, replacing whatever the device had for this key.
pub(crate) fn peer_config(peer: &PeerSpec) -> PeerConfigBuilder {
    let allowed: Vec<AllowedIp> = peer
        .allowed_ips
        .iter()
        .map(|net| AllowedIp {
            address: net.network(),
            cidr: net.prefix_len(),
        })
        .collect();
    PeerConfigBuilder::new(&device_key(&peer.public_key))
        .set_endpoint(peer.endpoint)
        .set_persistent_keepalive_interval(peer.persistent_keepalive.unwrap_or(0))
        .replace_allowed_ips()
        .add_allowed_ips(&allowed)
}

/// A device's peer in the data model; `node` comes from the driver's records. A peer
/// without an endpoint (never programmed by kube-encrypt) reports `0.0.0.0:0`.
pub(crate) fn peer_spec(info: &PeerInfo, node: String) -> Option<PeerSpec> {
    let config = &info.config;
    let mut allowed_ips: Vec<IpNet> = config
        .allowed_ips
        .iter()
        .filter_map(|ip| IpNet::new(ip.address, ip.cidr).ok())
        .collect();
    allowed_ips.sort();
    Some(PeerSpec {
        public_key: api_key(&config.public_key)?,
        node,
        endpoint: config
            .endpoint
            .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
        allowed_ips,
        persistent_keepalive: config.persistent_keepalive_interval.filter(|k| *k != 0),
    })
}

pub(crate) fn peer_stats(info: &PeerInfo) -> Option<PeerStats> {
    Some(PeerStats {
        public_key: api_key(&info.config.public_key)?,
        last_handshake: info.stats.last_handshake_time,
        rx_bytes: info.stats.rx_bytes,
        tx_bytes: info.stats.tx_bytes,
    })
}

/// Applies `update` to the device `name`.
pub(crate) async fn apply(
    name: &str,
    backend: Backend,
    update: DeviceUpdate,
) -> Result<(), String> {
    let interface = interface_name(name)?;
    blocking(move || update.apply(&interface, backend)).await
}

/// Reads the device `name`; its private key is wiped before the device is returned.
pub(crate) async fn read(name: &str, backend: Backend) -> Result<DeviceState, String> {
    let interface = interface_name(name)?;
    blocking(move || Device::get(&interface, backend))
        .await
        .map(DeviceState::without_private_key)
}

/// A device as read back from WireGuard, without its private key: the agent never needs it
/// back (it holds the key), so it is zeroed and dropped at once, and no later `Debug`, log
/// line or error built from the device can carry it.
pub(crate) struct DeviceState(Device);

impl DeviceState {
    pub(crate) fn without_private_key(mut device: Device) -> Self {
        wipe(&mut device.private_key);
        Self(device)
    }

    pub(crate) fn device(&self) -> &Device {
        &self.0
    }
}

/// Zeroes the key in `slot` and empties it.
fn wipe(slot: &mut Option<Key>) {
    if let Some(mut key) = slot.take() {
        zeroize::Zeroize::zeroize(&mut key.0);
    }
}

/// Prints what the agent uses of a device; there is no private key to print.
impl std::fmt::Debug for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let device = &self.0;
        f.debug_struct("DeviceState")
            .field("name", &device.name.as_str_lossy())
            .field(
                "public_key",
                &device.public_key.as_ref().map(Key::to_base64),
            )
            .field("listen_port", &device.listen_port)
            .field("fwmark", &device.fwmark)
            .field("peers", &device.peers.len())
            .finish()
    }
}

fn interface_name(name: &str) -> Result<InterfaceName, String> {
    name.parse()
        .map_err(|e| format!("{name:?} is not a usable interface name: {e}"))
}

async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| format!("WireGuard call panicked: {e}"))?
        .map_err(|e| io_text(&e))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use wireguard_control::{PeerConfig, PeerStats as DevicePeerStats};

    use super::*;

    fn key(byte: u8) -> WireGuardKey {
        WireGuardKey::from_bytes([byte; 32])
    }

    fn spec() -> PeerSpec {
        PeerSpec {
            public_key: key(7),
            node: "node-b".into(),
            endpoint: "192.0.2.2:51820".parse().unwrap(),
            allowed_ips: vec![
                "198.18.2.0/24".parse().unwrap(),
                "198.18.2.254/32".parse().unwrap(),
            ],
            persistent_keepalive: Some(25),
        }
    }

    /// What a device reports after `spec()` was programmed, allowed IPs in device order.
    fn device_peer(keepalive: Option<u16>) -> PeerInfo {
        let mut config: PeerConfig = peer_config(&spec()).into_peer_config();
        config.persistent_keepalive_interval = keepalive;
        config.allowed_ips.reverse();
        PeerInfo {
            config,
            stats: DevicePeerStats {
                last_handshake_time: Some(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                ),
                rx_bytes: 92,
                tx_bytes: 148,
            },
        }
    }

    #[test]
    fn a_programmed_peer_reads_back_as_its_spec() {
        assert_eq!(
            peer_spec(&device_peer(Some(25)), "node-b".into()),
            Some(spec())
        );
    }

    #[test]
    fn keepalive_zero_and_absent_both_mean_off() {
        let cases = [(Some(0), None), (None, None), (Some(25), Some(25))];
        for (device, expected) in cases {
            let got = peer_spec(&device_peer(device), "node-b".into()).unwrap();
            assert_eq!(got.persistent_keepalive, expected, "{device:?}");
        }
    }

    #[test]
    fn turning_keepalive_off_programs_zero() {
        let off = PeerSpec {
            persistent_keepalive: None,
            ..spec()
        };
        assert_eq!(
            peer_config(&off)
                .into_peer_config()
                .persistent_keepalive_interval,
            Some(0)
        );
    }

    #[test]
    fn stats_carry_handshake_and_counters() {
        let stats = peer_stats(&device_peer(None)).unwrap();
        assert_eq!(
            (stats.public_key, stats.rx_bytes, stats.tx_bytes),
            (key(7), 92, 148)
        );
        assert!(stats.last_handshake.is_some());
    }

    #[test]
    fn the_private_key_read_back_is_wiped() {
        let mut slot = Some(Key::generate_private());
        wipe(&mut slot);
        assert!(slot.is_none());
        let mut empty = None;
        wipe(&mut empty);
        assert!(empty.is_none());
    }

    #[test]
    fn zero_keys_are_not_api_keys() {
        assert_eq!(api_key(&Key::zero()), None);
        assert_eq!(api_key(&device_key(&key(1))), Some(key(1)));
    }
}
