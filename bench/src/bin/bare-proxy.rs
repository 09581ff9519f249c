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
//! The plumbing lives in `portcullis_bench::proxy`, shared with `floor-proxy`; here it runs with
//! [`portcullis_bench::proxy::Nothing`], which compiles to nothing.
//!
//! ```text
//! bare-proxy --listen 127.0.0.1:8081 --upstream 127.0.0.1:3000
//! ```

use std::process::ExitCode;

use portcullis_bench::proxy::{self, Nothing};
use portcullis_bench::{ArgError, flags, loopback_addr};

/// The gateway's allocator (`portcullis-cli`'s main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    portcullis_bench::exit_status("bare-proxy", run())
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
    proxy::run(listen, upstream, &Nothing)
}
