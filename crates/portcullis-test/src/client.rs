//! Clients for tests: a pooled HTTP/1.1 or h2c client, and a raw-bytes exchange.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// An HTTP client for one base address.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// HTTP/1.1.
    pub fn http1(addr: SocketAddr) -> Self {
        Self::build(addr, false)
    }

    /// HTTP/2 with prior knowledge (h2c).
    pub fn h2c(addr: SocketAddr) -> Self {
        Self::build(addr, true)
    }

    fn build(addr: SocketAddr, h2: bool) -> Self {
        let inner = HyperClient::builder(TokioExecutor::new())
            .http2_only(h2)
            .build(HttpConnector::new());
        Self {
            base: format!("http://{addr}"),
            inner,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(self.url(path)).body(Full::default()).unwrap())
            .await
    }

    /// A request builder for `method path` against this client's base address.
    pub fn request(&self, method: &str, path: &str) -> http::request::Builder {
        Request::builder().method(method).uri(self.url(path))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        let res = tokio::time::timeout(Duration::from_secs(20), self.inner.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body failed").to_bytes();
        Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        }
    }
}

/// Sends raw bytes and returns everything the server sends back until it closes the
/// connection or goes quiet for 2 s: for framing tests that a well-behaved client cannot send.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
