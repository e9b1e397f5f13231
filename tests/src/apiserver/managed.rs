//! `metadata.managedFields`: who owns which fields. Server-side apply (with conflicts,
//! `force`, and removal of fields a manager stopped applying) and ownership recording for
//! ordinary updates.

use serde_json::{json, Map, Value};

use super::fieldset::{display_path, remove_at, value_at, FieldSet, Path, Scope};
use super::lists::{has_key, item_key, ListType};
use super::smp::ListTypes;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    fn parse(v: &Value) -> Option<Self> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
        Some(Self {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation")?,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time").unwrap_or_default(),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields: v
                .get("fieldsV1")
                .map(FieldSet::from_fields_v1)
                .unwrap_or_default(),
        })
    }

    fn to_value(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(sub) = &self.subresource {
            v["subresource"] = json!(sub);
        }
        v
    }

    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// How conflict messages name the manager.
    fn display(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

fn entries_of(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

/// Writes `entries` into `obj`, keeping `old`'s entries (and their times) when only the
/// times would differ, so a repeated write stays a no-op.
fn store_entries(obj: &mut Value, mut entries: Vec<Entry>, old: &[Entry]) {
    entries.retain(|e| !e.fields.is_empty());
    let same = entries.len() == old.len()
        && entries.iter().zip(old).all(|(a, b)| {
            Entry {
                time: b.time.clone(),
                ..a.clone()
            } == *b
        });
    let chosen = if same { old.to_vec() } else { entries };
    let meta = super::meta::metadata_mut(obj);
    if chosen.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(chosen.iter().map(Entry::to_value).collect()),
        );
    }
}

/// Who is writing.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub scope: Scope,
    pub now: &'a str,
}

/// Records an ordinary (non-apply) write: `writer` takes the fields it changed from their
/// previous owners; removed fields leave every set.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    writer: &Writer<'_>,
    lists: &ListTypes<'_>,
) {
    let previous = entries_of(old);
    let new_set = FieldSet::of_object(new, writer.scope, lists);
    let old_set = old
        .map(|o| FieldSet::of_object(o, writer.scope, lists))
        .unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| !old_set.contains(p) || leaf_differs(old, new, p, &new_set))
        .cloned()
        .fold(FieldSet::default(), |mut s, p| {
            s.insert(p);
            s
        });
    let removed = old_set.difference(&new_set);
    let lost = changed.union(&removed);
    let mut entries: Vec<Entry> = previous
        .iter()
        .map(|e| Entry {
            fields: e.fields.difference(&lost),
            ..e.clone()
        })
        .collect();
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.is(writer.manager, "Update", writer.subresource))
        {
            Some(e) => {
                e.fields = e.fields.union(&changed);
                e.time = writer.now.to_string();
                e.api_version = writer.api_version.to_string();
            }
            None => entries.push(Entry {
                manager: writer.manager.to_string(),
                operation: "Update".into(),
                api_version: writer.api_version.to_string(),
                time: writer.now.to_string(),
                subresource: writer.subresource.map(String::from),
                fields: changed,
            }),
        }
    }
    store_entries(new, entries, &previous);
}

/// Whether the value at a leaf path differs. Keyed items ("." members with descendants)
/// differ only by existing or not, which the caller checks.
fn leaf_differs(old: Option<&Value>, new: &Value, path: &Path, set: &FieldSet) -> bool {
    let is_item = path.last().is_some_and(|l| l.starts_with("k:"));
    if is_item
        && set
            .iter()
            .any(|p| p.len() > path.len() && p.starts_with(path))
    {
        return false;
    }
    old.and_then(|o| value_at(o, path)) != value_at(new, path)
}

/// Fields another manager owns with a different value than the applied one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub path: String,
}

/// The API server's conflict message.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager, only.path
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        lines.extend(
            conflicts
                .iter()
                .filter(|c| c.manager == m)
                .map(|c| format!("- {}", c.path)),
        );
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Server-side apply of `applied` by `writer` onto `live` (absent on create). Returns the
/// merged object with updated `managedFields`, or the conflicts when not forced.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    writer: &Writer<'_>,
    force: bool,
    lists: &ListTypes<'_>,
) -> Result<Value, Vec<Conflict>> {
    let applied = without_nulls(applied);
    let applied_set = FieldSet::of_object(&applied, writer.scope, lists);
    let previous = entries_of(live);
    let mut entries = previous.clone();
    let mine = |e: &Entry| e.is(writer.manager, "Apply", writer.subresource);

    let conflicts = find_conflicts(live, &applied, &applied_set, &entries, &mine);
    if !conflicts.is_empty() && !force {
        let mut out: Vec<Conflict> = conflicts
            .iter()
            .map(|(i, p)| Conflict {
                manager: entries[*i].display(),
                path: display_path(p),
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        return Err(out);
    }
    for (i, path) in &conflicts {
        entries[*i].fields.remove(path);
    }

    let previously_applied = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let owned_by_others = entries
        .iter()
        .filter(|e| !mine(e))
        .fold(FieldSet::default(), |acc, e| acc.union(&e.fields));
    let dropped = previously_applied
        .difference(&applied_set)
        .difference(&owned_by_others);

    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    strip_managed_fields(&mut merged);
    let dropped: Vec<&Path> = dropped.iter().collect();
    for path in dropped.into_iter().rev() {
        remove_at(&mut merged, path);
        prune_empty_parents(&mut merged, path, &owned_by_others);
    }
    merge_applied(&mut merged, &applied, writer.scope, lists);

    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) => {
            e.fields = applied_set;
            e.time = writer.now.to_string();
            e.api_version = writer.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: "Apply".into(),
            api_version: writer.api_version.to_string(),
            time: writer.now.to_string(),
            subresource: writer.subresource.map(String::from),
            fields: applied_set,
        }),
    }
    store_entries(&mut merged, entries, &previous);
    Ok(merged)
}

/// `(entry index, path)` of every shared field whose live value differs from the applied one.
fn find_conflicts(
    live: Option<&Value>,
    applied: &Value,
    applied_set: &FieldSet,
    entries: &[Entry],
    mine: &dyn Fn(&Entry) -> bool,
) -> Vec<(usize, Path)> {
    let Some(live) = live else { return Vec::new() };
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| !mine(e)) {
        for path in e.fields.intersection(applied_set).iter() {
            if leaf_differs(Some(live), applied, path, applied_set) {
                out.push((i, path.clone()));
            }
        }
    }
    out
}

fn strip_managed_fields(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
}

/// Removes maps left empty by a removal unless someone owns them.
fn prune_empty_parents(obj: &mut Value, path: &Path, owned: &FieldSet) {
    for len in (1..path.len()).rev() {
        let parent = &path[..len];
        let empty = value_at(obj, parent).is_some_and(|v| v.as_object().is_some_and(Map::is_empty));
        if !empty
            || owned.contains(&parent.to_vec())
            || !parent.last().is_some_and(|l| l.starts_with("f:"))
        {
            return;
        }
        remove_at(obj, parent);
    }
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Merges the applied configuration into `obj` within `scope`: maps recursively, keyed
/// lists by key, sets by union, everything else replaced.
fn merge_applied(obj: &mut Value, applied: &Value, scope: Scope, lists: &ListTypes<'_>) {
    let (Some(target), Some(source)) = (obj.as_object_mut(), applied.as_object()) else {
        return;
    };
    for (k, v) in source {
        let in_scope = match scope {
            Scope::All => true,
            Scope::NoStatus => k != "status",
            Scope::StatusOnly => k == "status" || k == "apiVersion" || k == "kind",
        };
        if !in_scope {
            continue;
        }
        let mut keys = vec![k.clone()];
        let slot = target.entry(k.clone()).or_insert(Value::Null);
        merge_value(slot, v, &mut keys, lists);
    }
}

fn merge_value(slot: &mut Value, applied: &Value, keys: &mut Vec<String>, lists: &ListTypes<'_>) {
    match applied {
        Value::Object(source) if slot.is_object() => {
            let target = slot.as_object_mut().expect("checked");
            for (k, v) in source {
                keys.push(k.clone());
                merge_value(
                    target.entry(k.clone()).or_insert(Value::Null),
                    v,
                    keys,
                    lists,
                );
                keys.pop();
            }
        }
        Value::Array(items) if slot.is_array() => {
            let current = slot.as_array_mut().expect("checked");
            let sample: Vec<Value> = current.iter().chain(items).cloned().collect();
            match lists(keys, &sample) {
                ListType::Set => {
                    for item in items {
                        if !current.contains(item) {
                            current.push(item.clone());
                        }
                    }
                }
                ListType::Map(key_fields)
                    if items.iter().all(|i| item_key(i, &key_fields).is_some()) =>
                {
                    for item in items {
                        let key = item_key(item, &key_fields).expect("checked above");
                        match current.iter_mut().find(|c| has_key(c, &key)) {
                            Some(existing) => merge_value(existing, item, keys, lists),
                            None => current.push(item.clone()),
                        }
                    }
                }
                _ => *slot = applied.clone(),
            }
        }
        other => *slot = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lists(path: &[String], _: &[Value]) -> ListType {
        match path.last().map(String::as_str) {
            Some("containers") => ListType::Map(vec!["name".into()]),
            _ => ListType::Atomic,
        }
    }

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            subresource: None,
            scope: Scope::NoStatus,
            now: "2024-01-01T00:00:00Z",
        }
    }

    fn managers(obj: &Value) -> Vec<String> {
        obj["metadata"]["managedFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        format!(
                            "{}/{}",
                            e["manager"].as_str().unwrap(),
                            e["operation"].as_str().unwrap()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn apply_owns_conflicts_forces_and_removes() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let first = apply(None, &cm, &writer("one"), false, &lists).unwrap();
        assert_eq!(managers(&first), ["one/Apply"]);

        // Same values: shared ownership, no conflict.
        let shared = apply(
            Some(&first),
            &json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
            &writer("two"),
            false,
            &lists,
        )
        .unwrap();
        assert_eq!(managers(&shared), ["one/Apply", "two/Apply"]);

        // Different value: conflict naming the field and the manager.
        let change = json!({"metadata": {"name": "c"}, "data": {"b": "9"}});
        let conflicts = apply(Some(&shared), &change, &writer("two"), false, &lists).unwrap_err();
        assert_eq!(
            conflicts,
            vec![Conflict {
                manager: "\"one\"".into(),
                path: ".data.b".into()
            }]
        );
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 1 conflict: conflict with \"one\": .data.b"
        );

        // Forced: two takes .data.b; it no longer applies .data.a but one still owns it.
        let forced = apply(Some(&shared), &change, &writer("two"), true, &lists).unwrap();
        assert_eq!(forced["data"], json!({"a": "1", "b": "9"}));

        // one stops applying .data.a and .data.b: a (owned only by one) goes, b stays (two owns it).
        let dropped = apply(
            Some(&forced),
            &json!({"metadata": {"name": "c", "labels": {"x": "y"}}}),
            &writer("one"),
            false,
            &lists,
        )
        .unwrap();
        assert_eq!(dropped["data"], json!({"b": "9"}));
        assert_eq!(dropped["metadata"]["labels"], json!({"x": "y"}));
    }

    #[test]
    fn repeated_apply_is_identical() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let first = apply(None, &cm, &writer("one"), false, &lists).unwrap();
        let later = Writer {
            now: "2030-01-01T00:00:00Z",
            ..writer("one")
        };
        assert_eq!(
            apply(Some(&first), &cm, &later, false, &lists).unwrap(),
            first
        );
    }

    #[test]
    fn updates_take_ownership_of_changed_fields() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let applied = apply(None, &cm, &writer("one"), false, &lists).unwrap();
        let mut updated = applied.clone();
        updated["data"]["a"] = json!("changed");
        record_update(Some(&applied), &mut updated, &writer("editor"), &lists);
        assert_eq!(managers(&updated), ["one/Apply", "editor/Update"]);
        let conflicts = apply(Some(&updated), &cm, &writer("one"), false, &lists).unwrap_err();
        assert_eq!(conflicts[0].manager, "\"editor\" using v1");

        let containers = json!({"spec": {"containers": [{"name": "a", "image": "1"}]}});
        let mut more = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}});
        let mut base = containers.clone();
        record_update(None, &mut base, &writer("one"), &lists);
        more["metadata"] = base["metadata"].clone();
        record_update(Some(&base), &mut more, &writer("two"), &lists);
        let two = &more["metadata"]["managedFields"][1]["fieldsV1"];
        assert_eq!(
            two,
            &json!({"f:spec": {"f:containers": {"k:{\"name\":\"b\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
    }
}
