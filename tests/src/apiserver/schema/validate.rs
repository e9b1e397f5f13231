//! The OpenAPI keywords of a structural schema, worded like the API server (kube-openapi's
//! messages mapped to `field.Error`s): type and nullable, int32/int64 format, enum,
//! minimum/maximum (exclusive), multipleOf, minLength/maxLength, pattern,
//! minItems/maxItems, list-type set/map uniqueness, required, min/maxProperties,
//! properties, additionalProperties and items.

use serde_json::{json, Number, Value};

use super::errors::{go_number, go_quote, FieldError, FieldErrorKind};
use super::{child_path, index_path, is_object_meta_key, key_path, map_values_schema};

/// Validates a whole (pruned, defaulted) object; its `metadata` is not the schema's business.
pub(super) fn validate_root(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    node(schema, obj, "", true, &mut errors);
    errors
}

fn node(schema: &Value, value: &Value, path: &str, root: bool, errors: &mut Vec<FieldError>) {
    if !type_ok(schema, value, path, errors) {
        return;
    }
    if value.is_null() {
        return;
    }
    enumeration(schema, value, path, errors);
    match value {
        Value::Number(n) => number(schema, n, path, errors),
        Value::String(s) => string(schema, s, path, errors),
        Value::Array(items) => array(schema, items, path, errors),
        Value::Object(map) => object(schema, map, path, root, errors),
        Value::Bool(_) | Value::Null => {}
    }
}

/// The JSON type of a value as kube-openapi names it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_whole(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_whole(n: &Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// Checks `type`, `nullable`, `x-kubernetes-int-or-string` and integer formats; false
/// when the value is of the wrong type (nothing else is checked then).
fn type_ok(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) -> bool {
    let actual = type_name(value);
    let expected = if super::flag(schema, "x-kubernetes-int-or-string") {
        Some("integer,string")
    } else {
        schema.get("type").and_then(Value::as_str)
    };
    let Some(expected) = expected else {
        return true;
    };
    let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
    let fits = match (expected, value) {
        (_, Value::Null) => nullable,
        ("integer,string", _) => matches!(actual, "integer" | "string"),
        ("number", Value::Number(_)) => true,
        (expected, _) => expected == actual,
    };
    if !fits {
        errors.push(type_error(path, expected, actual));
        return false;
    }
    integer_format_ok(schema, value, path, errors)
}

fn type_error(path: &str, expected: &str, actual: &str) -> FieldError {
    FieldError::new(
        path,
        FieldErrorKind::TypeInvalid,
        Some(json!(actual)),
        format!(
            "{path} in body must be of type {expected}: {}",
            go_quote(actual)
        ),
    )
}

/// `format: int32` / `int64` bounds of an integer.
fn integer_format_ok(
    schema: &Value,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> bool {
    let Value::Number(n) = value else { return true };
    let format = schema.get("format").and_then(Value::as_str);
    let fits = match format {
        Some("int32") => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        Some("int64") => {
            n.as_i64().is_some()
                || n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
        }
        _ => true,
    };
    if !fits {
        errors.push(type_error(
            path,
            format.unwrap_or_default(),
            if n.is_i64() { "int64" } else { "uint64" },
        ));
    }
    fits
}

fn enumeration(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.iter().any(|a| same_value(a, value)) {
        return;
    }
    let listed: Vec<String> = allowed
        .iter()
        .map(|a| {
            go_quote(
                &a.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| a.to_string()),
            )
        })
        .collect();
    errors.push(FieldError::new(
        path,
        FieldErrorKind::NotSupported,
        Some(value.clone()),
        format!("supported values: {}", listed.join(", ")),
    ));
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn number(schema: &Value, n: &Number, path: &str, errors: &mut Vec<FieldError>) {
    let Some(v) = n.as_f64() else { return };
    let bound = |name: &str| schema.get(name).and_then(Value::as_number);
    let exclusive = |name: &str| schema.get(name).and_then(Value::as_bool) == Some(true);
    let mut fail = |message: String| {
        errors.push(FieldError::new(
            path,
            FieldErrorKind::Invalid,
            Some(Value::Number(n.clone())),
            message,
        ))
    };
    if let Some(max) = bound("maximum") {
        let limit = max.as_f64().unwrap_or(f64::INFINITY);
        if exclusive("exclusiveMaximum") && v >= limit {
            fail(format!(
                "{path} in body should be less than {}",
                go_number(max)
            ));
        } else if v > limit {
            fail(format!(
                "{path} in body should be less than or equal to {}",
                go_number(max)
            ));
        }
    }
    if let Some(min) = bound("minimum") {
        let limit = min.as_f64().unwrap_or(f64::NEG_INFINITY);
        if exclusive("exclusiveMinimum") && v <= limit {
            fail(format!(
                "{path} in body should be greater than {}",
                go_number(min)
            ));
        } else if v < limit {
            fail(format!(
                "{path} in body should be greater than or equal to {}",
                go_number(min)
            ));
        }
    }
    if let Some(factor) = bound("multipleOf") {
        let f = factor.as_f64().unwrap_or(1.0);
        if f != 0.0 && (v / f).fract() != 0.0 {
            fail(format!(
                "{path} in body should be a multiple of {}",
                go_number(factor)
            ));
        }
    }
}

fn string(schema: &Value, s: &str, path: &str, errors: &mut Vec<FieldError>) {
    let chars = s.chars().count() as u64;
    let value = Some(Value::String(s.to_string()));
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if chars > max {
            let unit = if max == 1 { "byte" } else { "bytes" };
            errors.push(FieldError::new(
                path,
                FieldErrorKind::TooLong,
                value.clone(),
                format!("may not be more than {max} {unit}"),
            ));
        }
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if chars < min {
            let message = format!("{path} in body should be at least {min} chars long");
            errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                value.clone(),
                message,
            ));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => {
                let message = format!("{path} in body should match '{pattern}'");
                errors.push(FieldError::new(
                    path,
                    FieldErrorKind::Invalid,
                    value,
                    message,
                ));
            }
            Err(e) => errors.push(FieldError::new(
                path,
                FieldErrorKind::Internal,
                None,
                format!("the schema's pattern {pattern:?} does not compile: {e}; fix the CRD"),
            )),
        }
    }
}

fn array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    let len = items.len() as u64;
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
        if len > max {
            let message = format!("must have at most {max} items");
            errors.push(FieldError::new(
                path,
                FieldErrorKind::TooMany,
                Some(json!(len)),
                message,
            ));
        }
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
        if len < min {
            let message = format!("{path} in body should have at least {min} items");
            errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                Some(json!(len)),
                message,
            ));
        }
    }
    list_uniqueness(schema, items, path, errors);
    if let Some(items_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            node(items_schema, item, &index_path(path, i), false, errors);
        }
    }
}

/// `x-kubernetes-list-type: set` (unique items) and `map` (unique `x-kubernetes-list-map-keys`).
fn list_uniqueness(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    let identity = |item: &Value| -> Value {
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => {
                let keys = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array);
                let fields = keys.into_iter().flatten().filter_map(Value::as_str);
                Value::Object(
                    fields
                        .map(|k| (k.to_string(), item.get(k).cloned().unwrap_or(Value::Null)))
                        .collect(),
                )
            }
            _ => item.clone(),
        }
    };
    if !matches!(
        schema.get("x-kubernetes-list-type").and_then(Value::as_str),
        Some("set" | "map")
    ) {
        return;
    }
    let mut seen: Vec<Value> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = identity(item);
        if seen.contains(&id) {
            errors.push(FieldError::new(
                index_path(path, i),
                FieldErrorKind::Duplicate,
                Some(id),
                "",
            ));
        } else {
            seen.push(id);
        }
    }
}

fn object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    root: bool,
    errors: &mut Vec<FieldError>,
) {
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = required.as_str() {
            if !map.contains_key(name) && !is_object_meta_key(schema, root, name) {
                errors.push(FieldError::required(child_path(path, name)));
            }
        }
    }
    property_count(schema, map.len() as u64, path, errors);
    let properties = schema.get("properties").and_then(Value::as_object);
    let values_schema = map_values_schema(schema).filter(|s| s.is_object());
    for (key, child) in map {
        if is_object_meta_key(schema, root, key) {
            continue;
        }
        if let Some(property) = properties.and_then(|p| p.get(key)) {
            node(property, child, &child_path(path, key), false, errors);
        } else if let Some(values) = values_schema {
            node(values, child, &key_path(path, key), false, errors);
        }
    }
}

fn property_count(schema: &Value, count: u64, path: &str, errors: &mut Vec<FieldError>) {
    let value = Some(json!(count));
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
        if count > max {
            let message = format!("{path} in body should have at most {max} properties");
            errors.push(FieldError::new(
                path,
                FieldErrorKind::TooMany,
                value.clone(),
                message,
            ));
        }
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
        if count < min {
            let message = format!("{path} in body should have at least {min} properties");
            errors.push(FieldError::new(
                path,
                FieldErrorKind::Invalid,
                value,
                message,
            ));
        }
    }
}
