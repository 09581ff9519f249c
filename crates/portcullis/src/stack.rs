//! The only place a policy becomes layers: [`PolicyLayer`].

use std::sync::Arc;

use portcullis_layers::access_log::AccessLog;
use portcullis_layers::auth::{ApiKeyVerifier, Auth, AuthLayer};
use portcullis_layers::cookies::{CookiePolicy, CookiePolicyLayer};
use portcullis_layers::correlation_id::CorrelationIdService;
use portcullis_layers::cors::{Cors, CorsLayer};
use portcullis_layers::csrf::{Csrf, CsrfLayer};
use portcullis_layers::framing::Framing;
use portcullis_layers::jwt::JwtVerifier;
use portcullis_layers::lockout::LockoutGuard;
use portcullis_layers::rate_limit::{RateLimiter, TenantRates};
use portcullis_layers::rejection::RenderErrors;
use portcullis_layers::response_posture::ResponsePosture;
use portcullis_layers::revocation::RevocationList;
use portcullis_layers::signature::{Signature, SignatureLayer};
use portcullis_layers::{
    AccessLogLayer, CorrelationIdLayer, ErrorDetail, FramingLayer, RenderErrorsLayer,
    ResponsePostureLayer, RoutePosture,
};
use portcullis_policy::Policy;
use portcullis_store::{LockoutStore, RateStore};
use tower::Layer;
use tower::util::Either;

use crate::cross_origin;
use crate::identity;
use crate::routing::{Routing, RoutingLayer};
use crate::security_txt::{SecurityTxt, SecurityTxtLayer};

/// Every check a policy declares, as one `tower` layer. The order follows the design's request
/// pipeline (docs/gateway.md walks through it),
/// except that framing hygiene runs before routing: it depends on no route, and a request whose
/// framing is ambiguous is refused before anything reads its path.
///
/// 1. correlation ID (outermost, so every response and log line carries it)
/// 2. access log
/// 3. error rendering (the one JSON body for every refusal below)
/// 4. response posture (security headers, Cache-Control, removed headers) on every response
/// 5. framing hygiene
/// 6. routing: the client IP, resolved once from the peer and `[server] trusted-proxies` for
///    every feature that keys on it, and the global IP allow/deny lists (`[ip-filter]`); then
///    path normalisation and route match; then the route's IP allow/deny lists (`ip-filter`),
///    before CORS so a refused client gets no CORS answer either (docs/gateway.md's step 6a)
/// 7. CORS: preflights answered (or refused) here, before authentication; CORS headers on
///    the way out; WebSocket upgrade origins checked; then `/.well-known/security.txt`,
///    answered from `[disclosure]`: the file is public by definition (RFC 9116), so no route's
///    credentials, quotas or CSRF rule stand before it (docs/gateway.md's step 11)
/// 8. rate limits keyed by client IP or a header (`[rate-limit]`), before credentials are
///    checked; then authentication: identity headers stripped, the route's credential
///    verified, tenant, scopes and role checked, the verified identity set for the upstream;
///    then the rate limits keyed by API key, tenant or subject (with per-tenant rates). On
///    login routes (`lockout`), the login lockout runs right before the credential check
///    (the account read from the body; a locked account or client refused with 429) and
///    records the upstream's answer. The
///    rate limits run inside the authentication layer rather than as two layers of their own:
///    each layer deepens [`PolicyService`], and two more took the axum example's build from
///    about two minutes to over ten (rustc's time to check the nested service type);
///    and then request signatures, for the API keys that sign: timestamp, HMAC over method,
///    target and body (read whole, up to a limit), replay; the signature headers removed from
///    every request (docs/gateway.md's step 8b)
/// 9. CSRF: cookie-authenticated unsafe requests must come from a trusted origin
/// 10. cookie rules on the upstream's `Set-Cookie`
///
/// then the wrapped service: the reverse proxy in `portcullis serve`, or your own router.
///
/// ```
/// use portcullis::{PolicyLayer, policy::{load_str, CompileOptions}};
/// use tower::Layer;
///
/// let compiled = load_str("inline.toml", "environment = \"development\"", &CompileOptions::default()).unwrap();
/// let layer = PolicyLayer::new(compiled.policy);
/// let _svc = layer.layer(tower::service_fn(|_req: http::Request<http_body_util::Full<bytes::Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(bytes::Bytes::new()))
/// }));
/// ```
#[derive(Debug, Clone)]
pub struct PolicyLayer {
    policy: Arc<Policy>,
    correlation: CorrelationIdLayer,
    access_log: AccessLogLayer,
    render: RenderErrorsLayer,
    posture: ResponsePostureLayer,
    framing: FramingLayer,
    routing: RoutingLayer,
    cors: CorsLayer,
    auth: AuthLayer,
    rate_limits: Arc<RateLimiter>,
    rate_store: Arc<dyn RateStore>,
    tenant_rates: Option<Arc<dyn TenantRates>>,
    lockout: Option<Arc<LockoutGuard>>,
    signature: SignatureLayer,
    api_keys: Option<Arc<dyn ApiKeyVerifier>>,
    jwt: Option<Arc<JwtVerifier>>,
    revocations: Option<Arc<dyn RevocationList>>,
    csrf: Option<CsrfLayer>,
    cookies: Option<CookiePolicyLayer>,
    security_txt: SecurityTxtLayer,
}

/// The service [`PolicyLayer`] wraps around `S`.
pub type PolicyService<S> = CorrelationIdService<
    AccessLog<
        RenderErrors<
            ResponsePosture<Framing<Routing<Cors<SecurityTxt<Auth<Signature<BrowserChecks<S>>>>>>>>,
        >,
    >,
>;

/// The optional layers inside CORS: the CSRF check and the cookie rules, each present only
/// when the policy has it.
pub type BrowserChecks<S> = Either<Csrf<Cookies<S>>, Cookies<S>>;
type Cookies<S> = Either<CookiePolicy<S>, S>;

impl PolicyLayer {
    pub fn new(policy: impl Into<Arc<Policy>>) -> Self {
        let policy: Arc<Policy> = policy.into();
        let ids = &policy.correlation_id;
        let correlation = CorrelationIdLayer::new(ids.header.clone())
            .accept(ids.accept.clone())
            .max_length(ids.max_length);
        let detail = if policy.errors.expose_detail {
            ErrorDetail::Expose
        } else {
            ErrorDetail::Hide
        };
        let rate_store: Arc<dyn RateStore> = crate::rate_limits::memory_store(&policy);
        let rate_limits = rate_limiter(&policy, rate_store.clone(), None);
        let lockout = crate::lockouts::guard(&policy, crate::lockouts::memory_store(&policy));
        let per_route = policy
            .all_routes()
            .map(|r| RoutePosture {
                insert: r.response_headers(policy.environment),
                remove: r.removed_headers(&policy).cloned().collect(),
            })
            .collect();
        Self {
            correlation,
            access_log: AccessLogLayer::new(policy.logging.access_log),
            render: RenderErrorsLayer::new(detail),
            posture: ResponsePostureLayer::new(per_route),
            framing: FramingLayer::new(),
            routing: RoutingLayer::new(policy.clone()),
            cors: cross_origin::cors_layer(&policy).unwrap_or_else(|e| {
                // The policy compiler refuses what the layer refuses; should they ever
                // disagree, deny every cross-origin request rather than allow any.
                tracing::error!(error = %e, "CORS policy refused; denying cross-origin access");
                CorsLayer::deny_all()
            }),
            auth: identity::auth_layer(
                &policy,
                None,
                None,
                None,
                rate_limits.clone(),
                lockout.clone(),
            ),
            rate_limits,
            rate_store,
            tenant_rates: None,
            lockout,
            signature: crate::signing::not_configured(),
            api_keys: None,
            jwt: None,
            revocations: None,
            csrf: cross_origin::csrf_layer(&policy),
            cookies: cross_origin::cookie_layer(&policy),
            security_txt: SecurityTxtLayer::new(policy.disclosure.as_ref()),
            policy,
        }
    }

    /// Verifies API keys with `verifier` (the gateway passes the policy's key store). Without
    /// one, a route that requires an API key refuses every request.
    pub fn with_api_keys(mut self, verifier: Arc<dyn ApiKeyVerifier>) -> Self {
        self.api_keys = Some(verifier);
        self.rebuild_auth();
        self
    }

    /// Verifies JWT bearer tokens with `verifier` (the gateway loads it from `[auth.jwt]` with
    /// [`crate::jwt_keys::load`]). Without one, a route that accepts JWTs refuses every token.
    pub fn with_jwt(mut self, verifier: Arc<JwtVerifier>) -> Self {
        self.jwt = Some(verifier);
        self.rebuild_auth();
        self
    }

    /// Refuses revoked JWTs (`401`) and suspended subjects (`403 subject_suspended`) from
    /// `list` (the gateway keeps the key store's lists in memory:
    /// [`crate::revocations::StoreRevocations`]).
    pub fn with_revocations(mut self, list: Arc<dyn RevocationList>) -> Self {
        self.revocations = Some(list);
        self.rebuild_auth();
        self
    }

    fn rebuild_auth(&mut self) {
        self.auth = identity::auth_layer(
            &self.policy,
            self.api_keys.clone(),
            self.jwt.clone(),
            self.revocations.clone(),
            self.rate_limits.clone(),
            self.lockout.clone(),
        );
    }

    /// Checks request signatures with `layer` (the gateway builds it from
    /// `[auth.api-keys.signing]` with [`crate::signing::signature_layer`]). Without it, a request
    /// whose key signs is refused with `503`: a signature that cannot be checked is never
    /// waved through.
    pub fn with_signing(mut self, layer: SignatureLayer) -> Self {
        self.signature = layer;
        self
    }

    /// Counts rate limits in `store` (the gateway opens the policy's `[rate-limit] store` with
    /// [`crate::rate_limits::open`]). Without it, the counts are kept in this process's memory.
    pub fn with_rate_store(mut self, store: Arc<dyn RateStore>) -> Self {
        self.rate_store = store;
        self.rebuild_rate_limits();
        self
    }

    /// Tenants' rates that change while the gateway runs (the gateway reads the key store's:
    /// [`crate::tenant_rates::StoreTenantRates`]); they come before the policy's own.
    pub fn with_tenant_rates(mut self, rates: Arc<dyn TenantRates>) -> Self {
        self.tenant_rates = Some(rates);
        self.rebuild_rate_limits();
        self
    }

    fn rebuild_rate_limits(&mut self) {
        self.rate_limits = rate_limiter(
            &self.policy,
            self.rate_store.clone(),
            self.tenant_rates.clone(),
        );
        self.rebuild_auth();
    }

    /// Counts failed logins in `store` (the gateway opens the policy's `[lockout] store` with
    /// [`crate::lockouts::open`]). Without it, they are counted in this process's memory.
    pub fn with_lockout_store(mut self, store: Arc<dyn LockoutStore>) -> Self {
        self.lockout = crate::lockouts::guard(&self.policy, store);
        self.rebuild_auth();
        self
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = PolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let svc = inner;
        let svc = match &self.cookies {
            Some(cookies) => Either::Left(cookies.layer(svc)),
            None => Either::Right(svc),
        };
        let svc = match &self.csrf {
            Some(csrf) => Either::Left(csrf.layer(svc)),
            None => Either::Right(svc),
        };
        let svc = self.signature.layer(svc);
        let svc = self.auth.layer(svc);
        let svc = self.security_txt.layer(svc);
        let svc = self.cors.layer(svc);
        let svc = self.routing.layer(svc);
        let svc = self.framing.layer(svc);
        let svc = self.posture.layer(svc);
        let svc = self.render.layer(svc);
        let svc = self.access_log.layer(svc);
        self.correlation.layer(svc)
    }
}

/// The policy's rate limits, counted in `store`.
fn rate_limiter(
    policy: &Policy,
    store: Arc<dyn RateStore>,
    tenant_rates: Option<Arc<dyn TenantRates>>,
) -> Arc<RateLimiter> {
    let limiter = RateLimiter::new(store, crate::rate_limits::route_quotas(policy));
    Arc::new(match tenant_rates {
        Some(rates) => limiter.with_tenant_rates(rates),
        None => limiter,
    })
}
