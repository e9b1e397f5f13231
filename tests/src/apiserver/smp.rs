//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds:
//! maps merge recursively, `null` deletes, lists with a merge key merge by it, scalar sets
//! union, other lists are replaced. Directives: `$patch: replace|delete|merge`,
//! `$retainKeys`, `$deleteFromPrimitiveList/<field>`; `$setElementOrder/<field>` is accepted
//! and ignored.

use serde_json::{Map, Value};

use super::lists::{has_key, item_key, ListType};

/// Tells the list type at a path (map keys leading to the list) given its items.
pub type ListTypes<'a> = dyn Fn(&[String], &[Value]) -> ListType + 'a;

/// Applies `patch` to `original`.
pub fn apply(original: &Value, patch: &Value, lists: &ListTypes<'_>) -> Result<Value, String> {
    let patch = patch
        .as_object()
        .ok_or("a strategic merge patch must be a JSON object")?;
    let empty = Map::new();
    let orig = original.as_object().unwrap_or(&empty);
    let merged = merge_map(orig, patch, &mut Vec::new(), lists)?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// `None` means the map itself is deleted (`$patch: delete`).
fn merge_map(
    orig: &Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
    lists: &ListTypes<'_>,
) -> Result<Option<Map<String, Value>>, String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => return Ok(Some(strip(patch))),
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other}")),
    }
    let mut out = orig.clone();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            delete_from_primitive_list(&mut out, field, value);
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        path.push(key.clone());
        let merged = merge_value(out.get(key), value, path, lists)?;
        path.pop();
        match merged {
            Some(v) => out.insert(key.clone(), v),
            None => out.remove(key),
        };
    }
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Some(out))
}

fn merge_value(
    orig: Option<&Value>,
    patch: &Value,
    path: &mut Vec<String>,
    lists: &ListTypes<'_>,
) -> Result<Option<Value>, String> {
    match patch {
        Value::Null => Ok(None),
        Value::Object(p) => {
            let empty = Map::new();
            let o = orig.and_then(Value::as_object).unwrap_or(&empty);
            Ok(merge_map(o, p, path, lists)?.map(Value::Object))
        }
        Value::Array(items) => {
            let empty = Vec::new();
            let o = orig.and_then(Value::as_array).unwrap_or(&empty);
            merge_list(o, items, path, lists).map(|l| Some(Value::Array(l)))
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

fn merge_list(
    orig: &[Value],
    patch: &[Value],
    path: &mut Vec<String>,
    lists: &ListTypes<'_>,
) -> Result<Vec<Value>, String> {
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_value)
            .collect());
    }
    let sample: Vec<Value> = orig.iter().chain(patch).cloned().collect();
    match lists(path, &sample) {
        ListType::Atomic => Ok(patch.iter().map(strip_value).collect()),
        ListType::Set => {
            let mut out = orig.to_vec();
            for item in patch {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(out)
        }
        ListType::Map(keys) => merge_keyed(orig, patch, &keys, path, lists),
    }
}

fn merge_keyed(
    orig: &[Value],
    patch: &[Value],
    keys: &[String],
    path: &mut Vec<String>,
    lists: &ListTypes<'_>,
) -> Result<Vec<Value>, String> {
    let mut out = orig.to_vec();
    for item in patch {
        let key = item_key(item, keys).ok_or_else(|| {
            format!(
                "map: {item} does not contain declared merge key: {}",
                keys.join(",")
            )
        })?;
        let found = out.iter().position(|o| has_key(o, &key));
        let deleting = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (found, deleting) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                let empty = Map::new();
                let o = out[i].as_object().unwrap_or(&empty).clone();
                let p = item.as_object().cloned().unwrap_or_default();
                match merge_map(&o, &p, path, lists)? {
                    Some(m) => out[i] = Value::Object(m),
                    None => {
                        out.remove(i);
                    }
                }
            }
            (None, false) => out.push(strip_value(item)),
        }
    }
    Ok(out)
}

fn delete_from_primitive_list(out: &mut Map<String, Value>, field: &str, values: &Value) {
    let remove = values.as_array().cloned().unwrap_or_default();
    if let Some(Value::Array(list)) = out.get_mut(field) {
        list.retain(|v| !remove.contains(v));
    }
}

/// The patch without directives, as an object to insert.
fn strip(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip_value(v)))
        .collect()
}

fn strip_value(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(strip(m)),
        Value::Array(items) => Value::Array(items.iter().map(strip_value).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lists(path: &[String], _: &[Value]) -> ListType {
        match path.last().map(String::as_str) {
            Some("containers" | "env") => ListType::Map(vec!["name".into()]),
            Some("conditions") => ListType::Map(vec!["type".into()]),
            Some("finalizers") => ListType::Set,
            _ => ListType::Atomic,
        }
    }

    #[test]
    fn strategic_merge_cases() {
        let pod = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {
                "containers": [
                    {"name": "c1", "image": "i1", "env": [{"name": "E", "value": "1"}]},
                    {"name": "c2", "image": "i2"}
                ],
                "tolerations": [{"key": "t1"}]
            },
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Other", "status": "True"}]}
        });
        let cases = [
            (
                "labels merge, null deletes",
                json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
                "/metadata/labels",
                json!({"b": "2", "c": "3"}),
            ),
            (
                "containers merge by name",
                json!({"spec": {"containers": [{"name": "c2", "image": "new"}]}}),
                "/spec/containers/1/image",
                json!("new"),
            ),
            (
                "untouched container kept",
                json!({"spec": {"containers": [{"name": "c2", "image": "new"}]}}),
                "/spec/containers/0/image",
                json!("i1"),
            ),
            (
                "new container appended",
                json!({"spec": {"containers": [{"name": "c3", "image": "i3"}]}}),
                "/spec/containers/2/name",
                json!("c3"),
            ),
            (
                "nested env merges",
                json!({"spec": {"containers": [{"name": "c1", "env": [{"name": "F", "value": "2"}]}]}}),
                "/spec/containers/0/env",
                json!([{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]),
            ),
            (
                "$patch delete removes an item",
                json!({"spec": {"containers": [{"name": "c1", "$patch": "delete"}]}}),
                "/spec/containers",
                json!([{"name": "c2", "image": "i2"}]),
            ),
            (
                "conditions merge by type",
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                "/status/conditions",
                json!([{"type": "Ready", "status": "True"}, {"type": "Other", "status": "True"}]),
            ),
            (
                "lists without key replace",
                json!({"spec": {"tolerations": [{"key": "t2"}]}}),
                "/spec/tolerations",
                json!([{"key": "t2"}]),
            ),
            (
                "scalar sets union",
                json!({"metadata": {"finalizers": ["y", "x"]}}),
                "/metadata/finalizers",
                json!(["x", "y"]),
            ),
            (
                "deleteFromPrimitiveList",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
                "/metadata/finalizers",
                json!([]),
            ),
            (
                "$patch replace on a map",
                json!({"metadata": {"labels": {"$patch": "replace", "z": "9"}}}),
                "/metadata/labels",
                json!({"z": "9"}),
            ),
            (
                "$retainKeys",
                json!({"spec": {"$retainKeys": ["containers"], "tolerations": null}}),
                "/spec/tolerations",
                Value::Null,
            ),
            (
                "$setElementOrder ignored",
                json!({"spec": {"$setElementOrder/containers": [{"name": "c2"}, {"name": "c1"}]}}),
                "/spec/containers/0/name",
                json!("c1"),
            ),
        ];
        for (name, patch, pointer, want) in cases {
            let out = apply(&pod, &patch, &lists).unwrap();
            assert_eq!(
                out.pointer(pointer).cloned().unwrap_or(Value::Null),
                want,
                "{name}: {out}"
            );
        }
    }

    #[test]
    fn keyed_items_need_their_key() {
        let err = apply(
            &json!({}),
            &json!({"spec": {"containers": [{"image": "x"}]}}),
            &lists,
        )
        .unwrap_err();
        assert!(err.contains("merge key"), "{err}");
    }
}
