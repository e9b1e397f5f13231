//! What a request asks for: the route from its path, and its query parameters.

use std::collections::HashMap;

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`
    Resources {
        group: String,
        version: String,
    },
    /// `/openapi/v3`
    OpenApiRoot,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`
    OpenApiGroupVersion {
        group: String,
        version: String,
    },
    /// Objects of a resource.
    Object(ObjectPath),
    NotFound,
}

/// `/api(s)/.../[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPath {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// Legacy `/watch/` path prefix.
    pub watch: bool,
}

/// Parses a request path.
pub fn route(path: &str) -> Route {
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["api", version] => Route::Resources {
            group: String::new(),
            version: version.to_string(),
        },
        ["apis", group, version] => Route::Resources {
            group: group.to_string(),
            version: version.to_string(),
        },
        ["openapi", "v3"] => Route::OpenApiRoot,
        ["openapi", "v3", "api", version] => Route::OpenApiGroupVersion {
            group: String::new(),
            version: version.to_string(),
        },
        ["openapi", "v3", "apis", group, version] => Route::OpenApiGroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        },
        ["api", version, rest @ ..] => object_route("", version, rest),
        ["apis", group, version, rest @ ..] => object_route(group, version, rest),
        _ => Route::NotFound,
    }
}

fn object_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    // `namespaces/<ns>/<resource>...`, except `namespaces/<name>/status|finalize`, which
    // are subresources of the namespace itself.
    let (namespace, rest) = match rest {
        ["namespaces", ns, next, more @ ..]
            if !matches!(*next, "status" | "finalize") || !more.is_empty() =>
        {
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let object = |resource: &str, name: Option<&str>, sub: Option<&str>| {
        Route::Object(ObjectPath {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            namespace: namespace.clone(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
            watch,
        })
    };
    match rest {
        [resource] => object(resource, None, None),
        [resource, name] => object(resource, Some(name), None),
        [resource, name, sub] => object(resource, Some(name), Some(sub)),
        _ => Route::NotFound,
    }
}

/// Query parameters (last value wins).
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// `dryRun=All`
    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Route {
        Route::Object(ObjectPath {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
            watch: false,
        })
    }

    #[test]
    fn paths_route_like_the_api_server() {
        let cases = [
            ("/api", Route::CoreVersions),
            ("/apis", Route::Groups),
            (
                "/api/v1",
                Route::Resources {
                    group: "".into(),
                    version: "v1".into(),
                },
            ),
            (
                "/apis/apps/v1",
                Route::Resources {
                    group: "apps".into(),
                    version: "v1".into(),
                },
            ),
            ("/api/v1/nodes", obj("", "nodes", None, None, None)),
            (
                "/api/v1/nodes/n1/status",
                obj("", "nodes", None, Some("n1"), Some("status")),
            ),
            (
                "/api/v1/namespaces",
                obj("", "namespaces", None, None, None),
            ),
            (
                "/api/v1/namespaces/kube-system",
                obj("", "namespaces", None, Some("kube-system"), None),
            ),
            (
                "/api/v1/namespaces/ns1/status",
                obj("", "namespaces", None, Some("ns1"), Some("status")),
            ),
            (
                "/api/v1/namespaces/ns1/pods",
                obj("", "pods", Some("ns1"), None, None),
            ),
            (
                "/api/v1/namespaces/ns1/pods/p/status",
                obj("", "pods", Some("ns1"), Some("p"), Some("status")),
            ),
            (
                "/apis/apps/v1/namespaces/ns1/deployments/d",
                obj("apps", "deployments", Some("ns1"), Some("d"), None),
            ),
            (
                "/openapi/v3/apis/apps/v1",
                Route::OpenApiGroupVersion {
                    group: "apps".into(),
                    version: "v1".into(),
                },
            ),
            ("/nothing/here", Route::NotFound),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), want, "{path}");
        }
        match route("/api/v1/watch/namespaces/a/pods") {
            Route::Object(o) => assert!(o.watch && o.namespace.as_deref() == Some("a")),
            other => panic!("{other:?}"),
        }
    }
}
