//! Authentication: who is calling, for which tenant, with which rights.
//!
//! Per route (from [`MatchedRoute`]; the last entry serves requests without one) a
//! [`RouteRequirement`] says whether a credential is required, optional or not read, and which
//! scopes it must carry. On **every** request, whatever the route, the identity headers the
//! gateway sets for the upstream are first removed, so an upstream can trust them: only a
//! credential verified here puts them back.
//!
//! - No credential on a route that requires one: `401` `authentication_required`, with
//!   `WWW-Authenticate: Bearer realm="api"`.
//! - A credential that does not verify (malformed, unknown, wrong secret, revoked, expired,
//!   suspended tenant): `401` `invalid_credentials`, whatever the reason; the reason is logged,
//!   the key never is. An invalid credential is refused on optional routes too: a client that
//!   sends one expects to be identified.
//! - A verified caller naming another tenant in the policy's tenant header: `403`
//!   `tenant_mismatch` (the tenant comes only from the credential).
//! - Missing scopes: `403` `insufficient_scope`; a guest where the route requires a registered
//!   caller: `403` `registration_required`.
//!
//! Signed requests: an API key may come with a signing secret ([`VerifiedApiKey`]); such a key
//! must sign every request it sends, on every route that reads API keys. A route that accepts
//! API keys *only* on signed requests ([`RouteRequirement::signed_only`], the policy's
//! `credentials = ["signed-key"]` without `"api-key"`) refuses a key that cannot sign: `401`
//! `signature_required`. When a request must be signed, this layer inserts
//! [`SignatureRequired`] carrying the secret, and the
//! [`SignatureLayer`](crate::signature::SignatureLayer), which must sit directly inside this
//! one, verifies the signature before anything else sees the request (see
//! [`signature`](crate::signature) for the scheme). The tenant and scope checks here run
//! before the signature is checked: they answer only a caller that holds a valid key.
//!
//! Credentials: an API key in `X-API-Key`, or `Authorization: Bearer <token>`. A Bearer token
//! that starts with the API keys' prefix (`pcl_`) is an API key; any other Bearer token is a JWT
//! when the route accepts JWTs, and is not read at all otherwise (so a route that takes only API
//! keys answers `authentication_required` to it, as before JWTs existed).
//!
//! API-key verification is behind [`ApiKeyVerifier`], so this module needs no database; the
//! `portcullis` crate plugs in the key store. JWTs are verified in memory by a
//! [`JwtVerifier`], synchronously: its keys are loaded at start-up (a JWKS URL is refreshed in
//! the background, never on the request path).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use tower::{Layer, Service};

pub use crate::identity_headers::IdentityHeaderNames;
use crate::identity_headers::PreparedIdentity;
use crate::jwt::JwtVerifier;
use crate::lockout::LockoutGuard;
use crate::matched_route::MatchedRoute;
use crate::query_token;
use crate::rate_limit::{self, Phase, RateLimiter};
use crate::rejection::Rejection;
use crate::revocation::RevocationList;
use crate::signature::{SignatureRequired, SigningSecret};

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ApiKey,
    Jwt,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api-key",
            CredentialKind::Jwt => "jwt",
        }
    }
}

/// Registered callers, or guests (seed 002's guest tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Registered,
    Guest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Registered => "registered",
            Role::Guest => "guest",
        }
    }
}

/// A verified caller, in the request's extensions for the layers and handlers after this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant: String,
    pub subject: Option<String>,
    /// The public ID of the key (never its secret); for a JWT its `kid`, or `jwt`.
    pub key_id: String,
    pub role: Role,
    pub scopes: Vec<String>,
    pub credential: CredentialKind,
    /// A JWT's `jti`, when it has one: what the revocation list names. `None` for API keys
    /// (they are revoked in the key store).
    pub token_id: Option<String>,
}

/// Why a presented credential was not accepted. The text is for logs (and development error
/// bodies); it never contains the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// The credential is not valid: 401.
    Rejected(String),
    /// The credential could not be checked (the key store is down): 503, never a 401 that
    /// would tell a client its valid key is wrong.
    Unavailable(String),
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::Rejected(reason) => write!(f, "rejected: {reason}"),
            AuthFailure::Unavailable(reason) => write!(f, "unavailable: {reason}"),
        }
    }
}

/// A verified API key: who it identifies and, for a key that signs its requests, the secret
/// its signatures are checked with.
#[derive(Debug, Clone)]
pub struct VerifiedApiKey {
    identity: PreparedIdentity,
    /// `Some`: every request sent with this key must be signed with this secret.
    pub signing_secret: Option<SigningSecret>,
}

impl VerifiedApiKey {
    /// A key that does not sign.
    pub fn new(identity: Identity) -> Self {
        Self::prepared(PreparedIdentity::new(identity))
    }

    /// A key that does not sign, whose identity the verifier prepared once for all the
    /// requests the key authenticates (see [`crate::identity_headers`]).
    pub fn prepared(identity: PreparedIdentity) -> Self {
        Self {
            identity,
            signing_secret: None,
        }
    }

    pub fn identity(&self) -> &Identity {
        self.identity.identity()
    }

    /// The identity with its header values, shared with every other request the verifier
    /// handed it to.
    pub fn prepared_identity(&self) -> &PreparedIdentity {
        &self.identity
    }

    /// A key whose requests must be signed with `secret`.
    pub fn with_signing_secret(mut self, secret: SigningSecret) -> Self {
        self.signing_secret = Some(secret);
        self
    }
}

/// The future an [`ApiKeyVerifier`] returns.
pub type VerifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<VerifiedApiKey, AuthFailure>> + Send + 'a>>;

/// Checks a presented API key. Implementations compare secrets in constant time and never log
/// the presented value (nor the signing secret they return).
pub trait ApiKeyVerifier: Send + Sync + fmt::Debug + 'static {
    fn verify<'a>(&'a self, presented: &'a str) -> VerifyFuture<'a>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    None,
    Optional,
    Required,
}

/// What one route asks of its callers.
#[derive(Debug, Clone)]
pub struct RouteRequirement {
    pub mode: AuthMode,
    pub api_key: bool,
    /// Bearer tokens other than API keys are read as JWTs.
    pub jwt: bool,
    pub scopes: Vec<String>,
    pub require_registered: bool,
    /// API keys are read, but accepted only on signed requests: a key without a signing secret
    /// is refused (`signature_required`). The policy's `signed-key` credential without
    /// `api-key`. (Keys that have a signing secret sign on every route anyway.) With `api_key`
    /// also set, this one wins.
    pub signed_only: bool,
    /// On a WebSocket route: the query parameter that may carry a JWT on the handshake
    /// ([`crate::query_token`]). Read only when `jwt` is set and the request is an upgrade.
    pub query_token: Option<String>,
}

impl RouteRequirement {
    /// Read no credential.
    pub fn none() -> Self {
        Self {
            mode: AuthMode::None,
            api_key: false,
            jwt: false,
            scopes: Vec::new(),
            require_registered: false,
            signed_only: false,
            query_token: None,
        }
    }

    /// Whether API keys are read on this route (signed or not).
    pub fn reads_api_keys(&self) -> bool {
        self.api_key || self.signed_only
    }
}

#[derive(Debug)]
struct Config {
    /// One entry per route, the default route last. Shared, not cloned, per request: a route's
    /// scopes are strings.
    per_route: Vec<Arc<RouteRequirement>>,
    verifier: Option<Arc<dyn ApiKeyVerifier>>,
    jwt: Option<Arc<JwtVerifier>>,
    identity_headers: IdentityHeaderNames,
    tenant_header: Option<HeaderName>,
    /// `pcl_`: a Bearer token with this prefix is an API key (a JWT never starts with it).
    bearer_prefix: String,
    revocations: Option<Arc<dyn RevocationList>>,
    rate_limits: Option<Arc<RateLimiter>>,
    lockout: Option<Arc<LockoutGuard>>,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    config: Arc<Config>,
}

impl AuthLayer {
    /// `per_route[i]` applies to route `i` (the last entry also to requests without a
    /// [`MatchedRoute`]). `key_prefix` is the API keys' prefix (`pcl` for `pcl_<id>_<secret>`).
    pub fn new(
        per_route: Vec<RouteRequirement>,
        verifier: Option<Arc<dyn ApiKeyVerifier>>,
        key_prefix: &str,
    ) -> Self {
        Self {
            config: Arc::new(Config {
                per_route: per_route.into_iter().map(Arc::new).collect(),
                verifier,
                jwt: None,
                identity_headers: IdentityHeaderNames::default(),
                tenant_header: None,
                bearer_prefix: format!("{key_prefix}_"),
                revocations: None,
                rate_limits: None,
                lockout: None,
            }),
        }
    }

    /// Header names for the verified identity (defaults: `x-portcullis-*`).
    pub fn identity_headers(mut self, names: IdentityHeaderNames) -> Self {
        if let Some(config) = Arc::get_mut(&mut self.config) {
            config.identity_headers = names;
        }
        self
    }

    /// Verifies JWT bearer tokens on routes whose requirement accepts them. Without one, such a
    /// route refuses every JWT.
    pub fn jwt(mut self, verifier: Option<Arc<JwtVerifier>>) -> Self {
        if let Some(config) = Arc::get_mut(&mut self.config) {
            config.jwt = verifier;
        }
        self
    }

    /// Revoked JWTs (by `jti`) are refused with `401 invalid_credentials`, suspended subjects
    /// with `403 subject_suspended`, after their credential verifies.
    pub fn revocations(mut self, list: Option<Arc<dyn RevocationList>>) -> Self {
        if let Some(config) = Arc::get_mut(&mut self.config) {
            config.revocations = list;
        }
        self
    }

    /// Runs `limiter`'s quotas around authentication, without a layer of their own: those
    /// keyed by client IP or a header before the credential is checked, those keyed by the
    /// verified identity after (see [`crate::rate_limit`]). The same as mounting
    /// [`RateLimitLayer`](crate::rate_limit::RateLimitLayer)s on both sides of this layer.
    pub fn rate_limits(mut self, limiter: Option<Arc<RateLimiter>>) -> Self {
        if let Some(config) = Arc::get_mut(&mut self.config) {
            config.rate_limits = limiter;
        }
        self
    }

    /// Runs `guard`'s login lockout on its routes, before the credential is checked (see
    /// [`crate::lockout`]).
    pub fn lockout(mut self, guard: Option<Arc<LockoutGuard>>) -> Self {
        if let Some(config) = Arc::get_mut(&mut self.config) {
            config.lockout = guard;
        }
        self
    }

    /// A request header naming a tenant, which must then be the caller's own.
    pub fn tenant_header(mut self, name: Option<HeaderName>) -> Self {
        if let Some(config) = Arc::get_mut(&mut self.config) {
            config.tenant_header = name;
        }
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            config: self.config.clone(),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    config: Arc<Config>,
}

/// The response future of [`Auth`]: boxed, since verification may wait on a store.
pub type AuthFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

enum Presented<'a> {
    None,
    ApiKey(&'a str),
    Jwt(&'a str),
    Ambiguous,
    Unusable,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<Box<dyn StdError + Send + Sync>>,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = AuthFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = self.config.clone();
        config.identity_headers.strip(req.headers_mut());
        let index = req
            .extensions()
            .get::<MatchedRoute>()
            .map_or(config.per_route.len().saturating_sub(1), |m| m.index);
        let requirement = config
            .per_route
            .get(index)
            .cloned()
            .unwrap_or_else(|| Arc::new(RouteRequirement::none()));
        let limits = config
            .rate_limits
            .clone()
            .filter(|limits| limits.applies(index));
        let lockout = config.lockout.as_ref().and_then(|guard| guard.rule(index));
        if requirement.mode == AuthMode::None && limits.is_none() && lockout.is_none() {
            return Box::pin(self.inner.call(req));
        }
        // The service that was polled ready handles this request; a fresh clone takes its
        // place for the next one (tower's guidance for services that move into futures).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        if limits.is_none() && lockout.is_none() {
            return Box::pin(authenticate(config, requirement, inner, req, None));
        }
        // Before the credential is checked: the rate limits known without it (client IP, a
        // header), so a flood of bad credentials is limited before it costs a lookup, then the
        // login lockout. Those keyed by the verified identity come after it (in `proceed`).
        let before = limits
            .as_ref()
            .map(|limits| limits.pending(Phase::BeforeAuth, index, &req));
        Box::pin(async move {
            let outcome = match (&limits, before) {
                (Some(limits), Some(before)) => match limits.admit(before).await {
                    Ok(outcome) => Some(outcome),
                    Err(refused) => return Ok(refused),
                },
                _ => None,
            };
            let with_headers = |mut res: Response<ResBody>| {
                if let Some(outcome) = outcome.clone() {
                    rate_limit::finish(Phase::BeforeAuth, &mut res, outcome);
                }
                res
            };
            let guard = config.lockout.clone();
            let (req, attempt) = match (&guard, lockout) {
                (Some(guard), Some(rule)) => match guard.admit(rule, req).await {
                    Ok(admitted) => admitted,
                    Err(refused) => return Ok(with_headers(refused)),
                },
                _ => (req, None),
            };
            let after = limits.map(|limits| (limits, index));
            let res = authenticate(config, requirement, inner, req, after).await?;
            // Only the upstream's answers count: a refusal of the gateway's own (a bad API
            // key, a rate limit) says nothing about the login.
            if let (Some(guard), Some(attempt)) = (guard, attempt)
                && res.extensions().get::<Rejection>().is_none()
            {
                guard.record(attempt, res.status()).await;
            }
            Ok(with_headers(res))
        })
    }
}

/// The credential check, then the request on to `inner` through [`proceed`].
async fn authenticate<S, ReqBody, ResBody>(
    config: Arc<Config>,
    requirement: Arc<RouteRequirement>,
    mut inner: S,
    mut req: Request<ReqBody>,
    limits: Option<(Arc<RateLimiter>, usize)>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    if requirement.mode == AuthMode::None {
        return proceed(&mut inner, req, limits).await;
    }
    let query_token = requirement
        .query_token
        .as_deref()
        .filter(|_| requirement.jwt && query_token::is_websocket_upgrade(&req));
    let from_headers = presented(&config, &requirement, req.headers());
    let from_query = query_token.map_or(0, |name| query_token::count(req.uri(), name));
    // Past the checks below, exactly one credential was presented: this says where.
    let in_query = from_query > 0 && query_token.is_some();
    let presented = match (from_headers, from_query, query_token) {
        (p, 0, _) | (p, _, None) => p,
        // The token twice, or a header credential too: which one would an upstream
        // believe?
        (Presented::None, 1, Some(name)) => {
            query_token::find(req.uri(), name).map_or(Presented::Unusable, Presented::Jwt)
        }
        _ => Presented::Ambiguous,
    };
    let presented = match presented {
        Presented::None if requirement.mode == AuthMode::Required => {
            let message = match (requirement.reads_api_keys(), requirement.jwt) {
                (true, true) => "this endpoint requires an API key or a bearer token",
                (false, true) => "this endpoint requires a bearer token",
                _ => "this endpoint requires an API key",
            };
            return Ok(unauthorized(
                "authentication_required",
                message,
                "no credential presented".to_owned(),
            ));
        }
        Presented::None => None,
        Presented::Ambiguous => {
            return Ok(unauthorized(
                "invalid_credentials",
                "the credentials are invalid",
                "several credentials presented".to_owned(),
            ));
        }
        Presented::Unusable => {
            return Ok(unauthorized(
                "invalid_credentials",
                "the credentials are invalid",
                "the credential is not one this route accepts".to_owned(),
            ));
        }
        Presented::ApiKey(key) => Some(Credential::ApiKey(key.to_owned())),
        Presented::Jwt(token) => Some(Credential::Jwt(token.to_owned())),
    };
    let Some(credential) = presented else {
        return proceed(&mut inner, req, limits).await;
    };
    let by_api_key = matches!(credential, Credential::ApiKey(_));
    let verified = match &credential {
        Credential::ApiKey(key) => match config.verifier.as_ref() {
            Some(verifier) => verifier
                .verify(key)
                .await
                .map(|k| (k.identity, k.signing_secret)),
            None => Err(AuthFailure::Rejected(
                "no API key store is configured".to_owned(),
            )),
        },
        // A JWT never signs: signing secrets belong to API keys.
        Credential::Jwt(token) => match config.jwt.as_ref() {
            Some(verifier) => verifier
                .verify(token)
                .map(|identity| (PreparedIdentity::new(identity), None)),
            None => Err(AuthFailure::Rejected(
                "no JWT verifier is configured".to_owned(),
            )),
        },
    };
    // The copy is not needed past its check.
    drop(credential);
    let (prepared, signing_secret) = match verified {
        Ok(verified) => verified,
        Err(AuthFailure::Rejected(reason)) => {
            tracing::info!(target: "portcullis::auth", %reason, "credential refused");
            return Ok(unauthorized(
                "invalid_credentials",
                "the credentials are invalid",
                reason,
            ));
        }
        Err(AuthFailure::Unavailable(reason)) => {
            tracing::error!(target: "portcullis::auth", %reason, "credential could not be checked");
            return Ok(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "auth_unavailable",
                "credentials cannot be checked right now",
            )
            .with_detail(reason)
            .into_response());
        }
    };
    let identity = prepared.identity();
    if let Some(list) = &config.revocations {
        if let Some(jti) = identity
            .token_id
            .as_deref()
            .filter(|jti| list.is_token_revoked(jti))
        {
            let reason = format!("the token with jti {jti:?} was revoked");
            tracing::info!(target: "portcullis::auth", %reason, "credential refused");
            return Ok(unauthorized(
                "invalid_credentials",
                "the credentials are invalid",
                reason,
            ));
        }
        if let Some(subject) = identity
            .subject
            .as_deref()
            .filter(|s| list.is_subject_suspended(&identity.tenant, s))
        {
            tracing::info!(
                target: "portcullis::auth",
                tenant = %identity.tenant,
                subject,
                "caller suspended"
            );
            return Ok(Rejection::new(
                StatusCode::FORBIDDEN,
                "subject_suspended",
                "this account is suspended",
            )
            .with_detail(format!(
                "subject {subject:?} of tenant {} is suspended",
                identity.tenant
            ))
            .into_response());
        }
    }
    let signature = match signing_secret {
        Some(secret) if by_api_key => Some(SignatureRequired::new(secret)),
        _ if by_api_key && requirement.signed_only => {
            tracing::info!(
                target: "portcullis::auth",
                tenant = %identity.tenant,
                key_id = %identity.key_id,
                code = "signature_required",
                "key without a signing secret on a signed-only route"
            );
            return Ok(unauthorized(
                "signature_required",
                "this endpoint requires a signed request",
                "the API key has no signing secret".to_owned(),
            ));
        }
        _ => None,
    };
    if let Err(rejection) = authorize(&config, &requirement, identity, req.headers()) {
        tracing::info!(
            target: "portcullis::auth",
            tenant = %identity.tenant,
            key_id = %identity.key_id,
            code = rejection.code(),
            "caller not authorized"
        );
        return Ok(rejection.into_response());
    }
    // The upstream gets the verified identity, not the secret: a key or token that
    // never leaves the gateway cannot leak from an upstream's logs or be replayed by it.
    if !in_query {
        remove_credential(req.headers_mut());
    }
    if let Some(name) = query_token
        && let Some(uri) = query_token::without(req.uri(), name)
    {
        *req.uri_mut() = uri;
    }
    config.identity_headers.set(req.headers_mut(), &prepared);
    req.extensions_mut().insert(prepared.into_identity());
    if let Some(signature) = signature {
        req.extensions_mut().insert(signature);
    }
    proceed(&mut inner, req, limits).await
}

/// Calls `inner`, after the rate limits keyed by the verified identity (or, for an anonymous
/// request, by its client IP) when the route has any.
async fn proceed<S, ReqBody, ResBody>(
    inner: &mut S,
    req: Request<ReqBody>,
    limits: Option<(Arc<RateLimiter>, usize)>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    let Some((limits, index)) = limits else {
        return inner.call(req).await;
    };
    let pending = limits.pending(Phase::AfterAuth, index, &req);
    let outcome = match limits.admit(pending).await {
        Ok(outcome) => outcome,
        Err(refused) => return Ok(refused),
    };
    let mut res = inner.call(req).await?;
    rate_limit::finish(Phase::AfterAuth, &mut res, outcome);
    Ok(res)
}

/// A credential copied out of the request for verification (the request moves on without it).
enum Credential {
    ApiKey(String),
    Jwt(String),
}

/// What an `Authorization` value is to this layer.
enum Bearer<'a> {
    ApiKey(&'a str),
    Jwt(&'a str),
    /// Not a bearer credential this route reads (another scheme, or a JWT where none is read).
    Other,
}

fn bearer<'a>(config: &Config, requirement: &RouteRequirement, text: &'a str) -> Bearer<'a> {
    let Some((scheme, token)) = text.split_once(' ') else {
        return Bearer::Other;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Other;
    }
    let token = token.trim();
    if token.starts_with(&config.bearer_prefix) {
        Bearer::ApiKey(token)
    } else if requirement.jwt {
        // A JWT never starts with the prefix: its first part is base64url of `{"`, i.e. `eyJ`.
        Bearer::Jwt(token)
    } else {
        Bearer::Other
    }
}

/// The API-key header. A constant: a `&str` name is parsed on every lookup.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The credential the request presents, if any.
fn presented<'a>(
    config: &Config,
    requirement: &RouteRequirement,
    headers: &'a HeaderMap,
) -> Presented<'a> {
    let mut found: Option<Presented<'a>> = None;
    let mut count = 0;
    for value in headers.get_all(&X_API_KEY) {
        count += 1;
        found = value.to_str().ok().map(Presented::ApiKey);
    }
    for value in headers.get_all(header::AUTHORIZATION) {
        let Ok(text) = value.to_str() else {
            count += 1;
            found = None;
            continue;
        };
        match bearer(config, requirement, text) {
            Bearer::ApiKey(key) => {
                count += 1;
                found = Some(Presented::ApiKey(key));
            }
            Bearer::Jwt(token) => {
                count += 1;
                found = Some(Presented::Jwt(token));
            }
            Bearer::Other => {}
        }
    }
    match (count, found) {
        (0, _) => Presented::None,
        (1, Some(Presented::ApiKey(key))) if requirement.reads_api_keys() => Presented::ApiKey(key),
        (1, Some(Presented::Jwt(token))) => Presented::Jwt(token),
        (1, _) => Presented::Unusable,
        _ => Presented::Ambiguous,
    }
}

/// Removes the one credential header a verified request presented: `X-API-Key` when it is
/// there, else `Authorization` (whose bearer it was). [`presented`] refuses a request that
/// carries credentials in both as ambiguous, so when `X-API-Key` is present an `Authorization`
/// beside it holds something this route does not read (another scheme), and is left as it is.
fn remove_credential(headers: &mut HeaderMap) {
    if headers.remove(&X_API_KEY).is_none() {
        headers.remove(header::AUTHORIZATION);
    }
}

fn authorize(
    config: &Config,
    requirement: &RouteRequirement,
    identity: &Identity,
    headers: &HeaderMap,
) -> Result<(), Rejection> {
    if let Some(name) = &config.tenant_header {
        for value in headers.get_all(name) {
            if value.as_bytes() != identity.tenant.as_bytes() {
                return Err(Rejection::new(
                    StatusCode::FORBIDDEN,
                    "tenant_mismatch",
                    "the request names a tenant other than the caller's",
                )
                .with_detail(format!("`{name}` does not name the caller's tenant")));
            }
        }
    }
    if requirement.require_registered && identity.role != Role::Registered {
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "registration_required",
            "this endpoint requires a registered account",
        ));
    }
    let missing: Vec<&str> = requirement
        .scopes
        .iter()
        .filter(|s| !identity.scopes.contains(s))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the credential lacks a scope this endpoint requires",
        )
        .with_detail(format!("missing scopes: {}", missing.join(", "))));
    }
    Ok(())
}

/// A 401 with `WWW-Authenticate`, so clients know to (re)authenticate.
pub(crate) fn unauthorized<B: Default>(
    code: &'static str,
    message: &'static str,
    detail: String,
) -> Response<B> {
    let mut res: Response<B> = Rejection::new(StatusCode::UNAUTHORIZED, code, message)
        .with_detail(detail)
        .into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"api\""),
    );
    res
}

#[cfg(test)]
mod tests {
    /// A request body that can be read (the lockout reads login bodies).
    type TestBody = http_body_util::Full<bytes::Bytes>;
    use super::*;
    use std::convert::Infallible;

    const KEY: &str = "pcl_aaaaaaaaaaaaaaaa_secret";
    const JWT_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// An HS256 token for tenant `acme` with `role` (a guest without one).
    fn jwt(role: Option<&str>, secret: &[u8]) -> String {
        let mut claims = serde_json::json!({
            "sub": "user-1",
            "tenant": "acme",
            "scope": "read",
            "exp": jsonwebtoken::get_current_timestamp() + 600,
        });
        if let Some(role) = role {
            claims["role"] = role.into();
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    /// A key that signs its requests, with this secret.
    const SIGNING_KEY: &str = "pcl_bbbbbbbbbbbbbbbb_secret";
    const SIGNING_SECRET: &[u8] = b"acme_sig_Q2xpZW50U2VjcmV0";

    /// Accepts exactly `KEY` (tenant `acme`, scope `read`), a guest key, and `SIGNING_KEY`.
    #[derive(Debug)]
    struct OneKey;

    impl ApiKeyVerifier for OneKey {
        fn verify<'a>(&'a self, presented: &'a str) -> VerifyFuture<'a> {
            Box::pin(async move {
                let role = match presented {
                    KEY | SIGNING_KEY => Role::Registered,
                    "pcl_guest" => Role::Guest,
                    _ => return Err(AuthFailure::Rejected("unknown key".into())),
                };
                let verified = VerifiedApiKey::new(Identity {
                    tenant: "acme".into(),
                    subject: Some("ci-bot".into()),
                    key_id: "aaaaaaaaaaaaaaaa".into(),
                    role,
                    scopes: vec!["read".into()],
                    credential: CredentialKind::ApiKey,
                    token_id: None,
                });
                Ok(if presented == SIGNING_KEY {
                    verified.with_signing_secret(SigningSecret::new(SIGNING_SECRET.to_vec()))
                } else {
                    verified
                })
            })
        }
    }

    fn requirement(mode: AuthMode, scopes: &[&str], registered: bool) -> RouteRequirement {
        RouteRequirement {
            mode,
            api_key: true,
            jwt: false,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            require_registered: registered,
            signed_only: false,
            query_token: None,
        }
    }

    /// Calls the layer with route 0 = `requirement`; returns the response and what the inner
    /// service saw (its request headers), if it was called.
    fn call(
        requirement: RouteRequirement,
        req: Request<TestBody>,
    ) -> (Response<()>, Option<HeaderMap>) {
        let (res, seen) = call_seeing_signature(requirement, req);
        (res, seen.map(|(headers, _)| headers))
    }

    /// [`call`], also returning the signing secret the inner service was handed, if any.
    #[allow(clippy::type_complexity)]
    fn call_seeing_signature(
        requirement: RouteRequirement,
        req: Request<TestBody>,
    ) -> (Response<()>, Option<(HeaderMap, Option<Vec<u8>>)>) {
        let seen = Arc::new(std::sync::Mutex::new(None));
        let record = seen.clone();
        let layer = AuthLayer::new(vec![requirement], Some(Arc::new(OneKey)), "pcl")
            .tenant_header(Some(HeaderName::from_static("x-app-id")))
            .jwt(Some(Arc::new(
                JwtVerifier::builder(["HS256"])
                    .key(crate::jwt::JwtKey::secret(JWT_SECRET).unwrap())
                    .build()
                    .unwrap(),
            )));
        let svc = layer.layer(tower::service_fn(move |req: Request<TestBody>| {
            let signing = req
                .extensions()
                .get::<SignatureRequired>()
                .map(|s| s.secret().expose().to_vec());
            *record.lock().unwrap() = Some((req.headers().clone(), signing));
            async { Ok::<_, Infallible>(Response::new(())) }
        }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let res = rt.block_on(tower::ServiceExt::oneshot(svc, req)).unwrap();
        let seen = seen.lock().unwrap().take();
        (res, seen)
    }

    fn req(headers: &[(&str, &str)]) -> Request<TestBody> {
        let mut b = Request::get("/x");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(TestBody::default()).unwrap()
    }

    fn code(res: &Response<()>) -> Option<&'static str> {
        res.extensions().get::<Rejection>().map(Rejection::code)
    }

    #[test]
    fn identity_headers_are_stripped_everywhere_and_set_only_when_verified() {
        let forged = [
            ("x-portcullis-tenant", "globex"),
            ("x-portcullis-scopes", "admin"),
            ("x-portcullis-role", "registered"),
        ];
        let (_, seen) = call(RouteRequirement::none(), req(&forged));
        let seen = seen.unwrap();
        assert!(seen.get("x-portcullis-tenant").is_none());
        assert!(seen.get("x-portcullis-scopes").is_none());

        let mut with_key = forged.to_vec();
        with_key.push(("x-api-key", KEY));
        let (res, seen) = call(requirement(AuthMode::Required, &[], false), req(&with_key));
        assert_eq!(res.status(), StatusCode::OK);
        let seen = seen.unwrap();
        assert_eq!(seen["x-portcullis-tenant"], "acme");
        assert_eq!(seen["x-portcullis-scopes"], "read");
        assert_eq!(seen["x-portcullis-subject"], "ci-bot");
        assert_eq!(seen["x-portcullis-key-id"], "aaaaaaaaaaaaaaaa");
        assert!(seen.get("x-api-key").is_none(), "the secret was forwarded");
        assert_eq!(seen.get_all("x-portcullis-tenant").iter().count(), 1);
    }

    #[test]
    fn only_the_verified_credential_is_removed() {
        let required = || requirement(AuthMode::Required, &[], false);
        let bearer = format!("Bearer {KEY}");
        let (res, seen) = call(required(), req(&[("authorization", &bearer)]));
        assert_eq!(res.status(), StatusCode::OK);
        assert!(seen.unwrap().get("authorization").is_none());

        // Beside `X-API-Key`, an `Authorization` this route does not read is the upstream's.
        for other in ["Basic dXNlcjpwdw==", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"] {
            let (res, seen) = call(
                required(),
                req(&[("x-api-key", KEY), ("authorization", other)]),
            );
            assert_eq!(res.status(), StatusCode::OK);
            let seen = seen.unwrap();
            assert!(seen.get("x-api-key").is_none());
            assert_eq!(seen["authorization"], other);
        }
    }

    #[test]
    fn bearer_api_keys_are_read_and_other_bearers_are_not() {
        let (res, _) = call(
            requirement(AuthMode::Required, &[], false),
            req(&[("authorization", &format!("Bearer {KEY}"))]),
        );
        assert_eq!(res.status(), StatusCode::OK);
        let (res, _) = call(
            requirement(AuthMode::Required, &[], false),
            req(&[("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x")]),
        );
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(code(&res), Some("authentication_required"));
    }

    #[test]
    fn query_tokens_on_websocket_handshakes_only() {
        use tower::ServiceExt;
        let requirement = RouteRequirement {
            api_key: false,
            jwt: true,
            query_token: Some("token".into()),
            ..requirement(AuthMode::Required, &[], false)
        };
        let run = |uri: String, upgrade: bool, authorization: Option<String>| {
            let seen = Arc::new(std::sync::Mutex::new(None));
            let record = seen.clone();
            let layer = AuthLayer::new(vec![requirement.clone()], None, "pcl").jwt(Some(Arc::new(
                JwtVerifier::builder(["HS256"])
                    .key(crate::jwt::JwtKey::secret(JWT_SECRET).unwrap())
                    .build()
                    .unwrap(),
            )));
            let svc = layer.layer(tower::service_fn(move |req: Request<TestBody>| {
                *record.lock().unwrap() = Some(req.uri().to_string());
                async { Ok::<_, Infallible>(Response::new(())) }
            }));
            let mut req = Request::get(uri);
            if upgrade {
                req = req
                    .header("connection", "Upgrade")
                    .header("upgrade", "websocket");
            }
            if let Some(a) = authorization {
                req = req.header("authorization", a);
            }
            let res = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(svc.oneshot(req.body(TestBody::default()).unwrap()))
                .unwrap();
            let seen = seen.lock().unwrap().clone();
            (res, seen)
        };
        let token = jwt(Some("registered"), JWT_SECRET);

        // The handshake: accepted, and the upstream never sees the token.
        let (res, seen) = run(format!("/ws?room=7&token={token}"), true, None);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(seen.as_deref(), Some("/ws?room=7"));

        // Not a handshake: the query is not read.
        let (res, seen) = run(format!("/ws?token={token}"), false, None);
        assert_eq!(code(&res), Some("authentication_required"));
        assert!(seen.is_none());
        // A forged token is refused like any other.
        let forged = jwt(Some("registered"), b"not the secret");
        let (res, _) = run(format!("/ws?token={forged}"), true, None);
        assert_eq!(code(&res), Some("invalid_credentials"));
        // Twice, or with a header credential too: ambiguous.
        let (res, _) = run(format!("/ws?token={token}&token={token}"), true, None);
        assert_eq!(code(&res), Some("invalid_credentials"));
        let (res, _) = run(
            format!("/ws?token={token}"),
            true,
            Some(format!("Bearer {token}")),
        );
        assert_eq!(code(&res), Some("invalid_credentials"));
        // The header alone still works on the handshake.
        let (res, seen) = run("/ws".into(), true, Some(format!("Bearer {token}")));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(seen.as_deref(), Some("/ws"));
    }

    #[test]
    fn revoked_tokens_and_suspended_subjects() {
        use tower::ServiceExt;

        #[derive(Debug)]
        struct List;
        impl RevocationList for List {
            fn is_token_revoked(&self, jti: &str) -> bool {
                jti == "stolen"
            }
            fn is_subject_suspended(&self, tenant: &str, subject: &str) -> bool {
                (tenant, subject) == ("acme", "banned")
            }
        }
        let token = |sub: &str, jti: Option<&str>| {
            let mut claims = serde_json::json!({
                "sub": sub, "tenant": "acme", "role": "registered",
                "exp": jsonwebtoken::get_current_timestamp() + 600,
            });
            if let Some(jti) = jti {
                claims["jti"] = jti.into();
            }
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET),
            )
            .unwrap();
            format!("Bearer {token}")
        };
        let run = |authorization: String| {
            let requirement = RouteRequirement {
                api_key: false,
                jwt: true,
                ..requirement(AuthMode::Required, &[], false)
            };
            let layer = AuthLayer::new(vec![requirement], None, "pcl")
                .jwt(Some(Arc::new(
                    JwtVerifier::builder(["HS256"])
                        .key(crate::jwt::JwtKey::secret(JWT_SECRET).unwrap())
                        .build()
                        .unwrap(),
                )))
                .revocations(Some(Arc::new(List)));
            let svc = layer.layer(tower::service_fn(|_req: Request<TestBody>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
            let req = Request::get("/x")
                .header("authorization", authorization)
                .body(TestBody::default())
                .unwrap();
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(svc.oneshot(req))
                .unwrap()
        };
        assert_eq!(run(token("user-1", Some("fine"))).status(), StatusCode::OK);
        assert_eq!(run(token("user-1", None)).status(), StatusCode::OK);
        let res = run(token("user-1", Some("stolen")));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(code(&res), Some("invalid_credentials"));
        let res = run(token("banned", Some("fine")));
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(code(&res), Some("subject_suspended"));
    }

    #[test]
    fn jwt_bearer_tokens() {
        let both = || RouteRequirement {
            jwt: true,
            ..requirement(AuthMode::Required, &["read"], false)
        };
        let token = format!("Bearer {}", jwt(Some("registered"), JWT_SECRET));
        let (res, seen) = call(both(), req(&[("authorization", &token)]));
        assert_eq!(res.status(), StatusCode::OK);
        let seen = seen.unwrap();
        assert_eq!(seen["x-portcullis-tenant"], "acme");
        assert_eq!(seen["x-portcullis-subject"], "user-1");
        assert_eq!(seen["x-portcullis-role"], "registered");
        assert_eq!(seen["x-portcullis-key-id"], "jwt");
        assert!(
            seen.get("authorization").is_none(),
            "the token was forwarded"
        );

        let forged = format!("Bearer {}", jwt(Some("registered"), b"not the secret"));
        let guest = format!("Bearer {}", jwt(None, JWT_SECRET));
        let api_key_bearer = format!("Bearer {KEY}");
        let jwt_only = || RouteRequirement {
            api_key: false,
            ..both()
        };
        let cases: Vec<Case> = vec![
            (
                both(),
                vec![("authorization", forged.as_str())],
                StatusCode::UNAUTHORIZED,
                Some("invalid_credentials"),
            ),
            (
                both(),
                vec![("authorization", "Bearer not-a-jwt")],
                StatusCode::UNAUTHORIZED,
                Some("invalid_credentials"),
            ),
            (
                both(),
                vec![("authorization", token.as_str()), ("x-api-key", KEY)],
                StatusCode::UNAUTHORIZED,
                Some("invalid_credentials"),
            ),
            (both(), vec![("x-api-key", KEY)], StatusCode::OK, None),
            (
                both(),
                vec![("authorization", api_key_bearer.as_str())],
                StatusCode::OK,
                None,
            ),
            (
                jwt_only(),
                vec![("x-api-key", KEY)],
                StatusCode::UNAUTHORIZED,
                Some("invalid_credentials"),
            ),
            (
                jwt_only(),
                vec![("authorization", token.as_str())],
                StatusCode::OK,
                None,
            ),
            (
                RouteRequirement {
                    require_registered: true,
                    ..both()
                },
                vec![("authorization", guest.as_str())],
                StatusCode::FORBIDDEN,
                Some("registration_required"),
            ),
            (
                both(),
                vec![("authorization", token.as_str()), ("x-app-id", "globex")],
                StatusCode::FORBIDDEN,
                Some("tenant_mismatch"),
            ),
            (
                RouteRequirement {
                    scopes: vec!["write".into()],
                    ..both()
                },
                vec![("authorization", token.as_str())],
                StatusCode::FORBIDDEN,
                Some("insufficient_scope"),
            ),
        ];
        for (requirement, headers, status, expected) in cases {
            let (res, _) = call(requirement, req(&headers));
            assert_eq!(res.status(), status, "{headers:?}");
            assert_eq!(code(&res), expected, "{headers:?}");
        }
    }

    /// A route's requirement, the request's headers, the expected status and refusal code.
    type Case<'a> = (
        RouteRequirement,
        Vec<(&'a str, &'a str)>,
        StatusCode,
        Option<&'static str>,
    );

    #[test]
    fn status_codes() {
        let required = || requirement(AuthMode::Required, &["read"], false);
        let bearer = format!("Bearer {KEY}");
        let cases: Vec<Case> = vec![
            (
                required(),
                vec![],
                StatusCode::UNAUTHORIZED,
                Some("authentication_required"),
            ),
            (
                required(),
                vec![("x-api-key", "pcl_wrong")],
                StatusCode::UNAUTHORIZED,
                Some("invalid_credentials"),
            ),
            (
                required(),
                vec![("x-api-key", KEY), ("authorization", bearer.as_str())],
                StatusCode::UNAUTHORIZED,
                Some("invalid_credentials"),
            ),
            (required(), vec![("x-api-key", KEY)], StatusCode::OK, None),
            (
                required(),
                vec![("x-api-key", KEY), ("x-app-id", "acme")],
                StatusCode::OK,
                None,
            ),
            (
                required(),
                vec![("x-api-key", KEY), ("x-app-id", "globex")],
                StatusCode::FORBIDDEN,
                Some("tenant_mismatch"),
            ),
            (
                requirement(AuthMode::Required, &["read", "write"], false),
                vec![("x-api-key", KEY)],
                StatusCode::FORBIDDEN,
                Some("insufficient_scope"),
            ),
            (
                requirement(AuthMode::Required, &[], true),
                vec![("x-api-key", "pcl_guest")],
                StatusCode::FORBIDDEN,
                Some("registration_required"),
            ),
            (
                requirement(AuthMode::Optional, &[], false),
                vec![],
                StatusCode::OK,
                None,
            ),
            (
                requirement(AuthMode::Optional, &[], false),
                vec![("x-api-key", "pcl_wrong")],
                StatusCode::UNAUTHORIZED,
                Some("invalid_credentials"),
            ),
            (
                RouteRequirement::none(),
                vec![("x-api-key", "pcl_wrong")],
                StatusCode::OK,
                None,
            ),
        ];
        for (requirement, headers, status, expected) in cases {
            let (res, seen) = call(requirement, req(&headers));
            assert_eq!(res.status(), status, "{headers:?}");
            assert_eq!(code(&res), expected, "{headers:?}");
            assert_eq!(seen.is_some(), status == StatusCode::OK, "{headers:?}");
            if status == StatusCode::UNAUTHORIZED {
                assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
            }
        }
    }

    #[test]
    fn signing_keys_and_signed_only_routes() {
        let signed_only = |jwt: bool| RouteRequirement {
            api_key: false,
            signed_only: true,
            query_token: None,
            jwt,
            ..requirement(AuthMode::Required, &[], false)
        };
        let token = format!("Bearer {}", jwt(Some("registered"), JWT_SECRET));
        let signing_bearer = format!("Bearer {SIGNING_KEY}");

        // A signed-only route: a key that cannot sign is refused, a signing key passes on to the
        // signature layer with its secret.
        let (res, seen) = call(signed_only(false), req(&[("x-api-key", KEY)]));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(code(&res), Some("signature_required"));
        assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
        assert!(seen.is_none());
        for headers in [
            vec![("x-api-key", SIGNING_KEY)],
            vec![("authorization", signing_bearer.as_str())],
        ] {
            let (res, seen) = call_seeing_signature(signed_only(false), req(&headers));
            assert_eq!(res.status(), StatusCode::OK, "{headers:?}");
            let (headers, signing) = seen.unwrap();
            assert_eq!(signing.as_deref(), Some(SIGNING_SECRET));
            assert_eq!(headers["x-portcullis-tenant"], "acme");
            assert!(headers.get("x-api-key").is_none());
            assert!(headers.get("authorization").is_none());
        }
        let (res, _) = call(signed_only(false), req(&[]));
        assert_eq!(code(&res), Some("authentication_required"));
        assert_eq!(
            res.extensions().get::<Rejection>().unwrap().message(),
            "this endpoint requires an API key"
        );

        // A JWT is not an API key: signed-only does not apply to it, and it never signs.
        let (res, seen) =
            call_seeing_signature(signed_only(true), req(&[("authorization", &token)]));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(seen.unwrap().1, None);
        let (res, _) = call(signed_only(false), req(&[("authorization", &token)]));
        assert_eq!(code(&res), Some("authentication_required"));

        // A route that takes plain API keys: a signing key must still sign, others need not.
        let plain = || requirement(AuthMode::Required, &[], false);
        let (res, seen) = call_seeing_signature(plain(), req(&[("x-api-key", SIGNING_KEY)]));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(seen.unwrap().1.as_deref(), Some(SIGNING_SECRET));
        let (res, seen) = call_seeing_signature(plain(), req(&[("x-api-key", KEY)]));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(seen.unwrap().1, None);

        // Optional routes too; a route that reads no credential never asks for a signature.
        let (res, seen) = call_seeing_signature(
            requirement(AuthMode::Optional, &[], false),
            req(&[("x-api-key", SIGNING_KEY)]),
        );
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(seen.unwrap().1.as_deref(), Some(SIGNING_SECRET));
        let (res, seen) =
            call_seeing_signature(RouteRequirement::none(), req(&[("x-api-key", SIGNING_KEY)]));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(seen.unwrap().1, None);

        // The route's other checks still apply to a signing key.
        let (res, _) = call(
            RouteRequirement {
                scopes: vec!["write".into()],
                ..signed_only(false)
            },
            req(&[("x-api-key", SIGNING_KEY)]),
        );
        assert_eq!(code(&res), Some("insufficient_scope"));
    }
}
