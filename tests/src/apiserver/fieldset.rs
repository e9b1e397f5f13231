//! Field sets as server-side apply tracks them (`FieldsV1`): paths of `f:<field>`,
//! `k:<key json>` (an item of a keyed list) and `v:<value json>` (a member of a set).

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::{Map, Value};

use super::lists::{has_key, item_key, ListType};
use super::smp::ListTypes;

/// One path, element by element (`["f:spec", "k:{\"name\":\"c\"}", "f:image"]`).
pub type Path = Vec<String>;

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole object.
    All,
    /// Everything but `status` (main resource with a status subresource).
    NoStatus,
    /// Only `status` (the status subresource).
    StatusOnly,
}

/// Metadata the server owns; never part of a field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// A set of owned field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

impl FieldSet {
    /// The fields an object sets within `scope`.
    pub fn of_object(obj: &Value, scope: Scope, lists: &ListTypes<'_>) -> Self {
        let mut out = BTreeSet::new();
        let Some(map) = obj.as_object() else {
            return Self(out);
        };
        for (key, value) in map {
            let in_scope = match scope {
                Scope::All => true,
                Scope::NoStatus => key != "status",
                Scope::StatusOnly => key == "status",
            };
            if !in_scope || matches!(key.as_str(), "apiVersion" | "kind") {
                continue;
            }
            if key == "metadata" {
                let Some(meta) = value.as_object() else {
                    continue;
                };
                for (mk, mv) in meta
                    .iter()
                    .filter(|(k, _)| !SERVER_METADATA.contains(&k.as_str()))
                {
                    let mut keys = vec!["metadata".to_string(), mk.clone()];
                    let mut path = vec!["f:metadata".to_string(), format!("f:{mk}")];
                    collect(mv, &mut keys, &mut path, &mut out, lists);
                }
                continue;
            }
            collect(
                value,
                &mut vec![key.clone()],
                &mut vec![format!("f:{key}")],
                &mut out,
                lists,
            );
        }
        Self(out)
    }

    pub fn from_fields_v1(value: &Value) -> Self {
        let mut out = BTreeSet::new();
        parse_tree(value, &mut Vec::new(), &mut out);
        Self(out)
    }

    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for (i, el) in path.iter().enumerate() {
                let child = node
                    .entry(el.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                let child = child.as_object_mut().expect("field trees are objects");
                if i + 1 == path.len() && self.has_descendants(path) {
                    child.insert(".".into(), Value::Object(Map::new()));
                }
                node = child;
            }
        }
        Value::Object(root)
    }

    fn has_descendants(&self, path: &Path) -> bool {
        self.0
            .range(path.clone()..)
            .nth(1)
            .is_some_and(|p| p.starts_with(path))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.0.contains(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    pub fn insert(&mut self, path: Path) {
        self.0.insert(path);
    }

    pub fn remove(&mut self, path: &Path) {
        self.0.remove(path);
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        Self(self.0.union(&other.0).cloned().collect())
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        Self(self.0.difference(&other.0).cloned().collect())
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        Self(self.0.intersection(&other.0).cloned().collect())
    }
}

fn collect(
    value: &Value,
    keys: &mut Vec<String>,
    path: &mut Path,
    out: &mut BTreeSet<Path>,
    lists: &ListTypes<'_>,
) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                keys.push(k.clone());
                path.push(format!("f:{k}"));
                collect(v, keys, path, out, lists);
                path.pop();
                keys.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match lists(keys, items) {
            ListType::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(format!("v:{item}"));
                    out.insert(p);
                }
            }
            ListType::Map(key_fields)
                if items.iter().all(|i| item_key(i, &key_fields).is_some()) =>
            {
                for item in items {
                    let key = item_key(item, &key_fields).expect("checked above");
                    path.push(format!("k:{}", Value::Object(key)));
                    out.insert(path.clone());
                    collect(item, keys, path, out, lists);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn parse_tree(value: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(map) = value.as_object() else { return };
    if map.is_empty() && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, v) in map {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        path.push(k.clone());
        parse_tree(v, path, out);
        path.pop();
    }
}

/// The value at `path` in `obj`.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, el| step(v, el))
}

fn step<'a>(v: &'a Value, el: &str) -> Option<&'a Value> {
    if let Some(field) = el.strip_prefix("f:") {
        return v.get(field);
    }
    let items = v.as_array()?;
    if let Some(key) = el.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items.iter().find(|i| has_key(i, &key));
    }
    let wanted: Value = serde_json::from_str(el.strip_prefix("v:")?).ok()?;
    items.iter().find(|i| **i == wanted)
}

/// Removes the field, keyed item or set member at `path` from `obj`.
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = obj;
    for el in parents {
        node = match step_mut(node, el) {
            Some(n) => n,
            None => return,
        };
    }
    if let Some(field) = last.strip_prefix("f:") {
        if let Some(m) = node.as_object_mut() {
            m.remove(field);
        }
    } else if let Some(items) = node.as_array_mut() {
        if let Some(key) = last
            .strip_prefix("k:")
            .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok())
        {
            items.retain(|i| !has_key(i, &key));
        } else if let Some(v) = last
            .strip_prefix("v:")
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
        {
            items.retain(|i| *i != v);
        }
    }
}

fn step_mut<'a>(v: &'a mut Value, el: &str) -> Option<&'a mut Value> {
    if let Some(field) = el.strip_prefix("f:") {
        return v.get_mut(field);
    }
    let items = v.as_array_mut()?;
    if let Some(key) = el.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items.iter_mut().find(|i| has_key(i, &key));
    }
    let wanted: Value = serde_json::from_str(el.strip_prefix("v:")?).ok()?;
    items.iter_mut().find(|i| **i == wanted)
}

/// `.spec.containers[name="c"].image`, as conflict messages print paths.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            let _ = write!(out, ".{f}");
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(out, "[{}]", parts.join(","));
        } else if let Some(v) = el.strip_prefix("v:") {
            let _ = write!(out, "[={v}]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lists(path: &[String], _: &[Value]) -> ListType {
        match path.last().map(String::as_str) {
            Some("containers") => ListType::Map(vec!["name".into()]),
            Some("finalizers") => ListType::Set,
            _ => ListType::Atomic,
        }
    }

    #[test]
    fn object_fields_round_trip_through_fields_v1() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"], "resourceVersion": "5"},
            "spec": {"containers": [{"name": "c", "image": "i"}], "tolerations": [{"key": "k"}], "empty": {}},
            "status": {"phase": "Running"}
        });
        let set = FieldSet::of_object(&obj, Scope::NoStatus, &lists);
        let v1 = set.to_fields_v1();
        assert_eq!(
            v1,
            json!({
                "f:metadata": {"f:labels": {"f:a": {}}, "f:finalizers": {"v:\"x\"": {}}},
                "f:spec": {
                    "f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}},
                    "f:empty": {},
                    "f:tolerations": {}
                }
            })
        );
        assert_eq!(FieldSet::from_fields_v1(&v1), set);
        let status = FieldSet::of_object(&obj, Scope::StatusOnly, &lists);
        assert_eq!(status.to_fields_v1(), json!({"f:status": {"f:phase": {}}}));
    }

    #[test]
    fn paths_navigate_and_print() {
        let mut obj = json!({"spec": {"containers": [{"name": "c", "image": "i"}, {"name": "d"}]}, "metadata": {"finalizers": ["x", "y"]}});
        let path: Path = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"c\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(value_at(&obj, &path), Some(&json!("i")));
        assert_eq!(display_path(&path), ".spec.containers[name=\"c\"].image");
        remove_at(&mut obj, &path[..3]);
        assert_eq!(obj["spec"]["containers"], json!([{"name": "d"}]));
        remove_at(
            &mut obj,
            &["f:metadata".into(), "f:finalizers".into(), "v:\"x\"".into()],
        );
        assert_eq!(obj["metadata"]["finalizers"], json!(["y"]));
    }
}
