//! The AdmissionReview `admission.k8s.io/v1` the server sends, the checks it makes on the
//! answer, and how a refusal is worded.

use serde_json::{json, Value};

use super::{AdmissionAttributes, AdmissionDenied};

/// What a webhook answered.
#[derive(Debug)]
pub(super) struct Verdict {
    pub allowed: bool,
    pub warnings: Vec<String>,
    /// `response.status`, a `metav1.Status`, when the webhook gave one.
    pub status: Option<Value>,
}

/// `admissionReviewVersions` must offer `v1`, the only version the emulator speaks.
pub(super) fn check_review_versions(hook: &Value) -> Result<(), String> {
    let versions: Vec<&str> = hook
        .get("admissionReviewVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if versions.contains(&"v1") {
        Ok(())
    } else {
        Err(format!(
            "webhook does not accept v1 AdmissionReview (admissionReviewVersions: {versions:?})"
        ))
    }
}

/// A fresh uid and the AdmissionReview body for `attrs`.
pub(super) fn request(attrs: &AdmissionAttributes) -> (String, Value) {
    let uid = uuid::Uuid::new_v4().to_string();
    let kind =
        json!({ "group": attrs.gvk.group, "version": attrs.gvk.version, "kind": attrs.gvk.kind });
    let resource = json!({ "group": attrs.gvr.group, "version": attrs.gvr.version, "resource": attrs.gvr.resource });
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": attrs.name,
        "operation": attrs.operation.as_str(),
        "userInfo": { "username": attrs.user.username, "groups": attrs.user.groups },
        "object": attrs.object,
        "oldObject": attrs.old_object,
        "dryRun": attrs.dry_run,
    });
    if let Some(sub) = attrs.sub_resource.as_deref().filter(|s| !s.is_empty()) {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    if let Some(namespace) = attrs.namespace.as_deref().filter(|s| !s.is_empty()) {
        request["namespace"] = json!(namespace);
    }
    if let Some(options) = attrs.operation.options_kind() {
        request["options"] = json!({ "apiVersion": "meta.k8s.io/v1", "kind": options });
    }
    let review = json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request });
    (uid, review)
}

/// The server's checks on an answer (`VerifyAdmissionResponse`).
pub(super) fn verify(uid: &str, review: &Value) -> Result<Verdict, String> {
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = review
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
        ));
    }
    let response = review
        .get("response")
        .filter(|r| r.is_object())
        .ok_or("webhook response was absent")?;
    let got = response
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    if response.get("patch").is_some_and(|p| !p.is_null())
        || response.get("patchType").is_some_and(|p| !p.is_null())
    {
        return Err("validating webhooks may not return patches".into());
    }
    let allowed = response
        .get("allowed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let warnings = response
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let status = response.get("status").filter(|s| s.is_object()).cloned();
    Ok(Verdict {
        allowed,
        warnings,
        status,
    })
}

/// The error for a refusal: the webhook's status code (below 400 becomes 400) and
/// `admission webhook "<name>" denied the request: <message | reason>`.
pub(super) fn denial(webhook: &str, verdict: &Verdict) -> AdmissionDenied {
    let status = verdict.status.as_ref();
    let text = |field: &str| {
        status
            .and_then(|s| s.get(field))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let denied_by = format!("admission webhook {webhook:?} denied the request");
    let message = match text("message").or_else(|| text("reason")) {
        Some(why) => format!("{denied_by}: {why}"),
        None => format!("{denied_by} without explanation"),
    };
    AdmissionDenied {
        code: u16::try_from(code).unwrap_or(400).clamp(400, 599),
        reason: text("reason").unwrap_or_default().to_string(),
        message,
        warnings: Vec::new(),
    }
}
