//! The config's numbers converted once into the types the dataplane uses. Whether a config can
//! be applied at all is decided by the admission rules alone
//! ([`crate::rules::dataplane_blockers`]); this module only converts what they admitted.

use crate::crd::{Backend, EncryptionConfigSpec, RouteSource};
use crate::net::{Family, PerFamily};
use crate::rules::{dataplane_blockers, Finding};

/// The validated settings of one config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Settings {
    pub families: PerFamily<FamilySettings>,
    pub table: u32,
    pub rule_priority: u32,
    pub firewall_mark: u32,
    pub keepalive: Option<u16>,
    pub host_encryption: bool,
    pub control_plane_host_encryption: bool,
    pub route_source: RouteSource,
    pub backend: Backend,
}

/// The validated settings of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FamilySettings {
    pub enabled: bool,
    pub port: u16,
    /// `None` = automatic.
    pub mtu: Option<u32>,
    pub interface: String,
}

impl Settings {
    /// The settings of `spec`, or the findings of the rules that keep it off the dataplane.
    pub fn from_spec(spec: &EncryptionConfigSpec) -> Result<Self, Vec<Finding>> {
        let blockers = dataplane_blockers(spec);
        if !blockers.is_empty() {
            return Err(blockers);
        }
        let keepalive: u16 = admitted(spec.persistent_keepalive);
        Ok(Self {
            families: PerFamily::from_fn(|family| FamilySettings::from_spec(spec, family)),
            table: admitted(spec.routing_table),
            rule_priority: admitted(spec.routing_rule_priority),
            firewall_mark: admitted(spec.firewall_mark),
            keepalive: (keepalive > 0).then_some(keepalive),
            host_encryption: spec.host_encryption,
            control_plane_host_encryption: spec.control_plane_host_encryption,
            route_source: spec.route_source,
            backend: spec.backend,
        })
    }

    pub fn family(&self, family: Family) -> &FamilySettings {
        self.families.get(family)
    }

    /// True when host traffic between `a` and `b` is left out of the tunnel because one of them
    /// is a control-plane node and `spec.controlPlaneHostEncryption` is off.
    pub fn exempts_host_traffic(&self, a_control_plane: bool, b_control_plane: bool) -> bool {
        !self.control_plane_host_encryption && (a_control_plane || b_control_plane)
    }
}

impl FamilySettings {
    fn from_spec(spec: &EncryptionConfigSpec, family: Family) -> Self {
        let s = spec.family(family);
        let mtu: u32 = admitted(s.mtu);
        Self {
            enabled: s.enabled,
            port: admitted(s.port),
            mtu: (mtu > 0).then_some(mtu),
            interface: s.interface_name.to_owned(),
        }
    }
}

/// `value` in the type the dataplane uses. Only called on values the range rules admitted,
/// which all fit; the planner tests run every row of the rules table to prove it.
fn admitted<T: TryFrom<i64> + Default>(value: i64) -> T {
    T::try_from(value).unwrap_or_default()
}
