//! The reverse proxy: the innermost service of `portcullis serve`.
//!
//! Requests are re-serialised by hyper's client in one canonical form (HTTP/1.1 or h2c, per
//! the policy), over a pool of keep-alive connections, with bodies streamed in both directions.
//! Hop-by-hop headers are removed in both directions; forwarding headers are rewritten (see
//! [`forwarded`]); the upstream's failures become safe 502/504 rejections. A WebSocket handshake
//! keeps its `Connection: upgrade` / `Upgrade: websocket` and, once the upstream switches
//! protocols, becomes a tunnel (see [`websocket`]).

pub mod body;
pub mod forwarded;
pub mod pool;
pub mod websocket;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ipnet::IpNet;
use portcullis_layers::framing::strip_hop_by_hop;
use portcullis_layers::{ClientIp, Rejection};
use portcullis_policy::{UpstreamProtocol, UpstreamSettings};
use tokio::time::Timeout;
use tokio::time::error::Elapsed;
use tower::Service;

pub use body::ProxyBody;
pub use pool::{Http1Pool, PoolError};
pub use websocket::Tunnels;

/// The peer address type lives with the client-IP resolver that reads it; re-exported here so
/// the server and existing users keep their import path.
pub use portcullis_layers::PeerAddr;

/// Forwards requests to one upstream. Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    upstream: Upstream,
    host: HeaderValue,
    /// Path prefix of the upstream URL, without a trailing slash (`""` for none).
    prefix: String,
    version: Version,
    request_timeout: Duration,
    preserve_host: bool,
    trusted_proxies: Vec<IpNet>,
    tunnels: Tunnels,
}

/// The connections to the upstream: the pool of the gateway's own for HTTP/1.1 (see [`pool`]
/// for why), hyper-util's client for h2c, where every request shares one connection. The h2c
/// client is handed absolute targets, so it keeps the upstream's scheme and authority; an
/// HTTP/1.1 connection already is the upstream's and takes the origin form.
#[derive(Debug)]
enum Upstream {
    Http1(Http1Pool<ProxyBody>),
    H2c {
        client: Box<Client<HttpConnector, ProxyBody>>,
        scheme: Scheme,
        authority: Authority,
    },
}

/// Why a proxy could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the upstream URL {0} has no host")]
    NoAuthority(Uri),
    #[error("the upstream authority {0} is not a valid Host value")]
    InvalidHost(String),
}

impl Proxy {
    /// A proxy to `upstream`, trusting forwarding headers only from `trusted_proxies`.
    /// Must be called inside a Tokio runtime.
    pub fn new(
        upstream: &UpstreamSettings,
        trusted_proxies: Vec<IpNet>,
    ) -> Result<Self, ProxyError> {
        let authority = upstream
            .url
            .authority()
            .cloned()
            .ok_or_else(|| ProxyError::NoAuthority(upstream.url.clone()))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| ProxyError::InvalidHost(authority.to_string()))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(upstream.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let scheme = upstream.url.scheme().cloned().unwrap_or(Scheme::HTTP);
        let h2c = upstream.protocol == UpstreamProtocol::H2c;
        let connections = if h2c {
            Upstream::H2c {
                client: Box::new(
                    Client::builder(TokioExecutor::new())
                        .pool_idle_timeout(upstream.idle_timeout)
                        .pool_timer(TokioTimer::new())
                        .timer(TokioTimer::new())
                        .http2_only(true)
                        .build(connector),
                ),
                scheme,
                authority,
            }
        } else {
            let target = Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query("/")
                .build()
                .map_err(|_| ProxyError::InvalidHost(authority.to_string()))?;
            Upstream::Http1(Http1Pool::with_limit(
                connector,
                target,
                upstream.idle_timeout,
                upstream.max_connections,
                // As HAProxy's queue timeout defaults to its connect timeout: waiting for a
                // connection is part of getting one.
                upstream.connect_timeout,
            ))
        };
        Ok(Self {
            inner: Arc::new(Inner {
                upstream: connections,
                host,
                prefix: upstream.url.path().trim_end_matches('/').to_owned(),
                version: if h2c {
                    Version::HTTP_2
                } else {
                    Version::HTTP_11
                },
                request_timeout: upstream.request_timeout,
                preserve_host: upstream.preserve_host,
                trusted_proxies,
                tunnels: Tunnels::default(),
            }),
        })
    }

    /// The WebSocket tunnels this proxy (and its clones) opened, for graceful shutdown.
    pub fn tunnels(&self) -> Tunnels {
        self.inner.tunnels.clone()
    }
}

impl Service<Request<ProxyBody>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ProxyFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ProxyBody>) -> Self::Future {
        match self.inner.prepare(req) {
            Ok((req, client_upgrade)) => Inner::exchange(&self.inner, req, client_upgrade),
            Err(rejection) => Box::pin(std::future::ready(Ok(rejection.into_response()))),
        }
    }
}

impl Inner {
    /// The client's request rewritten for the upstream, done before anything is awaited: the
    /// hop-by-hop headers removed, the forwarding headers and `Host` set, the target in the
    /// form the upstream takes. Also the client's side of a WebSocket upgrade, when it asked
    /// for one.
    fn prepare(
        &self,
        req: Request<ProxyBody>,
    ) -> Result<(Request<ProxyBody>, Option<OnUpgrade>), Rejection> {
        let (mut parts, body) = req.into_parts();
        let client_upgrade = websocket::take_client_upgrade(&mut parts, self.version)?;
        let client_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });

        // `TE: trailers` is the one hop-by-hop value worth passing on to an HTTP/2 upstream:
        // trailers stream through, and gRPC requires it. (HTTP/1.1 would also need
        // `Connection: TE`; no HTTP/1.1 upstream needs it.)
        let accepts_trailers = parts.headers.get_all(header::TE).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
        strip_hop_by_hop(&mut parts.headers);
        if client_upgrade.is_some() {
            websocket::set_upgrade_headers(&mut parts.headers);
        }
        if accepts_trailers && self.version == Version::HTTP_2 {
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
        }
        if let Some(PeerAddr(peer)) = parts.extensions.get::<PeerAddr>().copied() {
            let client = parts.extensions.get::<ClientIp>().map(|c| c.addr);
            forwarded::apply(
                &mut parts.headers,
                peer,
                client,
                &self.trusted_proxies,
                client_host.as_ref(),
            );
        }
        let host = match (client_host, self.preserve_host) {
            (Some(h), true) => h,
            _ => self.host.clone(),
        };
        parts.headers.insert(header::HOST, host);

        let path_and_query = match (parts.uri.path_and_query(), self.prefix.is_empty()) {
            // Shared with the request's own URI, not parsed and copied again.
            (Some(pq), true) => pq.clone(),
            (None, true) => PathAndQuery::from_static("/"),
            (pq, false) => {
                let pq = pq.map_or("/", PathAndQuery::as_str);
                PathAndQuery::try_from(format!("{}{pq}", self.prefix)).map_err(|e| {
                    Rejection::bad_request("the request target is invalid")
                        .with_detail(e.to_string())
                })?
            }
        };
        parts.version = self.version;
        parts.uri = match &self.upstream {
            Upstream::Http1(_) => Uri::from(path_and_query),
            Upstream::H2c {
                scheme, authority, ..
            } => Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query(path_and_query)
                .build()
                .map_err(|e| {
                    Rejection::bad_request("the request target is invalid")
                        .with_detail(e.to_string())
                })?,
        };
        Ok((Request::from_parts(parts, body), client_upgrade))
    }

    /// Sends the prepared `req` upstream and answers with the upstream's response.
    fn exchange(
        this: &Arc<Self>,
        req: Request<ProxyBody>,
        client_upgrade: Option<OnUpgrade>,
    ) -> ProxyFuture {
        match &this.upstream {
            Upstream::Http1(pool) => Box::pin(Exchange {
                sent: tokio::time::timeout(this.request_timeout, pool.send(req)),
                proxy: this.clone(),
                client_upgrade,
            }),
            Upstream::H2c { client, .. } => Box::pin(Exchange {
                sent: tokio::time::timeout(this.request_timeout, client.request(req)),
                proxy: this.clone(),
                client_upgrade,
            }),
        }
    }

    /// The client's response from the upstream's answer: a 504 once the request timeout has
    /// passed without a response head, a 502 when the upstream could not be reached or did not
    /// answer; a switch to a WebSocket tunnel, or the response without its hop-by-hop headers.
    fn respond<B, E>(
        &self,
        answered: Result<Result<Response<B>, E>, Elapsed>,
        client_upgrade: Option<OnUpgrade>,
    ) -> Result<Response<ProxyBody>, Rejection>
    where
        B: Into<ProxyBody>,
        E: std::error::Error + 'static,
    {
        let response = answered
            .map_err(|_| {
                Rejection::gateway_timeout(format!(
                    "no response head within {:?}",
                    self.request_timeout
                ))
            })?
            .map_err(|e| upstream_failure(&e))?;
        let (mut parts, body) = response.into_parts();
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            return match client_upgrade {
                Some(client) => websocket::switch(parts, client, &self.tunnels),
                // The upgrade headers were stripped, so the upstream switched unasked: its
                // connection no longer speaks HTTP and the client asked for nothing else.
                None => Err(Rejection::bad_gateway(
                    "the upstream switched protocols without being asked to",
                )),
            };
        }
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.into()))
    }
}

/// The rejection for a request the upstream did not answer: a 503 when every connection to it
/// stayed busy (the upstream is slow, not down: try again shortly), else a 502.
fn upstream_failure(error: &(dyn std::error::Error + 'static)) -> Rejection {
    match error.downcast_ref::<PoolError>() {
        Some(PoolError::Saturated { .. }) => Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_busy",
            "the upstream service is busy",
        )
        .with_detail(crate::error_chain(error))
        .with_retry_after(Duration::from_secs(1)),
        _ => Rejection::bad_gateway(crate::error_chain(error)),
    }
}

/// The future of [`Proxy`]'s responses.
type ProxyFuture = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

pin_project_lite::pin_project! {
    /// A request on its way upstream and back. A named future rather than an `async fn`: an
    /// async body keeps a slot for each of its arguments and locals next to the future it
    /// awaits, and the whole of it is copied each time it moves (into its box, for one), so
    /// the plain struct is a third of the size and copied once.
    struct Exchange<F> {
        #[pin]
        sent: Timeout<F>,
        proxy: Arc<Inner>,
        client_upgrade: Option<OnUpgrade>,
    }
}

impl<F, B, E> Future for Exchange<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Into<ProxyBody>,
    E: std::error::Error + 'static,
{
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answered = std::task::ready!(this.sent.poll(cx));
        Poll::Ready(Ok(this
            .proxy
            .respond(answered, this.client_upgrade.take())
            .unwrap_or_else(Rejection::into_response)))
    }
}
