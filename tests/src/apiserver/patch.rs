//! PATCH media types: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge
//! patch (built-in kinds only, as on a real server) and apply (handled by `managed`).

use serde_json::Value;

use super::context::Req;
use super::errors::ApiError;
use super::registry::ResourceType;
use super::smp;

pub const APPLY: &str = "application/apply-patch+yaml";
const MERGE: &str = "application/merge-patch+json";
const JSON: &str = "application/json-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";

/// Refuses media types the resource does not accept (415).
pub fn check_media(rt: &ResourceType, media: &str) -> Result<(), ApiError> {
    let ok = matches!(media, MERGE | JSON | APPLY) || (media == STRATEGIC && !rt.is_custom());
    if ok {
        return Ok(());
    }
    let accepted: &[&str] = if rt.is_custom() {
        &[JSON, MERGE, APPLY]
    } else {
        &[JSON, MERGE, APPLY, STRATEGIC]
    };
    Err(ApiError::unsupported_media_type(accepted))
}

/// The current object with the patch applied.
pub fn patched(req: &Req, media: &str, current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match media {
        MERGE => {
            let patch: Value = parse(body)?;
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a JSON merge patch must be a JSON object",
                ));
            }
            json_patch::merge(&mut doc, &patch);
        }
        JSON => {
            let ops: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        STRATEGIC => {
            let patch: Value = parse(body)?;
            doc = smp::apply(current, &patch, &req.lists()).map_err(ApiError::bad_request)?;
        }
        other => {
            return Err(ApiError::internal(format!(
                "patch type {other} reached the patcher"
            )))
        }
    }
    if !doc.is_object() {
        return Err(ApiError::bad_request("the patch did not produce an object"));
    }
    Ok(doc)
}

fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}
