//! Kubernetes label selectors (`matchLabels` + `matchExpressions`), as `spec.nodeSelector` uses
//! them: compiled and checked once, then matched against every node's labels.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// A checked label selector. No selector, or an empty one, selects every node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSelector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    In { key: String, values: Vec<String> },
    NotIn { key: String, values: Vec<String> },
    Exists { key: String },
    DoesNotExist { key: String },
}

/// Why a selector was refused (Kubernetes refuses the same selectors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("matchExpressions[{index}]: unknown operator {operator:?}; use In, NotIn, Exists or DoesNotExist")]
    UnknownOperator { index: usize, operator: String },
    #[error("matchExpressions[{index}]: operator {operator} needs at least one value")]
    MissingValues { index: usize, operator: String },
    #[error("matchExpressions[{index}]: operator {operator} takes no values; remove them")]
    UnexpectedValues { index: usize, operator: String },
}

impl NodeSelector {
    /// Checks `selector`; `None` selects every node.
    pub fn compile(selector: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(selector) = selector else {
            return Ok(Self::default());
        };
        let labels = selector.match_labels.iter().flatten();
        let mut requirements: Vec<Requirement> = labels
            .map(|(key, value)| Requirement::In {
                key: key.clone(),
                values: vec![value.clone()],
            })
            .collect();
        let expressions = selector.match_expressions.iter().flatten();
        for (index, expression) in expressions.enumerate() {
            requirements.push(Requirement::compile(index, expression)?);
        }
        Ok(Self { requirements })
    }

    /// True when `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    fn compile(index: usize, expression: &LabelSelectorRequirement) -> Result<Self, SelectorError> {
        let key = expression.key.clone();
        let values = expression.values.clone().unwrap_or_default();
        let operator = expression.operator.as_str();
        let needs_values = matches!(operator, "In" | "NotIn");
        if needs_values && values.is_empty() {
            return Err(SelectorError::MissingValues {
                index,
                operator: operator.to_owned(),
            });
        }
        if !needs_values && !values.is_empty() && matches!(operator, "Exists" | "DoesNotExist") {
            return Err(SelectorError::UnexpectedValues {
                index,
                operator: operator.to_owned(),
            });
        }
        match operator {
            "In" => Ok(Self::In { key, values }),
            "NotIn" => Ok(Self::NotIn { key, values }),
            "Exists" => Ok(Self::Exists { key }),
            "DoesNotExist" => Ok(Self::DoesNotExist { key }),
            _ => Err(SelectorError::UnknownOperator {
                index,
                operator: operator.to_owned(),
            }),
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::In { key, values } => labels.get(key).is_some_and(|v| values.contains(v)),
            Self::NotIn { key, values } => labels.get(key).is_none_or(|v| !values.contains(v)),
            Self::Exists { key } => labels.contains_key(key),
            Self::DoesNotExist { key } => !labels.contains_key(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn selector(
        match_labels: &[(&str, &str)],
        expressions: Vec<LabelSelectorRequirement>,
    ) -> LabelSelector {
        LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!expressions.is_empty()).then_some(expressions),
        }
    }

    /// (name, selector, node labels, selected)
    type Row<'a> = (
        &'a str,
        Option<LabelSelector>,
        &'a [(&'a str, &'a str)],
        bool,
    );

    #[test]
    fn matches_like_kubernetes() {
        let zone_a = [("zone", "a"), ("tier", "web")];
        let zone_b = [("zone", "b")];
        let rows: Vec<Row> = vec![
            ("no selector", None, &zone_a, true),
            ("empty selector", Some(selector(&[], vec![])), &zone_b, true),
            (
                "matchLabels hit",
                Some(selector(&[("zone", "a")], vec![])),
                &zone_a,
                true,
            ),
            (
                "matchLabels miss",
                Some(selector(&[("zone", "a")], vec![])),
                &zone_b,
                false,
            ),
            (
                "matchLabels all needed",
                Some(selector(&[("zone", "a"), ("tier", "db")], vec![])),
                &zone_a,
                false,
            ),
            (
                "In hit",
                Some(selector(&[], vec![expression("zone", "In", &["a", "c"])])),
                &zone_a,
                true,
            ),
            (
                "In miss",
                Some(selector(&[], vec![expression("zone", "In", &["c"])])),
                &zone_a,
                false,
            ),
            (
                "In absent key",
                Some(selector(&[], vec![expression("gpu", "In", &["yes"])])),
                &zone_a,
                false,
            ),
            (
                "NotIn hit",
                Some(selector(&[], vec![expression("zone", "NotIn", &["b"])])),
                &zone_a,
                true,
            ),
            (
                "NotIn miss",
                Some(selector(&[], vec![expression("zone", "NotIn", &["b"])])),
                &zone_b,
                false,
            ),
            (
                "NotIn absent key",
                Some(selector(&[], vec![expression("gpu", "NotIn", &["yes"])])),
                &zone_a,
                true,
            ),
            (
                "Exists",
                Some(selector(&[], vec![expression("tier", "Exists", &[])])),
                &zone_a,
                true,
            ),
            (
                "Exists miss",
                Some(selector(&[], vec![expression("tier", "Exists", &[])])),
                &zone_b,
                false,
            ),
            (
                "DoesNotExist",
                Some(selector(&[], vec![expression("tier", "DoesNotExist", &[])])),
                &zone_b,
                true,
            ),
            (
                "DoesNotExist miss",
                Some(selector(&[], vec![expression("tier", "DoesNotExist", &[])])),
                &zone_a,
                false,
            ),
            (
                "labels and expressions together",
                Some(selector(
                    &[("zone", "a")],
                    vec![expression("tier", "NotIn", &["web"])],
                )),
                &zone_a,
                false,
            ),
        ];
        for (name, sel, node_labels, expected) in rows {
            let compiled = NodeSelector::compile(sel.as_ref()).unwrap();
            assert_eq!(compiled.matches(&labels(node_labels)), expected, "{name}");
        }
    }

    #[test]
    fn refuses_selectors_kubernetes_refuses() {
        let rows = [
            (
                expression("zone", "Equals", &["a"]),
                "unknown operator \"Equals\"",
            ),
            (expression("zone", "In", &[]), "In needs at least one value"),
            (
                expression("zone", "NotIn", &[]),
                "NotIn needs at least one value",
            ),
            (
                expression("zone", "Exists", &["a"]),
                "Exists takes no values",
            ),
            (
                expression("zone", "DoesNotExist", &["a"]),
                "DoesNotExist takes no values",
            ),
        ];
        for (expr, message) in rows {
            let err = NodeSelector::compile(Some(&selector(&[], vec![expr]))).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
    }
}
