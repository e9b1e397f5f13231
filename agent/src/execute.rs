//! From the planned dataplane and the observed one to applied changes: the diff (plus a
//! rebuild of devices holding a key that is not the node's), then the changes in order,
//! logged with its `Display` and its failures collected per family.

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
    let mut current = observed.dataplane.clone();
    let mut changes = Vec::new();
    for family in Family::ALL {
        let device_key = observed.device_keys.get(family).as_ref();
        let Some(interface) = current.family(family).interface.as_ref() else {
            continue;
        };
        if device_key.is_some() && device_key != own_keys.get(family).as_ref() {
            let name = interface.name.clone();
            forget_interface(current.families.get_mut(family), &name);
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
    pub failed: usize,
    /// Failure messages per family, in order.
    pub errors: FamilyErrors,
}

/// Applies every change in order (the driver may batch them). A failed change is logged and
/// recorded, and the rest are still tried: they are independent enough, and the next round
/// retries the failed ones.
pub async fn apply_all(
    driver: &impl Driver,
    changes: &[Change],
    keys: &PrivateKeys,
) -> ApplyReport {
    let results = driver.apply_batch(changes, keys).await;
    debug_assert_eq!(results.len(), changes.len(), "one result per change");
    let mut report = ApplyReport::default();
    for (change, result) in changes.iter().zip(results) {
        record(&mut report, change, result);
    }
    report
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
