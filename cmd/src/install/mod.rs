//! `install`, `uninstall` and `manifests`: the kustomize base under `manifests/`, rendered by
//! `make manifests` into `manifests.yaml` beside this file and embedded at build time (a test
//! fails when it drifts from `kubectl kustomize manifests`). Install applies every object
//! server-side as `kubectl-encrypt` and waits; uninstall deletes them in reverse order.

mod rollout;

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context as _};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};
use serde::Deserialize;

use crate::cluster::Cluster;
use crate::format::write_structured;
use crate::wait::parse_duration;
use crate::{Exit, Ui, FIELD_MANAGER};

/// The rendered install manifests (`make manifests`).
pub const MANIFESTS: &str = include_str!("manifests.yaml");

#[derive(clap::Args, Debug, Clone)]
pub struct InstallArgs {
    /// How long to wait for the CRDs to be established and the workloads to roll out
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Apply without waiting
    #[arg(long)]
    pub no_wait: bool,
    /// Take fields other managers own
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct UninstallArgs {
    /// Uninstall even while encryption is on (the agents then cannot clean their nodes up)
    #[arg(long)]
    pub force: bool,
    /// How long to wait for every object to be gone (the API server deletes CRDs and
    /// namespaces through finalizers)
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Delete without waiting for the objects to be gone
    #[arg(long)]
    pub no_wait: bool,
}

/// The embedded objects, in the order kustomize rendered them (namespaces and CRDs first).
pub fn objects() -> anyhow::Result<Vec<DynamicObject>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(MANIFESTS) {
        let value = serde_yaml::Value::deserialize(document)
            .context("the embedded manifests are not YAML")?;
        if value.is_null() {
            continue;
        }
        objects.push(
            serde_yaml::from_value(value)
                .context("an embedded manifest is not a Kubernetes object")?,
        );
    }
    Ok(objects)
}

pub fn print_manifests(ui: Ui, out: &mut dyn Write) -> anyhow::Result<Exit> {
    if ui.output == crate::cli::OutputFormat::Json {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects()?});
        write_structured(&list, ui.output, out)?;
    } else {
        out.write_all(MANIFESTS.as_bytes())?;
    }
    Ok(Exit::Done)
}

/// `kind/name` (`namespace/kind/name` when namespaced), as progress lines name objects.
fn describe(object: &DynamicObject) -> String {
    let kind = object.types.as_ref().map_or("?", |t| t.kind.as_str());
    let name = object.metadata.name.as_deref().unwrap_or("?");
    match &object.metadata.namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The API of one object's kind, found through discovery.
async fn api_for(
    cluster: &Cluster,
    object: &DynamicObject,
) -> anyhow::Result<(Api<DynamicObject>, ApiCapabilities)> {
    let types = object
        .types
        .as_ref()
        .context("an embedded manifest has no apiVersion/kind")?;
    let gvk =
        GroupVersionKind::try_from(types).context("an embedded manifest has a bad apiVersion")?;
    let (resource, caps): (ApiResource, ApiCapabilities) =
        discovery::pinned_kind(cluster.client(), &gvk)
            .await
            .map_err(|e| cluster.explain(e, &format!("discovering {}", gvk.kind)))?;
    let api = match (&caps.scope, &object.metadata.namespace) {
        (Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(cluster.client().clone(), ns, &resource)
        }
        (Scope::Namespaced, None) => {
            Api::namespaced_with(cluster.client().clone(), cluster.namespace(), &resource)
        }
        (Scope::Cluster, _) => Api::all_with(cluster.client().clone(), &resource),
    };
    Ok((api, caps))
}

pub async fn install(
    cluster: &Cluster,
    args: &InstallArgs,
    _ui: Ui,
    out: &mut dyn Write,
) -> anyhow::Result<Exit> {
    let objects = objects()?;
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = args.force;
    let mut applied = Vec::new();
    for object in &objects {
        let (api, _) = api_for(cluster, object).await?;
        let name = object
            .metadata
            .name
            .as_deref()
            .context("an embedded manifest has no name")?;
        let result = api.patch(name, &params, &Patch::Apply(object)).await;
        let live =
            result.map_err(|e| cluster.explain(e, &format!("applying {}", describe(object))))?;
        writeln!(out, "{} applied", describe(object))?;
        applied.push((api, live));
    }
    if args.no_wait {
        return Ok(Exit::Done);
    }
    out.flush()?;
    rollout::wait(cluster, &applied, args.timeout, out).await?;
    writeln!(
        out,
        "kube-encrypt is installed; next: kubectl encrypt check"
    )?;
    Ok(Exit::Done)
}

pub async fn uninstall(
    cluster: &Cluster,
    args: &UninstallArgs,
    _ui: Ui,
    out: &mut dyn Write,
) -> anyhow::Result<Exit> {
    if let Some(config) = cluster.config().await? {
        let on = config.spec.enabled_families();
        if !on.is_empty() && !args.force {
            bail!(
                "encryption is still on ({}): run `kubectl encrypt disable --all --wait` first so the agents remove their interfaces, routes and rules, or pass --force",
                on.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let mut deleted = Vec::new();
    for object in objects()?.iter().rev() {
        let (api, _) = api_for(cluster, object).await?;
        let name = object
            .metadata
            .name
            .as_deref()
            .context("an embedded manifest has no name")?;
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {
                writeln!(out, "{} deleted", describe(object))?;
                deleted.push((api, name.to_owned(), describe(object)));
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                writeln!(out, "{} not found", describe(object))?
            }
            Err(e) => return Err(cluster.explain(e, &format!("deleting {}", describe(object)))),
        }
    }
    if !args.no_wait {
        wait_gone(cluster, &deleted, args.timeout).await?;
        writeln!(out, "{} objects gone", deleted.len())?;
    }
    Ok(Exit::Done)
}

/// Waits until every deleted object is gone (finalizers done), bounded by `timeout`.
async fn wait_gone(
    cluster: &Cluster,
    deleted: &[(kube::Api<DynamicObject>, String, String)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    for (api, name, what) in deleted {
        loop {
            match api.get_opt(name).await {
                Ok(None) => break,
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Ok(Some(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Ok(Some(_)) => bail!(
                    "{what} is still being deleted after {timeout:?} (a finalizer waits); \
                     see `kubectl get` of it, or run uninstall again"
                ),
                Err(e) => return Err(cluster.explain(e, &format!("waiting for {what} to go"))),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifests_hold_every_crd_first() {
        let objects = objects().unwrap();
        let kinds: Vec<String> = objects
            .iter()
            .map(|o| o.types.as_ref().unwrap().kind.clone())
            .collect();
        let crds = kinds
            .iter()
            .filter(|k| *k == "CustomResourceDefinition")
            .count();
        assert_eq!(crds, 3, "{kinds:?}");
        let names: Vec<String> = objects
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect();
        for crd in crate::check::install::CRD_NAMES {
            assert!(
                names.iter().any(|n| n == crd),
                "{crd} missing from {names:?}"
            );
        }
    }
}

/// How often install looks at what it applied.
pub const POLL: Duration = Duration::from_millis(500);

/// The drift test: the embedded file is what `kubectl kustomize manifests` renders now.
#[cfg(test)]
mod drift {
    use std::path::Path;
    use std::process::Command;

    #[test]
    fn embedded_manifests_match_the_kustomize_base() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let script = root.join("scripts/render-manifests.sh");
        let output = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} failed (kubectl is needed: scripts/install-deps.sh installs it): {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let rendered = String::from_utf8(output.stdout).unwrap();
        assert!(
            rendered == super::MANIFESTS,
            "cmd/src/install/manifests.yaml drifted from manifests/: run `make manifests` and commit the result"
        );
    }
}
