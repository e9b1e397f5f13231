//! Create, update, patch and delete: the write pipeline
//! (prepare -> schema -> field ownership -> admission -> store -> follow-ups).

use hyper::Response;
use serde_json::{json, Value};

use super::admission::Operation;
use super::api::NAMESPACE_KEY;
use super::context::Req;
use super::errors::ApiError;
use super::gc;
use super::http::{self, with_warnings, Body};
use super::managed::{self, conflict_message, Conflict};
use super::meta;
use super::patch;
use super::selectors::Selectors;
use super::store::StoreError;
use super::strategy;

/// Attempts of an update that lost a race with another writer.
const RETRIES: usize = 32;

/// What an update does to the current object.
#[derive(Debug, Clone)]
pub enum Change {
    /// PUT: the body replaces the object.
    Replace(Value),
    /// PATCH of a media type other than apply.
    Patch { media: String, body: bytes::Bytes },
    /// Server-side apply.
    Apply { applied: Value, force: bool },
}

/// POST to a collection.
pub async fn create(req: &Req, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let mut obj = http::decode_object(body, &http::content_type(&req.headers))?;
    let generated = meta::name(&obj).is_empty();
    let now = meta::now_rfc3339();
    strategy::prepare_create(&req.rt, &req.path, &mut obj, &now)?;
    let warnings = req.validate_custom(&mut obj, None)?;
    let (manager, api_version) = (req.manager(), req.api_version());
    managed::record_update(
        None,
        &mut obj,
        &req.writer(&manager, &api_version, &now),
        &req.lists(),
    );
    store_new(req, obj, warnings, generated).await
}

/// Admission, then the store, for a new object.
async fn store_new(
    req: &Req,
    mut obj: Value,
    mut warnings: Vec<String>,
    generated: bool,
) -> Result<Response<Body>, ApiError> {
    ensure_namespace(req)?;
    warnings.extend(req.admit(Operation::Create, Some(&obj), None).await?);
    if req.dry_run() {
        return Ok(with_warnings(http::json(201, &obj), &warnings));
    }
    for _ in 0..RETRIES {
        match req.api.store.create(&req.key(), obj.clone()) {
            Ok(stored) => {
                gc::after_write(&req.api, &req.rt, &stored);
                return Ok(with_warnings(req.object_response(201, &stored), &warnings));
            }
            Err(StoreError::AlreadyExists) if generated => {
                let prefix = meta::meta_str(&obj, "generateName")
                    .unwrap_or("")
                    .to_string();
                meta::metadata_mut(&mut obj)
                    .insert("name".into(), json!(meta::generated_name(&prefix)));
            }
            Err(StoreError::AlreadyExists) => {
                return Err(ApiError::already_exists(&req.rt, meta::name(&obj)))
            }
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
    }
    Err(ApiError::already_exists(&req.rt, meta::name(&obj)))
}

/// Namespaced objects need their namespace.
fn ensure_namespace(req: &Req) -> Result<(), ApiError> {
    if !req.rt.namespaced
        || req
            .api
            .store
            .get(NAMESPACE_KEY, "", req.namespace())
            .is_some()
    {
        return Ok(());
    }
    let ns_type = req
        .api
        .registry
        .by_key(NAMESPACE_KEY)
        .expect("namespaces are built in");
    Err(ApiError::not_found(&ns_type, req.namespace()))
}

/// PUT of an object or of its status.
pub async fn replace(req: &Req, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let obj = http::decode_object(body, &http::content_type(&req.headers))?;
    check_url_name(req, &obj)?;
    if req.rt.is_custom() && rv_of(&obj)?.is_none() {
        let err = super::schema::FieldError::new(
            "metadata.resourceVersion",
            super::schema::FieldErrorKind::Invalid,
            Some(json!(0)),
            "must be specified for an update",
        );
        return Err(ApiError::invalid_field(&req.rt, req.name(), err));
    }
    update(req, Change::Replace(obj)).await
}

/// PATCH of an object or of its status, of any supported media type.
pub async fn patch(req: &Req, body: bytes::Bytes) -> Result<Response<Body>, ApiError> {
    let media = http::content_type(&req.headers);
    if media != patch::APPLY {
        patch::check_media(&req.rt, &media)?;
        return update(req, Change::Patch { media, body }).await;
    }
    if req.query.get("fieldManager").is_none() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let applied = http::decode_object(&body, "yaml")?;
    check_url_name(req, &applied)?;
    let force = req.query.flag("force");
    update(req, Change::Apply { applied, force }).await
}

fn check_url_name(req: &Req, obj: &Value) -> Result<(), ApiError> {
    let name = meta::name(obj);
    if name.is_empty() || name == req.name() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "the name of the object ({name}) does not match the name on the URL ({})",
        req.name()
    )))
}

fn rv_of(obj: &Value) -> Result<Option<u64>, ApiError> {
    meta::resource_version(obj)
        .map_err(|rv| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))
}

fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager), "field": c.path}))
        .collect();
    let mut err = ApiError::new(409, "Conflict", conflict_message(conflicts));
    err.details = Some(json!({"causes": causes}));
    err
}

/// Read, change, write; retried when another writer got in between, unless the client
/// pinned a resourceVersion.
async fn update(req: &Req, change: Change) -> Result<Response<Body>, ApiError> {
    for _ in 0..RETRIES {
        let Some(current) = req.api.store.get(&req.key(), req.namespace(), req.name()) else {
            return match change {
                Change::Apply { applied, force } => apply_create(req, applied, force).await,
                _ => Err(ApiError::not_found(&req.rt, req.name())),
            };
        };
        let now = meta::now_rfc3339();
        let (manager, api_version) = (req.manager(), req.api_version());
        let writer = req.writer(&manager, &api_version, &now);
        let lists = req.lists();
        let (mut new, pinned) = match &change {
            Change::Replace(obj) => (obj.clone(), rv_of(obj)?.is_some()),
            Change::Patch { media, body } => {
                (patch::patched(req, media, &current.value, body)?, false)
            }
            Change::Apply { applied, force } => {
                let merged = managed::apply(Some(&current.value), applied, &writer, *force, &lists)
                    .map_err(|c| conflict_error(&c))?;
                (merged, rv_of(applied)?.is_some())
            }
        };
        if rv_of(&new)?.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::conflict(&req.rt, req.name()));
        }
        strategy::prepare_update(
            &req.rt,
            &req.path.version,
            &current.value,
            &mut new,
            req.subresource(),
            &now,
        )?;
        let mut warnings = req.validate_custom(&mut new, Some(&current.value))?;
        if !matches!(change, Change::Apply { .. }) {
            managed::record_update(Some(&current.value), &mut new, &writer, &lists);
        }
        if strategy::is_noop(&current.value, &new) {
            return Ok(with_warnings(req.object_response(200, &current), &warnings));
        }
        warnings.extend(
            req.admit(Operation::Update, Some(&new), Some(&current.value))
                .await?,
        );
        if req.dry_run() {
            meta::metadata_mut(&mut new)
                .insert("resourceVersion".into(), json!(current.rv.to_string()));
            return Ok(with_warnings(http::json(200, &new), &warnings));
        }
        match req.api.store.update(&req.key(), new, current.rv) {
            Ok(stored) => {
                gc::after_write(&req.api, &req.rt, &stored);
                return Ok(with_warnings(req.object_response(200, &stored), &warnings));
            }
            Err(StoreError::Conflict { .. }) if pinned => {
                return Err(ApiError::conflict(&req.rt, req.name()))
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound) => continue,
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
    }
    Err(ApiError::conflict_with(
        &req.rt,
        req.name(),
        "too many concurrent writers; please try again",
    ))
}

/// Server-side apply of an object that does not exist yet.
async fn apply_create(req: &Req, applied: Value, force: bool) -> Result<Response<Body>, ApiError> {
    if req.subresource().is_some() {
        return Err(ApiError::not_found(&req.rt, req.name()));
    }
    let now = meta::now_rfc3339();
    let (manager, api_version) = (req.manager(), req.api_version());
    let writer = req.writer(&manager, &api_version, &now);
    let mut obj = managed::apply(None, &applied, &writer, force, &req.lists())
        .map_err(|c| conflict_error(&c))?;
    meta::metadata_mut(&mut obj).insert("name".into(), json!(req.name()));
    strategy::prepare_create(&req.rt, &req.path, &mut obj, &now)?;
    let warnings = req.validate_custom(&mut obj, None)?;
    store_new(req, obj, warnings, false).await
}

/// DELETE of one object.
pub async fn delete(req: &Req, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("decoding DeleteOptions: {e}")))?
    };
    let propagation = options
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(req.query.get("propagationPolicy"))
        .unwrap_or("Background")
        .to_string();
    let dry_run = req.dry_run()
        || options["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    for _ in 0..RETRIES {
        let current = req
            .api
            .store
            .get(&req.key(), req.namespace(), req.name())
            .ok_or_else(|| ApiError::not_found(&req.rt, req.name()))?;
        check_preconditions(req, &options, &current.value)?;
        let warnings = req
            .admit(Operation::Delete, None, Some(&current.value))
            .await?;
        if dry_run {
            return Ok(with_warnings(req.object_response(200, &current), &warnings));
        }
        match req
            .api
            .store
            .delete(&req.key(), req.namespace(), req.name(), Some(current.rv))
        {
            Ok(deleted) => {
                gc::after_delete(&req.api, &req.rt, &deleted, &propagation);
                return Ok(with_warnings(req.object_response(200, &deleted), &warnings));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound) => return Err(ApiError::not_found(&req.rt, req.name())),
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
    }
    Err(ApiError::conflict_with(
        &req.rt,
        req.name(),
        "too many concurrent writers; please try again",
    ))
}

fn check_preconditions(req: &Req, options: &Value, current: &Value) -> Result<(), ApiError> {
    let pre = &options["preconditions"];
    if let Some(uid) = pre.get("uid").and_then(Value::as_str) {
        if uid != meta::uid(current) {
            let why = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta::uid(current)
            );
            return Err(ApiError::conflict_with(&req.rt, req.name(), &why));
        }
    }
    if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str) {
        let actual = meta::meta_str(current, "resourceVersion").unwrap_or("");
        if rv != actual {
            let why = format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
            );
            return Err(ApiError::conflict_with(&req.rt, req.name(), &why));
        }
    }
    Ok(())
}

/// DELETE of a collection (with selectors): deletes each match, returns them as a list.
pub async fn delete_collection(
    req: &Req,
    selectors: &Selectors,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let (items, rv) = req
        .api
        .store
        .list(&req.key(), req.path.namespace.as_deref());
    let mut deleted = Vec::new();
    for item in items.iter().filter(|i| selectors.matches(&i.value)) {
        let mut one = req.clone();
        one.path.namespace = meta::namespace(&item.value).map(String::from);
        one.path.name = Some(meta::name(&item.value).to_string());
        match delete(&one, body).await {
            Ok(_) => deleted.push(item.value.clone()),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": req.rt.list_kind(),
        "apiVersion": req.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": deleted,
    });
    Ok(http::json(200, &list))
}
