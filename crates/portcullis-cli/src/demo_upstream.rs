//! The bundled demo upstream: a tiny JSON API on loopback, so `portcullis demo` needs nothing
//! else. It deliberately sends `Server` and `X-Powered-By` and a careless Cache-Control, to
//! show the gateway replacing them.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Starts the demo upstream on an ephemeral loopback port and returns its address.
pub async fn start() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(handle);
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match req.uri().path() {
        "/v1/status" => (
            StatusCode::OK,
            r#"{"status":"ok","version":"demo"}"#.to_owned(),
        ),
        "/v1/status/stream" => {
            return Ok(Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Full::new(Bytes::from_static(
                    b"data: {\"status\":\"ok\"}\n\n",
                )))
                .unwrap_or_default());
        }
        "/v1/account/me" => (
            StatusCode::OK,
            r#"{"id":"acct_123","email":"ada@example.com","plan":"team"}"#.to_owned(),
        ),
        path if path.starts_with("/v1/admin/") || path.starts_with("/v1/billing/") => (
            StatusCode::OK,
            format!(r#"{{"path":{}}}"#, serde_json::Value::from(path)),
        ),
        _ => (StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.to_owned()),
    };
    Ok(Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::SERVER, "demo-upstream/1.0")
        .header("x-powered-by", "Express")
        .header(header::CACHE_CONTROL, "public, max-age=86400")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default())
}
