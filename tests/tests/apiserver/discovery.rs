//! Discovery and OpenAPI: `/api`, `/apis`, group version resource lists with verbs, short
//! names, kinds, scope and `status` subresources, CRDs appearing (and disappearing) at
//! runtime; `/openapi/v3` lists each group version, whose document has a `patch`
//! operation per kind with its group-version-kind and the `fieldValidation` parameter.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::DeleteParams;
use kube::Api;
use serde_json::Value;

use crate::support::{bounded, install_crds, Backend, TestServer};

fn resource<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
}

kube_encrypt_tests::on_both_servers!(built_in_and_runtime_groups);
async fn built_in_and_runtime_groups(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        assert_eq!(s.get_json("/api").await["versions"][0], "v1");
        let core = s.get_json("/api/v1").await;
        let nodes = resource(&core, "nodes").unwrap();
        assert_eq!(nodes["namespaced"], false);
        assert_eq!(nodes["kind"], "Node");
        assert_eq!(nodes["shortNames"][0], "no");
        assert!(nodes["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "watch"));
        assert!(resource(&core, "nodes/status").is_some());
        assert_eq!(resource(&core, "pods").unwrap()["namespaced"], true);

        let groups = |doc: Value| -> Vec<String> {
            doc["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_string())
                .collect()
        };
        let before = groups(s.get_json("/apis").await);
        for g in [
            "apps",
            "coordination.k8s.io",
            "apiextensions.k8s.io",
            "admissionregistration.k8s.io",
            "rbac.authorization.k8s.io",
            "events.k8s.io",
        ] {
            assert!(before.contains(&g.to_string()), "{g} in {before:?}");
        }
        assert!(!before.contains(&"kube-encrypt.dev".to_string()));

        install_crds(&s.client).await;
        assert!(groups(s.get_json("/apis").await).contains(&"kube-encrypt.dev".to_string()));
        let list = s.get_json("/apis/kube-encrypt.dev/v1alpha1").await;
        let configs = resource(&list, "encryptionconfigs").unwrap();
        assert_eq!(configs["kind"], "EncryptionConfig");
        assert_eq!(configs["shortNames"][0], "encconf");
        assert_eq!(configs["namespaced"], false);
        assert!(resource(&list, "encryptionconfigs/status").is_some());

        let crds: Api<CustomResourceDefinition> = Api::all(s.client.clone());
        crds.delete("ippools.kube-encrypt.dev", &DeleteParams::default())
            .await
            .unwrap();
        // Deleting a CRD is asynchronous on kube-apiserver (a finalizer removes its objects,
        // then discovery drops the resource); the emulator drops it at once.
        let mut listed = true;
        for _ in 0..300 {
            let list = s.get_json("/apis/kube-encrypt.dev/v1alpha1").await;
            listed = resource(&list, "ippools").is_some();
            if !listed {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            !listed,
            "ippools still served 30 s after its CRD was deleted"
        );
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(openapi_v3_supports_server_side_field_validation);
async fn openapi_v3_supports_server_side_field_validation(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        let doc = openapi_v3_document(&s, "apis/kube-encrypt.dev/v1alpha1").await;
        let patch =
            &doc["paths"]["/apis/kube-encrypt.dev/v1alpha1/encryptionconfigs/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "EncryptionConfig"
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
    })
    .await;
}

/// The OpenAPI v3 document of `group_version`, as kubectl finds it: from the root's
/// `serverRelativeURL`. kube-apiserver publishes CRD schemas asynchronously and redirects a
/// stale hash to the current one (kube-rs does not follow redirects), so retry (bounded) until
/// the root and the document agree; the emulator answers at once.
async fn openapi_v3_document(s: &TestServer, group_version: &str) -> serde_json::Value {
    for _ in 0..100 {
        let root = s.get_json("/openapi/v3").await;
        assert!(root["paths"]["api/v1"]["serverRelativeURL"].is_string());
        if let Some(url) = root["paths"][group_version]["serverRelativeURL"].as_str() {
            let request = hyper::http::Request::get(url).body(Vec::new()).unwrap();
            if let Ok(doc) = s.client.request::<serde_json::Value>(request).await {
                return doc;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no OpenAPI v3 document for {group_version} within 10 s");
}
