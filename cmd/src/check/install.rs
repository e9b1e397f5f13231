//! Is kube-encrypt installed: the CRDs established, the agent DaemonSet ready, a validating
//! webhook covering kube-encrypt.dev.

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};

use super::CheckResult;
use crate::cluster::Cluster;

/// The CRDs kube-encrypt needs.
pub const CRD_NAMES: [&str; 3] = [
    "encryptionconfigs.kube-encrypt.dev",
    "ippools.kube-encrypt.dev",
    "nodeencryptions.kube-encrypt.dev",
];
/// The agent DaemonSet in the install namespace.
pub const AGENT_DAEMONSET: &str = "kube-encrypt-agent";
const GROUP: &str = "kube-encrypt.dev";

pub async fn crds(cluster: &Cluster) -> anyhow::Result<CheckResult> {
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client().clone());
    let mut problems = Vec::new();
    for name in CRD_NAMES {
        let crd = api
            .get_opt(name)
            .await
            .map_err(|e| cluster.explain(e, &format!("reading CRD {name}")))?;
        match crd {
            None => problems.push(format!("{name} missing")),
            Some(crd) if !established(&crd) => problems.push(format!("{name} not Established")),
            Some(_) => {}
        }
    }
    let name = "CRDs installed";
    Ok(match problems.is_empty() {
        true => CheckResult::pass(name, format!("{} CRDs established", CRD_NAMES.len())),
        false => CheckResult::fail(name, problems.join(", "), "kubectl encrypt install"),
    })
}

fn established(crd: &CustomResourceDefinition) -> bool {
    let conditions = crd.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Established" && c.status == "True")
}

pub async fn agents(cluster: &Cluster) -> anyhow::Result<CheckResult> {
    let api: Api<DaemonSet> = Api::namespaced(cluster.client().clone(), cluster.namespace());
    let name = "agents installed";
    let ds = api
        .get_opt(AGENT_DAEMONSET)
        .await
        .map_err(|e| cluster.explain(e, "reading the agent DaemonSet"))?;
    let where_ = format!("DaemonSet {}/{AGENT_DAEMONSET}", cluster.namespace());
    let Some(ds) = ds else {
        return Ok(CheckResult::fail(
            name,
            format!("{where_} not found"),
            format!(
                "kubectl encrypt install (or -n NAMESPACE if kube-encrypt lives elsewhere than {})",
                cluster.namespace()
            ),
        ));
    };
    let status = ds.status.unwrap_or_default();
    let (desired, ready) = (status.desired_number_scheduled, status.number_ready);
    Ok(if desired > 0 && ready == desired {
        CheckResult::pass(name, format!("{where_}: {ready}/{desired} ready"))
    } else {
        CheckResult::fail(
            name,
            format!("{where_}: {ready}/{desired} ready"),
            format!("kubectl -n {} describe daemonset {AGENT_DAEMONSET}; kubectl -n {} logs daemonset/{AGENT_DAEMONSET}", cluster.namespace(), cluster.namespace()),
        )
    })
}

pub async fn webhook(cluster: &Cluster) -> anyhow::Result<CheckResult> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(cluster.client().clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| cluster.explain(e, "listing ValidatingWebhookConfigurations"))?;
    let covering: Vec<String> = list
        .items
        .iter()
        .filter(|c| covers_group(c))
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let name = "webhook configured";
    Ok(match covering.is_empty() {
        false => CheckResult::pass(name, format!("ValidatingWebhookConfiguration {}", covering.join(", "))),
        true => CheckResult::fail(
            name,
            format!("no ValidatingWebhookConfiguration covers {GROUP}: cross-resource rules (NAT outgoing, pool overlap) are not enforced"),
            "kubectl encrypt install",
        ),
    })
}

fn covers_group(config: &ValidatingWebhookConfiguration) -> bool {
    let webhooks = config.webhooks.iter().flatten();
    let rules = webhooks.flat_map(|w| w.rules.iter().flatten());
    rules
        .flat_map(|r| r.api_groups.iter().flatten())
        .any(|g| g == GROUP || g == "*")
}
