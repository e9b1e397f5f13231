//! HTTPS to a webhook: hyper 1 over tokio-rustls (ring), trusting only the webhook's
//! `clientConfig.caBundle`, to `clientConfig.url` or to a `clientConfig.service` resolved by
//! the emulator (server name `<name>.<namespace>.svc`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;

use super::ServiceResolver;

/// Answers larger than this are refused.
const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;

/// A webhook's `clientConfig.service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    /// `service.port`, 443 by default.
    pub port: u16,
}

/// Where and how to reach one webhook.
pub(super) struct Endpoint {
    /// The URL as the server prints it in errors, with `?timeout=` appended.
    url: String,
    /// `Host` header value.
    authority: String,
    path_and_query: String,
    server_name: ServerName<'static>,
    target: Target,
    tls: Arc<rustls::ClientConfig>,
}

enum Target {
    Resolved(SocketAddr),
    Lookup(String, u16),
}

impl Endpoint {
    /// Reads `clientConfig`; errors say what in it is unusable.
    pub(super) fn of(
        hook: &Value,
        timeout: Duration,
        resolver: &ServiceResolver,
    ) -> Result<Self, String> {
        let client = hook
            .get("clientConfig")
            .ok_or("webhook has no clientConfig")?;
        let tls = Arc::new(tls_config(client)?);
        let query = format!("timeout={}s", timeout.as_secs());
        if let Some(service) = client.get("service").filter(|s| s.is_object()) {
            return Self::for_service(service, &query, tls, resolver);
        }
        match client.get("url").and_then(Value::as_str) {
            Some(url) => Self::for_url(url, &query, tls),
            None => Err("clientConfig names neither url nor service".into()),
        }
    }

    fn for_service(
        service: &Value,
        query: &str,
        tls: Arc<rustls::ClientConfig>,
        resolver: &ServiceResolver,
    ) -> Result<Self, String> {
        let text = |field: &str| {
            service
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let port = service.get("port").and_then(Value::as_u64).unwrap_or(443);
        let service = ServiceRef {
            namespace: text("namespace"),
            name: text("name"),
            port: u16::try_from(port)
                .map_err(|_| format!("service port {port} is out of range"))?,
        };
        let host = format!("{}.{}.svc", service.name, service.namespace);
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| format!("invalid service name {host:?}: {e}"))?;
        let path = text("path");
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        let authority = format!("{host}:{}", service.port);
        let address = resolver(&service)?;
        Ok(Self {
            url: format!("https://{authority}{path}?{query}"),
            authority,
            path_and_query: format!("{path}?{query}"),
            server_name,
            target: Target::Resolved(address),
            tls,
        })
    }

    fn for_url(url: &str, query: &str, tls: Arc<rustls::ClientConfig>) -> Result<Self, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("invalid clientConfig.url {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("clientConfig.url {url:?} must use https"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("clientConfig.url {url:?} has no host"))?;
        let bare_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(bare_host.clone())
            .map_err(|e| format!("invalid host in {url:?}: {e}"))?;
        let path = uri.path();
        let path_and_query = match uri.query() {
            Some(q) => format!("{path}?{q}&{query}"),
            None => format!("{path}?{query}"),
        };
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| host.to_string());
        Ok(Self {
            url: format!("https://{authority}{path_and_query}"),
            authority,
            path_and_query,
            server_name,
            target: Target::Lookup(bare_host, port),
            tls,
        })
    }

    /// POSTs `body` and returns the decoded JSON answer, all within `timeout`; errors are
    /// worded like Go's `Post "<url>": <cause>`.
    pub(super) async fn post(&self, body: &Value, timeout: Duration) -> Result<Value, String> {
        let exchange = self.exchange(body);
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result.map_err(|cause| format!("Post {:?}: {cause}", self.url)),
            Err(_) => Err(format!("Post {:?}: context deadline exceeded", self.url)),
        }
    }

    async fn exchange(&self, body: &Value) -> Result<Value, String> {
        let address = self.address().await?;
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("dial tcp {address}: connect: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let stream = connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("tls: failed to verify certificate: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("http handshake: {e}"))?;
        let driver = tokio::spawn(connection);
        let request = hyper::Request::post(self.path_and_query.as_str())
            .header(HOST, self.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, */*")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| format!("building the request: {e}"))?;
        let result = read_answer(sender.send_request(request).await).await;
        driver.abort();
        result
    }

    async fn address(&self) -> Result<SocketAddr, String> {
        match &self.target {
            Target::Resolved(address) => Ok(*address),
            Target::Lookup(host, port) => tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("dial tcp: lookup {host}: no such host")),
        }
    }
}

async fn read_answer(
    sent: Result<hyper::Response<hyper::body::Incoming>, hyper::Error>,
) -> Result<Value, String> {
    let response = sent.map_err(|e| format!("{e}"))?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(unsuccessful(status.as_u16(), &bytes));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("the webhook's answer is not JSON: {e}"))
}

/// client-go's wording for a non-2xx answer.
fn unsuccessful(code: u16, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(message) = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
    {
        return message.to_string();
    }
    let text = String::from_utf8_lossy(body);
    match code {
        404 => "the server could not find the requested resource".into(),
        500.. if !text.trim().is_empty() => {
            format!(
                "an error on the server ({:?}) has prevented the request from succeeding",
                text.trim()
            )
        }
        _ => format!(
            "the server responded with the status code {code} but did not return more information"
        ),
    }
}

/// Trusts exactly the certificates of `caBundle` (base64 of PEM).
fn tls_config(client: &Value) -> Result<rustls::ClientConfig, String> {
    let bundle = client
        .get("caBundle")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if bundle.is_empty() {
        return Err(
            "clientConfig.caBundle is empty; the emulator trusts only the webhook's caBundle, \
                    so set it to the base64 PEM of the CA that signed the webhook's certificate"
                .into(),
        );
    }
    let pem = base64::engine::general_purpose::STANDARD
        .decode(bundle.trim())
        .map_err(|e| format!("clientConfig.caBundle is not base64: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("clientConfig.caBundle is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("clientConfig.caBundle holds an unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("clientConfig.caBundle holds no PEM certificate".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
