//! The config's numbers converted once into the types the dataplane uses. The CRD schema and
//! the admission rules keep bad values out; should one slip through anyway, planning fails
//! with [`PlanError::InvalidConfig`] and the agent keeps its dataplane as it is.

use crate::crd::{Backend, EncryptionConfigSpec, RouteSource};
use crate::net::{Family, PerFamily};

use super::PlanError;

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
    pub fn from_spec(spec: &EncryptionConfigSpec) -> Result<Self, PlanError> {
        let families = PerFamily {
            v4: FamilySettings::from_spec(spec, Family::V4)?,
            v6: FamilySettings::from_spec(spec, Family::V6)?,
        };
        let keepalive: u16 = convert("spec.persistentKeepalive", spec.persistent_keepalive)?;
        Ok(Self {
            families,
            table: non_zero("spec.routingTable", spec.routing_table)?,
            rule_priority: non_zero("spec.routingRulePriority", spec.routing_rule_priority)?,
            firewall_mark: non_zero("spec.firewallMark", spec.firewall_mark)?,
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
    fn from_spec(spec: &EncryptionConfigSpec, family: Family) -> Result<Self, PlanError> {
        let s = spec.family(family);
        let field = |name: &str| format!("spec.{}.{name}", family.field());
        let mtu: u32 = convert(&field("mtu"), s.mtu)?;
        Ok(Self {
            enabled: s.enabled,
            port: non_zero(&field("port"), s.port)?,
            mtu: (mtu > 0).then_some(mtu),
            interface: s.interface_name,
        })
    }
}

fn convert<T: TryFrom<i64>>(field: &str, value: i64) -> Result<T, PlanError> {
    T::try_from(value).map_err(|_| PlanError::InvalidConfig {
        field: field.to_owned(),
        message: format!("{value} is out of range"),
    })
}

fn non_zero<T: TryFrom<i64>>(field: &str, value: i64) -> Result<T, PlanError> {
    if value == 0 {
        return Err(PlanError::InvalidConfig {
            field: field.to_owned(),
            message: "must not be 0".to_owned(),
        });
    }
    convert(field, value)
}
