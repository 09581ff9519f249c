//! The plumbing `bare-proxy` and `floor-proxy` share: the gateway's runtime, server settings,
//! accept loop and upstream pool (each binary sets the gateway's allocator itself), with a hook
//! for per-request [`Work`].
//!
//! The bare proxy runs it with [`Nothing`], which the compiler removes entirely, so the ceiling
//! stays the gateway's plumbing and nothing else; the floor proxy runs the fixed header work a
//! policy requires (see `src/bin/floor-proxy.rs`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis::proxy::pool::PooledBody;
use portcullis::proxy::{Http1Pool, ProxyBody};
use tokio::net::TcpListener;

type Body = Either<PooledBody<ProxyBody>, Empty<Bytes>>;

/// What a proxy does to each request and response on top of forwarding them.
pub trait Work: Sync + 'static {
    /// Computed once per connection (from the peer's address).
    type Connection: Clone + Send + 'static;
    /// Carried from a request to its response.
    type Carry: Send + 'static;

    fn connection(&self, peer: SocketAddr) -> Self::Connection;
    /// Edits the request head before it is forwarded; `Err` answers with that status instead.
    fn request(
        &self,
        connection: &Self::Connection,
        head: &mut http::request::Parts,
    ) -> Result<Self::Carry, StatusCode>;
    /// Edits the upstream's response headers before they are sent.
    fn response(&self, carry: Self::Carry, headers: &mut HeaderMap);
}

/// No work at all: the bare proxy.
#[derive(Debug)]
pub struct Nothing;

impl Work for Nothing {
    type Connection = ();
    type Carry = ();

    #[inline(always)]
    fn connection(&self, _peer: SocketAddr) {}

    #[inline(always)]
    fn request(&self, _: &(), _: &mut http::request::Parts) -> Result<(), StatusCode> {
        Ok(())
    }

    #[inline(always)]
    fn response(&self, _: (), _: &mut HeaderMap) {}
}

/// Builds the runtime like the CLI does (`new_multi_thread().enable_all()`, so
/// `TOKIO_WORKER_THREADS` applies) and serves `listen`, forwarding to `upstream`.
pub fn run<W: Work>(
    listen: SocketAddr,
    upstream: SocketAddr,
    work: &'static W,
) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(listen, upstream, work))
}

async fn serve<W: Work>(
    listen: SocketAddr,
    upstream: SocketAddr,
    work: &'static W,
) -> Result<(), Box<dyn std::error::Error>> {
    let host = HeaderValue::try_from(upstream.to_string())?;

    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    let target = Uri::try_from(format!("http://{upstream}/"))?;
    let pool: Http1Pool<ProxyBody> = Http1Pool::new(connector, target, Duration::from_secs(90));

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
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let pool = pool.clone();
        let host = host.clone();
        let connection = work.connection(peer);
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            forward(pool.clone(), host.clone(), work, connection.clone(), req)
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn forward<W: Work>(
    pool: Http1Pool<ProxyBody>,
    host: HeaderValue,
    work: &'static W,
    connection: W::Connection,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let carry = match work.request(&connection, &mut parts) {
        Ok(carry) => carry,
        Err(code) => return Ok(status(code)),
    };
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
        Ok(mut res) => {
            work.response(carry, res.headers_mut());
            Ok(res.map(Either::Left))
        }
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut res = Response::new(Either::Right(Empty::new()));
    *res.status_mut() = code;
    res
}
