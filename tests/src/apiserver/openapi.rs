//! OpenAPI v3 as far as kubectl needs it: the root lists every group version, and each
//! group version document carries, per kind, a `patch` operation with its
//! `x-kubernetes-group-version-kind` and the `fieldValidation`/`dryRun` query parameters,
//! so `kubectl apply` uses server-side field validation. No strategic-merge content type
//! is advertised, so kubectl computes patches from its compiled-in types (built-ins) or
//! uses JSON merge patches (custom resources), as with a real server's CRDs.

use serde_json::{json, Map, Value};

use super::lists::crd_schema;
use super::registry::{Registry, ResourceType};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A short stable hash of a document, for the root's cache-busting URLs.
fn hash(doc: &Value) -> String {
    let text = doc.to_string();
    let h = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!("{h:016X}")
}

/// `/openapi/v3`
pub fn root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let doc = group_version(registry, &group, &version);
            let path = gv_path(&group, &version);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn schema_name(t: &ResourceType, version: &str) -> String {
    let group = if t.group.is_empty() {
        "core".to_string()
    } else {
        t.group.clone()
    };
    format!("{group}.{version}.{}", t.kind)
}

fn object_path(t: &ResourceType, version: &str) -> String {
    let base = format!("/{}", gv_path(&t.group, version));
    if t.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.resource)
    } else {
        format!("{base}/{}/{{name}}", t.resource)
    }
}

fn operations(t: &ResourceType, version: &str) -> Value {
    let gvk = json!({"group": t.group, "version": version, "kind": t.kind});
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(t, version))});
    let body_schema = json!({"schema": reference});
    let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}});
    let write_params = vec![
        query_param("dryRun"),
        query_param("fieldManager"),
        query_param("fieldValidation"),
    ];
    let mut patch_params = write_params.clone();
    patch_params.push(query_param("force"));
    json!({
        "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": ok},
        "put": {
            "x-kubernetes-action": "put",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": write_params,
            "requestBody": {"content": {"application/json": body_schema}},
            "responses": ok,
        },
        "patch": {
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": patch_params,
            "requestBody": {"content": {
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
            }},
            "responses": ok,
        },
        "delete": {"x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk, "responses": ok},
        "parameters": [
            {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
        ],
    })
}

fn component_schema(t: &ResourceType, version: &str) -> Value {
    let mut schema = t
        .crd
        .as_deref()
        .and_then(|crd| crd_schema(crd, version))
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": t.group, "version": version, "kind": t.kind}]);
    schema
}

/// `/openapi/v3/apis/<group>/<version>` (or `api/v1`).
pub fn group_version(registry: &Registry, group: &str, version: &str) -> Value {
    let types: Vec<_> = registry
        .all()
        .into_iter()
        .filter(|t| t.group == group && t.serves(version))
        .collect();
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for t in &types {
        paths.insert(object_path(t, version), operations(t, version));
        schemas.insert(schema_name(t, version), component_schema(t, version));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
