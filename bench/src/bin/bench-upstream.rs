//! The upstream of the load harness: answers every request with the same 1 KiB JSON body,
//! HTTP/1.1 keep-alive, on a single-threaded Tokio runtime (it shares a core with `wrk`).
//!
//! It sends `Server: bench-upstream`, `X-Powered-By: bench` and `Cache-Control: max-age=60`,
//! as a web framework might (so every proxy has headers to drop and a cache posture to
//! override) and, when the request carries `X-Correlation-ID`, echoes it as `X-Upstream-Correlation-ID`
//! (so the harness can check that each proxy forwards the ID it echoes to the client).
//!
//! ```text
//! bench-upstream --listen 127.0.0.1:3000
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis_bench::{ArgError, flags, json_body, loopback_addr};
use tokio::net::TcpListener;

const X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
const X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");
const X_UPSTREAM_CORRELATION_ID: HeaderName = HeaderName::from_static("x-upstream-correlation-id");

fn main() -> ExitCode {
    portcullis_bench::exit_status("bench-upstream", run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = None;
    for (name, value) in flags(&["listen"])? {
        if name == "listen" {
            listen = Some(loopback_addr(&value)?);
        }
    }
    let listen = listen.ok_or_else(|| ArgError("--listen ADDR is required".into()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(listen))
}

async fn serve(listen: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let body = json_body();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("bench-upstream: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let res = respond(&req, body.clone());
                async move { Ok::<_, Infallible>(res) }
            });
            // Keep-alive is on by default; errors are clients going away.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(req: &Request<Incoming>, body: Bytes) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // What a web framework typically adds, and what every proxy's posture must override.
    headers.insert(header::SERVER, HeaderValue::from_static("bench-upstream"));
    headers.insert(X_POWERED_BY, HeaderValue::from_static("bench"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    if let Some(id) = req.headers().get(X_CORRELATION_ID) {
        headers.insert(X_UPSTREAM_CORRELATION_ID, id.clone());
    }
    res
}
