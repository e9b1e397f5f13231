//! The emulator's shared state: store, registry, admission, garbage collector.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::sync::mpsc;

use super::admission::{Admission, ServiceRef, UserInfo, WebhookSource};
use super::lists::{self, ListType};
use super::registry::{Registry, ResourceType};
use super::store::Store;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Api {
    pub store: Store,
    pub registry: Registry,
    pub admission: Admission,
    /// uids of deleted objects, for the garbage collector.
    pub deleted: mpsc::UnboundedSender<String>,
}

impl Api {
    pub fn new(store: Store, deleted: mpsc::UnboundedSender<String>) -> Self {
        let resolver_store = store.clone();
        let admission =
            Admission::new(move |service: &ServiceRef| resolve_service(&resolver_store, service));
        Self {
            store,
            registry: Registry::default(),
            admission,
            deleted,
        }
    }

    /// Registers the type of every stored CRD (after loading the state).
    pub fn register_stored_crds(&self) {
        let (crds, _) = self.store.list(CRD_KEY, None);
        for crd in crds {
            self.registry.register_crd(&crd.value);
        }
    }
}

/// Storage key of CustomResourceDefinitions.
pub const CRD_KEY: &str = "apiextensions.k8s.io/customresourcedefinitions";
/// Storage key of Namespaces.
pub const NAMESPACE_KEY: &str = "/namespaces";
const WEBHOOK_KEY: &str = "admissionregistration.k8s.io/validatingwebhookconfigurations";

impl WebhookSource for Store {
    fn validating_webhook_configurations(&self) -> Vec<Value> {
        self.list(WEBHOOK_KEY, None)
            .0
            .iter()
            .map(|s| s.value.clone())
            .collect()
    }

    fn namespace(&self, name: &str) -> Option<Value> {
        self.get(NAMESPACE_KEY, "", name).map(|s| s.value.clone())
    }
}

/// Where a webhook's `clientConfig.service` is reached: the first address of its
/// Endpoints, else the Service's cluster IP and target port.
fn resolve_service(store: &Store, service: &ServiceRef) -> Result<SocketAddr, String> {
    if let Some(endpoints) = store.get("/endpoints", &service.namespace, &service.name) {
        let subset = endpoints.value.pointer("/subsets/0");
        let ip = subset
            .and_then(|s| s.pointer("/addresses/0/ip"))
            .and_then(Value::as_str);
        let port = subset
            .and_then(|s| s.pointer("/ports/0/port"))
            .and_then(Value::as_u64);
        if let (Some(ip), Some(port)) = (ip, port) {
            return format!("{ip}:{port}")
                .parse()
                .map_err(|e| format!("endpoints address {ip}:{port}: {e}"));
        }
    }
    let svc = store
        .get("/services", &service.namespace, &service.name)
        .ok_or_else(|| {
            format!(
                "service \"{}/{}\" not found",
                service.namespace, service.name
            )
        })?;
    let ip = svc
        .value
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .ok_or_else(|| {
            format!(
                "service \"{}/{}\" has no cluster IP and no endpoints",
                service.namespace, service.name
            )
        })?;
    let port = target_port(&svc.value, service.port);
    format!("{ip}:{port}")
        .parse()
        .map_err(|e| format!("service address {ip}:{port}: {e}"))
}

/// The numeric `targetPort` behind a Service port (what kube-proxy would forward to), else
/// the port itself.
fn target_port(svc: &Value, port: u16) -> u16 {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        })
        .and_then(|p| p.get("targetPort").and_then(Value::as_u64))
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(port)
}

/// The user a request acts as: `Impersonate-User` (and `Impersonate-Group`) when sent,
/// else `system:admin`. There is no authentication.
pub fn user_of(headers: &hyper::HeaderMap) -> UserInfo {
    let username = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("system:admin")
        .to_string();
    let mut groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(String::from)
        .collect();
    if groups.is_empty() && username == "system:admin" {
        groups.push("system:masters".into());
    }
    groups.push("system:authenticated".into());
    UserInfo { username, groups }
}

/// The list-merge semantics of a resource type, as a closure for patches and apply.
pub fn list_types(rt: &ResourceType) -> impl Fn(&[String], &[Value]) -> ListType + '_ {
    move |path, items| lists::list_type(rt, path, items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service_ref() -> ServiceRef {
        ServiceRef {
            namespace: "kube-encrypt".into(),
            name: "webhook".into(),
            port: 443,
        }
    }

    fn put(store: &Store, key: &str, obj: Value) {
        store.create(key, obj).unwrap();
    }

    #[test]
    fn webhook_services_resolve_like_kube_proxy() {
        let store = Store::in_memory();
        assert!(resolve_service(&store, &service_ref())
            .unwrap_err()
            .contains("not found"));
        put(
            &store,
            "/services",
            json!({"metadata": {"name": "webhook", "namespace": "kube-encrypt"},
                   "spec": {"clusterIP": "192.0.2.1", "ports": [{"port": 443, "targetPort": 8443}]}}),
        );
        assert_eq!(
            resolve_service(&store, &service_ref()).unwrap(),
            "192.0.2.1:8443".parse().unwrap()
        );
        put(
            &store,
            "/endpoints",
            json!({"metadata": {"name": "webhook", "namespace": "kube-encrypt"},
                   "subsets": [{"addresses": [{"ip": "192.0.2.2"}], "ports": [{"port": 9443}]}]}),
        );
        assert_eq!(
            resolve_service(&store, &service_ref()).unwrap(),
            "192.0.2.2:9443".parse().unwrap()
        );
    }
}
