//! The admin HTTP API: `portcullis keys` over HTTP, on a listener of its own.
//!
//! ```text
//! POST /v1/keys                       {tenant, subject?, scopes?, expires_in?, signed?} -> 201 + key
//! GET  /v1/keys?tenant=T              -> [key]
//! GET  /v1/keys/{id}                  -> key
//! POST /v1/keys/{id}/rotate           {grace?} -> 201 + successor key
//! POST /v1/keys/{id}/revoke           -> {id, tenant, state, effective_within}
//! POST /v1/tenants/{tenant}/suspend   -> {tenant, suspended, effective_within}
//! POST /v1/tenants/{tenant}/unsuspend
//! POST /v1/tokens/revoke              {jti, expires_at, tenant?} -> {jti, tenant, expires_at,
//!                                     revoked, effective_within}
//! POST /v1/tenants/{tenant}/subjects/{subject}/suspend   -> {tenant, subject, suspended,
//!                                                            effective_within}
//! POST /v1/tenants/{tenant}/subjects/{subject}/unsuspend
//! GET  /v1/audit?limit=N              -> [audit record], oldest first
//! ```
//!
//! - **Its own listener** (`[admin] listen`, loopback by default), so the gateway's public port
//!   never routes to it and a firewall can treat the two apart.
//! - **Its own credential**: `Authorization: Bearer <token>`, the token resolved once at
//!   start-up from `[admin] token` (production refuses one under 32 bytes) and compared in
//!   constant time ([`AdminToken`]). Anything else is a 401 with `WWW-Authenticate`, before
//!   any body is read and without an audit record.
//! - **One implementation**: the handlers call [`crate::key_admin`], as `portcullis keys` does,
//!   so the two write the same audit records and JSON. The audit actor is `admin` for every
//!   request: there is one shared admin credential for now, and the caller's correlation ID is
//!   what ties a record to a request.
//! - **Signing keys**: with `[auth.api-keys.signing]`, the key-encryption key is loaded at
//!   start-up (one that does not load stops the start, as for the gateway), so that `create`
//!   can make keys with `"signed": true` and `rotate` can give a signing key's successor its new
//!   signing secret. Like the key, a signing secret is in the one `201` that issues it, and
//!   nowhere else.
//! - **Its own store connection**: the admin API opens the policy's store without the gateway's
//!   read cache, so what it shows is what the store holds. A change it makes reaches the
//!   gateway (this instance and every other) within `cache-ttl`, as a change made by the CLI
//!   does; a revoked JWT or a suspended subject within 5 s, as every gateway reloads that list
//!   every second.
//! - Errors use the gateway's one JSON shape (`{"error": {"code", "message",
//!   "correlation_id"}}`), rendered by the same layer, with the caller's well-formed
//!   `X-Correlation-ID` (the policy's `[correlation-id]` settings) or a generated one.
//!   Every response is `Cache-Control: no-store`. Nothing logs the token, a key, or a body.
//!
//! Routing is axum's: it is in the tree already (the example app), and path parameters, query
//! strings and JSON bodies are what it is for. The connections are served like the gateway's
//! (hyper-util, `header-read-timeout`, graceful shutdown within `shutdown-grace`), which
//! `axum::serve` does not offer.

mod routes;
#[cfg(test)]
mod tests;
mod token;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis_layers::rejection::ErrorDetail;
use portcullis_policy::Policy;
use portcullis_policy::auth::ApiKeySettings;
use portcullis_store::{Kek, KeyStore};
use tokio::net::TcpListener;
use tower::ServiceExt;

pub use routes::ADMIN_ACTOR;
pub use token::{AdminToken, MIN_PRODUCTION_LEN, TokenError, read as read_token};

use crate::graceful::GracefulShutdown;
use crate::key_store::{self, KeyStoreError};
use crate::signing::{self, SigningError};
use routes::AdminState;

/// Why the admin API could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminStartError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("[admin] needs [auth.api-keys]: the admin API manages that key store")]
    NoKeyStore,
    #[error("admin API: {0}")]
    KeyStore(#[from] KeyStoreError),
    /// The key-encryption key of `[auth.api-keys.signing]` does not load.
    #[error("admin API: {0}")]
    Signing(#[from] SigningError),
    #[error("admin.listen: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A bound, not yet running, admin API.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    app: Router,
    header_read_timeout: Duration,
    shutdown_grace: Duration,
}

impl AdminServer {
    /// Resolves the token, loads the signing key-encryption key (with `[auth.api-keys.signing]`),
    /// opens the key store and binds `[admin] listen`; `None` when the policy has no `[admin]`.
    /// The token is checked first: a gateway whose admin credential is unusable must not start
    /// at all.
    pub async fn bind(policy: &Policy) -> Result<Option<Self>, AdminStartError> {
        let Some(admin) = &policy.admin else {
            return Ok(None);
        };
        let token = AdminToken::resolve(&admin.token, policy.environment)?;
        let keys = policy
            .auth
            .api_keys
            .clone()
            .ok_or(AdminStartError::NoKeyStore)?;
        // Before the store, as the gateway does: a missing KEK is a quick, clear stop. Without
        // the table there is none; signed creates and signing keys' rotations are then refused
        // per request, with a message naming the table.
        let kek = keys.signing.as_ref().map(signing::load_kek).transpose()?;
        let store = key_store::open_store(&keys).await?;
        let addr = admin.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminStartError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| AdminStartError::Bind { addr, source })?;
        Ok(Some(Self {
            listener,
            local_addr,
            app: service(store, keys, token, kek, policy),
            header_read_timeout: policy.server.header_read_timeout,
            shutdown_grace: policy.server.shutdown_grace,
        }))
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then gives in-flight requests up to the policy's
    /// `shutdown-grace`.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        while let Some((stream, peer)) =
            crate::server::next_connection(&self.listener, shutdown.as_mut(), "admin API").await
        {
            let app = self.app.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, %peer, "admin API connection ended with an error");
                }
            });
        }
        drop(self.listener);
        tokio::select! {
            () = graceful.shutdown() => {},
            () = tokio::time::sleep(self.shutdown_grace) => {
                tracing::warn!("admin API: shutdown grace period over; closing remaining connections");
            }
        }
    }
}

/// The admin API as one service over `store`, with the policy's correlation-ID and error-detail
/// settings: what [`AdminServer`] serves, for tests and for library users who serve it
/// themselves. `kek` is the key-encryption key of `keys.signing` (load it with
/// [`signing::load_kek`]); without it, signed keys can be neither made nor rotated.
pub fn service(
    store: Arc<dyn KeyStore>,
    keys: ApiKeySettings,
    token: AdminToken,
    kek: Option<Kek>,
    policy: &Policy,
) -> Router {
    let detail = if policy.errors.expose_detail {
        ErrorDetail::Expose
    } else {
        ErrorDetail::Hide
    };
    routes::router(
        Arc::new(AdminState {
            store,
            keys,
            token,
            kek,
            limits: policy.rate_limit.clone(),
        }),
        &policy.correlation_id,
        detail,
    )
}
