//! Rate limits: named quotas per route, counted per client IP, header, API key, tenant or
//! subject, with `429` and `Retry-After` when one is spent, and the quota headers on every
//! limited response.
//!
//! The counting itself (GCRA, one timestamp per bucket) is a [`RateStore`] from
//! `portcullis_store`: in memory for one instance, in Redis for many. This module decides which
//! buckets a request spends from, asks the store once per request for all of them (atomically:
//! a request refused by one quota spends nothing from the others), and writes the answer.
//!
//! Two placements ([`Phase`]), either as two [`RateLimitLayer`]s around the authentication
//! layer or, as the `portcullis` crate's `PolicyLayer` does (one layer fewer in a deep stack),
//! run by the authentication layer itself ([`AuthLayer::rate_limits`](crate::auth::AuthLayer::rate_limits)):
//! - [`Phase::BeforeAuth`], right after CORS: quotas keyed by [`KeySource::Ip`] or
//!   [`KeySource::Header`], known before any credential is checked, so a flood of bad
//!   credentials is limited before it costs a key-store lookup. This placement also writes the
//!   headers, for its own quotas and the ones counted after authentication.
//! - [`Phase::AfterAuth`], right after authentication: quotas keyed by the verified
//!   [`Identity`] ([`KeySource::ApiKey`], [`KeySource::Tenant`], [`KeySource::Subject`]), with
//!   per-tenant rates. Its decisions travel to the outer placement in the response's extensions.
//!
//! Both sit inside CORS, so a `429` carries the CORS headers a browser needs to read it.
//! Each placement decides atomically over its own quotas, but the two decide separately (the
//! identity is not known before authentication): a request admitted before authentication and
//! refused after it has spent from the first placement's quotas.
//!
//! A request without the value a quota is keyed by (anonymous on a route that allows it, no such
//! header) is counted per client IP in that quota, so leaving the value out never escapes the
//! limit; requests whose client IP is unknown (no [`ClientIp`]: the layers run without a peer
//! address) share one bucket per quota.
//!
//! Headers on every response of a limited route:
//! - `X-RateLimit-Limit`, `-Remaining`, `-Reset` (seconds until the bucket is full again) and
//!   `X-RateLimit-Bucket` (the quota's name), for the quota closest to refusing (seed 000);
//! - `RateLimit-Policy` and `RateLimit`, listing every quota, in the syntax of
//!   draft-ietf-httpapi-ratelimit-headers-10/11: `"per-key";q=10;w=1` and `"per-key";r=9;t=1`.
//!
//! The store failing (Redis unreachable under `fail-closed`, the in-memory table full) is a
//! `503 rate_limit_unavailable`, logged at error and counted in
//! `portcullis_rate_limit_errors_total`; refusals are logged at info under
//! `portcullis::rate_limit` and counted in `portcullis_rate_limited_total{quota}`.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use portcullis_layers::rate_limit::{KeySource, Phase, RateLimitLayer, RateLimiter, RouteQuota};
//! use portcullis_store::{MemoryRateStore, Quota, SystemClock};
//!
//! let store = Arc::new(MemoryRateStore::new(Arc::new(SystemClock), 100_000));
//! let per_ip = RouteQuota::new("per-ip", KeySource::Ip, Quota::new(10, Duration::from_secs(1), 20).unwrap());
//! // One route (index 0), with one quota.
//! let limiter = Arc::new(RateLimiter::new(store, vec![vec![per_ip]]));
//! let _before = RateLimitLayer::new(Phase::BeforeAuth, limiter.clone()); // outside authentication
//! let _after = RateLimitLayer::new(Phase::AfterAuth, limiter); // inside it
//! ```

mod headers;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use portcullis_store::{Quota, QuotaStatus, RateCheck, RateStore};
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::auth::{CredentialKind, Identity};
use crate::client_ip::ClientIp;
use crate::matched_route::MatchedRoute;
use crate::rejection::Rejection;

/// What a quota's budget is counted per.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The client IP ([`ClientIp::bucket`]: the address, or its IPv6 prefix).
    Ip,
    /// A request header's value, as sent (all its lines, comma-joined).
    Header(HeaderName),
    /// The verified API key's id ([`Identity::key_id`]).
    ApiKey,
    /// The verified tenant.
    Tenant,
    /// The verified subject.
    Subject,
}

impl KeySource {
    /// The placement that counts this key.
    pub fn phase(&self) -> Phase {
        match self {
            Self::Ip | Self::Header(_) => Phase::BeforeAuth,
            Self::ApiKey | Self::Tenant | Self::Subject => Phase::AfterAuth,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Header(_) => "header",
            Self::ApiKey => "api-key",
            Self::Tenant => "tenant",
            Self::Subject => "subject",
        }
    }
}

/// Where a [`RateLimitLayer`] sits; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    BeforeAuth,
    AfterAuth,
}

/// One quota as a route applies it.
#[derive(Debug, Clone)]
pub struct RouteQuota {
    name: Arc<str>,
    key: KeySource,
    quota: Quota,
    /// Tenants with their own rate, sorted by tenant.
    tenants: Arc<[(String, Quota)]>,
}

impl RouteQuota {
    pub fn new(name: impl Into<Arc<str>>, key: KeySource, quota: Quota) -> Self {
        Self {
            name: name.into(),
            key,
            quota,
            tenants: Arc::from([]),
        }
    }

    /// Tenants with their own rate for this quota. They apply to quotas counted after
    /// authentication (the tenant is not known before).
    pub fn with_tenants(mut self, mut tenants: Vec<(String, Quota)>) -> Self {
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        self.tenants = tenants.into();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn quota_for(&self, identity: Option<&Identity>) -> Quota {
        identity
            .and_then(|id| {
                self.tenants
                    .binary_search_by(|(t, _)| t.as_str().cmp(&id.tenant))
                    .ok()
            })
            .map_or(self.quota, |i| self.tenants[i].1)
    }

    /// The bucket id: the quota's name, then what is counted. Values are hashed when long, so
    /// a client cannot make the store hold kilobytes per bucket.
    fn bucket(&self, headers: &HeaderMap, extensions: &http::Extensions) -> Vec<u8> {
        let identity = extensions.get::<Identity>();
        let value: Option<(&str, Vec<u8>)> = match &self.key {
            KeySource::Ip => None,
            KeySource::Header(name) => {
                let mut joined = Vec::new();
                for (i, v) in headers.get_all(name).iter().enumerate() {
                    if i > 0 {
                        joined.push(b',');
                    }
                    joined.extend_from_slice(v.as_bytes());
                }
                Some(("header", joined)).filter(|(_, v)| !v.is_empty())
            }
            KeySource::ApiKey => identity
                .filter(|id| id.credential == CredentialKind::ApiKey)
                .map(|id| ("api-key", id.key_id.as_bytes().to_vec())),
            KeySource::Tenant => identity.map(|id| ("tenant", id.tenant.as_bytes().to_vec())),
            KeySource::Subject => identity
                .and_then(|id| id.subject.as_deref())
                .map(|s| ("subject", s.as_bytes().to_vec())),
        };
        let (kind, value) = value.unwrap_or_else(|| {
            let ip = extensions
                .get::<ClientIp>()
                .map_or_else(|| "unknown".to_owned(), |ip| ip.bucket.to_string());
            ("ip", ip.into_bytes())
        });
        let mut bucket = Vec::with_capacity(self.name.len() + kind.len() + 2 + MAX_PLAIN_VALUE);
        bucket.extend_from_slice(self.name.as_bytes());
        bucket.push(0x1f);
        bucket.extend_from_slice(kind.as_bytes());
        bucket.push(0x1f);
        if value.len() > MAX_PLAIN_VALUE {
            bucket.extend_from_slice(&Sha256::digest(&value));
        } else {
            bucket.extend_from_slice(&value);
        }
        bucket
    }
}

/// Longer key values are stored as their SHA-256.
const MAX_PLAIN_VALUE: usize = 64;

/// The decisions made for one request, in the response's extensions, so the outer placement
/// (and the access log) can see them.
#[derive(Debug, Clone, Default)]
pub struct RateLimitOutcome {
    entries: Vec<OutcomeEntry>,
}

#[derive(Debug, Clone)]
struct OutcomeEntry {
    name: Arc<str>,
    quota: Quota,
    status: QuotaStatus,
}

impl RateLimitOutcome {
    /// `(quota name, remaining)` for each quota the request was counted in.
    pub fn remaining(&self) -> impl Iterator<Item = (&str, u32)> {
        self.entries
            .iter()
            .map(|e| (e.name.as_ref(), e.status.remaining))
    }

    fn merge(&mut self, other: RateLimitOutcome) {
        self.entries.extend(other.entries);
    }
}

/// The rate limits of every route, for both placements: what [`RateLimitLayer`] runs, and what
/// [`AuthLayer::rate_limits`](crate::auth::AuthLayer::rate_limits) runs around authentication
/// (one layer fewer in the stack: see the `portcullis` crate's `PolicyLayer`).
#[derive(Debug)]
pub struct RateLimiter {
    store: Arc<dyn RateStore>,
    /// Each route's quotas, both placements', by route index (the default route last).
    per_route: Vec<Vec<RouteQuota>>,
    tenant_rates: Option<Arc<dyn TenantRates>>,
}

/// Tenants' rates that change while the gateway runs (the key store's plans). They take
/// precedence over the tenant rates a [`RouteQuota`] was built with, and apply, like those, to
/// the quotas counted after authentication.
pub trait TenantRates: Send + Sync + fmt::Debug {
    /// `tenant`'s own rate for the quota named `quota`, if it has one.
    fn rate(&self, tenant: &str, quota: &str) -> Option<Quota>;
}

/// One placement's buckets for one request, worked out before anything is awaited, so no
/// future holds a borrow of the request.
#[derive(Debug)]
pub struct Pending {
    index: usize,
    phase: Phase,
    checks: Vec<(Vec<u8>, Quota)>,
}

impl RateLimiter {
    /// `per_route[i]` lists route `i`'s quotas; the last entry serves requests without a
    /// [`MatchedRoute`].
    pub fn new(store: Arc<dyn RateStore>, per_route: Vec<Vec<RouteQuota>>) -> Self {
        Self {
            store,
            per_route,
            tenant_rates: None,
        }
    }

    /// Tenants' rates that may change at any time; see [`TenantRates`].
    pub fn with_tenant_rates(mut self, rates: Arc<dyn TenantRates>) -> Self {
        self.tenant_rates = Some(rates);
        self
    }

    /// The route index of a request (the default route when it has no [`MatchedRoute`]).
    pub fn route_index<B>(&self, req: &Request<B>) -> usize {
        req.extensions()
            .get::<MatchedRoute>()
            .map_or(self.per_route.len().saturating_sub(1), |m| m.index)
    }

    /// Whether route `index` has any quota.
    pub fn applies(&self, index: usize) -> bool {
        self.per_route.get(index).is_some_and(|q| !q.is_empty())
    }

    fn quotas(&self, index: usize, phase: Phase) -> impl Iterator<Item = &RouteQuota> {
        self.per_route
            .get(index)
            .into_iter()
            .flatten()
            .filter(move |q| q.key.phase() == phase)
    }

    /// The buckets `req` spends from in `phase`.
    pub fn pending<B>(&self, phase: Phase, index: usize, req: &Request<B>) -> Pending {
        let identity = req.extensions().get::<Identity>();
        let checks = self
            .quotas(index, phase)
            .map(|q| {
                let live = identity
                    .zip(self.tenant_rates.as_ref())
                    .filter(|_| phase == Phase::AfterAuth)
                    .and_then(|(id, rates)| rates.rate(&id.tenant, &q.name));
                (
                    q.bucket(req.headers(), req.extensions()),
                    live.unwrap_or_else(|| q.quota_for(identity)),
                )
            })
            .collect();
        Pending {
            index,
            phase,
            checks,
        }
    }

    /// Asks the store about every bucket at once. A refusal (`429`, or `503` when the store
    /// cannot answer) is the response to send: the decisions are in its extensions (and, for
    /// [`Phase::BeforeAuth`], its headers).
    pub async fn admit<B: Default>(
        &self,
        pending: Pending,
    ) -> Result<RateLimitOutcome, Response<B>> {
        if pending.checks.is_empty() {
            return Ok(RateLimitOutcome::default());
        }
        let quotas: Vec<&RouteQuota> = self.quotas(pending.index, pending.phase).collect();
        match decide(self.store.as_ref(), &quotas, &pending.checks).await {
            Ok((outcome, None)) => Ok(outcome),
            Ok((outcome, Some(refusal))) => {
                let mut res = refusal.into_response::<B>();
                finish(pending.phase, &mut res, outcome);
                Err(res)
            }
            Err(rejection) => Err(rejection.into_response()),
        }
    }
}

/// After authentication: hands the decisions to the outer placement in the response's
/// extensions. Before: adds the inner placement's decisions and writes the headers for all.
pub fn finish<B>(phase: Phase, res: &mut Response<B>, mut outcome: RateLimitOutcome) {
    if let Some(later) = res.extensions_mut().remove::<RateLimitOutcome>() {
        outcome.merge(later);
    }
    if phase == Phase::BeforeAuth {
        headers::write(res.headers_mut(), &outcome);
    }
    if !outcome.entries.is_empty() {
        res.extensions_mut().insert(outcome);
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: Arc<RateLimiter>,
    phase: Phase,
}

impl RateLimitLayer {
    /// One placement of `limiter`'s quotas; mount [`Phase::BeforeAuth`] outside authentication
    /// and [`Phase::AfterAuth`] inside it, both with the same limiter.
    pub fn new(phase: Phase, limiter: Arc<RateLimiter>) -> Self {
        Self { limiter, phase }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            phase: self.phase,
        }
    }
}

/// See [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Arc<RateLimiter>,
    phase: Phase,
}

/// The future of [`RateLimit`]: boxed, since the store answers asynchronously.
pub type RateLimitFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RateLimitFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let index = self.limiter.route_index(&req);
        if !self.limiter.applies(index) {
            return Box::pin(self.inner.call(req));
        }
        let pending = self.limiter.pending(self.phase, index, &req);
        let (limiter, phase) = (self.limiter.clone(), self.phase);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let outcome = match limiter.admit(pending).await {
                Ok(outcome) => outcome,
                Err(refused) => return Ok(refused),
            };
            let mut res = inner.call(req).await?;
            finish(phase, &mut res, outcome);
            Ok(res)
        })
    }
}

/// Asks the store about every bucket at once. `Ok((outcome, Some(refusal)))` when a quota
/// refuses; `Err` when the store cannot answer.
async fn decide(
    store: &dyn RateStore,
    quotas: &[&RouteQuota],
    checks: &[(Vec<u8>, Quota)],
) -> Result<(RateLimitOutcome, Option<Rejection>), Rejection> {
    let batch: Vec<RateCheck<'_>> = checks
        .iter()
        .map(|(bucket, quota)| RateCheck {
            bucket,
            quota: *quota,
        })
        .collect();
    let decision = store.check(&batch).await.map_err(|e| {
        tracing::error!(target: "portcullis::rate_limit", error = %e, "rate limit store failed");
        metrics::counter!("portcullis_rate_limit_errors_total").increment(1);
        Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "rate_limit_unavailable",
            "the request cannot be admitted right now",
        )
        .with_detail(e.to_string())
    })?;
    let entries: Vec<OutcomeEntry> = quotas
        .iter()
        .zip(checks)
        .zip(&decision.statuses)
        .map(|((q, (_, quota)), status)| OutcomeEntry {
            name: q.name.clone(),
            quota: *quota,
            status: *status,
        })
        .collect();
    let refusal = if decision.allowed() {
        None
    } else {
        let refused: Vec<&str> = entries
            .iter()
            .filter(|e| !e.status.allowed)
            .map(|e| e.name.as_ref())
            .collect();
        for (q, e) in quotas.iter().zip(&entries) {
            if !e.status.allowed {
                metrics::counter!("portcullis_rate_limited_total", "quota" => q.name.to_string())
                    .increment(1);
                tracing::info!(
                    target: "portcullis::rate_limit",
                    quota = %q.name,
                    key = q.key.label(),
                    "rate limited"
                );
            }
        }
        let retry_after = decision.retry_after();
        Some(
            Rejection::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests: retry after the time in Retry-After",
            )
            .with_detail(format!("quota {} spent", refused.join(", ")))
            .with_retry_after(retry_after),
        )
    };
    Ok((RateLimitOutcome { entries }, refusal))
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "header {name}"),
            other => f.write_str(other.label()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::IpAddr;
    use std::time::Duration;

    use bytes::Bytes;
    use portcullis_store::{Clock, ManualClock, MemoryRateStore};
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;
    use crate::auth::Role;

    fn quota(limit: u32, per_secs: u64, burst: u32) -> Quota {
        Quota::new(limit, Duration::from_secs(per_secs), burst).unwrap()
    }

    fn identity(tenant: &str, key_id: &str, credential: CredentialKind) -> Identity {
        Identity {
            tenant: tenant.to_owned(),
            subject: Some(format!("{tenant}-user")),
            key_id: key_id.to_owned(),
            role: Role::Registered,
            scopes: Vec::new(),
            credential,
            token_id: None,
        }
    }

    fn client(ip: &str) -> ClientIp {
        let addr: IpAddr = ip.parse().unwrap();
        ClientIp {
            addr,
            bucket: ipnet::IpNet::from(addr),
        }
    }

    /// The two placements around a handler, with `identity` put in between as authentication
    /// would. Route 0 has `quotas`; route 1 (the default) has none.
    async fn send(
        store: Arc<dyn RateStore>,
        quotas: &[RouteQuota],
        route: usize,
        ip: &str,
        identity: Option<Identity>,
        headers: &[(&str, &str)],
    ) -> Response<Bytes> {
        let limiter = Arc::new(RateLimiter::new(store, vec![quotas.to_vec(), Vec::new()]));
        let before = RateLimitLayer::new(Phase::BeforeAuth, limiter.clone());
        let after = RateLimitLayer::new(Phase::AfterAuth, limiter);
        let svc = ServiceBuilder::new()
            .layer(before)
            .map_request(move |mut req: Request<Bytes>| {
                if let Some(identity) = identity.clone() {
                    req.extensions_mut().insert(identity);
                }
                req
            })
            .layer(after)
            .service(service_fn(|_req: Request<Bytes>| async {
                Ok::<_, Infallible>(Response::new(Bytes::from_static(b"ok")))
            }));
        let mut req = Request::new(Bytes::new());
        for (name, value) in headers {
            req.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        req.extensions_mut().insert(client(ip));
        req.extensions_mut().insert(MatchedRoute {
            index: route,
            name: Arc::from("r"),
        });
        svc.oneshot(req).await.unwrap()
    }

    fn header<'a>(res: &'a Response<Bytes>, name: &str) -> &'a str {
        res.headers().get(name).map_or("", |v| v.to_str().unwrap())
    }

    fn memory() -> (Arc<ManualClock>, Arc<dyn RateStore>) {
        let clock = Arc::new(ManualClock::default());
        let store = Arc::new(MemoryRateStore::new(
            clock.clone() as Arc<dyn Clock>,
            10_000,
        ));
        (clock, store)
    }

    #[tokio::test]
    async fn a_spent_ip_quota_is_a_429_with_retry_after_and_headers() {
        let (clock, store) = memory();
        let quotas = [RouteQuota::new("per-ip", KeySource::Ip, quota(1, 10, 2))];
        for remaining in ["1", "0"] {
            let res = send(store.clone(), &quotas, 0, "192.0.2.1", None, &[]).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(header(&res, "x-ratelimit-remaining"), remaining);
            assert_eq!(header(&res, "x-ratelimit-limit"), "2");
            assert_eq!(header(&res, "x-ratelimit-bucket"), "per-ip");
            assert_eq!(header(&res, "ratelimit-policy"), r#""per-ip";q=1;w=10"#);
        }
        let refused = send(store.clone(), &quotas, 0, "192.0.2.1", None, &[]).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&refused, "retry-after"), "10");
        assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
        assert_eq!(header(&refused, "x-ratelimit-reset"), "20");
        let rejection = refused.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.code(), "rate_limited");
        // Another client has its own budget; the default route has none.
        let other = send(store.clone(), &quotas, 0, "192.0.2.2", None, &[]).await;
        assert_eq!(other.status(), StatusCode::OK);
        let unlimited = send(store.clone(), &quotas, 1, "192.0.2.1", None, &[]).await;
        assert_eq!(unlimited.status(), StatusCode::OK);
        assert!(unlimited.headers().get("x-ratelimit-limit").is_none());
        // One emission interval later, one more.
        clock.advance(Duration::from_secs(10));
        let again = send(store, &quotas, 0, "192.0.2.1", None, &[]).await;
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(header(&again, "x-ratelimit-remaining"), "0");
    }

    #[tokio::test]
    async fn identity_quotas_count_per_key_with_tenant_rates() {
        let (_clock, store) = memory();
        let quotas = [
            RouteQuota::new("per-key", KeySource::ApiKey, quota(1, 60, 1))
                .with_tenants(vec![("acme".to_owned(), quota(3, 60, 3))]),
        ];
        let beta = identity("beta", "beta_k1", CredentialKind::ApiKey);
        let acme = identity("acme", "acme_k1", CredentialKind::ApiKey);
        let send_as = |who: &Identity| {
            send(
                store.clone(),
                &quotas,
                0,
                "192.0.2.1",
                Some(who.clone()),
                &[],
            )
        };
        assert_eq!(send_as(&beta).await.status(), StatusCode::OK);
        let refused = send_as(&beta).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        // The headers of the inner placement's refusal are written by the outer one.
        assert_eq!(header(&refused, "x-ratelimit-bucket"), "per-key");
        assert_eq!(header(&refused, "retry-after"), "60");
        // acme's own rate, and a budget of its own (same client IP).
        for remaining in ["2", "1", "0"] {
            let res = send_as(&acme).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(header(&res, "x-ratelimit-remaining"), remaining);
            assert_eq!(header(&res, "ratelimit-policy"), r#""per-key";q=3;w=60"#);
        }
        assert_eq!(send_as(&acme).await.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn a_request_without_the_key_is_counted_per_ip() {
        let (_clock, store) = memory();
        let quotas = [
            RouteQuota::new("per-key", KeySource::ApiKey, quota(1, 60, 1)),
            RouteQuota::new(
                "per-client",
                KeySource::Header(HeaderName::from_static("x-client-id")),
                quota(1, 60, 1),
            ),
        ];
        // Anonymous, no header: both quotas fall back to the IP, each its own bucket.
        let res = send(store.clone(), &quotas, 0, "192.0.2.1", None, &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
        let refused = send(store.clone(), &quotas, 0, "192.0.2.1", None, &[]).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        // A JWT caller is not an API key: still counted per IP in `per-key`.
        let jwt = identity("acme", "kid-1", CredentialKind::Jwt);
        let refused = send(
            store.clone(),
            &quotas,
            0,
            "192.0.2.1",
            Some(jwt),
            &[("x-client-id", "c1")],
        )
        .await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&refused, "x-ratelimit-bucket"), "per-key");
        // The placements decide separately: `c1` was spent before `per-key` refused.
        let res = send(
            store.clone(),
            &quotas,
            0,
            "192.0.2.9",
            None,
            &[("x-client-id", "c1")],
        )
        .await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&res, "x-ratelimit-bucket"), "per-client");
        // A new IP and a new client: both quotas have room.
        let res = send(
            store,
            &quotas,
            0,
            "192.0.2.9",
            None,
            &[("x-client-id", "c2")],
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_refusal_by_one_quota_spends_nothing_from_the_others() {
        let (_clock, store) = memory();
        let quotas = [
            RouteQuota::new("hourly", KeySource::Ip, quota(5, 3600, 5)),
            RouteQuota::new(
                "per-client",
                KeySource::Header(HeaderName::from_static("x-client-id")),
                quota(1, 60, 1),
            ),
        ];
        let a = [("x-client-id", "a")];
        assert_eq!(
            send(store.clone(), &quotas, 0, "192.0.2.1", None, &a)
                .await
                .status(),
            200
        );
        for _ in 0..3 {
            let refused = send(store.clone(), &quotas, 0, "192.0.2.1", None, &a).await;
            assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        }
        let b = send(
            store,
            &quotas,
            0,
            "192.0.2.1",
            None,
            &[("x-client-id", "b")],
        )
        .await;
        assert_eq!(b.status(), StatusCode::OK);
        // Two admitted, whatever was refused in between.
        assert_eq!(
            header(&b, "ratelimit"),
            r#""hourly";r=3;t=1440, "per-client";r=0;t=60"#
        );
    }

    #[derive(Debug)]
    struct Broken;

    impl RateStore for Broken {
        fn check<'a>(
            &'a self,
            _checks: &'a [RateCheck<'a>],
        ) -> portcullis_store::BoxFuture<
            'a,
            Result<portcullis_store::RateDecision, portcullis_store::StoreError>,
        > {
            Box::pin(async {
                Err(portcullis_store::StoreError::Backend(
                    "connection refused".into(),
                ))
            })
        }
    }

    #[tokio::test]
    async fn a_failing_store_is_a_503() {
        let quotas = [RouteQuota::new("per-ip", KeySource::Ip, quota(1, 1, 1))];
        let res = send(Arc::new(Broken), &quotas, 0, "192.0.2.1", None, &[]).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let rejection = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.code(), "rate_limit_unavailable");
        // Routes without quotas never ask the store.
        let res = send(Arc::new(Broken), &quotas, 1, "192.0.2.1", None, &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[test]
    fn long_key_values_are_hashed_into_the_bucket_id() {
        let q = RouteQuota::new(
            "h",
            KeySource::Header(HeaderName::from_static("x-client-id")),
            quota(1, 1, 1),
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-client-id", "short".parse().unwrap());
        let ext = http::Extensions::new();
        assert_eq!(q.bucket(&headers, &ext), b"h\x1fheader\x1fshort");
        headers.insert("x-client-id", "x".repeat(500).parse().unwrap());
        assert_eq!(q.bucket(&headers, &ext).len(), "h\x1fheader\x1f".len() + 32);
        // No client IP known: one shared bucket.
        let ip = RouteQuota::new("i", KeySource::Ip, quota(1, 1, 1));
        assert_eq!(ip.bucket(&HeaderMap::new(), &ext), b"i\x1fip\x1funknown");
    }
}
