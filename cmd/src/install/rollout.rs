//! After install: CRDs Established, Deployments and DaemonSets rolled out, looked at every
//! [`super::POLL`] until `timeout`.

use std::io::Write;
use std::time::Duration;

use anyhow::anyhow;
use kube::api::{Api, DynamicObject};
use serde_json::Value;

use crate::cluster::Cluster;

/// What is still not ready about one object, or `None` when it is.
pub fn not_ready(object: &DynamicObject) -> Option<String> {
    let kind = object.types.as_ref().map(|t| t.kind.as_str())?;
    let status = object.data.get("status").cloned().unwrap_or(Value::Null);
    let int = |v: &Value, key: &str| v.get(key).and_then(Value::as_i64).unwrap_or(0);
    let generation = object.metadata.generation.unwrap_or(0);
    let observed = int(&status, "observedGeneration");
    match kind {
        "CustomResourceDefinition" => {
            let conditions = status
                .get("conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let established = conditions
                .iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            (!established).then(|| "not Established".into())
        }
        "Deployment" => {
            let want = object
                .data
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let (updated, available) = (
                int(&status, "updatedReplicas"),
                int(&status, "availableReplicas"),
            );
            (observed < generation || updated < want || available < want)
                .then(|| format!("{available}/{want} replicas available"))
        }
        "DaemonSet" => {
            let want = int(&status, "desiredNumberScheduled");
            let (updated, available) = (
                int(&status, "updatedNumberScheduled"),
                int(&status, "numberAvailable"),
            );
            (observed < generation || updated < want || available < want)
                .then(|| format!("{available}/{want} pods available"))
        }
        _ => None,
    }
}

fn watched(kind: &str) -> bool {
    matches!(
        kind,
        "CustomResourceDefinition" | "Deployment" | "DaemonSet"
    )
}

/// Waits until every applied CRD, Deployment and DaemonSet is ready.
pub async fn wait(
    cluster: &Cluster,
    applied: &[(Api<DynamicObject>, DynamicObject)],
    timeout: Duration,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let pending: Vec<&(Api<DynamicObject>, DynamicObject)> = applied
        .iter()
        .filter(|(_, o)| o.types.as_ref().is_some_and(|t| watched(&t.kind)))
        .collect();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut waiting = Vec::new();
    loop {
        waiting.clear();
        for (api, object) in &pending {
            let name = object.metadata.name.as_deref().unwrap_or_default();
            let live = api
                .get(name)
                .await
                .map_err(|e| cluster.explain(e, &format!("reading {name}")))?;
            if let Some(why) = not_ready(&live) {
                waiting.push(format!("{name}: {why}"));
            }
        }
        if waiting.is_empty() {
            writeln!(out, "{} objects ready", pending.len())?;
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for {}; kubectl get events -n {} may say why",
                waiting.join(", "),
                cluster.namespace()
            ));
        }
        tokio::time::sleep(super::POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn readiness_per_kind() {
        let cases = [
            (
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "a"},
                "status": {"conditions": [{"type": "Established", "status": "True"}]}}),
                None,
            ),
            (
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "a"}}),
                Some("not Established"),
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "generation": 2}, "spec": {"replicas": 2},
                "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2}}),
                None,
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "generation": 3}, "spec": {"replicas": 2},
                "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2}}),
                Some("2/2 replicas available"),
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "a", "generation": 1},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}}),
                Some("2/3 pods available"),
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "a", "generation": 1},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}}),
                None,
            ),
            (
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-encrypt"}}),
                None,
            ),
        ];
        for (value, want) in cases {
            let got = not_ready(&object(value.clone()));
            assert_eq!(got.as_deref(), want, "{value}");
        }
    }
}
