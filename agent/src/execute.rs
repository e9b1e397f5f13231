//! From the planned dataplane and the observed one to applied changes: the diff (plus a
//! rebuild of devices holding a key that is not the node's), then the changes in order,
//! logged with its `Display` and its failures collected per family.

use std::borrow::Cow;

use kube_encrypt_api::dataplane::{Dataplane, FamilyDataplane, RouteKind};
use kube_encrypt_api::diff::{diff, Change};
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::{Family, PerFamily};

use crate::dataplane::{Driver, DriverError, Observed, PrivateKeys};
use crate::status::FamilyErrors;

/// The changes turning `observed` into `desired`. A device whose key is not the node's own
/// (state directory lost, key replaced) is deleted first and created anew, so peers never
/// see a key other than the published one.
pub fn changes_towards(
    desired: &Dataplane,
    observed: &Observed,
    own_keys: &PerFamily<Option<WireGuardKey>>,
) -> Vec<Change> {
    // The observed dataplane is copied only when a device is to be rebuilt (thousands of
    // peers and routes otherwise copied every round).
    let mut current = Cow::Borrowed(&observed.dataplane);
    let mut changes = Vec::new();
    for family in Family::ALL {
        let device_key = observed.device_keys.get(family).as_ref();
        let Some(interface) = current.family(family).interface.as_ref() else {
            continue;
        };
        if device_key.is_some() && device_key != own_keys.get(family).as_ref() {
            let name = interface.name.clone();
            forget_interface(current.to_mut().families.get_mut(family), &name);
            changes.push(Change::DeleteInterface { family, name });
        }
    }
    changes.extend(diff(desired, &current));
    changes
}

/// What deleting an interface takes with it: its peers and the routes through it.
fn forget_interface(family: &mut FamilyDataplane, name: &str) {
    family.interface = None;
    family.peers.clear();
    family
        .routes
        .retain(|route| !matches!(&route.kind, RouteKind::Device(dev) if dev == name));
}

/// The families a change belongs to (firewall and sysctls serve both).
pub fn families_of(change: &Change) -> Vec<Family> {
    match change {
        Change::CreateInterface { family, .. }
        | Change::UpdateInterface { family, .. }
        | Change::DeleteInterface { family, .. }
        | Change::AddPeer { family, .. }
        | Change::UpdatePeer { family, .. }
        | Change::RemovePeer { family, .. }
        | Change::AddRoute { family, .. }
        | Change::DeleteRoute { family, .. } => vec![*family],
        Change::AddRule(rule) | Change::DeleteRule(rule) => vec![rule.family],
        Change::ReplaceFirewall(_)
        | Change::DeleteFirewall
        | Change::SetSysctl(_)
        | Change::RestoreSysctl { .. } => Family::ALL.to_vec(),
    }
}

/// The outcome of applying a list of changes.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub applied: usize,
    /// Changes that failed or were not tried because what they depend on failed.
    pub failed: usize,
    /// Failure messages per family, in order.
    pub errors: FamilyErrors,
}

/// Applies the changes in order, level by level (interfaces, then peers, then routes, then
/// rules, then the rest; the driver may batch each level). A failed change is logged and
/// recorded and independent changes are still tried; the next round retries. Changes that
/// depend on a failed one are not tried at all, so a failure never sends traffic into a
/// tunnel that is not there: without its interface a family gets no peers, device routes or
/// rule, and a peer that could not be programmed gets no device route (its unreachable
/// fallback still drops its traffic rather than let it out in plaintext).
pub async fn apply_all(
    driver: &impl Driver,
    changes: &[Change],
    keys: &PrivateKeys,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    let mut failures = Failures::default();
    for run in changes.chunk_by(|a, b| level(a) == level(b)) {
        let mut runnable = Vec::with_capacity(run.len());
        for change in run {
            match failures.blocking(change) {
                Some(reason) => {
                    let error = DriverError::new("not applied", reason);
                    failures.note(change);
                    record(&mut report, change, Err(error));
                }
                None => runnable.push(change.clone()),
            }
        }
        if runnable.is_empty() {
            continue;
        }
        let results = driver.apply_batch(&runnable, keys).await;
        debug_assert_eq!(results.len(), runnable.len(), "one result per change");
        for (change, result) in runnable.iter().zip(results) {
            if result.is_err() {
                failures.note(change);
            }
            record(&mut report, change, result);
        }
    }
    report
}

/// Where a change sits in the dependency order; the diff emits changes in this order.
fn level(change: &Change) -> u8 {
    match change {
        Change::AddPeer { .. } | Change::UpdatePeer { .. } => 1,
        Change::AddRoute { .. } => 2,
        Change::AddRule(_) => 3,
        Change::SetSysctl(_) | Change::RestoreSysctl { .. } | Change::DeleteFirewall => 4,
        _ => 0,
    }
}

/// What failed so far in one apply: interfaces not created, destinations whose peer was not
/// programmed.
#[derive(Debug, Default)]
struct Failures {
    interfaces: Vec<(Family, String)>,
    unprogrammed: Vec<(Family, ipnet::IpNet)>,
}

impl Failures {
    /// Remembers what a failed (or skipped) change leaves missing.
    fn note(&mut self, change: &Change) {
        match change {
            Change::CreateInterface { family, spec } => {
                self.interfaces.push((*family, spec.name.clone()));
            }
            Change::AddPeer { family, peer, .. }
            | Change::UpdatePeer {
                family, to: peer, ..
            } => {
                let nets = peer.allowed_ips.iter().map(|net| (*family, *net));
                self.unprogrammed.extend(nets);
            }
            _ => {}
        }
    }

    /// Why `change` must not be applied, if a change it depends on failed.
    fn blocking(&self, change: &Change) -> Option<String> {
        let missing = |family: Family, name: &str| {
            self.interfaces
                .iter()
                .any(|(f, n)| *f == family && n == name)
        };
        let not_created = |name: &str| format!("interface {name} could not be created");
        match change {
            Change::AddPeer {
                family, interface, ..
            }
            | Change::UpdatePeer {
                family, interface, ..
            } if missing(*family, interface) => Some(not_created(interface)),
            Change::AddRoute { family, route } => match &route.kind {
                RouteKind::Device(name) if missing(*family, name) => Some(not_created(name)),
                RouteKind::Device(_)
                    if self.unprogrammed.contains(&(*family, route.destination)) =>
                {
                    Some(format!(
                        "the peer for {} could not be programmed",
                        route.destination
                    ))
                }
                _ => None,
            },
            Change::AddRule(rule) => self
                .interfaces
                .iter()
                .find(|(f, _)| *f == rule.family)
                .map(|(_, name)| not_created(name)),
            _ => None,
        }
    }
}

fn record(report: &mut ApplyReport, change: &Change, result: Result<(), DriverError>) {
    match result {
        Ok(()) => {
            tracing::info!("{change}");
            report.applied += 1;
        }
        Err(e) => {
            tracing::error!(error = %e, "failed: {change}");
            report.failed += 1;
            for family in families_of(change) {
                report.errors.get_mut(family).push(format!("{change}: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kube_encrypt_api::crd::BackendKind;
    use kube_encrypt_api::dataplane::{InterfaceSpec, PeerSpec, Route, RuleSpec};

    use super::*;
    use crate::fake::FakeDriver;

    fn interface() -> InterfaceSpec {
        InterfaceSpec {
            name: "wg-encrypt".into(),
            backend: BackendKind::Userspace,
            listen_port: 51820,
            fwmark: 0x10_0000,
            mtu: 1420,
            address: None,
        }
    }

    fn peer(i: u8) -> PeerSpec {
        PeerSpec {
            public_key: WireGuardKey::from_bytes([i; 32]),
            node: format!("node-{i}"),
            endpoint: format!("192.0.2.{i}:51820").parse().unwrap(),
            allowed_ips: vec![format!("198.18.{i}.0/24").parse().unwrap()],
            persistent_keepalive: None,
        }
    }

    fn route(i: u8, kind: RouteKind) -> Change {
        Change::AddRoute {
            family: Family::V4,
            route: Route {
                table: 51820,
                destination: format!("198.18.{i}.0/24").parse().unwrap(),
                kind,
            },
        }
    }

    /// What a plan creates on an empty host: interface, peers 2 and 3, their routes, the
    /// throw route of the own pods (1), the rule.
    fn build() -> Vec<Change> {
        let device = || RouteKind::Device("wg-encrypt".into());
        let add_peer = |i| Change::AddPeer {
            family: Family::V4,
            interface: "wg-encrypt".into(),
            peer: peer(i),
        };
        vec![
            Change::CreateInterface {
                family: Family::V4,
                spec: interface(),
            },
            add_peer(2),
            add_peer(3),
            route(1, RouteKind::Throw),
            route(2, device()),
            route(2, RouteKind::Unreachable),
            route(3, device()),
            route(3, RouteKind::Unreachable),
            Change::AddRule(RuleSpec {
                family: Family::V4,
                priority: 99,
                table: 51820,
                fwmark: 0x10_0000,
                mask: 0x10_0000,
            }),
        ]
    }

    fn keys() -> PrivateKeys {
        crate::keys::KeyStore::from_private(PerFamily {
            v4: Some(wireguard_control::Key::generate_private()),
            v6: None,
        })
        .private()
        .clone()
    }

    #[tokio::test]
    async fn nothing_steers_into_an_interface_or_peer_that_failed() {
        type Failing = fn(&Change) -> bool;
        let cases: [(&str, Failing, &[&str], usize); 3] = [
            ("all good", |_| false, &[], 0),
            (
                "the interface cannot be created",
                |c| matches!(c, Change::CreateInterface { .. }),
                &[
                    "IPv4 add route throw 198.18.1.0/24 table 51820",
                    "IPv4 add route unreachable 198.18.2.0/24 table 51820 metric 65535",
                    "IPv4 add route unreachable 198.18.3.0/24 table 51820 metric 65535",
                ],
                6,
            ),
            (
                "peer 3 cannot be programmed",
                |c| matches!(c, Change::AddPeer { peer, .. } if peer.node == "node-3"),
                &[
                    "IPv4 create interface",
                    "IPv4 add peer node-2",
                    "IPv4 add route throw 198.18.1.0/24",
                    "IPv4 add route 198.18.2.0/24 dev wg-encrypt",
                    "IPv4 add route unreachable 198.18.2.0/24",
                    "IPv4 add route unreachable 198.18.3.0/24",
                    "IPv4 add rule",
                ],
                2,
            ),
        ];
        for (name, failing, applied, failed) in cases {
            let driver = FakeDriver::default();
            driver.fail_changes(Some(Box::new(failing)));
            let report = apply_all(&driver, &build(), &keys()).await;
            assert_eq!(report.failed, failed, "{name}: {:?}", report.errors);
            assert_eq!(report.applied + report.failed, build().len(), "{name}");
            if failed == 0 {
                continue;
            }
            let done: Vec<String> = driver
                .take_applied()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(done.len(), applied.len(), "{name}: {done:#?}");
            for (line, prefix) in done.iter().zip(applied) {
                assert!(line.starts_with(prefix), "{name}: {line} is not {prefix}");
            }
            let skipped = report
                .errors
                .v4
                .iter()
                .filter(|e| e.contains("not applied"));
            assert_eq!(skipped.count(), failed - 1, "{name}: {:#?}", report.errors);
        }
    }
}
