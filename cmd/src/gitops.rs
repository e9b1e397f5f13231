//! Who else manages an object: Argo CD and Flux leave annotations, labels and field managers
//! on what they apply. The plugin refuses to fight them unless told to (`--force`).

use std::fmt;

use kube::api::ObjectMeta;

/// A GitOps tool that manages an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    ArgoCd,
    Flux,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tool::ArgoCd => "Argo CD",
            Tool::Flux => "Flux",
        })
    }
}

/// The tool managing an object and the marker that gave it away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub tool: Tool,
    /// Such as `annotation argocd.argoproj.io/tracking-id=app:...`.
    pub marker: String,
}

const ARGO_TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
const ARGO_INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
const ARGO_MANAGER: &str = "argocd-controller";
const FLUX_NAME_LABEL: &str = "kustomize.toolkit.fluxcd.io/name";
const FLUX_NAMESPACE_LABEL: &str = "kustomize.toolkit.fluxcd.io/namespace";
const FLUX_MANAGER: &str = "kustomize-controller";

/// The GitOps tool managing the object with `meta`, if any.
pub fn owner(meta: &ObjectMeta) -> Option<Owner> {
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
    let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key));
    let found = |tool, marker: String| Some(Owner { tool, marker });
    if let Some(v) = annotation(ARGO_TRACKING_ANNOTATION) {
        return found(
            Tool::ArgoCd,
            format!("annotation {ARGO_TRACKING_ANNOTATION}={v}"),
        );
    }
    if let Some(v) = label(ARGO_INSTANCE_LABEL) {
        return found(Tool::ArgoCd, format!("label {ARGO_INSTANCE_LABEL}={v}"));
    }
    for key in [FLUX_NAME_LABEL, FLUX_NAMESPACE_LABEL] {
        if let Some(v) = label(key) {
            return found(Tool::Flux, format!("label {key}={v}"));
        }
    }
    let managers = meta.managed_fields.iter().flatten();
    for manager in managers.filter_map(|m| m.manager.as_deref()) {
        let tool = match manager {
            ARGO_MANAGER => Tool::ArgoCd,
            FLUX_MANAGER => Tool::Flux,
            _ => continue,
        };
        return found(tool, format!("field manager {manager}"));
    }
    None
}

/// Why the plugin will not write an object `kind/name` that `owner` manages.
pub fn refusal(kind: &str, name: &str, owner: &Owner) -> String {
    format!(
        "{kind} {name:?} is managed by {} ({}): change it in Git instead, or rerun with --force to write it anyway ({} may revert the change)",
        owner.tool, owner.marker, owner.tool
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    use super::*;

    fn map(key: &str, value: &str) -> Option<BTreeMap<String, String>> {
        Some(BTreeMap::from([(key.to_owned(), value.to_owned())]))
    }

    fn managed_by(manager: &str) -> ObjectMeta {
        ObjectMeta {
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some(manager.into()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn every_marker_names_its_tool() {
        let cases = [
            (
                ObjectMeta {
                    annotations: map(
                        ARGO_TRACKING_ANNOTATION,
                        "app:kube-encrypt.dev/EncryptionConfig:/default",
                    ),
                    ..Default::default()
                },
                Some(Tool::ArgoCd),
            ),
            (
                ObjectMeta {
                    labels: map(ARGO_INSTANCE_LABEL, "encryption"),
                    ..Default::default()
                },
                Some(Tool::ArgoCd),
            ),
            (
                ObjectMeta {
                    labels: map(FLUX_NAME_LABEL, "infra"),
                    ..Default::default()
                },
                Some(Tool::Flux),
            ),
            (
                ObjectMeta {
                    labels: map(FLUX_NAMESPACE_LABEL, "flux-system"),
                    ..Default::default()
                },
                Some(Tool::Flux),
            ),
            (managed_by(ARGO_MANAGER), Some(Tool::ArgoCd)),
            (managed_by(FLUX_MANAGER), Some(Tool::Flux)),
            (managed_by("kubectl-encrypt"), None),
            (ObjectMeta::default(), None),
        ];
        for (meta, want) in cases {
            assert_eq!(owner(&meta).map(|o| o.tool), want, "{meta:?}");
        }
    }

    #[test]
    fn refusal_says_to_change_git_and_names_force() {
        let owner = owner(&managed_by(FLUX_MANAGER)).unwrap();
        let text = refusal("EncryptionConfig", "default", &owner);
        assert!(
            text.contains("Flux") && text.contains("Git") && text.contains("--force"),
            "{text}"
        );
    }
}
