//! Every rendered object is accepted by a real kube-apiserver (`--dry-run=server`: admission,
//! validation, defaulting, nothing stored): the base, the cert-manager overlay, the base with
//! the workload-ips component, and the examples once the CRDs are established.

use super::support::{
    documents, kube_cluster, kubectl, kubectl_file, kustomize, kustomize_with_components,
};

/// cert-manager's two kinds the overlay uses, as stand-ins that only make the kinds known to
/// the API server (cert-manager itself is not installed here; its own CRDs validate the
/// fields).
const CERT_MANAGER_KINDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: issuers.cert-manager.io
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Issuer, plural: issuers, singular: issuer, listKind: IssuerList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: certificates.cert-manager.io
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Certificate, plural: certificates, singular: certificate, listKind: CertificateList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

/// Server-side dry-run apply of `yaml`; every object must be reported as applied.
async fn accepted(cluster: &kube_encrypt_tests::test_cluster::TestCluster, what: &str, yaml: &str) {
    let count = documents(yaml).len();
    let out = kubectl_file(
        cluster,
        yaml,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=kubectl-encrypt",
        ],
    )
    .await
    .expect_ok(&format!("dry-run of {what}"));
    let applied = out
        .lines()
        .filter(|l| l.contains("(server dry run)"))
        .count();
    assert_eq!(
        applied, count,
        "{what}: not every object was accepted:\n{out}"
    );
}

#[tokio::test]
async fn every_rendered_object_is_accepted_by_kube_apiserver() {
    let Some(cluster) = kube_cluster().await else {
        return;
    };
    kubectl(&cluster, &["create", "namespace", "kube-encrypt"])
        .await
        .expect_ok("creating the namespace");
    accepted(&cluster, "the base", &kustomize("manifests").await).await;
    accepted(
        &cluster,
        "the base with the workload-ips component",
        &kustomize_with_components(&["manifests/components/workload-ips"]).await,
    )
    .await;

    cluster.install_crds().await;
    kubectl_file(&cluster, CERT_MANAGER_KINDS, &["apply", "--server-side"])
        .await
        .expect_ok("the cert-manager stand-in CRDs");
    for name in ["issuers.cert-manager.io", "certificates.cert-manager.io"] {
        kubectl(
            &cluster,
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=30s",
                &format!("crd/{name}"),
            ],
        )
        .await
        .expect_ok("cert-manager stand-in CRDs established");
    }
    accepted(
        &cluster,
        "the cert-manager overlay",
        &kustomize("manifests/overlays/cert-manager").await,
    )
    .await;
    accepted(
        &cluster,
        "the examples",
        &kustomize("manifests/examples").await,
    )
    .await;
}
