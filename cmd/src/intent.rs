//! What the plugin sets in the EncryptionConfig: a few fields, applied server-side as
//! `kubectl-encrypt`. An apply must repeat every field the plugin already owns (otherwise
//! server-side apply removes it), so the patch holds the fields this command sets plus those the
//! plugin set before, with their live values.

use kube_encrypt_api::crd::{EncryptionConfig, EncryptionConfigSpec, RouteSource, SINGLETON_NAME};
use kube_encrypt_api::net::Family;
use serde_json::{json, Map, Value};

use crate::FIELD_MANAGER;

/// A field of the config the plugin writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Enabled(Family),
    Port(Family),
    Mtu(Family),
    HostEncryption,
    RouteSource,
}

impl Field {
    /// Every field the plugin ever writes.
    pub const ALL: [Field; 8] = [
        Field::Enabled(Family::V4),
        Field::Port(Family::V4),
        Field::Mtu(Family::V4),
        Field::Enabled(Family::V6),
        Field::Port(Family::V6),
        Field::Mtu(Family::V6),
        Field::HostEncryption,
        Field::RouteSource,
    ];

    /// The path below `spec`, as JSON keys.
    fn path(self) -> Vec<&'static str> {
        match self {
            Field::Enabled(f) => vec![f.field(), "enabled"],
            Field::Port(f) => vec![f.field(), "port"],
            Field::Mtu(f) => vec![f.field(), "mtu"],
            Field::HostEncryption => vec!["hostEncryption"],
            Field::RouteSource => vec!["routeSource"],
        }
    }

    fn read(self, spec: &EncryptionConfigSpec) -> Value {
        match self {
            Field::Enabled(f) => json!(spec.family(f).enabled),
            Field::Port(f) => json!(spec.family(f).port),
            Field::Mtu(f) => json!(spec.family(f).mtu),
            Field::HostEncryption => json!(spec.host_encryption),
            Field::RouteSource => json!(spec.route_source.as_str()),
        }
    }
}

/// One value the command sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    Enabled(Family, bool),
    Port(Family, i64),
    Mtu(Family, i64),
    HostEncryption(bool),
    RouteSource(RouteSource),
}

impl Set {
    pub fn field(self) -> Field {
        match self {
            Set::Enabled(f, _) => Field::Enabled(f),
            Set::Port(f, _) => Field::Port(f),
            Set::Mtu(f, _) => Field::Mtu(f),
            Set::HostEncryption(_) => Field::HostEncryption,
            Set::RouteSource(_) => Field::RouteSource,
        }
    }

    fn write(self, spec: &mut EncryptionConfigSpec) {
        match self {
            Set::Enabled(Family::V4, on) => spec.ipv4.enabled = on,
            Set::Enabled(Family::V6, on) => spec.ipv6.enabled = on,
            Set::Port(Family::V4, port) => spec.ipv4.port = port,
            Set::Port(Family::V6, port) => spec.ipv6.port = port,
            Set::Mtu(Family::V4, mtu) => spec.ipv4.mtu = mtu,
            Set::Mtu(Family::V6, mtu) => spec.ipv6.mtu = mtu,
            Set::HostEncryption(on) => spec.host_encryption = on,
            Set::RouteSource(source) => spec.route_source = source,
        }
    }
}

/// The config after the change, and the apply patch that makes it so.
#[derive(Clone, Debug, PartialEq)]
pub struct Intent {
    pub spec: EncryptionConfigSpec,
    pub patch: Value,
}

/// The change `sets` makes to the live config (or to a new one).
pub fn intent(live: Option<&EncryptionConfig>, sets: &[Set]) -> Intent {
    let mut spec = live.map(|c| c.spec.clone()).unwrap_or_default();
    for set in sets {
        set.write(&mut spec);
    }
    let owned = live.map(owned_fields).unwrap_or_default();
    let fields = Field::ALL
        .into_iter()
        .filter(|f| owned.contains(f) || sets.iter().any(|s| s.field() == *f));
    let mut spec_patch = Value::Object(Map::new());
    for field in fields {
        insert(&mut spec_patch, &field.path(), field.read(&spec));
    }
    let patch = json!({
        "apiVersion": "kube-encrypt.dev/v1alpha1",
        "kind": "EncryptionConfig",
        "metadata": {"name": SINGLETON_NAME},
        "spec": spec_patch,
    });
    Intent { spec, patch }
}

fn insert(target: &mut Value, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("a field path is never empty");
    let mut node = target;
    for key in parents {
        node = node
            .as_object_mut()
            .expect("patch nodes are objects")
            .entry(*key)
            .or_insert_with(|| Value::Object(Map::new()));
    }
    node.as_object_mut()
        .expect("patch nodes are objects")
        .insert((*last).to_owned(), value);
}

/// The fields the plugin owns on `config`, from its server-side apply managed fields.
pub fn owned_fields(config: &EncryptionConfig) -> Vec<Field> {
    let entries = config.metadata.managed_fields.iter().flatten();
    let ours = entries.filter(|e| {
        e.manager.as_deref() == Some(FIELD_MANAGER) && e.operation.as_deref() == Some("Apply")
    });
    let mut owned = Vec::new();
    for entry in ours {
        let Some(fields) = entry.fields_v1.as_ref().map(|f| &f.0) else {
            continue;
        };
        let Some(spec) = fields.get("f:spec") else {
            continue;
        };
        owned.extend(Field::ALL.into_iter().filter(|f| has_path(spec, &f.path())));
    }
    owned.sort();
    owned.dedup();
    owned
}

fn has_path(fields: &Value, path: &[&str]) -> bool {
    path.iter()
        .try_fold(fields, |node, key| node.get(format!("f:{key}")))
        .is_some()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    use super::*;

    fn config_owned_by(
        manager: &str,
        fields: Value,
        spec: EncryptionConfigSpec,
    ) -> EncryptionConfig {
        let mut config = EncryptionConfig::new(SINGLETON_NAME, spec);
        config.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }]);
        config
    }

    #[test]
    fn new_config_gets_only_the_fields_set() {
        let got = intent(None, &[Set::Enabled(Family::V4, true)]);
        assert_eq!(got.patch["spec"], json!({"ipv4": {"enabled": true}}));
        assert!(got.spec.ipv4.enabled && !got.spec.ipv6.enabled);
    }

    #[test]
    fn fields_owned_before_are_repeated_with_live_values() {
        let spec = EncryptionConfigSpec::test();
        let owned = json!({"f:spec": {"f:ipv4": {"f:enabled": {}, "f:mtu": {}}}});
        let live = config_owned_by(
            FIELD_MANAGER,
            owned,
            spec.clone().with_mtu(Family::V4, 1400),
        );
        let got = intent(Some(&live), &[Set::Enabled(Family::V6, true)]);
        assert_eq!(
            got.patch["spec"],
            json!({"ipv4": {"enabled": true, "mtu": 1400}, "ipv6": {"enabled": true}})
        );
    }

    #[test]
    fn fields_of_other_managers_are_left_to_them() {
        let owned = json!({"f:spec": {"f:ipv4": {"f:enabled": {}}}});
        let live = config_owned_by("argocd-controller", owned, EncryptionConfigSpec::test());
        let got = intent(Some(&live), &[Set::HostEncryption(true)]);
        assert_eq!(got.patch["spec"], json!({"hostEncryption": true}));
        assert!(
            got.spec.ipv4.enabled,
            "the live value stays in the evaluated spec"
        );
    }
}
