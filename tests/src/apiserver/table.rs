//! `meta.k8s.io/v1` Tables for kubectl's server-side printing: Name, a few built-in
//! columns, a CRD's `additionalPrinterColumns`, Age.

use serde_json::{json, Value};

use super::meta;
use super::registry::ResourceType;

struct Column {
    name: String,
    kind: String,
    format: String,
    priority: i64,
    json_path: String,
}

fn column(name: &str, kind: &str, format: &str, json_path: &str) -> Column {
    Column {
        name: name.into(),
        kind: kind.into(),
        format: format.into(),
        priority: 0,
        json_path: json_path.into(),
    }
}

fn columns(rt: &ResourceType, version: &str) -> Vec<Column> {
    let mut cols = vec![column("Name", "string", "name", ".metadata.name")];
    if let Some(crd) = &rt.crd {
        let printer = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|vs| vs.iter().find(|v| v["name"] == version))
            .and_then(|v| v.get("additionalPrinterColumns"))
            .and_then(Value::as_array);
        match printer {
            Some(list) => cols.extend(list.iter().map(|c| Column {
                name: c["name"].as_str().unwrap_or("").into(),
                kind: c["type"].as_str().unwrap_or("string").into(),
                format: c["format"].as_str().unwrap_or("").into(),
                priority: c["priority"].as_i64().unwrap_or(0),
                json_path: c["jsonPath"].as_str().unwrap_or("").into(),
            })),
            None => cols.push(column("Age", "date", "", ".metadata.creationTimestamp")),
        }
        return cols;
    }
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "nodes") => cols.extend([
            column("Status", "string", "", "#node-status"),
            column("Roles", "string", "", "#node-roles"),
            column("Age", "date", "", ".metadata.creationTimestamp"),
            column("Version", "string", "", ".status.nodeInfo.kubeletVersion"),
        ]),
        ("", "pods") => cols.extend([
            column("Status", "string", "", ".status.phase"),
            column("Node", "string", "", ".spec.nodeName"),
            column("Age", "date", "", ".metadata.creationTimestamp"),
        ]),
        ("", "namespaces") => cols.extend([
            column("Status", "string", "", ".status.phase"),
            column("Age", "date", "", ".metadata.creationTimestamp"),
        ]),
        _ => cols.push(column("Age", "date", "", ".metadata.creationTimestamp")),
    }
    cols
}

/// The Table of `objects`; `include` is the `includeObject` parameter.
pub fn table(
    rt: &ResourceType,
    version: &str,
    objects: &[&Value],
    include: Option<&str>,
    rv: u64,
) -> Value {
    let cols = columns(rt, version);
    let now = meta::now_seconds();
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| json!({"name": c.name, "type": if c.kind == "date" { "string" } else { &c.kind }, "format": c.format, "description": "", "priority": c.priority}))
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let cells: Vec<Value> = cols.iter().map(|c| cell(c, obj, now)).collect();
            let mut row = json!({"cells": cells});
            match include.unwrap_or("Metadata") {
                "None" => {}
                "Object" => row["object"] = (*obj).clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn cell(c: &Column, obj: &Value, now: i64) -> Value {
    match c.json_path.as_str() {
        "#node-status" => {
            let ready = first(obj, ".status.conditions[?(@.type==\"Ready\")].status");
            json!(if ready == Some(json!("True")) {
                "Ready"
            } else {
                "NotReady"
            })
        }
        "#node-roles" => {
            let roles: Vec<&str> = meta::labels(obj)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            json!(if roles.is_empty() {
                "<none>".to_string()
            } else {
                roles.join(",")
            })
        }
        path => match (first(obj, path), c.kind.as_str()) {
            (Some(Value::String(t)), "date") => {
                json!(meta::parse_rfc3339(&t)
                    .map(|s| meta::human_duration(now - s))
                    .unwrap_or(t))
            }
            (Some(v), _) => v,
            (None, _) => Value::Null,
        },
    }
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `[0]`, `[*]`,
/// `[?(@.field=="value")]`. Returns the first match.
pub fn first(obj: &Value, path: &str) -> Option<Value> {
    let mut current: Vec<&Value> = vec![obj];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            current = current.into_iter().filter_map(|v| v.get(field)).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let selector = &r[..end];
            current = current
                .into_iter()
                .flat_map(|v| select(v, selector))
                .collect();
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    current.first().map(|v| (*v).clone())
}

fn select<'a>(v: &'a Value, selector: &str) -> Vec<&'a Value> {
    let Some(items) = v.as_array() else {
        return Vec::new();
    };
    if selector == "*" {
        return items.iter().collect();
    }
    if let Ok(i) = selector.parse::<usize>() {
        return items.get(i).into_iter().collect();
    }
    let Some(filter) = selector
        .strip_prefix("?(@.")
        .and_then(|f| f.strip_suffix(')'))
    else {
        return Vec::new();
    };
    let Some((field, want)) = filter.split_once("==") else {
        return Vec::new();
    };
    let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
    items
        .iter()
        .filter(|i| {
            i.pointer(&format!("/{}", field.trim().replace('.', "/")))
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| x.to_string())
                        == want
                })
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let obj = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}, "spec": {"list": [1, 2]}});
        let cases = [
            (
                ".status.conditions[?(@.type==\"Ready\")].status",
                Some(json!("True")),
            ),
            (".spec.list[1]", Some(json!(2))),
            (".spec.list[*]", Some(json!(1))),
            (".spec.missing", None),
        ];
        for (path, want) in cases {
            assert_eq!(first(&obj, path), want, "{path}");
        }
    }
}
