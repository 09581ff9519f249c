//! The gateway server: accept loop, HTTP/1.1 and h2c connections, WebSocket upgrades,
//! graceful shutdown.
//!
//! Shutdown and WebSockets: the server's `GracefulShutdown` (`graceful.rs`) watches connection
//! futures, and an HTTP/1.1 connection's future completes when it is upgraded: from then on the
//! bytes belong to a tunnel task (see [`crate::proxy::websocket`]) that `GracefulShutdown` neither
//! counts nor signals. Left alone, a tunnel would either be cut the instant the process exits or,
//! for a library user whose runtime lives on, never be closed. So the server waits for in-flight
//! connections *and* open tunnels during `shutdown-grace`, and then closes every tunnel that is
//! left. Tunnels get the grace period like any in-flight request (a message in transit, an upstream
//! that is itself closing its sockets with a close frame), at the price of a shutdown that lasts
//! the whole grace period while a socket stays open; they are never kept past it.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis_policy::Policy;
use tokio::net::TcpListener;
use tower::{Layer, Service};

use crate::graceful::GracefulShutdown;
use crate::jwt_keys::{self, JwtKeyError};
use crate::key_store::{self, KeyStoreError, StoreVerifier};
use crate::lockouts::{self, LockoutError};
use crate::proxy::{PeerAddr, Proxy, ProxyBody, ProxyError, Tunnels, websocket};
use crate::rate_limits::{self, RateLimitError};
use crate::revocations::StoreRevocations;
use crate::signing::{self, SigningError};
use crate::stack::{PolicyLayer, PolicyService};
use crate::tenant_rates::StoreTenantRates;
use crate::wire_framing::{self, FramingQueue, ScannedIo};

/// Largest HTTP/2 header block accepted (decoded), like nginx's default 4 × 8 KiB buffers.
const MAX_H2_HEADER_LIST: u32 = 32 * 1024;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the policy has no [upstream] and none was given with --upstream")]
    NoUpstream,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    #[error(transparent)]
    Jwt(#[from] JwtKeyError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error(transparent)]
    RateLimit(#[from] RateLimitError),
    #[error(transparent)]
    Lockout(#[from] LockoutError),
}

/// A bound, not yet running, gateway.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    local_addr: SocketAddr,
    service: PolicyService<Proxy>,
    policy: Arc<Policy>,
    tunnels: Tunnels,
}

impl Gateway {
    /// Binds `policy.server.listen` and builds the stack in front of `policy.upstream`,
    /// opening the policy's API-key store, loading its JWT keys, its signing key-encryption key
    /// and connecting its replay store first (a store that cannot be opened, or a key that
    /// cannot be read, stops the start: a gateway that cannot check credentials must not start
    /// refusing every caller; in production, so does an HMAC secret shorter than 32 bytes).
    pub async fn bind(policy: Policy) -> Result<Self, ServeError> {
        let upstream = policy.upstream.as_ref().ok_or(ServeError::NoUpstream)?;
        let proxy = Proxy::new(upstream, policy.server.trusted_proxies.clone())?;
        // Before the store: a bad key, or a JWKS URL that does not answer (5 s at most), should
        // not wait on a database.
        let jwt = match &policy.auth.jwt {
            Some(settings) => Some(jwt_keys::load(settings, policy.environment).await?),
            None => None,
        };
        let signing_settings = policy
            .auth
            .api_keys
            .as_ref()
            .and_then(|k| k.signing.as_ref());
        // The key-encryption key before any connection: a missing one is a quick, clear stop.
        let kek = signing_settings.map(signing::load_kek).transpose()?;
        let keys = match &policy.auth.api_keys {
            Some(settings) => Some(key_store::open_cached(settings).await?),
            None => None,
        };
        let signature = match signing_settings {
            Some(settings) => {
                let replay = signing::open_replay(settings).await?;
                Some(signing::signature_layer(settings, replay)?)
            }
            None => None,
        };
        let rate_store = rate_limits::open(&policy).await?;
        let lockout_store = lockouts::open(&policy).await?;
        let addr = policy.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let mut layer = PolicyLayer::new(policy)
            .with_rate_store(rate_store)
            .with_lockout_store(lockout_store);
        if let Some(store) = keys {
            // The revocation list lives in the key store: read now, refreshed every second.
            let revocations = StoreRevocations::start(store.clone())
                .await
                .map_err(|e| ServeError::KeyStore(KeyStoreError::Open(e)))?;
            layer = layer.with_revocations(revocations);
            // Tenants' rate-limit plans too: read now, refreshed every second.
            let plans = StoreTenantRates::start(store.clone())
                .await
                .map_err(|e| ServeError::KeyStore(KeyStoreError::Open(e)))?;
            layer = layer.with_tenant_rates(plans);
            let mut verifier = StoreVerifier::new(store);
            if let Some(kek) = kek {
                verifier = verifier.with_kek(kek);
            }
            layer = layer.with_api_keys(Arc::new(verifier));
        }
        if let Some(signature) = signature {
            layer = layer.with_signing(signature);
        }
        if let Some(verifier) = jwt {
            layer = layer.with_jwt(verifier);
        }
        let policy = layer.policy().clone();
        let tunnels = proxy.tunnels();
        Ok(Self {
            listener,
            local_addr,
            service: layer.layer(proxy),
            policy,
            tunnels,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting and gives in-flight requests and
    /// open WebSocket tunnels up to `server.shutdown-grace` to finish; tunnels still open then
    /// are closed.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.policy.server.header_read_timeout)
            .max_headers(self.policy.server.max_header_count)
            .max_buf_size(wire_framing::MAX_HEAD);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_H2_HEADER_LIST);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        while let Some((stream, peer)) =
            next_connection(&self.listener, shutdown.as_mut(), "gateway").await
        {
            let _ = stream.set_nodelay(true);
            // One copy of the stack per connection, not per request: hyper calls its service
            // through `&self`, a tower service is called through `&mut self`, and cloning the
            // stack for each request costs an atomic increment and decrement per layer. The
            // calls never overlap (each returns its future at once, and hyper makes them one
            // after the other from the connection's task), so the borrow cannot fail.
            let service = RefCell::new(self.service.clone());
            let queue = FramingQueue::default();
            let io = TokioIo::new(ScannedIo::new(stream, queue.clone()));
            let hyper_service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut req = req.map(ProxyBody::from);
                req.extensions_mut().insert(PeerAddr(peer));
                if req.version() < http::Version::HTTP_2
                    && let Some(wire) = queue.pop()
                {
                    req.extensions_mut().insert(wire);
                }
                // Called here, not in the future: the future then holds only what it awaits.
                let response = service.borrow_mut().call(req);
                let queue = queue.clone();
                async move {
                    let mut result = response.await;
                    if let Ok(res) = &mut result {
                        on_switching_protocols(res, &queue);
                    }
                    result
                }
            });
            let conn = builder
                .serve_connection_with_upgrades(io, hyper_service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        let grace = self.policy.server.shutdown_grace;
        let tunnels = self.tunnels;
        tracing::info!(
            in_flight = graceful.count(),
            tunnels = tunnels.count(),
            ?grace,
            "shutting down: draining connections"
        );
        let drained = async {
            graceful.shutdown().await;
            // After the connections: an upgrade still in flight above opens its tunnel first.
            tunnels.drained().await;
        };
        tokio::select! {
            () = drained => tracing::info!("all connections drained"),
            () = tokio::time::sleep(grace) => tracing::warn!(
                tunnels = tunnels.count(),
                "shutdown grace period over; closing remaining connections"
            ),
        }
        tunnels.close_all();
    }
}

/// The next accepted connection, or `None` once `shutdown` completes. Accept errors (usually
/// EMFILE) are logged and retried after a short pause instead of spinning.
pub(crate) async fn next_connection(
    listener: &TcpListener,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    name: &'static str,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => return Some(conn),
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => return None,
        }
    }
}

/// A 101 is the last HTTP message on its connection. The scanner stops before hyper writes it
/// (see [`crate::wire_framing`]), and the two headers the switch needs are set again here, the
/// last step before hyper, in case a response layer removed them (a policy's `[headers]
/// remove` may name any header). Only the proxy's WebSocket handshake answers 101.
fn on_switching_protocols<B>(res: &mut Response<B>, queue: &FramingQueue) {
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        queue.stop();
        websocket::set_upgrade_headers(res.headers_mut());
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
