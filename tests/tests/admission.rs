//! The emulator's webhook caller against a real HTTPS webhook on 127.0.0.1, with a CA made
//! by rcgen for the test: allow, deny, warnings, timeouts under both failure policies, rule
//! matching, dry-run and sideEffects, service references (server name), wrong CAs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use kube_encrypt_tests::apiserver::admission::{
    Admission, AdmissionAttributes, AdmissionDenied, GroupVersionKind, GroupVersionResource,
    Operation, ServiceRef, UserInfo,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{json, Value};

/// Bound on every admission call in these tests.
const CALL_LIMIT: Duration = Duration::from_secs(20);
const SERVICE_HOST: &str = "ke-webhook.kube-encrypt.svc";

/// A CA and a serving certificate it signed for `SERVICE_HOST` and 127.0.0.1.
struct Pki {
    ca_bundle: String,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kube-encrypt admission test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let leaf_params =
        CertificateParams::new(vec![SERVICE_HOST.to_string(), "127.0.0.1".to_string()]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params
        .signed_by(&leaf_key, &Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    Pki {
        ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca_cert.pem()),
        cert: leaf.der().clone(),
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

/// The test webhook: answers per path, records every AdmissionReview it gets.
struct Webhook {
    addr: SocketAddr,
    ca_bundle: String,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Webhook {
    async fn start() -> Self {
        let pki = pki();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![pki.cert], pki.key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = tokio::spawn(serve(listener, acceptor, seen.clone()));
        Self {
            addr,
            ca_bundle: pki.ca_bundle,
            seen,
            server,
        }
    }

    /// Paths the webhook was called on, in order.
    fn calls(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(path, _)| path.clone())
            .collect()
    }

    fn last_request(&self) -> Value {
        self.seen
            .lock()
            .unwrap()
            .last()
            .expect("the webhook was called")
            .1["request"]
            .clone()
    }

    /// A ValidatingWebhookConfiguration with one webhook per `(name, path, extra fields)`.
    fn config(&self, hooks: &[(&str, &str, Value)]) -> Value {
        let webhooks: Vec<Value> = hooks
            .iter()
            .map(|(name, path, extra)| {
                let mut hook = json!({
                    "name": name,
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "rules": [{ "operations": ["CREATE", "UPDATE"], "apiGroups": ["kube-encrypt.dev"],
                                "apiVersions": ["v1alpha1"], "resources": ["encryptionconfigs", "ippools"] }],
                    "clientConfig": { "url": format!("https://{}{path}", self.addr), "caBundle": self.ca_bundle },
                });
                for (key, value) in extra.as_object().cloned().unwrap_or_default() {
                    hook[key] = value;
                }
                hook
            })
            .collect();
        json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": { "name": "kube-encrypt" }, "webhooks": webhooks })
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (acceptor, seen) = (acceptor.clone(), seen.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| answer(req, seen.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let body = req.into_body().collect().await?.to_bytes();
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock()
        .unwrap()
        .push((format!("{path}?{query}"), review.clone()));
    let uid = review["request"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let response = match path.as_str() {
        "/allow" => json!({ "uid": uid, "allowed": true }),
        "/warn" => {
            json!({ "uid": uid, "allowed": true, "warnings": ["host-encryption-route-source: PodCIDRs misses host traffic"] })
        }
        "/deny" => {
            json!({ "uid": uid, "allowed": false, "status": { "code": 403, "reason": "Forbidden",
                           "message": "port-range: spec.ipv4.port must be 1-65535" } })
        }
        "/deny-plain" => {
            json!({ "uid": uid, "allowed": false, "status": { "message": "pool-overlap: overlaps pool a" } })
        }
        "/wrong-uid" => json!({ "uid": "not-the-uid", "allowed": true }),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json!({ "uid": uid, "allowed": true })
        }
        _ => {
            return Ok(hyper::Response::builder()
                .status(404)
                .body(Full::new(Bytes::from("404 page not found")))
                .unwrap())
        }
    };
    let review = json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response });
    Ok(hyper::Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .unwrap())
}

fn create_config() -> AdmissionAttributes {
    AdmissionAttributes {
        operation: Operation::Create,
        gvk: GroupVersionKind {
            group: "kube-encrypt.dev".into(),
            version: "v1alpha1".into(),
            kind: "EncryptionConfig".into(),
        },
        gvr: GroupVersionResource {
            group: "kube-encrypt.dev".into(),
            version: "v1alpha1".into(),
            resource: "encryptionconfigs".into(),
        },
        name: "default".into(),
        namespace: None,
        object: Some(
            json!({ "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "EncryptionConfig",
                             "metadata": { "name": "default" }, "spec": { "ipv4": { "enabled": true } } }),
        ),
        old_object: None,
        user: UserInfo {
            username: "kubernetes-admin".into(),
            groups: vec!["kubeadm:cluster-admins".into()],
        },
        dry_run: false,
        sub_resource: None,
    }
}

/// Resolves the test service name to the webhook's loopback address.
fn admission_for(webhook: &Webhook) -> Admission {
    let addr = webhook.addr;
    Admission::new(move |service: &ServiceRef| {
        if service.namespace == "kube-encrypt" {
            Ok(addr)
        } else {
            Err(format!("services \"{}\" not found", service.name))
        }
    })
}

async fn review(
    admission: &Admission,
    configs: &[Value],
    attrs: &AdmissionAttributes,
) -> Result<Vec<String>, AdmissionDenied> {
    tokio::time::timeout(CALL_LIMIT, admission.review(configs, attrs))
        .await
        .expect("admission finished in time")
}

#[tokio::test]
async fn an_allowing_webhook_gets_the_review_and_admits() {
    let webhook = Webhook::start().await;
    let result = review(
        &admission_for(&webhook),
        &[webhook.config(&[("allow.kube-encrypt.dev", "/allow", json!({}))])],
        &create_config(),
    )
    .await;
    assert_eq!(result, Ok(vec![]));
    assert_eq!(webhook.calls(), ["/allow?timeout=10s"]);
    let request = webhook.last_request();
    assert_eq!(request["operation"], "CREATE");
    assert_eq!(request["resource"]["resource"], "encryptionconfigs");
    assert_eq!(request["kind"]["kind"], "EncryptionConfig");
    assert_eq!(request["name"], "default");
    assert_eq!(request["userInfo"]["username"], "kubernetes-admin");
    assert_eq!(request["object"]["spec"]["ipv4"]["enabled"], true);
    assert_eq!(request["dryRun"], false);
}

#[tokio::test]
async fn a_denial_is_worded_like_the_api_server_with_the_webhooks_code() {
    let webhook = Webhook::start().await;
    let admission = admission_for(&webhook);
    let cases = [
        ("/deny", 403, "Forbidden", "admission webhook \"validate.kube-encrypt.dev\" denied the request: port-range: spec.ipv4.port must be 1-65535"),
        ("/deny-plain", 400, "", "admission webhook \"validate.kube-encrypt.dev\" denied the request: pool-overlap: overlaps pool a"),
    ];
    for (path, code, reason, message) in cases {
        let config = webhook.config(&[("validate.kube-encrypt.dev", path, json!({}))]);
        let denied = review(&admission, &[config], &create_config())
            .await
            .unwrap_err();
        assert_eq!(
            (denied.code, denied.reason.as_str(), denied.message.as_str()),
            (code, reason, message)
        );
    }
}

#[tokio::test]
async fn warnings_of_every_webhook_are_passed_through_even_with_a_denial() {
    let webhook = Webhook::start().await;
    let admission = admission_for(&webhook);
    let warning = "host-encryption-route-source: PodCIDRs misses host traffic";
    let both = webhook.config(&[
        ("warn.kube-encrypt.dev", "/warn", json!({})),
        ("allow.kube-encrypt.dev", "/allow", json!({})),
    ]);
    assert_eq!(
        review(&admission, &[both], &create_config()).await,
        Ok(vec![warning.to_string()])
    );
    let with_denial = webhook.config(&[
        ("warn.kube-encrypt.dev", "/warn", json!({})),
        ("deny.kube-encrypt.dev", "/deny", json!({})),
    ]);
    let denied = review(&admission, &[with_denial], &create_config())
        .await
        .unwrap_err();
    assert_eq!(denied.warnings, [warning]);
}

#[tokio::test]
async fn a_timeout_fails_closed_or_open_per_failure_policy() {
    let webhook = Webhook::start().await;
    let admission = admission_for(&webhook);
    let slow = |policy: &str| {
        webhook.config(&[(
            "slow.kube-encrypt.dev",
            "/slow",
            json!({ "timeoutSeconds": 1, "failurePolicy": policy }),
        )])
    };

    let started = Instant::now();
    let denied = review(&admission, &[slow("Fail")], &create_config())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}, the 1 s timeout was not applied",
        started.elapsed()
    );
    assert_eq!(denied.code, 500);
    assert_eq!(denied.reason, "InternalError");
    assert_eq!(
        denied.message,
        format!("Internal error occurred: failed calling webhook \"slow.kube-encrypt.dev\": failed to call webhook: \
                 Post \"https://{}/slow?timeout=1s\": context deadline exceeded", webhook.addr)
    );

    let started = Instant::now();
    assert_eq!(
        review(&admission, &[slow("Ignore")], &create_config()).await,
        Ok(vec![])
    );
    assert!(started.elapsed() < Duration::from_millis(2500));
}

#[tokio::test]
async fn only_webhooks_whose_rules_match_are_called() {
    let webhook = Webhook::start().await;
    let admission = admission_for(&webhook);
    let rule = |ops: &[&str], groups: &[&str], resources: &[&str]| json!({ "rules": [{ "operations": ops, "apiGroups": groups, "apiVersions": ["*"], "resources": resources }] });
    let cases = [
        (
            rule(&["DELETE"], &["kube-encrypt.dev"], &["encryptionconfigs"]),
            false,
        ),
        (rule(&["CREATE"], &["apps"], &["encryptionconfigs"]), false),
        (
            rule(&["CREATE"], &["kube-encrypt.dev"], &["ippools"]),
            false,
        ),
        (
            rule(
                &["CREATE"],
                &["kube-encrypt.dev"],
                &["encryptionconfigs/status"],
            ),
            false,
        ),
        (rule(&["*"], &["*"], &["*"]), true),
        (
            rule(&["CREATE"], &["kube-encrypt.dev"], &["encryptionconfigs"]),
            true,
        ),
    ];
    for (rules, called) in cases {
        let config = webhook.config(&[("deny.kube-encrypt.dev", "/deny", rules.clone())]);
        let result = review(&admission, &[config], &create_config()).await;
        assert_eq!(result.is_err(), called, "{rules}: {result:?}");
    }
    assert_eq!(
        webhook.calls().len(),
        2,
        "non-matching webhooks were not called"
    );
}

#[tokio::test]
async fn dry_run_needs_a_webhook_without_side_effects() {
    let webhook = Webhook::start().await;
    let admission = admission_for(&webhook);
    let mut dry_run = create_config();
    dry_run.dry_run = true;

    let unknown = webhook.config(&[(
        "v.kube-encrypt.dev",
        "/allow",
        json!({ "sideEffects": "Unknown", "failurePolicy": "Ignore" }),
    )]);
    let denied = review(&admission, &[unknown], &dry_run).await.unwrap_err();
    assert_eq!((denied.code, denied.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        denied.message,
        "admission webhook \"v.kube-encrypt.dev\" does not support dry run"
    );
    assert!(
        webhook.calls().is_empty(),
        "a webhook with side effects is not called on dry run"
    );

    for side_effects in ["None", "NoneOnDryRun"] {
        let config = webhook.config(&[(
            "v.kube-encrypt.dev",
            "/allow",
            json!({ "sideEffects": side_effects }),
        )]);
        assert_eq!(
            review(&admission, &[config], &dry_run).await,
            Ok(vec![]),
            "{side_effects}"
        );
        assert_eq!(webhook.last_request()["dryRun"], true);
    }
}

#[tokio::test]
async fn a_service_reference_is_dialled_via_the_resolver_with_its_service_name() {
    let webhook = Webhook::start().await;
    let admission = admission_for(&webhook);
    let service = |name: &str, namespace: &str| {
        json!({ "clientConfig": {
        "service": { "name": name, "namespace": namespace, "path": "/warn", "port": 8443 },
        "caBundle": webhook.ca_bundle } })
    };

    let ok = webhook.config(&[(
        "v.kube-encrypt.dev",
        "",
        service("ke-webhook", "kube-encrypt"),
    )]);
    assert_eq!(
        review(&admission, &[ok], &create_config())
            .await
            .map(|w| w.len()),
        Ok(1)
    );
    assert_eq!(webhook.calls(), ["/warn?timeout=10s"]);

    let wrong_name =
        webhook.config(&[("v.kube-encrypt.dev", "", service("other", "kube-encrypt"))]);
    let denied = review(&admission, &[wrong_name], &create_config())
        .await
        .unwrap_err();
    assert!(denied.message.contains("Post \"https://other.kube-encrypt.svc:8443/warn?timeout=10s\": tls: failed to verify certificate"), "{}", denied.message);

    let unresolvable =
        webhook.config(&[("v.kube-encrypt.dev", "", service("ke-webhook", "elsewhere"))]);
    let denied = review(&admission, &[unresolvable], &create_config())
        .await
        .unwrap_err();
    assert_eq!(denied.message, "Internal error occurred: failed calling webhook \"v.kube-encrypt.dev\": services \"ke-webhook\" not found");
}

#[tokio::test]
async fn a_webhook_certificate_from_another_ca_is_rejected() {
    let webhook = Webhook::start().await;
    let stranger = pki();
    let admission = admission_for(&webhook);
    let client = |policy: &str| {
        json!({ "failurePolicy": policy, "clientConfig": {
        "url": format!("https://{}/allow", webhook.addr), "caBundle": stranger.ca_bundle } })
    };

    let denied = review(
        &admission,
        &[webhook.config(&[("v.kube-encrypt.dev", "", client("Fail"))])],
        &create_config(),
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code, 500);
    assert!(
        denied.message.starts_with(&format!("Internal error occurred: failed calling webhook \"v.kube-encrypt.dev\": failed to call webhook: Post \"https://{}/allow?timeout=10s\": tls: failed to verify certificate", webhook.addr)),
        "{}", denied.message
    );
    assert!(
        webhook.calls().is_empty(),
        "no request went over the untrusted connection"
    );
    assert_eq!(
        review(
            &admission,
            &[webhook.config(&[("v.kube-encrypt.dev", "", client("Ignore"))])],
            &create_config()
        )
        .await,
        Ok(vec![])
    );
}

#[tokio::test]
async fn bad_answers_and_unreachable_webhooks_are_call_failures() {
    let webhook = Webhook::start().await;
    let admission = admission_for(&webhook);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let cases = [
        (
            json!({}),
            "/wrong-uid",
            "received invalid webhook response: expected response.uid=",
        ),
        (json!({}), "/missing", "failed to call webhook: Post"),
        (
            json!({ "admissionReviewVersions": ["v1beta1"] }),
            "/allow",
            "webhook does not accept v1 AdmissionReview",
        ),
        (
            json!({ "clientConfig": { "url": format!("https://{closed_addr}/allow"), "caBundle": webhook.ca_bundle } }),
            "",
            "connect: ",
        ),
    ];
    for (extra, path, expected) in cases {
        let config = webhook.config(&[("v.kube-encrypt.dev", path, extra.clone())]);
        let denied = review(&admission, &[config], &create_config())
            .await
            .unwrap_err();
        assert_eq!(denied.code, 500, "{extra} {path}");
        assert!(
            denied.message.starts_with(
                "Internal error occurred: failed calling webhook \"v.kube-encrypt.dev\": "
            ),
            "{}",
            denied.message
        );
        assert!(
            denied.message.contains(expected),
            "{extra} {path}: want {expected:?} in {}",
            denied.message
        );
    }
}
