//! The HTTP endpoints: `POST /validate`, `GET /healthz`, `GET /readyz`, `GET /metrics`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::admission::Admission;
use crate::args::Limits;
use crate::cluster::SharedCluster;
use crate::metrics::Metrics;

/// What the endpoints answer from.
#[derive(Debug, Clone)]
pub struct App {
    pub admission: Admission,
    pub cluster: Arc<SharedCluster>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
}

impl App {
    /// The response to one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        match (req.uri().path(), get) {
            ("/validate", _) if req.method() == Method::POST => self.validate(req).await,
            ("/validate", _) => text(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview\n"),
            ("/healthz", true) => text(StatusCode::OK, "ok\n"),
            ("/readyz", true) if self.cluster.synced() => text(StatusCode::OK, "ready\n"),
            ("/readyz", true) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the EncryptionConfig and IPPool watch caches have not synced yet\n",
            ),
            ("/metrics", true) => metrics(&self.metrics),
            ("/healthz" | "/readyz" | "/metrics", false) => {
                text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n")
            }
            _ => {
                self.metrics.count_rejection("not_found");
                text(
                    StatusCode::NOT_FOUND,
                    "not found; try POST /validate, /healthz, /readyz or /metrics\n",
                )
            }
        }
    }

    async fn validate<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let response = match self.read_body(req).await {
            Ok(body) => match self.admission.review(&body) {
                Ok(answer) => json(answer),
                Err(e) => {
                    self.metrics.count_rejection("malformed");
                    text(StatusCode::BAD_REQUEST, &format!("{e}\n"))
                }
            },
            Err(rejection) => rejection,
        };
        self.metrics.observe_latency(started.elapsed());
        response
    }

    /// The whole body, within the size and time limits.
    async fn read_body<B>(&self, req: Request<B>) -> Result<Bytes, Response<Full<Bytes>>>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let max = self.limits.max_body_bytes;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max as u64) {
            return Err(self.too_large());
        }
        let mut collect = std::pin::pin!(Limited::new(req.into_body(), max).collect());
        // A small body usually came with the headers: the timer is armed only when it did not.
        let collected = match (&mut collect).now_or_never() {
            Some(collected) => Ok(collected),
            None => tokio::time::timeout(self.limits.body_timeout, collect).await,
        };
        match collected {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(self.too_large()),
            Ok(Err(e)) => {
                self.metrics.count_rejection("malformed");
                Err(text(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the body: {e}\n"),
                ))
            }
            Err(_) => {
                self.metrics.count_rejection("timeout");
                Err(text(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the body did not arrive within {:?}\n",
                        self.limits.body_timeout
                    ),
                ))
            }
        }
    }

    fn too_large(&self) -> Response<Full<Bytes>> {
        self.metrics.count_rejection("too_large");
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "an AdmissionReview may be at most {} bytes\n",
                self.limits.max_body_bytes
            ),
        )
    }
}

fn metrics(metrics: &Metrics) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::OK, &metrics.encode());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

fn json(body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
