//! The bare hyper proxy: the practical ceiling for `portcullis serve`.
//!
//! The same plumbing as the gateway and nothing else: a Tokio multi-thread runtime built like
//! the CLI's (`new_multi_thread().enable_all()`, so `TOKIO_WORKER_THREADS` applies), the accept
//! loop on the `block_on` thread, `TCP_NODELAY` on accepted sockets, a hyper-util `auto` server
//! with the gateway's settings (Tokio timer, 10 s header read timeout, 100 headers at most,
//! 32 KiB HTTP/2 header lists), the gateway's allocator (mimalloc), and the gateway's own
//! HTTP/1.1 connection pool and body type (`portcullis::proxy::{Http1Pool, ProxyBody}`) over
//! an `HttpConnector` with `nodelay` and the gateway's settings. Each request is forwarded in
//! origin form with `Host` set to the upstream's authority; other headers and the bodies pass
//! through untouched both ways.
//!
//! What the gateway does on top, and this does not: the policy layers, the wire-framing scan of
//! request heads, graceful-shutdown tracking, hop-by-hop and forwarding headers, the per-request
//! upstream timeout, and logging.
//!
//! ```text
//! bare-proxy --listen 127.0.0.1:8081 --upstream 127.0.0.1:3000
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::Either;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis::proxy::pool::PooledBody;
use portcullis::proxy::{Http1Pool, ProxyBody};
use portcullis_bench::{ArgError, flags, loopback_addr};
use tokio::net::TcpListener;

type Body = Either<PooledBody<ProxyBody>, Empty<Bytes>>;

/// The gateway's allocator (`portcullis-cli`'s main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut listen, mut upstream) = (None, None);
    for (name, value) in flags(&["listen", "upstream"])? {
        let addr = loopback_addr(&value)?;
        match name.as_str() {
            "listen" => listen = Some(addr),
            _ => upstream = Some(addr),
        }
    }
    let listen = listen.ok_or_else(|| ArgError("--listen ADDR is required".into()))?;
    let upstream = upstream.ok_or_else(|| ArgError("--upstream ADDR is required".into()))?;
    // As the CLI builds the gateway's runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(listen, upstream))
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let host = HeaderValue::try_from(upstream.to_string())?;

    // The gateway's connections: `portcullis::proxy::Proxy::new` with the policy's defaults.
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    let target = Uri::try_from(format!("http://{upstream}/"))?;
    let pool: Http1Pool<ProxyBody> = Http1Pool::new(connector, target, Duration::from_secs(90));

    // The gateway's server settings: `portcullis::server::Gateway::serve`.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_headers(100);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(32 * 1024);

    let listener = TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("bare-proxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let pool = pool.clone();
        let host = host.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            forward(pool.clone(), host.clone(), req)
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn forward(
    pool: Http1Pool<ProxyBody>,
    host: HeaderValue,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::from(path_and_query);
    parts.version = http::Version::HTTP_11;
    parts.headers.insert(header::HOST, host);
    match pool
        .send(Request::from_parts(parts, ProxyBody::from(body)))
        .await
    {
        Ok(res) => Ok(res.map(Either::Left)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut res = Response::new(Either::Right(Empty::new()));
    *res.status_mut() = code;
    res
}
