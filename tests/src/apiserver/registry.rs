//! The resource types the emulator serves: built-in kinds and every established CRD.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// One served resource (a plural name in a group).
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    /// Served versions, preferred first. Objects are stored once and served in any of them.
    pub versions: Vec<String>,
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    /// Writes to the main resource ignore `status`; `.../status` changes only `status`.
    pub status_subresource: bool,
    /// `metadata.generation` starts at 1 and is bumped on changes outside metadata and status.
    pub tracks_generation: bool,
    /// Whether `status` sent on create is kept (nodes) or dropped (pods, custom resources).
    pub keep_status_on_create: bool,
    /// The CRD object, for custom resources.
    pub crd: Option<Arc<Value>>,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn preferred_version(&self) -> &str {
        &self.versions[0]
    }

    /// `nodes`, `deployments.apps`: how error messages name the resource.
    pub fn qualified_resource(&self) -> String {
        qualify(&self.resource, &self.group)
    }

    /// Key of the stored collection: `group/resource`.
    pub fn storage_key(&self) -> String {
        format!("{}/{}", self.group, self.resource)
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

/// `(group, version, resource, kind, short names, namespaced, status subresource,
/// tracks generation)`
struct Builtin(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    bool,
    bool,
    bool,
);

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    Builtin("", "v1", "namespaces", "Namespace", &["ns"], false, true, false),
    Builtin("", "v1", "nodes", "Node", &["no"], false, true, false),
    Builtin("", "v1", "pods", "Pod", &["po"], true, true, false),
    Builtin("", "v1", "configmaps", "ConfigMap", &["cm"], true, false, false),
    Builtin("", "v1", "secrets", "Secret", &[], true, false, false),
    Builtin("", "v1", "services", "Service", &["svc"], true, true, false),
    Builtin("", "v1", "endpoints", "Endpoints", &["ep"], true, false, false),
    Builtin("", "v1", "events", "Event", &["ev"], true, false, false),
    Builtin("", "v1", "serviceaccounts", "ServiceAccount", &["sa"], true, false, false),
    Builtin("apps", "v1", "daemonsets", "DaemonSet", &["ds"], true, true, true),
    Builtin("apps", "v1", "deployments", "Deployment", &["deploy"], true, true, true),
    Builtin("coordination.k8s.io", "v1", "leases", "Lease", &[], true, false, false),
    Builtin("events.k8s.io", "v1", "events", "Event", &["ev"], true, false, false),
    Builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", &["crd", "crds"], false, true, true),
    Builtin("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", &[], false, false, true),
    Builtin("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", &[], false, false, true),
    // Stored, not enforced: the install manifests hold them; the policy is proven on kube-apiserver.
    Builtin("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", &[], false, true, true),
    Builtin("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", &[], false, false, true),
    Builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", &["pdb"], true, true, true),
    Builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", &[], false, false, false),
    Builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", &[], false, false, false),
    Builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", &[], true, false, false),
    Builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", &[], true, false, false),
];

/// The built-in kinds.
pub fn builtin_types() -> Vec<ResourceType> {
    BUILTINS.iter().map(builtin_type).collect()
}

fn builtin_type(b: &Builtin) -> ResourceType {
    let &Builtin(group, version, resource, kind, short, namespaced, status, generation) = b;
    let in_all = matches!(resource, "pods" | "services" | "daemonsets" | "deployments");
    ResourceType {
        group: group.into(),
        versions: vec![version.into()],
        resource: resource.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: if in_all {
            vec!["all".into()]
        } else {
            Vec::new()
        },
        namespaced,
        status_subresource: status,
        tracks_generation: generation,
        keep_status_on_create: !matches!(resource, "pods" | "customresourcedefinitions"),
        crd: None,
    }
}

/// Reads the resource type a CRD declares. `None` when the CRD lacks the required names.
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec.get("versions")?.as_array()?;
    let mut served: Vec<&Value> = versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .collect();
    served.sort_by_key(|v| !v["storage"].as_bool().unwrap_or(false));
    let status_subresource = served
        .iter()
        .any(|v| v.pointer("/subresources/status").is_some());
    let kind = text(names, "kind")?;
    Some(ResourceType {
        group: text(spec, "group")?,
        versions: served.iter().filter_map(|v| text(v, "name")).collect(),
        resource: text(names, "plural")?,
        singular: text(names, "singular").unwrap_or_else(|| kind.to_lowercase()),
        kind,
        short_names: strings(names.get("shortNames")),
        categories: strings(names.get("categories")),
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        status_subresource,
        tracks_generation: true,
        keep_status_on_create: false,
        crd: Some(Arc::new(crd.clone())),
    })
    .filter(|t| !t.versions.is_empty())
}

/// Every served type, by `group/resource`.
#[derive(Debug)]
pub struct Registry {
    types: RwLock<BTreeMap<String, Arc<ResourceType>>>,
}

impl Default for Registry {
    fn default() -> Self {
        let types = builtin_types()
            .into_iter()
            .map(|t| (t.storage_key(), Arc::new(t)))
            .collect();
        Self {
            types: RwLock::new(types),
        }
    }
}

impl Registry {
    /// The type serving `resource` in `group/version`.
    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceType>> {
        let types = self.types.read().expect("registry lock");
        types
            .get(&format!("{group}/{resource}"))
            .filter(|t| t.serves(version))
            .cloned()
    }

    pub fn by_key(&self, key: &str) -> Option<Arc<ResourceType>> {
        self.types.read().expect("registry lock").get(key).cloned()
    }

    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.types
            .read()
            .expect("registry lock")
            .values()
            .cloned()
            .collect()
    }

    /// Registers (or replaces) the type a CRD declares. Returns its storage key.
    pub fn register_crd(&self, crd: &Value) -> Option<String> {
        let t = from_crd(crd)?;
        let key = t.storage_key();
        self.types
            .write()
            .expect("registry lock")
            .insert(key.clone(), Arc::new(t));
        Some(key)
    }

    /// Removes a custom type; built-ins stay.
    pub fn unregister(&self, key: &str) {
        let mut types = self.types.write().expect("registry lock");
        if types.get(key).is_some_and(|t| t.is_custom()) {
            types.remove(key);
        }
    }

    /// Groups with their versions, core first then by name; preferred version first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.all() {
            let versions = groups.entry(t.group.clone()).or_default();
            for v in &t.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        groups.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crd_declares_a_type() {
        let crd = json!({
            "spec": {
                "group": "kube-encrypt.dev",
                "names": {"kind": "IPPool", "plural": "ippools", "singular": "ippool", "shortNames": ["ippool"]},
                "scope": "Cluster",
                "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}}}]
            }
        });
        let registry = Registry::default();
        let key = registry.register_crd(&crd).unwrap();
        let t = registry
            .lookup("kube-encrypt.dev", "v1alpha1", "ippools")
            .unwrap();
        assert_eq!(key, "kube-encrypt.dev/ippools");
        assert!(!t.namespaced && t.status_subresource && t.is_custom());
        assert_eq!(t.qualified_resource(), "ippools.kube-encrypt.dev");
        assert!(registry
            .lookup("kube-encrypt.dev", "v1", "ippools")
            .is_none());
        registry.unregister(&key);
        assert!(registry.by_key(&key).is_none());
    }
}
