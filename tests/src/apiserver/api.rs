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
/// Endpoints, else the Service's cluster IP and port.
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
    format!("{ip}:{}", service.port)
        .parse()
        .map_err(|e| format!("service address {ip}: {e}"))
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
