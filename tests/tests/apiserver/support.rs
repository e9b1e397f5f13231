//! Helpers of the API suites; the server per test is [`kube_encrypt_tests::test_cluster`].

use std::future::Future;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::{Api, Client};

pub use kube_encrypt_tests::test_cluster::{
    install_crds, Backend, TempDir as StateDir, TestCluster as TestServer,
};

/// Every test ends within this.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a test body under [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time limit")
}

/// `(code, reason, message)` of an API error.
pub fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String, String) {
    match result {
        Err(kube::Error::Api(status)) => {
            (status.code, status.reason.clone(), status.message.clone())
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A dynamic API for a kube-encrypt.dev kind.
pub fn kube_encrypt_api(client: &Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kube-encrypt.dev", "v1alpha1", kind);
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// A Node object.
pub fn node(name: &str) -> k8s_openapi::api::core::v1::Node {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}
