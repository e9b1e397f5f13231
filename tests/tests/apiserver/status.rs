//! The status subresource: writes to the main resource ignore `status`, writes to
//! `.../status` change only `status`, and neither kind of status change moves
//! `metadata.generation`. CRDs get their NamesAccepted/Established conditions.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use crate::support::{bounded, install_crds, kube_encrypt_api, Backend, TestServer};

kube_encrypt_tests::on_both_servers!(status_and_spec_are_written_separately);
async fn status_and_spec_are_written_separately(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        let configs = kube_encrypt_api(&s.client, "EncryptionConfig", "encryptionconfigs");
        let obj = serde_json::from_value(json!({
            "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "EncryptionConfig",
            "metadata": {"name": "default"}, "spec": {"ipv4": {"enabled": true}},
            "status": {"observedGeneration": 7}
        }))
        .unwrap();
        let created = configs.create(&PostParams::default(), &obj).await.unwrap();
        assert!(
            created.data.get("status").is_none(),
            "status is dropped on create"
        );
        assert_eq!(created.metadata.generation, Some(1));

        let status = Patch::Merge(
            json!({"status": {"observedGeneration": 1}, "spec": {"ipv6": {"enabled": true}}}),
        );
        let after_status = configs
            .patch_status("default", &PatchParams::default(), &status)
            .await
            .unwrap();
        assert_eq!(after_status.data["status"]["observedGeneration"], 1);
        assert_eq!(
            after_status.data["spec"]["ipv6"]["enabled"], false,
            "status writes ignore spec"
        );
        assert_eq!(after_status.metadata.generation, Some(1));

        let main = Patch::Merge(
            json!({"status": {"observedGeneration": 99}, "spec": {"ipv6": {"enabled": true}}}),
        );
        let after_main = configs
            .patch("default", &PatchParams::default(), &main)
            .await
            .unwrap();
        assert_eq!(
            after_main.data["status"]["observedGeneration"], 1,
            "main writes ignore status"
        );
        assert_eq!(after_main.data["spec"]["ipv6"]["enabled"], true);
        assert_eq!(after_main.metadata.generation, Some(2));
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(crds_are_established);
async fn crds_are_established(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        let crds: Api<CustomResourceDefinition> = Api::all(s.client.clone());
        let crd = crds
            .get("encryptionconfigs.kube-encrypt.dev")
            .await
            .unwrap();
        let conditions = crd.status.unwrap().conditions.unwrap();
        for kind in ["NamesAccepted", "Established"] {
            assert!(
                conditions
                    .iter()
                    .any(|c| c.type_ == kind && c.status == "True"),
                "{kind}"
            );
        }
    })
    .await;
}

kube_encrypt_tests::on_both_servers!(custom_resources_are_validated);
/// A schema violation of a custom resource is a 422 in the server's wording.
async fn custom_resources_are_validated(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        let configs = kube_encrypt_api(&s.client, "EncryptionConfig", "encryptionconfigs");
        let bad = serde_json::from_value(json!({
            "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "EncryptionConfig",
            "metadata": {"name": "default"}, "spec": {"ipv4": {"port": 70000}}
        }))
        .unwrap();
        let (code, reason, message) =
            crate::support::api_error(configs.create(&PostParams::default(), &bad).await);
        assert_eq!((code, reason.as_str()), (422, "Invalid"));
        assert!(
            message.starts_with(
                "EncryptionConfig.kube-encrypt.dev \"default\" is invalid: spec.ipv4.port"
            ),
            "{message}"
        );
    })
    .await;
}
