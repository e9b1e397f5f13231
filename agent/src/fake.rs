//! In-memory stand-ins for the host and the API server, to test the reconcile loop without
//! root: a [`FakeDriver`] that applies [`Change`]s to a [`Dataplane`] with the kernel's main
//! refusals (no such device, already exists), and a [`FakeWriter`] that records writes.

use std::sync::Mutex;

use k8s_openapi::api::core::v1::Node;
use kube_encrypt_api::crd::NodeEncryptionStatus;
use kube_encrypt_api::dataplane::{Dataplane, FamilyDataplane, RouteKind};
use kube_encrypt_api::diff::Change;
use kube_encrypt_api::key::WireGuardKey;
use kube_encrypt_api::net::{Family, PerFamily};
use serde_json::Value;

use crate::cluster::{ClusterWriter, WriteError};
use crate::dataplane::{Driver, DriverError, Observed, PeerStats, PrivateKeys, Scope};
use crate::keys::public_key_of;

type ChangePredicate = Box<dyn Fn(&Change) -> bool + Send>;

#[derive(Default)]
struct HostState {
    dataplane: Dataplane,
    device_keys: PerFamily<Option<WireGuardKey>>,
    peer_stats: PerFamily<Vec<PeerStats>>,
    applied: Vec<Change>,
    observations: usize,
    fail_observe: bool,
    fail_change: Option<ChangePredicate>,
    state_problems: Vec<String>,
}

/// A host whose dataplane is a value.
#[derive(Default)]
pub struct FakeDriver {
    state: Mutex<HostState>,
}

impl std::fmt::Debug for FakeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDriver")
            .field("dataplane", &self.dataplane())
            .finish()
    }
}

fn refuse(change: &Change, message: impl Into<String>) -> DriverError {
    DriverError {
        operation: change.to_string(),
        message: message.into(),
    }
}

impl FakeDriver {
    /// A host already carrying `dataplane`, with devices holding `device_keys`.
    pub fn with(dataplane: Dataplane, device_keys: PerFamily<Option<WireGuardKey>>) -> Self {
        let driver = Self::default();
        {
            let mut state = driver.lock();
            state.dataplane = dataplane;
            state.device_keys = device_keys;
        }
        driver
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.state.lock().expect("fake driver lock")
    }

    /// The whole dataplane, regardless of scope.
    pub fn dataplane(&self) -> Dataplane {
        self.lock().dataplane.clone()
    }

    /// The public keys of the devices.
    pub fn device_keys(&self) -> PerFamily<Option<WireGuardKey>> {
        self.lock().device_keys.clone()
    }

    /// Every change applied successfully so far, and forgets them.
    pub fn take_applied(&self) -> Vec<Change> {
        std::mem::take(&mut self.lock().applied)
    }

    /// How many times the dataplane was observed.
    pub fn observations(&self) -> usize {
        self.lock().observations
    }

    /// Makes every observation fail (netlink down).
    pub fn fail_observe(&self, fail: bool) {
        self.lock().fail_observe = fail;
    }

    /// Makes changes matching `predicate` fail; `None` heals.
    pub fn fail_changes(&self, predicate: Option<ChangePredicate>) {
        self.lock().fail_change = predicate;
    }

    /// Makes every observation report these unsaved records (a read-only state dir).
    pub fn set_state_problems(&self, problems: Vec<String>) {
        self.lock().state_problems = problems;
    }

    /// The family's interface disappears as when its userspace daemon dies: the kernel
    /// removes the link and every route through it.
    pub fn vanish_interface(&self, family: Family) {
        let mut state = self.lock();
        let slot = state.dataplane.families.get_mut(family);
        if let Some(name) = slot.interface.as_ref().map(|i| i.name.clone()) {
            delete_interface(slot, &name);
        }
        *state.device_keys.get_mut(family) = None;
    }

    /// Sets the counters the device reports for `family`'s peers.
    pub fn set_peer_stats(&self, family: Family, stats: Vec<PeerStats>) {
        *self.lock().peer_stats.get_mut(family) = stats;
    }
}

impl Driver for FakeDriver {
    async fn observe(&self, scope: &Scope) -> Result<Observed, DriverError> {
        let mut state = self.lock();
        state.observations += 1;
        if state.fail_observe {
            return Err(DriverError {
                operation: "observe".into(),
                message: "injected failure".into(),
            });
        }
        Ok(visible(&state, scope))
    }

    async fn apply(&self, change: &Change, keys: &PrivateKeys) -> Result<(), DriverError> {
        let mut state = self.lock();
        if state.fail_change.as_ref().is_some_and(|fail| fail(change)) {
            return Err(refuse(change, "injected failure"));
        }
        apply_change(&mut state, change, keys)?;
        state.applied.push(change.clone());
        Ok(())
    }
}

/// What an observation within `scope` finds.
fn visible(state: &HostState, scope: &Scope) -> Observed {
    let mut observed = Observed {
        dataplane: Dataplane {
            families: PerFamily::default(),
            firewall: state.dataplane.firewall.clone(),
            sysctls: state.dataplane.sysctls.clone(),
        },
        state_problems: state.state_problems.clone(),
        ..Default::default()
    };
    for family in Family::ALL {
        let have = state.dataplane.family(family);
        let scopes = scope.families.get(family);
        let seen = observed.dataplane.families.get_mut(family);
        if let Some(interface) = &have.interface {
            if scopes.iter().any(|s| s.interface == interface.name) {
                seen.interface = Some(interface.clone());
                seen.peers = have.peers.clone();
                *observed.device_keys.get_mut(family) = *state.device_keys.get(family);
                *observed.peer_stats.get_mut(family) = state.peer_stats.get(family).clone();
            }
        }
        seen.routes = have
            .routes
            .iter()
            .filter(|r| scopes.iter().any(|s| s.table == r.table))
            .cloned()
            .collect();
        seen.rule = have.rule.clone().filter(|rule| {
            scopes
                .iter()
                .any(|s| s.table == rule.table && s.rule_priority == rule.priority)
        });
    }
    observed
}

fn apply_change(
    state: &mut HostState,
    change: &Change,
    keys: &PrivateKeys,
) -> Result<(), DriverError> {
    match change {
        Change::CreateInterface { family, spec } => {
            let key = keys
                .keys
                .get(*family)
                .as_ref()
                .ok_or_else(|| refuse(change, "no private key"))?;
            let slot = state.dataplane.families.get_mut(*family);
            if slot.interface.is_some() {
                return Err(refuse(change, "File exists"));
            }
            slot.interface = Some(spec.clone());
            *state.device_keys.get_mut(*family) = Some(public_key_of(key.expose()));
        }
        Change::UpdateInterface { family, to, .. } => {
            let slot = state.dataplane.families.get_mut(*family);
            let interface = slot
                .interface
                .as_mut()
                .ok_or_else(|| refuse(change, "No such device"))?;
            *interface = to.clone();
        }
        Change::DeleteInterface { family, name } => {
            let slot = state.dataplane.families.get_mut(*family);
            if slot.interface.as_ref().map(|i| &i.name) != Some(name) {
                return Err(refuse(change, "No such device"));
            }
            delete_interface(slot, name);
            *state.device_keys.get_mut(*family) = None;
        }
        _ => apply_content_change(&mut state.dataplane, change)?,
    }
    Ok(())
}

fn delete_interface(slot: &mut FamilyDataplane, name: &str) {
    slot.interface = None;
    slot.peers.clear();
    slot.routes
        .retain(|r| !matches!(&r.kind, RouteKind::Device(dev) if dev == name));
}

fn apply_content_change(dataplane: &mut Dataplane, change: &Change) -> Result<(), DriverError> {
    match change {
        Change::AddPeer {
            family,
            interface,
            peer,
        }
        | Change::UpdatePeer {
            family,
            interface,
            to: peer,
            ..
        } => {
            let slot = device(dataplane, *family, interface, change)?;
            slot.peers.retain(|p| p.public_key != peer.public_key);
            slot.peers.push(peer.clone());
            slot.peers.sort_by_key(|p| p.public_key);
        }
        Change::RemovePeer {
            family,
            interface,
            public_key,
            ..
        } => {
            let slot = device(dataplane, *family, interface, change)?;
            slot.peers.retain(|p| &p.public_key != public_key);
        }
        Change::AddRoute { family, route } => {
            if let RouteKind::Device(dev) = &route.kind {
                device(dataplane, *family, dev, change)?;
            }
            let routes = &mut dataplane.families.get_mut(*family).routes;
            // The kernel keeps one route per table, destination and metric.
            if routes.iter().any(|r| {
                r.table == route.table
                    && r.destination == route.destination
                    && r.kind.metric() == route.kind.metric()
            }) {
                return Err(refuse(change, "File exists"));
            }
            routes.push(route.clone());
            routes.sort();
        }
        Change::DeleteRoute { family, route } => {
            let routes = &mut dataplane.families.get_mut(*family).routes;
            let before = routes.len();
            routes.retain(|r| r != route);
            if routes.len() == before {
                return Err(refuse(change, "No such process"));
            }
        }
        Change::AddRule(rule) => dataplane.families.get_mut(rule.family).rule = Some(rule.clone()),
        Change::DeleteRule(rule) => dataplane.families.get_mut(rule.family).rule = None,
        Change::ReplaceFirewall(spec) => dataplane.firewall = Some(spec.clone()),
        Change::DeleteFirewall => dataplane.firewall = None,
        Change::SetSysctl(sysctl) => {
            dataplane.sysctls.retain(|s| s.key != sysctl.key);
            dataplane.sysctls.push(sysctl.clone());
            dataplane.sysctls.sort();
        }
        Change::RestoreSysctl { key } => dataplane.sysctls.retain(|s| &s.key != key),
        Change::CreateInterface { .. }
        | Change::UpdateInterface { .. }
        | Change::DeleteInterface { .. } => {
            unreachable!("interface changes are applied by apply_change")
        }
    }
    Ok(())
}

/// The family's dataplane when its interface is `name`, else "No such device".
fn device<'a>(
    dataplane: &'a mut Dataplane,
    family: Family,
    name: &str,
    change: &Change,
) -> Result<&'a mut FamilyDataplane, DriverError> {
    let slot = dataplane.families.get_mut(family);
    if slot.interface.as_ref().map(|i| i.name.as_str()) != Some(name) {
        return Err(refuse(change, "No such device"));
    }
    Ok(slot)
}

/// An API server that records the agent's writes and can be made to fail.
#[derive(Debug, Default)]
pub struct FakeWriter {
    state: Mutex<WriterState>,
}

#[derive(Debug, Default)]
struct WriterState {
    node_patches: Vec<Value>,
    statuses: Vec<NodeEncryptionStatus>,
    down: bool,
    hanging: bool,
    /// Node patches answered with this HTTP status (RBAC or admission refusing them).
    patch_refusal: Option<u16>,
}

impl FakeWriter {
    fn lock(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.state.lock().expect("fake writer lock")
    }

    /// Makes every write fail as if the API server were unreachable.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Answers every node patch with `status` (such as 403), as RBAC or an admission policy
    /// would; `None` accepts them again.
    pub fn refuse_node_patches(&self, status: Option<u16>) {
        self.lock().patch_refusal = status;
    }

    /// Makes every write wait forever, as behind a black-holed connection.
    pub fn set_hanging(&self, hanging: bool) {
        self.lock().hanging = hanging;
    }

    /// The node patches written so far, and forgets them.
    pub fn take_node_patches(&self) -> Vec<Value> {
        std::mem::take(&mut self.lock().node_patches)
    }

    /// The statuses written so far, and forgets them.
    pub fn take_statuses(&self) -> Vec<NodeEncryptionStatus> {
        std::mem::take(&mut self.lock().statuses)
    }

    async fn refuse_when_down(&self, operation: &str) -> Result<(), WriteError> {
        if self.lock().hanging {
            std::future::pending::<()>().await;
        }
        if self.lock().down {
            return Err(WriteError {
                operation: operation.into(),
                message: "connection refused".into(),
                http_status: None,
            });
        }
        Ok(())
    }
}

impl ClusterWriter for FakeWriter {
    async fn patch_node(&self, _node: &str, patch: &Value) -> Result<(), WriteError> {
        self.refuse_when_down("patch node").await?;
        if let Some(status) = self.lock().patch_refusal {
            return Err(WriteError {
                operation: "patch node".into(),
                message: "refused by the fake API server".into(),
                http_status: Some(status),
            });
        }
        self.lock().node_patches.push(patch.clone());
        Ok(())
    }

    async fn write_status(
        &self,
        _node: &Node,
        status: &NodeEncryptionStatus,
    ) -> Result<(), WriteError> {
        self.refuse_when_down("write status").await?;
        self.lock().statuses.push(status.clone());
        Ok(())
    }
}
