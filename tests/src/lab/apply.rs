//! `kubectl apply --server-side` for multi-document YAML, in-process: every object is
//! resolved through API discovery and applied with the lab's field manager.

use std::collections::HashMap;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};
use kube::Client;
use serde::Deserialize;

use super::cluster::{api_err, ClusterError, FIELD_MANAGER};

/// Parses every non-empty document of `text` into an object.
pub fn parse_documents(text: &str) -> Result<Vec<DynamicObject>, ClusterError> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document).map_err(ClusterError::BadManifest)?;
        if value.is_null() {
            continue;
        }
        objects.push(serde_yaml::from_value(value).map_err(ClusterError::BadManifest)?);
    }
    Ok(objects)
}

/// Server-side applies every object of `text`, in order.
pub async fn apply_yaml(client: &Client, text: &str) -> Result<(), ClusterError> {
    apply_objects(client, &parse_documents(text)?).await
}

/// Server-side applies `objects`, in order.
pub async fn apply_objects(client: &Client, objects: &[DynamicObject]) -> Result<(), ClusterError> {
    let mut kinds: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)> = HashMap::new();
    for object in objects {
        let gvk = gvk_of(object)?;
        if !kinds.contains_key(&gvk) {
            let found = discovery::pinned_kind(client, &gvk)
                .await
                .map_err(api_err(format!(
                    "discover {}/{}",
                    gvk.api_version(),
                    gvk.kind
                )))?;
            kinds.insert(gvk.clone(), found);
        }
        let (resource, capabilities) = &kinds[&gvk];
        apply_one(client, object, resource, capabilities).await?;
    }
    Ok(())
}

fn gvk_of(object: &DynamicObject) -> Result<GroupVersionKind, ClusterError> {
    let types = object.types.as_ref().ok_or_else(|| {
        ClusterError::Manifest(format!(
            "object {:?} has no apiVersion/kind",
            object.metadata.name
        ))
    })?;
    GroupVersionKind::try_from(types)
        .map_err(|e| ClusterError::Manifest(format!("{}: {e}", types.api_version)))
}

async fn apply_one(
    client: &Client,
    object: &DynamicObject,
    resource: &ApiResource,
    capabilities: &ApiCapabilities,
) -> Result<(), ClusterError> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Cluster => Api::all_with(client.clone(), resource),
        Scope::Namespaced => {
            let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
            Api::namespaced_with(client.clone(), namespace, resource)
        }
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(api_err(format!("apply {} {name}", resource.kind)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_and_empty_ones_are_skipped() {
        let text = "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  namespace: ns\n---\n# only a comment\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: b\n";
        let objects = parse_documents(text).unwrap();
        let kinds: Vec<String> = objects.iter().map(|o| gvk_of(o).unwrap().kind).collect();
        assert_eq!(kinds, ["ServiceAccount", "ClusterRole"]);
    }

    #[test]
    fn a_document_without_kind_is_refused() {
        let objects = parse_documents("metadata:\n  name: x\n").unwrap();
        assert!(gvk_of(&objects[0]).is_err());
        assert!(parse_documents("a: [").is_err());
    }
}
