//! Dispatches a request by path and method.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::api::{user_of, Api};
use super::context::Req;
use super::discovery;
use super::errors::ApiError;
use super::http::{self, Body};
use super::openapi;
use super::read;
use super::request::{self, ObjectPath, Query, Route};
use super::watch;
use super::write;

pub async fn handle(api: Arc<Api>, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let route = request::route(parts.uri.path());
    let query = Query::parse(parts.uri.query());
    tracing::debug!(method = %parts.method, uri = %parts.uri, "request");
    let result = match route {
        Route::Object(path) => object(api, parts, body, path, query).await,
        _ if parts.method != Method::GET => Err(ApiError::method_not_allowed()),
        other => document(&api, other, &parts.headers),
    };
    result.unwrap_or_else(|e| http::error(&e))
}

/// Discovery, OpenAPI, version and health documents.
fn document(
    api: &Api,
    route: Route,
    headers: &hyper::HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let registry = &api.registry;
    let doc = match route {
        Route::Health => return Ok(Response::new(http::full("ok"))),
        Route::Version => discovery::version(),
        Route::CoreVersions => {
            let host = headers
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            discovery::core_versions(host)
        }
        Route::Groups => discovery::groups(registry),
        Route::Group(g) => discovery::group(registry, &g).ok_or_else(ApiError::no_route)?,
        Route::Resources { group, version } => {
            discovery::resources(registry, &group, &version).ok_or_else(ApiError::no_route)?
        }
        Route::OpenApiRoot => openapi::root(registry),
        Route::OpenApiGroupVersion { group, version } => {
            discovery::resources(registry, &group, &version).ok_or_else(ApiError::no_route)?;
            openapi::group_version(registry, &group, &version)
        }
        Route::Object(_) | Route::NotFound => return Err(ApiError::no_route()),
    };
    Ok(http::json(200, &doc))
}

async fn object(
    api: Arc<Api>,
    parts: hyper::http::request::Parts,
    body: Incoming,
    path: ObjectPath,
    query: Query,
) -> Result<Response<Body>, ApiError> {
    let rt = api
        .registry
        .lookup(&path.group, &path.version, &path.resource)
        .ok_or_else(ApiError::no_route)?;
    let scope_ok = rt.namespaced || path.namespace.is_none();
    let sub_ok = match path.subresource.as_deref() {
        None => true,
        Some("status") => rt.status_subresource,
        Some(_) => false,
    };
    if !scope_ok || !sub_ok {
        return Err(ApiError::no_route());
    }
    let watching = path.watch || query.flag("watch");
    let req = Req {
        api,
        rt,
        user: user_of(&parts.headers),
        path,
        query,
        headers: parts.headers,
    };
    let named = req.path.name.is_some();
    let method = parts.method;
    // A namespaced object is only reachable under its namespace; collections may be listed,
    // watched or deleted across namespaces.
    let needs_namespace = req.rt.namespaced && req.path.namespace.is_none();
    if needs_namespace && (named || method == Method::POST) {
        return Err(ApiError::no_route());
    }
    match (method, named) {
        (Method::GET, _) if watching => watch::watch(&req),
        (Method::GET, true) => read::get(&req),
        (Method::GET, false) => read::list(&req),
        (Method::POST, false) => write::create(&req, &http::read_body(body).await?).await,
        (Method::PUT, true) => write::replace(&req, &http::read_body(body).await?).await,
        (Method::PATCH, true) => write::patch(&req, http::read_body(body).await?).await,
        (Method::DELETE, true) => write::delete(&req, &http::read_body(body).await?).await,
        (Method::DELETE, false) => {
            let selectors = read::selectors(&req)?;
            write::delete_collection(&req, &selectors, &http::read_body(body).await?).await
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
