//! Which webhooks a request goes to: `rules` (operations, apiGroups, apiVersions,
//! resources with `*` and `resource/subresource`, scope), `namespaceSelector` and
//! `objectSelector` (label selectors).

use serde_json::{Map, Value};

use super::AdmissionAttributes;

/// Whether `hook` wants this request; an error for a selector the server cannot evaluate.
pub(super) fn should_call(
    hook: &Value,
    attrs: &AdmissionAttributes,
    namespace_labels: &Map<String, Value>,
) -> Result<bool, String> {
    let rules = hook.get("rules").and_then(Value::as_array);
    if !rules
        .into_iter()
        .flatten()
        .any(|rule| rule_matches(rule, attrs))
    {
        return Ok(false);
    }
    Ok(
        namespace_matches(hook.get("namespaceSelector"), attrs, namespace_labels)?
            && object_matches(hook.get("objectSelector"), attrs)?,
    )
}

fn rule_matches(rule: &Value, attrs: &AdmissionAttributes) -> bool {
    let listed =
        |field: &str, value: &str| strings(rule, field).any(|entry| entry == "*" || entry == value);
    listed("operations", attrs.operation.as_str())
        && listed("apiGroups", &attrs.gvr.group)
        && listed("apiVersions", &attrs.gvr.version)
        && resource_matches(rule, &attrs.gvr.resource, attrs.sub_resource())
        && scope_matches(rule, attrs.namespace())
}

/// `pods` matches the resource only, `pods/status` one subresource, `pods/*` all of them,
/// `*` every resource (no subresources), `*/*` everything.
fn resource_matches(rule: &Value, resource: &str, sub_resource: &str) -> bool {
    strings(rule, "resources").any(|entry| {
        let (res, sub) = entry.split_once('/').unwrap_or((entry, ""));
        (res == "*" || res == resource) && (sub == "*" || sub == sub_resource)
    })
}

fn scope_matches(rule: &Value, namespace: &str) -> bool {
    match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => namespace.is_empty(),
        "Namespaced" => !namespace.is_empty(),
        _ => true,
    }
}

fn strings<'a>(obj: &'a Value, field: &str) -> impl Iterator<Item = &'a str> {
    obj.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Cluster-scoped requests (other than for namespaces) always match; a Namespace is
/// matched by its own labels; anything else by its namespace's labels.
fn namespace_matches(
    selector: Option<&Value>,
    attrs: &AdmissionAttributes,
    namespace_labels: &Map<String, Value>,
) -> Result<bool, String> {
    if attrs.gvr.group.is_empty() && attrs.gvr.resource == "namespaces" {
        return either_object_matches(selector, attrs);
    }
    if attrs.namespace().is_empty() {
        return Ok(true);
    }
    selector_matches(selector, namespace_labels)
}

/// Matches when the object or the old object matches (a missing one never does), as the
/// server evaluates `objectSelector`.
fn object_matches(selector: Option<&Value>, attrs: &AdmissionAttributes) -> Result<bool, String> {
    either_object_matches(selector, attrs)
}

fn either_object_matches(
    selector: Option<&Value>,
    attrs: &AdmissionAttributes,
) -> Result<bool, String> {
    if is_empty_selector(selector) {
        return Ok(true);
    }
    for object in [&attrs.object, &attrs.old_object].into_iter().flatten() {
        if selector_matches(selector, &labels_of(object))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `metadata.labels` of an object.
pub(super) fn labels_of(object: &Value) -> Map<String, Value> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The label every namespace carries: `kubernetes.io/metadata.name: <name>`.
pub(super) fn default_namespace_labels(namespace: &str) -> Map<String, Value> {
    let mut labels = Map::new();
    if !namespace.is_empty() {
        labels.insert(
            "kubernetes.io/metadata.name".into(),
            Value::String(namespace.into()),
        );
    }
    labels
}

fn is_empty_selector(selector: Option<&Value>) -> bool {
    match selector {
        None | Some(Value::Null) => true,
        Some(s) => {
            s.get("matchLabels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
                && s.get("matchExpressions")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
        }
    }
}

/// A `metav1.LabelSelector` against a label set: `matchLabels` and `matchExpressions`
/// (`In`, `NotIn`, `Exists`, `DoesNotExist`), all ANDed; empty matches everything.
pub(super) fn selector_matches(
    selector: Option<&Value>,
    labels: &Map<String, Value>,
) -> Result<bool, String> {
    let Some(selector) = selector.filter(|_| !is_empty_selector(selector)) else {
        return Ok(true);
    };
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    if let Some(wanted) = selector.get("matchLabels").and_then(Value::as_object) {
        if !wanted
            .iter()
            .all(|(key, value)| label(key) == value.as_str())
        {
            return Ok(false);
        }
    }
    for expression in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expression
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut values = strings(expression, "values");
        let present = label(key);
        let holds = match expression.get("operator").and_then(Value::as_str) {
            Some("In") => present.is_some_and(|v| values.any(|w| w == v)),
            Some("NotIn") => present.is_none_or(|v| !values.any(|w| w == v)),
            Some("Exists") => present.is_some(),
            Some("DoesNotExist") => present.is_none(),
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}
