//! GET of one object and of collections (with selectors, limit/continue, Tables).

use std::sync::Arc;

use base64::Engine;
use hyper::Response;
use serde_json::{json, Value};

use super::context::Req;
use super::errors::ApiError;
use super::http::{self, Body};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::store::{ObjectKey, Stored};
use super::table;

pub fn get(req: &Req) -> Result<Response<Body>, ApiError> {
    let stored = req
        .api
        .store
        .get(&req.key(), req.namespace(), req.name())
        .ok_or_else(|| ApiError::not_found(&req.rt, req.name()))?;
    if http::wants_table(&req.headers) {
        let t = table::table(
            &req.rt,
            &req.path.version,
            &[&stored.value],
            req.query.get("includeObject"),
            stored.rv,
        );
        return Ok(http::json(200, &t));
    }
    Ok(req.object_response(200, &stored))
}

/// The selectors of a list, watch or deletecollection request.
pub fn selectors(req: &Req) -> Result<Selectors, ApiError> {
    let labels = LabelSelector::parse(req.query.get("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(req.query.get("fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok(Selectors { labels, fields })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: u64,
    ns: String,
    name: String,
}

fn decode_continue(token: &str) -> Result<Continue, ApiError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request("continue key is not valid"))
}

fn encode_continue(rv: u64, key: &ObjectKey) -> String {
    let token = Continue {
        rv,
        ns: key.0.clone(),
        name: key.1.clone(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&token).expect("serializes"))
}

pub fn list(req: &Req) -> Result<Response<Body>, ApiError> {
    let selectors = selectors(req)?;
    let (items, mut rv) = req
        .api
        .store
        .list(&req.key(), req.path.namespace.as_deref());
    let mut matching: Vec<Arc<Stored>> = items
        .into_iter()
        .filter(|i| selectors.matches(&i.value))
        .collect();
    if let Some(token) = req.query.get("continue") {
        let after = decode_continue(token)?;
        rv = after.rv;
        let key = (after.ns, after.name);
        matching.retain(|i| i.key() > key);
    }
    let limit = req
        .query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut next = None;
    if let Some(limit) = limit.filter(|l| matching.len() > *l) {
        let remaining = matching.len() - limit;
        matching.truncate(limit);
        next = Some((encode_continue(rv, &matching[limit - 1].key()), remaining));
    }
    if http::wants_table(&req.headers) {
        let values: Vec<&Value> = matching.iter().map(|s| &s.value).collect();
        let mut t = table::table(
            &req.rt,
            &req.path.version,
            &values,
            req.query.get("includeObject"),
            rv,
        );
        if let Some((token, _)) = &next {
            t["metadata"]["continue"] = json!(token);
        }
        return Ok(http::json(200, &t));
    }
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some((token, remaining)) = next {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(remaining);
    }
    let mut body = format!(
        r#"{{"kind":{},"apiVersion":{},"metadata":{},"items":["#,
        json!(req.rt.list_kind()),
        json!(req.api_version()),
        metadata
    )
    .into_bytes();
    for (i, item) in matching.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&req.encode(item));
    }
    body.extend_from_slice(b"]}");
    Ok(http::json_bytes(200, body))
}
