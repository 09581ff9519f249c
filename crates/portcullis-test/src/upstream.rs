//! An upstream that answers every request with a JSON report of what it received.
//!
//! - `GET /slow/{ms}` waits `ms` milliseconds before answering (timeouts, graceful shutdown);
//! - `GET /status/{code}` answers with that status;
//! - anything else answers 200.
//!
//! Every response carries `Server`, `X-Powered-By` and a permissive Cache-Control, so tests can
//! check that the gateway replaces them. It speaks HTTP/1.1 and h2c.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub version: String,
    /// Header names in lower case with their values, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The address the request came from, where the server knows it: one per connection, so
    /// tests can tell a kept-alive upstream connection from a new one.
    pub peer: Option<SocketAddr>,
}

impl Received {
    /// What a server saw of a request: its head and its whole body.
    pub fn new(parts: &http::request::Parts, body: Bytes) -> Self {
        Self {
            method: parts.method.to_string(),
            target: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            version: format!("{:?}", parts.version),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
            peer: None,
        }
    }

    /// All values of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }
}

/// A running test upstream; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct TestUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl TestUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(req, peer, log.clone()));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The most recent request.
    pub fn last(&self) -> Received {
        self.received()
            .pop()
            .expect("the upstream received no request")
    }
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let received = Received {
        peer: Some(peer),
        ..Received::new(&parts, body.clone())
    };
    log.lock().unwrap().push(received.clone());

    let path = parts.uri.path();
    let mut status = StatusCode::OK;
    if let Some(ms) = path
        .strip_prefix("/slow/")
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
    {
        status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    }
    let report = json!({
        "method": received.method,
        "target": received.target,
        "version": received.version,
        "headers": received.headers,
        "body_len": body.len(),
    });
    let mut res = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("server", "test-upstream/0.1")
        .header("x-powered-by", "PHP/5.4")
        .header("cache-control", "public, max-age=86400")
        .header("x-upstream", "1");
    // `x-test-respond-header: name: value` (repeatable): the upstream adds that header to its
    // response, so a test can make it send what a misconfigured or hostile upstream would
    // (its own CORS headers, cookies) and check what the gateway lets through.
    for value in parts.headers.get_all("x-test-respond-header") {
        if let Some((name, value)) = value.to_str().ok().and_then(|v| v.split_once(": ")) {
            res = res.header(name, value);
        }
    }
    Ok(res
        .body(Full::new(Bytes::from(report.to_string())))
        .unwrap())
}
