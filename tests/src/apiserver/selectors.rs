//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field selectors
//! (`=`, `==`, `!=` on dotted paths such as `metadata.name` or `spec.nodeName`).

use serde_json::Value;

use super::meta;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelRequirement {
    key: String,
    op: LabelOp,
}

/// A parsed `labelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelRequirement>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        split_top_level(text)
            .into_iter()
            .map(|r| parse_label_requirement(r.trim()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = meta::labels(obj);
        self.0.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match (&r.op, value) {
                (LabelOp::Exists, v) => v.is_some(),
                (LabelOp::DoesNotExist, v) => v.is_none(),
                (LabelOp::In(vals), Some(v)) => vals.iter().any(|x| x == v),
                (LabelOp::In(_), None) => false,
                (LabelOp::NotIn(vals), Some(v)) => !vals.iter().any(|x| x == v),
                (LabelOp::NotIn(_), None) => true,
            }
        })
    }
}

/// Splits on commas outside parentheses; empty text is no requirement.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

fn parse_label_requirement(text: &str) -> Result<LabelRequirement, String> {
    let invalid = || {
        format!("unable to parse requirement: found '{text}', expected: key, !key, key=value, key!=value, key in (values) or key notin (values)")
    };
    if let Some(key) = text.strip_prefix('!') {
        return Ok(LabelRequirement {
            key: valid_key(key.trim()).ok_or_else(invalid)?,
            op: LabelOp::DoesNotExist,
        });
    }
    for (sep, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = text.split_once(sep) {
            let key = valid_key(k.trim()).ok_or_else(invalid)?;
            let values = vec![v.trim().to_string()];
            let op = if negate {
                LabelOp::NotIn(values)
            } else {
                LabelOp::In(values)
            };
            return Ok(LabelRequirement { key, op });
        }
    }
    let words: Vec<&str> = text.splitn(2, char::is_whitespace).collect();
    match words.as_slice() {
        [key] => Ok(LabelRequirement {
            key: valid_key(key).ok_or_else(invalid)?,
            op: LabelOp::Exists,
        }),
        [key, rest] => {
            let rest = rest.trim();
            let (negate, list) = if let Some(l) = rest.strip_prefix("notin") {
                (true, l)
            } else if let Some(l) = rest.strip_prefix("in") {
                (false, l)
            } else {
                return Err(invalid());
            };
            let inner = list
                .trim()
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(invalid)?;
            let values: Vec<String> = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            let key = valid_key(key).ok_or_else(invalid)?;
            Ok(LabelRequirement {
                key,
                op: if negate {
                    LabelOp::NotIn(values)
                } else {
                    LabelOp::In(values)
                },
            })
        }
        _ => Err(invalid()),
    }
}

fn valid_key(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| key.to_string())
}

/// A parsed `fieldSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ));
            };
            terms.push((field.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|(field, equal, value)| (field_value(obj, field) == *value) == *equal)
    }

    /// The name an exact `metadata.name=` term pins, if any.
    pub fn exact_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, eq, _)| f == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }
}

fn field_value(obj: &Value, path: &str) -> String {
    let found = path.split('.').try_fold(obj, |v, part| v.get(part));
    match found {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Both selectors of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web,db)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier=back", false),
            ("app in (db),tier", false),
        ];
        for (selector, want) in cases {
            assert_eq!(
                LabelSelector::parse(selector).unwrap().matches(&obj),
                want,
                "{selector}"
            );
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let cases = [
            ("metadata.name=p", true),
            ("metadata.name==q", false),
            ("metadata.namespace=ns,spec.nodeName=n1", true),
            ("spec.nodeName!=n1", false),
            ("status.phase!=Succeeded", true),
            ("spec.missing=", true),
        ];
        for (selector, want) in cases {
            assert_eq!(
                FieldSelector::parse(selector).unwrap().matches(&obj),
                want,
                "{selector}"
            );
        }
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
