//! One resource request: its target type, path, query, headers and user.

use std::sync::Arc;

use bytes::Bytes;
use hyper::{HeaderMap, Response};
use serde_json::Value;

use super::admission::{
    AdmissionAttributes, GroupVersionKind, GroupVersionResource, Operation, UserInfo,
};
use super::api::{list_types, Api};
use super::errors::ApiError;
use super::fieldset::Scope;
use super::http::{self, Body};
use super::lists::ListType;
use super::managed::Writer;
use super::registry::ResourceType;
use super::request::{ObjectPath, Query};
use super::schema;
use super::store::Stored;

#[derive(Debug, Clone)]
pub struct Req {
    pub api: Arc<Api>,
    pub rt: Arc<ResourceType>,
    pub path: ObjectPath,
    pub query: Query,
    pub headers: HeaderMap,
    pub user: UserInfo,
}

impl Req {
    pub fn key(&self) -> String {
        self.rt.storage_key()
    }

    pub fn namespace(&self) -> &str {
        self.path.namespace.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or("")
    }

    pub fn subresource(&self) -> Option<&str> {
        self.path.subresource.as_deref()
    }

    pub fn api_version(&self) -> String {
        self.rt.api_version(&self.path.version)
    }

    pub fn dry_run(&self) -> bool {
        self.query.dry_run()
    }

    /// `fieldManager`, else the User-Agent up to its first `/`, as the API server does.
    pub fn manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager") {
            return m.to_string();
        }
        self.headers
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.split('/').next().unwrap_or("").to_string())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "unknown".into())
    }

    pub fn scope(&self) -> Scope {
        match (self.subresource(), self.rt.status_subresource) {
            (Some("status"), _) => Scope::StatusOnly,
            (_, true) => Scope::NoStatus,
            _ => Scope::All,
        }
    }

    pub fn writer<'a>(
        &'a self,
        manager: &'a str,
        api_version: &'a str,
        now: &'a str,
    ) -> Writer<'a> {
        Writer {
            manager,
            api_version,
            subresource: self.subresource(),
            scope: self.scope(),
            now,
        }
    }

    pub fn lists(&self) -> impl Fn(&[String], &[Value]) -> ListType + '_ {
        list_types(&self.rt)
    }

    /// The object as served in the requested version.
    pub fn encode(&self, stored: &Stored) -> Bytes {
        let want = self.api_version();
        if stored.value.get("apiVersion").and_then(Value::as_str) == Some(want.as_str()) {
            return stored.json.clone();
        }
        let mut value = stored.value.clone();
        value["apiVersion"] = Value::String(want);
        Bytes::from(serde_json::to_vec(&value).expect("JSON values serialize"))
    }

    pub fn object_response(&self, code: u16, stored: &Stored) -> Response<Body> {
        http::json_bytes(code, self.encode(stored))
    }

    /// CRD defaulting, pruning and validation; honours `fieldValidation` for unknown fields.
    pub fn validate_custom(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<Vec<String>, ApiError> {
        let Some(crd) = &self.rt.crd else {
            return Ok(Vec::new());
        };
        let prepared = schema::prepare(crd, &self.path.version, obj, old).map_err(|errors| {
            ApiError::invalid(&self.rt, crate::apiserver::meta::name(obj), &errors)
        })?;
        let unknown: Vec<String> = prepared
            .pruned
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect();
        match self.query.get("fieldValidation").unwrap_or("Warn") {
            "Strict" if !unknown.is_empty() => Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                unknown.join(", "),
                kind = self.rt.kind,
                version = self.path.version,
            ))),
            "Ignore" => Ok(Vec::new()),
            _ => Ok(unknown),
        }
    }

    /// Runs the validating webhooks; returns their warnings.
    pub async fn admit(
        &self,
        operation: Operation,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<Vec<String>, ApiError> {
        let name = object
            .or(old)
            .map(|o| crate::apiserver::meta::name(o).to_string())
            .unwrap_or_default();
        let attrs = AdmissionAttributes {
            operation,
            gvk: GroupVersionKind {
                group: self.rt.group.clone(),
                version: self.path.version.clone(),
                kind: self.rt.kind.clone(),
            },
            gvr: GroupVersionResource {
                group: self.rt.group.clone(),
                version: self.path.version.clone(),
                resource: self.rt.resource.clone(),
            },
            name,
            namespace: self.path.namespace.clone().filter(|_| self.rt.namespaced),
            object: object.cloned(),
            old_object: old.cloned(),
            user: self.user.clone(),
            dry_run: self.dry_run(),
            sub_resource: self.path.subresource.clone(),
        };
        self.api
            .admission
            .review_source(&self.api.store, &attrs)
            .await
            .map_err(|denied| {
                let status = denied.status();
                ApiError {
                    code: denied.code,
                    reason: reason_of(denied.code, &denied.reason),
                    message: denied.message.clone(),
                    details: status.get("details").cloned(),
                }
            })
    }
}

fn reason_of(code: u16, reason: &str) -> &'static str {
    match (reason, code) {
        ("Forbidden", _) | (_, 403) => "Forbidden",
        ("Invalid", _) | (_, 422) => "Invalid",
        ("InternalError", _) | (_, 500..) => "InternalError",
        ("", _) => "",
        _ => "BadRequest",
    }
}
