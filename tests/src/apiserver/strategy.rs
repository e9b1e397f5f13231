//! What the server sets and keeps on writes, per kind: identity metadata, generation,
//! status handling, namespaces, pods and CRD status.

use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::meta;
use super::registry::ResourceType;
use super::request::ObjectPath;
use super::schema::{FieldError, FieldErrorKind};

/// Checks `apiVersion`/`kind` of a request body, filling them in when missing.
pub fn check_type(rt: &ResourceType, version: &str, obj: &mut Value) -> Result<(), ApiError> {
    let expected = rt.api_version(version);
    let map = obj.as_object_mut().expect("bodies are objects");
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != expected => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )))
        }
        Some(_) => {}
        None => {
            map.insert("apiVersion".into(), json!(expected));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != rt.kind => Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            rt.kind
        ))),
        Some(_) => Ok(()),
        None => {
            map.insert("kind".into(), json!(rt.kind));
            Ok(())
        }
    }
}

/// Sets the server-owned metadata of an object about to be created.
pub fn prepare_create(
    rt: &ResourceType,
    path: &ObjectPath,
    obj: &mut Value,
    now: &str,
) -> Result<(), ApiError> {
    check_type(rt, &path.version, obj)?;
    let meta = meta::metadata_mut(obj);
    match (
        &path.namespace,
        meta.get("namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty()),
    ) {
        (Some(url), Some(body)) if url != body => return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (Some(url), _) if rt.namespaced => {
            meta.insert("namespace".into(), json!(url));
        }
        _ if !rt.namespaced => {
            meta.remove("namespace");
        }
        _ => {}
    }
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if prefix.is_empty() {
            let err = FieldError::new(
                "metadata.name",
                FieldErrorKind::Required,
                None,
                "name or generateName is required",
            );
            return Err(ApiError::invalid_field(rt, "", err));
        }
        meta.insert("name".into(), json!(meta::generated_name(&prefix)));
    }
    check_name(rt, meta::name(obj))?;
    let meta = meta::metadata_mut(obj);
    meta.insert("uid".into(), json!(meta::new_uid()));
    meta.insert("creationTimestamp".into(), json!(now));
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    if rt.tracks_generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if !rt.keep_status_on_create {
        obj.as_object_mut().expect("object").remove("status");
    }
    on_create(rt, obj, now)
}

/// DNS-1123 subdomain names, as most kinds require (RBAC names may contain `:`).
fn check_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let rbac = rt.group == "rbac.authorization.k8s.io";
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (rbac && c == ':')
            })
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let ok = name.len() <= 253 && name.split('.').all(label_ok);
    let ok = ok || (rbac && !name.is_empty() && !name.contains('/') && !name.contains('%'));
    if ok {
        return Ok(());
    }
    let message = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    let err = FieldError::new(
        "metadata.name",
        FieldErrorKind::Invalid,
        Some(json!(name)),
        message,
    );
    Err(ApiError::invalid_field(rt, name, err))
}

fn on_create(rt: &ResourceType, obj: &mut Value, now: &str) -> Result<(), ApiError> {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => {
            let name = meta::name(obj).to_string();
            let meta = meta::metadata_mut(obj);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            labels["kubernetes.io/metadata.name"] = json!(name);
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "pods") => {
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            check_crd_name(rt, obj)?;
            obj["status"] = crd_status(obj, None, now);
        }
        _ => {}
    }
    Ok(())
}

fn check_crd_name(rt: &ResourceType, crd: &Value) -> Result<(), ApiError> {
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = meta::name(crd);
    if name == format!("{plural}.{group}") {
        return Ok(());
    }
    let message = "must be spec.names.plural+\".\"+spec.group";
    let err = FieldError::new(
        "metadata.name",
        FieldErrorKind::Invalid,
        Some(json!(name)),
        message,
    );
    Err(ApiError::invalid_field(rt, name, err))
}

/// A CRD's status: names accepted, established, stored versions; condition times kept
/// from `old` while the condition holds.
fn crd_status(crd: &Value, old: Option<&Value>, now: &str) -> Value {
    let since = |kind: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == kind && c["status"] == "True")
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    let mut stored: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        .and_then(|v| v.get("name").cloned());
    if let Some(v) = storage.filter(|v| !stored.contains(v)) {
        stored.push(v);
    }
    json!({
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({})),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since("Established")},
        ],
        "storedVersions": stored,
    })
}

/// Carries the server-owned parts of `old` into `new` for an update of the main resource
/// (`subresource` None) or of `status`, and bumps `metadata.generation` on spec changes.
pub fn prepare_update(
    rt: &ResourceType,
    version: &str,
    old: &Value,
    new: &mut Value,
    subresource: Option<&str>,
    now: &str,
) -> Result<(), ApiError> {
    check_type(rt, version, new)?;
    if subresource == Some("status") {
        let status = new.get("status").cloned();
        let mut merged = old.clone();
        match status {
            Some(s) => merged["status"] = s,
            None => {
                merged.as_object_mut().expect("object").remove("status");
            }
        }
        merged["apiVersion"] = new["apiVersion"].clone();
        if let Some(fields) = new.pointer("/metadata/managedFields").cloned() {
            meta::metadata_mut(&mut merged).insert("managedFields".into(), fields);
        }
        *new = merged;
        return Ok(());
    }
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let meta = meta::metadata_mut(new);
    for kept in [
        "uid",
        "creationTimestamp",
        "name",
        "namespace",
        "deletionTimestamp",
        "generation",
    ] {
        match old_meta.get(kept) {
            Some(v) => meta.insert(kept.into(), v.clone()),
            None => meta.remove(kept),
        };
    }
    meta.remove("resourceVersion");
    if rt.status_subresource {
        let map = new.as_object_mut().expect("object");
        match old.get("status") {
            Some(s) => map.insert("status".into(), s.clone()),
            None => map.remove("status"),
        };
    }
    if rt.tracks_generation && meta::spec_part(old) != meta::spec_part(new) {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        meta::metadata_mut(new).insert("generation".into(), json!(generation));
    }
    on_update(rt, old, new, now)
}

fn on_update(rt: &ResourceType, old: &Value, new: &mut Value, now: &str) -> Result<(), ApiError> {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => {
            let name = meta::name(new).to_string();
            let labels = meta::metadata_mut(new)
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()));
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            new["status"] = crd_status(new, Some(old), now);
        }
        _ => {}
    }
    Ok(())
}

/// Whether an update changes nothing (the real server then keeps the resourceVersion).
pub fn is_noop(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(old) == strip(new)
}
