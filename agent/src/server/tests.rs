use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

#[test]
fn routes_answer_as_documented() {
    let metrics = Metrics::new();
    let health = Health::new(Duration::from_secs(180));
    let now = Instant::now();
    let stuck = now + Duration::from_secs(181);
    let get = Method::GET;
    let cases = [
        ("/healthz", false, now, StatusCode::OK),
        ("/healthz", true, stuck, StatusCode::SERVICE_UNAVAILABLE),
        ("/readyz", false, now, StatusCode::SERVICE_UNAVAILABLE),
        ("/readyz", true, now, StatusCode::OK),
        ("/metrics", false, now, StatusCode::OK),
        ("/other", false, now, StatusCode::NOT_FOUND),
    ];
    for (path, ready, at, want) in cases {
        health.set_ready(ready);
        let response = route(&get, path, &metrics, &health, at);
        assert_eq!(response.status(), want, "{path} ready={ready}");
    }
    let post = route(&Method::POST, "/metrics", &metrics, &health, now);
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn healthz_fails_only_while_rounds_stop_finishing() {
    let health = Health::new(Duration::from_secs(180));
    let start = Instant::now();
    health.round_finished_at(start);
    let at = |secs| start + Duration::from_secs(secs);
    assert_eq!(
        health.stalled_at(at(179)),
        None,
        "grace after the start or a round"
    );
    assert_eq!(health.stalled_at(at(200)), Some(Duration::from_secs(200)));
    health.round_finished_at(at(200));
    assert_eq!(health.stalled_at(at(379)), None);
    let response = route(&Method::GET, "/healthz", &Metrics::new(), &health, at(400));
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

async fn start_server() -> SocketAddr {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = Arc::new(Health::default());
    tokio::spawn(serve(listener, Arc::new(Metrics::new()), health));
    addr
}

/// Reads until the server closes the connection; the bytes read.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes).await;
    bytes
}

#[tokio::test(start_paused = true)]
async fn silent_and_idle_connections_are_closed_after_the_header_timeout() {
    let addr = start_server().await;

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    read_to_close(&mut silent).await;
    let waited = started.elapsed();
    assert!(
        waited >= HEADER_TIMEOUT && waited < CONNECTION_LIFETIME,
        "a client that sends nothing is cut after {waited:?}"
    );

    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = String::from_utf8(read_to_close(&mut idle).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < CONNECTION_LIFETIME,
        "a keep-alive connection left idle is closed, after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let addr = start_server().await;
    let mut open = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        open.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the server accept them all before the extra one arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(2), read_to_close(&mut extra)).await;
    assert_eq!(closed.as_deref(), Ok(&[][..]), "closed without an answer");

    drop(open);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_to_close(&mut again).await).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "slots are freed: {answer}"
    );
}
