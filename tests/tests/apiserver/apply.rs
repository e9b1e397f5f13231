//! Server-side apply: fieldManager is required; managedFields record each manager's
//! fields (operation Apply or Update); applying a field another manager owns with a
//! different value is a 409 conflict naming field and manager, unless forced, which takes
//! ownership; fields a manager stops applying are removed unless someone else owns them.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Value};

use crate::support::{api_error, bounded, Backend, TestServer};

fn applied(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
}

fn managers(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone().unwrap(), m.operation.clone().unwrap()))
        .collect()
}

kube_encrypt_tests::on_both_servers!(conflicts_force_and_removal);
async fn conflicts_force_and_removal(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        let one = PatchParams::apply("one");
        let created = cms
            .patch(
                "c",
                &one,
                &Patch::Apply(applied(json!({"a": "1", "b": "2"}))),
            )
            .await
            .unwrap();
        assert_eq!(managers(&created), [("one".into(), "Apply".into())]);
        let fields =
            serde_json::to_value(&created.metadata.managed_fields.as_ref().unwrap()[0].fields_v1)
                .unwrap();
        assert_eq!(fields, json!({"f:data": {"f:a": {}, "f:b": {}}}));

        // Another manager setting an owned field to another value conflicts.
        let two = PatchParams::apply("two");
        let (code, reason, message) = api_error(
            cms.patch("c", &two, &Patch::Apply(applied(json!({"b": "9"}))))
                .await,
        );
        assert_eq!((code, reason.as_str()), (409, "Conflict"));
        assert_eq!(
            message,
            "Apply failed with 1 conflict: conflict with \"one\": .data.b"
        );

        // Forced, it takes the field over.
        let forced = cms
            .patch(
                "c",
                &two.clone().force(),
                &Patch::Apply(applied(json!({"b": "9"}))),
            )
            .await
            .unwrap();
        assert_eq!(forced.data.as_ref().unwrap()["b"], "9");
        assert_eq!(
            managers(&forced),
            [
                ("one".into(), "Apply".into()),
                ("two".into(), "Apply".into())
            ]
        );

        // "one" no longer applies a or b: a (only its own) goes, b (now two's) stays.
        let dropped = cms
            .patch("c", &one, &Patch::Apply(applied(json!({"c": "3"}))))
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(dropped.data.unwrap()).unwrap(),
            json!({"b": "9", "c": "3"})
        );

        // An ordinary update records an Update manager and takes the changed field.
        let edit = cms
            .patch(
                "c",
                &PatchParams {
                    field_manager: Some("editor".into()),
                    ..Default::default()
                },
                &Patch::Merge(json!({"data": {"c": "edited"}})),
            )
            .await
            .unwrap();
        assert!(managers(&edit).contains(&("editor".into(), "Update".into())));
        let (_, _, message) = api_error(
            cms.patch("c", &one, &Patch::Apply(applied(json!({"c": "3"}))))
                .await,
        );
        assert_eq!(
            message,
            "Apply failed with 1 conflict: conflict with \"editor\" using v1: .data.c"
        );
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(repeated_apply_is_a_no_op_and_manager_is_required);
async fn repeated_apply_is_a_no_op_and_manager_is_required(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client.clone());
        let pp = PatchParams::apply("one");
        let first = cms
            .patch("c", &pp, &Patch::Apply(applied(json!({"a": "1"}))))
            .await
            .unwrap();
        let again = cms
            .patch("c", &pp, &Patch::Apply(applied(json!({"a": "1"}))))
            .await
            .unwrap();
        assert_eq!(
            first.metadata.resource_version,
            again.metadata.resource_version
        );
        let (code, reason, message) = api_error(
            cms.patch(
                "c",
                &PatchParams::default(),
                &Patch::Apply(applied(json!({}))),
            )
            .await,
        );
        assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
        assert_eq!(
            message,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        let created = cms
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "plain"}})).unwrap(),
            )
            .await;
        assert!(created.is_ok());
    })
    .await;
}
