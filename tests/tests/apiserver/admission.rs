//! Validating admission through the server: a stored ValidatingWebhookConfiguration makes
//! the server call the webhook over HTTPS (trusting its caBundle) before persisting a
//! create, update or delete; a denial is `admission webhook "<name>" denied the request:
//! <message>` with the webhook's code and nothing is stored; dry runs are flagged.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{DeleteParams, PostParams};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};

use crate::support::{api_error, bounded, install_crds, kube_encrypt_api, Backend, TestServer};

/// An HTTPS webhook on 127.0.0.1 that denies objects labelled `deny: "yes"` and records
/// each request it gets.
struct Webhook {
    addr: SocketAddr,
    ca_bundle: String,
    requests: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Webhook {
    async fn start() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
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
        });
        let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca.pem());
        Self {
            addr,
            ca_bundle,
            requests,
            task,
        }
    }

    fn configuration(&self) -> ValidatingWebhookConfiguration {
        serde_json::from_value(json!({
            "metadata": {"name": "kube-encrypt"},
            "webhooks": [{
                "name": "validate.kube-encrypt.dev",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "rules": [{"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": ["kube-encrypt.dev"],
                           "apiVersions": ["v1alpha1"], "resources": ["ippools"]}],
                "clientConfig": {"url": format!("https://{}/validate", self.addr), "caBundle": self.ca_bundle},
            }]
        }))
        .unwrap()
    }

    /// `(operation, dryRun)` of every request so far.
    fn calls(&self) -> Vec<(String, bool)> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .map(|r| {
                (
                    r["operation"].as_str().unwrap_or("").to_string(),
                    r["dryRun"] == true,
                )
            })
            .collect()
    }
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Vec<Value>>>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let review: Value =
        serde_json::from_slice(&req.into_body().collect().await?.to_bytes()).unwrap_or(Value::Null);
    let request = review["request"].clone();
    seen.lock().unwrap().push(request.clone());
    let denied = request["object"]["metadata"]["labels"]["deny"] == "yes";
    let response = if denied {
        json!({"uid": request["uid"], "allowed": false, "status": {"code": 403, "reason": "Forbidden", "message": "pools labelled deny are refused"}})
    } else {
        json!({"uid": request["uid"], "allowed": true})
    };
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
    Ok(hyper::Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap())
}

fn pool(name: &str, deny: bool) -> kube::api::DynamicObject {
    let labels = if deny {
        json!({"deny": "yes"})
    } else {
        json!({})
    };
    serde_json::from_value(json!({
        "apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "IPPool",
        "metadata": {"name": name, "labels": labels}, "spec": {"cidr": "198.18.0.0/16"}
    }))
    .unwrap()
}

kube_encrypt_tests::on_both_servers!(webhooks_admit_or_deny_writes);
async fn webhooks_admit_or_deny_writes(backend: Backend) {
    bounded(async {
        let s = TestServer::start(backend).await;
        install_crds(&s.client).await;
        let webhook = Webhook::start().await;
        let configs: kube::Api<ValidatingWebhookConfiguration> = kube::Api::all(s.client.clone());
        configs.create(&PostParams::default(), &webhook.configuration()).await.unwrap();
        let pools = kube_encrypt_api(&s.client, "IPPool", "ippools");

        pools.create(&PostParams::default(), &pool("ok", false)).await.unwrap();
        let (code, reason, message) = api_error(pools.create(&PostParams::default(), &pool("bad", true)).await);
        assert_eq!((code, reason.as_str()), (403, "Forbidden"));
        assert_eq!(message, "admission webhook \"validate.kube-encrypt.dev\" denied the request: pools labelled deny are refused");
        assert!(pools.get_opt("bad").await.unwrap().is_none(), "a denied create stores nothing");

        let dry = PostParams { dry_run: true, ..Default::default() };
        pools.create(&dry, &pool("dry", false)).await.unwrap();
        pools.delete("ok", &DeleteParams::default()).await.unwrap();
        let calls = webhook.calls();
        let want = [("CREATE", false), ("CREATE", false), ("CREATE", true), ("DELETE", false)];
        assert_eq!(calls, want.map(|(op, dry)| (op.to_string(), dry)));
    })
    .await;
}
