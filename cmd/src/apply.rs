//! Server-side apply as `kubectl-encrypt`, built separately from executed: an [`Apply`] is the
//! patch and its options; [`Apply::send`] sends it. A conflict names the manager owning each
//! field.

use std::collections::BTreeSet;

use anyhow::anyhow;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::FIELD_MANAGER;

/// `--dry-run`: show what would change without changing it.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DryRun {
    /// Print the change, send nothing
    Client,
    /// Send the change for validation (admission included), persist nothing
    Server,
}

/// One server-side apply of a partial object.
#[derive(Clone, Debug)]
pub struct Apply {
    pub kind: &'static str,
    pub name: String,
    pub patch: Value,
    /// Take fields other managers own.
    pub force: bool,
    pub dry_run: bool,
}

impl Apply {
    pub fn new(kind: &'static str, name: &str, patch: Value) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            patch,
            force: false,
            dry_run: false,
        }
    }

    pub fn params(&self) -> PatchParams {
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = self.force;
        params.dry_run = self.dry_run;
        params
    }

    /// Sends the apply; a conflict says which manager owns which field.
    pub async fn send<K>(&self, cluster: &Cluster, api: &Api<K>) -> anyhow::Result<K>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        match api
            .patch(&self.name, &self.params(), &Patch::Apply(&self.patch))
            .await
        {
            Ok(object) => Ok(object),
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                Err(anyhow!("{}", self.conflict(&status)))
            }
            Err(e) => Err(cluster.explain(e, &format!("applying {} {:?}", self.kind, self.name))),
        }
    }

    fn conflict(&self, status: &kube::core::Status) -> String {
        let owners = conflicting_fields(status);
        let listed = if owners.is_empty() {
            status.message.clone()
        } else {
            owners
                .iter()
                .map(|(field, manager)| format!("{field} is owned by {manager:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{} {:?}: conflict: {listed}; rerun with --force to take these fields over (the other manager may set them back), or change them where that manager gets them from",
            self.kind, self.name
        )
    }
}

/// `(field, manager)` of every conflict in a 409 from server-side apply.
pub fn conflicting_fields(status: &kube::core::Status) -> BTreeSet<(String, String)> {
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    causes
        .iter()
        .filter_map(|c| Some((c.field.clone(), manager_of(&c.message)?)))
        .collect()
}

/// The manager in `conflict with "argocd-controller" using v1` (the emulator leaves out the
/// quotes and the version).
fn manager_of(message: &str) -> Option<String> {
    let rest = message.strip_prefix("conflict with ")?.trim();
    let name = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split_whitespace().next()?,
    };
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_is_read_from_both_message_forms() {
        let cases = [
            (
                r#"conflict with "argocd-controller" using kube-encrypt.dev/v1alpha1"#,
                Some("argocd-controller"),
            ),
            (
                "conflict with kustomize-controller",
                Some("kustomize-controller"),
            ),
            ("something else", None),
        ];
        for (message, want) in cases {
            assert_eq!(manager_of(message).as_deref(), want, "{message}");
        }
    }
}
