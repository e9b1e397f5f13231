//! The HTTPS server with a real client (hyper + rustls) on 127.0.0.1: AdmissionReviews end to
//! end, the other endpoints, certificate reload from files, and the limits (body size, body
//! and idle timeouts, connection cap, graceful shutdown). Every test is bounded in time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use kube_encrypt_api::crd::{EncryptionConfig, EncryptionConfigSpec, IPPool, IPPoolSpec};
use kube_encrypt_webhook::admission::Admission;
use kube_encrypt_webhook::args::Limits;
use kube_encrypt_webhook::cluster::{ClusterSnapshot, SharedCluster};
use kube_encrypt_webhook::metrics::Metrics;
use kube_encrypt_webhook::policy::reload::PolicyHandle;
use kube_encrypt_webhook::server::{self, App};
use kube_encrypt_webhook::tls::files::CertReloader;
use kube_encrypt_webhook::tls::self_signed::{Authority, Issued};
use kube_encrypt_webhook::tls::{self, CertStore};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TEST_TIMEOUT: Duration = Duration::from_secs(60);
const NAMES: [&str; 2] = ["kube-encrypt-webhook.kube-encrypt.svc", "127.0.0.1"];

async fn bounded<F: std::future::Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time limit")
}

fn issue(ca: &Authority) -> Issued {
    let names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    ca.issue(&names).unwrap()
}

/// A running server over a fixed cluster: IPv6 encryption on, one IPv6 pool with NAT.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    metrics: Arc<Metrics>,
}

impl Server {
    async fn start(store: Arc<CertStore>, limits: Limits) -> Self {
        let config = EncryptionConfig::new("default", EncryptionConfigSpec::default().with_ipv6());
        let pools = [IPPool::new("v6", IPPoolSpec::test("2001:db8:1::/48"))];
        let cluster = Arc::new(SharedCluster::fixed(ClusterSnapshot::of(
            [Arc::new(config)],
            &pools,
        )));
        let metrics = Arc::new(Metrics::new());
        let app = Arc::new(App {
            admission: Admission::new(
                cluster.clone(),
                Arc::new(PolicyHandle::default()),
                metrics.clone(),
            ),
            cluster,
            metrics: metrics.clone(),
            limits,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let tls = Arc::new(tls::server_config(store));
        let task = tokio::spawn(server::serve(listener, tls, app, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
            metrics,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap();
    }
}

/// A TLS connection trusting `ca_pem`, speaking HTTP/1.1 with keep-alive.
async fn connect(addr: SocketAddr, ca_pem: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    connect_with(addr, ca_pem).await
}

/// [`connect`] for requests with a body of type `B`.
async fn connect_with<B>(addr: SocketAddr, ca_pem: &str) -> Result<SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake::<_, B>(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, Vec<u8>), hyper::Error> {
    sender.ready().await?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}

/// The AdmissionReview of deleting the last IPv6 pool.
fn deletion_review() -> Vec<u8> {
    let gvk = json!({"group": "kube-encrypt.dev", "version": "v1alpha1", "kind": "IPPool"});
    let gvr = json!({"group": "kube-encrypt.dev", "version": "v1alpha1", "resource": "ippools"});
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "3e1c", "kind": gvk, "resource": gvr, "name": "v6", "operation": "DELETE",
            "userInfo": {"username": "admin"}, "dryRun": true,
            "oldObject": {"apiVersion": "kube-encrypt.dev/v1alpha1", "kind": "IPPool", "metadata": {"name": "v6"}, "spec": {"cidr": "2001:db8:1::/48", "natOutgoing": true}},
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn reviews_and_endpoints_over_tls() {
    bounded(async {
        let ca = Authority::generate().unwrap();
        let server = Server::start(Arc::new(CertStore::new(issue(&ca).key)), Limits::default()).await;
        let mut client = connect(server.addr, ca.cert_pem()).await.unwrap();
        for _ in 0..3 {
            let (status, body) = send(&mut client, "POST", "/validate", deletion_review()).await.unwrap();
            assert_eq!(status, StatusCode::OK);
            let answer: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(answer["response"]["uid"], "3e1c");
            assert_eq!(answer["response"]["allowed"], false);
            let message = answer["response"]["status"]["message"].as_str().unwrap();
            assert!(message.contains("ipv6-nat-outgoing"), "{message}");
        }
        let cases = [
            ("GET", "/healthz", StatusCode::OK),
            ("GET", "/readyz", StatusCode::OK),
            ("GET", "/metrics", StatusCode::OK),
            ("GET", "/validate", StatusCode::METHOD_NOT_ALLOWED),
            ("POST", "/healthz", StatusCode::METHOD_NOT_ALLOWED),
            ("GET", "/nothing", StatusCode::NOT_FOUND),
        ];
        for (method, path, want) in cases {
            let (status, _) = send(&mut client, method, path, vec![]).await.unwrap();
            assert_eq!(status, want, "{method} {path}");
        }
        let (status, body) = send(&mut client, "POST", "/validate", b"{not json".to_vec()).await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&body).contains("not an AdmissionReview"));
        let metrics = server.metrics.encode();
        assert!(metrics.contains(r#"admission_requests_total{resource="ippools",operation="DELETE",outcome="denied"} 3"#), "{metrics}");
        server.stop().await;
    })
    .await;
}

/// A temporary directory holding tls.crt and tls.key.
struct CertFiles(PathBuf);

impl CertFiles {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("ke-webhook-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, issued: &Issued) {
        std::fs::write(self.0.join("tls.crt"), &issued.cert_pem).unwrap();
        std::fs::write(self.0.join("tls.key"), &issued.key_pem).unwrap();
    }
}

impl Drop for CertFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn certificate_files_are_reloaded_and_bad_ones_refused() {
    bounded(async {
        let files = CertFiles::new("reload");
        let (old_ca, new_ca) = (
            Authority::generate().unwrap(),
            Authority::generate().unwrap(),
        );
        files.write(&issue(&old_ca));
        let metrics = Arc::new(Metrics::new());
        let mut reloader = CertReloader::start(
            files.0.join("tls.crt"),
            files.0.join("tls.key"),
            metrics.clone(),
        )
        .unwrap();
        let server = Server::start(reloader.store(), Limits::default()).await;
        let mut kept = connect(server.addr, old_ca.cert_pem())
            .await
            .expect("old CA trusted");
        assert!(
            connect(server.addr, new_ca.cert_pem()).await.is_err(),
            "new CA not yet served"
        );

        files.write(&issue(&new_ca));
        assert_eq!(reloader.check(), Some(true));
        connect(server.addr, new_ca.cert_pem())
            .await
            .expect("new certificate served");
        let err = connect(server.addr, old_ca.cert_pem()).await.unwrap_err();
        assert!(err.contains("certificate"), "{err}");
        let (status, _) = send(&mut kept, "GET", "/healthz", vec![]).await.unwrap();
        assert_eq!(status, StatusCode::OK, "open connections keep working");

        std::fs::write(files.0.join("tls.key"), issue(&old_ca).key_pem).unwrap();
        assert_eq!(
            reloader.check(),
            Some(false),
            "a key of another certificate is refused"
        );
        connect(server.addr, new_ca.cert_pem())
            .await
            .expect("the last good certificate stays");
        assert!(metrics
            .encode()
            .contains("certificate_reload_errors_total 1"));
        server.stop().await;
    })
    .await;
}

fn quick_limits() -> Limits {
    Limits {
        max_connections: 2,
        max_body_bytes: 64 * 1024,
        handshake_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn oversized_and_slow_bodies_are_refused() {
    bounded(async {
        let ca = Authority::generate().unwrap();
        let server = Server::start(Arc::new(CertStore::new(issue(&ca).key)), quick_limits()).await;
        let mut client = connect(server.addr, ca.cert_pem()).await.unwrap();
        let (status, _) = send(&mut client, "POST", "/validate", vec![b' '; 65 * 1024])
            .await
            .unwrap();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

        // Chunked, no length announced, larger than the limit.
        let client = connect_with(server.addr, ca.cert_pem()).await.unwrap();
        let (tx, body) = futures_channel();
        let request = Request::post("/validate")
            .header("host", "x")
            .body(body)
            .unwrap();
        let pending = tokio::spawn(async move {
            let mut client = client;
            client.ready().await?;
            client.send_request(request).await.map(|r| r.status())
        });
        for _ in 0..20 {
            if tx
                .send(Ok(hyper::body::Frame::data(Bytes::from(vec![
                    b' ';
                    8 * 1024
                ]))))
                .await
                .is_err()
            {
                break;
            }
        }
        assert_eq!(
            pending.await.unwrap().unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE
        );

        // A body that stops arriving.
        let client = connect_with(server.addr, ca.cert_pem()).await.unwrap();
        let (tx, body) = futures_channel();
        let request = Request::post("/validate")
            .header("host", "x")
            .body(body)
            .unwrap();
        let pending = tokio::spawn(async move {
            let mut client = client;
            client.ready().await?;
            client.send_request(request).await.map(|r| r.status())
        });
        tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(
            b"{\"request\":",
        ))))
        .await
        .unwrap();
        assert_eq!(pending.await.unwrap().unwrap(), StatusCode::REQUEST_TIMEOUT);
        drop(tx);
        server.stop().await;
    })
    .await;
}

type Chunk = Result<hyper::body::Frame<Bytes>, std::convert::Infallible>;

/// A request body fed from a channel.
fn futures_channel() -> (
    tokio::sync::mpsc::Sender<Chunk>,
    http_body_util::StreamBody<tokio_stream_like::Receiver>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    (
        tx,
        http_body_util::StreamBody::new(tokio_stream_like::Receiver(rx)),
    )
}

/// The smallest `Stream` over an mpsc receiver (no extra crate for it).
mod tokio_stream_like {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct Receiver(pub tokio::sync::mpsc::Receiver<super::Chunk>);

    impl futures::Stream for Receiver {
        type Item = super::Chunk;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}

#[tokio::test]
async fn idle_and_silent_connections_are_closed() {
    bounded(async {
        let ca = Authority::generate().unwrap();
        let server = Server::start(Arc::new(CertStore::new(issue(&ca).key)), quick_limits()).await;
        // A client that never starts TLS is dropped after the handshake timeout.
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
        )
        .await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "silent client closed: {read:?}"
        );
        // A kept-alive connection that idles past the idle timeout is closed.
        let mut idle = connect(server.addr, ca.cert_pem()).await.unwrap();
        send(&mut idle, "GET", "/healthz", vec![]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(
            send(&mut idle, "GET", "/healthz", vec![]).await.is_err(),
            "idle connection closed"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_and_shutdown_drains() {
    bounded(async {
        let ca = Authority::generate().unwrap();
        let mut limits = quick_limits();
        limits.idle_timeout = Duration::from_secs(30);
        let server = Server::start(Arc::new(CertStore::new(issue(&ca).key)), limits).await;
        let mut first = connect(server.addr, ca.cert_pem()).await.unwrap();
        let mut second = connect(server.addr, ca.cert_pem()).await.unwrap();
        send(&mut first, "GET", "/healthz", vec![]).await.unwrap();
        send(&mut second, "GET", "/healthz", vec![]).await.unwrap();
        let third = tokio::time::timeout(
            Duration::from_millis(700),
            connect(server.addr, ca.cert_pem()),
        )
        .await;
        assert!(third.is_err(), "a third connection waits for a free slot");
        drop(first);
        let mut third =
            tokio::time::timeout(Duration::from_secs(5), connect(server.addr, ca.cert_pem()))
                .await
                .expect("a slot frees up")
                .unwrap();
        send(&mut third, "GET", "/healthz", vec![]).await.unwrap();
        let addr = server.addr;
        tokio::time::timeout(Duration::from_secs(10), server.stop())
            .await
            .expect("shutdown drains kept-alive connections");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    })
    .await;
}
