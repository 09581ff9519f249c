//! The admin API's routes: JSON in, JSON out, one handler per [`crate::key_admin`] action.
//!
//! Every route sits behind [`require_token`]; so does the fallback, so a caller without the
//! token cannot even learn which paths exist. Error responses carry a [`Rejection`] and are
//! rendered by the gateway's own [`RenderErrorsLayer`] into the one JSON error shape with the
//! correlation ID.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use portcullis_layers::correlation_id::{CorrelationId, CorrelationIdLayer};
use portcullis_layers::rejection::{ErrorDetail, Rejection, RenderErrorsLayer};
use portcullis_policy::CorrelationIdSettings;
use portcullis_policy::auth::ApiKeySettings;
use portcullis_policy::rate_limit::RateLimits;
use portcullis_store::{Kek, KeyStore, TenantRate};
use serde::Deserialize;
use serde_json::{Value, json};

use super::token::AdminToken;
use crate::key_admin::{self, Actor, Expiry, Issued, KeyAdminError, NewKeyRequest};

/// The audit actor of every admin API change. There is one admin credential for now, so the
/// records cannot tell two operators apart; the correlation ID ties each to its request.
pub const ADMIN_ACTOR: &str = "admin";

/// Request bodies are a few fields; anything larger is a mistake or an attack.
const MAX_BODY: usize = 16 * 1024;

/// `GET /v1/audit` returns at most this many records at once.
const MAX_AUDIT_LIMIT: usize = 1000;
const DEFAULT_AUDIT_LIMIT: usize = 50;

/// What every handler needs.
#[derive(Debug)]
pub(crate) struct AdminState {
    pub(crate) store: Arc<dyn KeyStore>,
    pub(crate) keys: ApiKeySettings,
    pub(crate) token: AdminToken,
    /// The key-encryption key of `[auth.api-keys.signing]`, if the policy has one.
    pub(crate) kek: Option<Kek>,
    /// `[rate-limit]`: the quotas a tenant's plan may name.
    pub(crate) limits: RateLimits,
}

/// The admin API as one service: correlation ID, JSON errors, `Cache-Control: no-store`, the
/// token check, then the routes.
pub(crate) fn router(
    state: Arc<AdminState>,
    correlation: &CorrelationIdSettings,
    detail: ErrorDetail,
) -> Router {
    Router::new()
        .route("/v1/keys", post(create).get(list))
        .route("/v1/keys/{id}", get(show))
        .route("/v1/keys/{id}/rotate", post(rotate))
        .route("/v1/keys/{id}/revoke", post(revoke))
        .route("/v1/tenants/{tenant}/suspend", post(suspend))
        .route("/v1/tenants/{tenant}/unsuspend", post(unsuspend))
        .route("/v1/tokens/revoke", post(revoke_token))
        .route(
            "/v1/tenants/{tenant}/subjects/{subject}/suspend",
            post(suspend_subject),
        )
        .route(
            "/v1/tenants/{tenant}/subjects/{subject}/unsuspend",
            post(unsuspend_subject),
        )
        .route(
            "/v1/tenants/{tenant}/rates/{quota}",
            put(set_tenant_rate).delete(clear_tenant_rate),
        )
        .route("/v1/rates", get(tenant_rates))
        .route("/v1/audit", get(audit))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::map_response(no_store))
        .layer(RenderErrorsLayer::new(detail))
        .layer(
            CorrelationIdLayer::new(correlation.header.clone())
                .accept(correlation.accept.clone())
                .max_length(correlation.max_length),
        )
        .with_state(state)
}

/// A refusal, rendered by [`RenderErrorsLayer`].
#[derive(Debug)]
pub(crate) struct ApiError(Rejection);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.0.status() == StatusCode::UNAUTHORIZED;
        let mut res: Response = self.0.into_response::<Body>();
        if unauthorized {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
            );
        }
        res
    }
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self(Rejection::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            message.into(),
        ))
    }

    /// Maps an action's failure to its status; store errors lose their location on the way.
    fn from_action(err: KeyAdminError, keys: &ApiKeySettings) -> Self {
        let rejection = match err {
            KeyAdminError::NotFound(id) => Rejection::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no key with id {id}"),
            ),
            KeyAdminError::Invalid(message) => {
                Rejection::new(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
            KeyAdminError::NotRotatable(err) => {
                Rejection::new(StatusCode::CONFLICT, "not_rotatable", err.to_string())
            }
            KeyAdminError::Store(err) => Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the key store is unavailable",
            )
            .with_detail(key_admin::redact(&err.to_string(), keys)),
            KeyAdminError::Audit {
                action,
                target,
                source,
            } => Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                format!("{action} {target} was done, but its audit record could not be written"),
            )
            .with_detail(key_admin::redact(&source.to_string(), keys)),
        };
        Self(rejection)
    }
}

/// Refuses every request without `Authorization: Bearer <the admin token>`.
async fn require_token(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let presented = match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    };
    let Some(value) = presented else {
        return ApiError(
            Rejection::new(
                StatusCode::UNAUTHORIZED,
                "authentication_required",
                "the admin API requires `Authorization: Bearer <admin token>`",
            )
            .with_detail("no single Authorization header"),
        )
        .into_response();
    };
    let accepted = bearer(value.as_bytes()).is_some_and(|token| state.token.matches(token));
    if !accepted {
        // Neither the header nor any part of it is logged: it may be a near-miss of the token.
        return ApiError(
            Rejection::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the credentials are invalid",
            )
            .with_detail("not the admin token"),
        )
        .into_response();
    }
    next.run(req).await
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 9110 §11.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Admin responses carry keys and key metadata: no cache may keep them.
async fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn not_found() -> ApiError {
    ApiError(Rejection::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such admin API endpoint",
    ))
}

async fn method_not_allowed() -> ApiError {
    ApiError(Rejection::method_not_allowed(
        "this admin API endpoint does not accept that method",
    ))
}

/// The admin actor, with the request's correlation ID.
struct Caller(Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The correlation layer always sets it; without it the record still names the actor.
        let mut actor = Actor::new(ADMIN_ACTOR);
        actor.correlation_id = parts
            .extensions
            .get::<CorrelationId>()
            .map(|id| id.as_str().to_owned());
        Ok(Self(actor))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    tenant: String,
    subject: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// A lifetime: `30d`, `12h`.
    expires_in: Option<String>,
    /// Whether the key signs its requests (and gets a signing secret).
    #[serde(default)]
    signed: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// How long the old key keeps working; default: the policy's `rotation-grace`.
    grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeTokenBody {
    /// The token's `jti` claim.
    jti: String,
    /// The token's own expiry (its `exp`), RFC 3339: the revocation is kept until then.
    expires_at: String,
    /// The tenant the token was for, recorded for operators.
    tenant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantRateBody {
    /// Requests per `per`.
    limit: u32,
    /// A duration (`1s`, `1m`); default: the quota's own period.
    per: Option<String>,
    /// The most requests at once; default: `limit`.
    burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    tenant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}

/// Parses a JSON body; `None` when there is none. Its text never reaches a log: a body may
/// hold anything a caller pasted.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<T>, ApiError> {
    let body = body.map_err(|e| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_request"
        };
        ApiError(Rejection::new(
            status,
            code,
            format!("cannot read the body: {e}"),
        ))
    })?;
    if body.is_empty() {
        return Ok(None);
    }
    let json_type = headers.get(header::CONTENT_TYPE).is_none_or(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
    });
    if !json_type {
        return Err(ApiError(Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be `application/json`",
        )));
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn duration(field: &str, value: &str) -> Result<Duration, ApiError> {
    humantime::parse_duration(value).map_err(|_| {
        ApiError::bad_request(format!(
            "{field}: `{value}` is not a duration; write e.g. \"30d\", \"12h\", \"10m\""
        ))
    })
}

fn path_param<T>(param: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    param
        .map(|Path(value)| value)
        .map_err(|e| ApiError::bad_request(format!("bad path: {e}")))
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// 201 with the new key and its signing secret, if any (both shown once), and where to find it.
fn issued(state: &AdminState, issued: Issued) -> Response {
    // Both logged inside the request's span, which carries the correlation ID.
    if let Err(e) = &issued.audit {
        // The key exists: withholding it would leave a working key nobody has. Say so loudly.
        tracing::error!(
            error = %key_admin::redact(&e.to_string(), &state.keys),
            "admin API: a key was issued without an audit record"
        );
    }
    if let Some(e) = &issued.read_back_error {
        tracing::warn!(
            key_id = %issued.view.record.id,
            error = %key_admin::redact(&e.to_string(), &state.keys),
            "admin API: could not read back the rotated key"
        );
    }
    let body = issued.json(state.store.clock().now());
    let location = HeaderValue::try_from(format!("/v1/keys/{}", issued.view.record.id)).ok();
    let mut res = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Some(location) = location {
        res.headers_mut().insert(header::LOCATION, location);
    }
    res
}

fn within(keys: &ApiKeySettings) -> String {
    humantime::format_duration(keys.cache_ttl).to_string()
}

async fn create(
    State(state): State<Arc<AdminState>>,
    Caller(actor): Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: CreateBody = json_body(&headers, body)?
        .ok_or_else(|| ApiError::bad_request("a JSON body is required"))?;
    let expires = body
        .expires_in
        .as_deref()
        .map(|v| duration("expires_in", v))
        .transpose()?
        .map(Expiry::After);
    let request = NewKeyRequest {
        tenant: body.tenant,
        subject: body.subject,
        scopes: body.scopes,
        expires,
        signed: body.signed,
    };
    let result = key_admin::create(
        &*state.store,
        &actor,
        &state.keys.prefix,
        request,
        state.kek.as_ref(),
    )
    .await;
    let outcome = result.map_err(|e| ApiError::from_action(e, &state.keys))?;
    Ok(issued(&state, outcome))
}

async fn list(
    State(state): State<Arc<AdminState>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let views = key_admin::list(&*state.store, q.tenant.as_deref())
        .await
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    let now = state.store.clock().now();
    let all: Vec<Value> = views.iter().map(|v| v.json(now)).collect();
    Ok(axum::Json(Value::Array(all)).into_response())
}

async fn show(
    State(state): State<Arc<AdminState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = key_admin::parse_key_id(&path_param(id)?)
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    let view = key_admin::show(&*state.store, &id)
        .await
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    Ok(axum::Json(view.json(state.store.clock().now())).into_response())
}

async fn rotate(
    State(state): State<Arc<AdminState>>,
    Caller(actor): Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = key_admin::parse_key_id(&path_param(id)?)
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    let body: RotateBody = json_body(&headers, body)?.unwrap_or_default();
    let grace = match body.grace.as_deref() {
        Some(v) => duration("grace", v)?,
        None => state.keys.rotation_grace,
    };
    let outcome = key_admin::rotate(&*state.store, &actor, &id, grace, state.kek.as_ref())
        .await
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    Ok(issued(&state, outcome))
}

async fn revoke(
    State(state): State<Arc<AdminState>>,
    Caller(actor): Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = key_admin::parse_key_id(&path_param(id)?)
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    let record = key_admin::revoke(&*state.store, &actor, &id)
        .await
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    Ok(axum::Json(json!({
        "id": record.id.as_str(),
        "tenant": record.tenant,
        "state": "revoked",
        "effective_within": within(&state.keys),
    }))
    .into_response())
}

async fn suspend(
    State(state): State<Arc<AdminState>>,
    Caller(actor): Caller,
    tenant: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    set_suspended(state, actor, path_param(tenant)?, true).await
}

async fn unsuspend(
    State(state): State<Arc<AdminState>>,
    Caller(actor): Caller,
    tenant: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    set_suspended(state, actor, path_param(tenant)?, false).await
}

async fn set_suspended(
    state: Arc<AdminState>,
    actor: Actor,
    tenant: String,
    suspended: bool,
) -> Result<Response, ApiError> {
    let done = if suspended {
        key_admin::suspend(&*state.store, &actor, &tenant).await
    } else {
        key_admin::unsuspend(&*state.store, &actor, &tenant).await
    };
    done.map_err(|e| ApiError::from_action(e, &state.keys))?;
    Ok(axum::Json(json!({
        "tenant": tenant,
        "suspended": suspended,
        "effective_within": within(&state.keys),
    }))
    .into_response())
}

/// `effective_within` of token revocations and subject suspensions: the gateway reloads that
/// list every second, whatever `cache-ttl` says.
fn revocation_within() -> String {
    humantime::format_duration(key_admin::REVOCATION_EFFECTIVE_WITHIN).to_string()
}

async fn revoke_token(
    State(state): State<Arc<AdminState>>,
    Caller(actor): Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: RevokeTokenBody = json_body(&headers, body)?
        .ok_or_else(|| ApiError::bad_request("a JSON body is required"))?;
    // The value is not echoed: whatever was pasted here, it is no time.
    let expires_at = humantime::parse_rfc3339_weak(&body.expires_at).map_err(|_| {
        ApiError::bad_request(
            "expires_at: not an RFC 3339 UTC time; write the token's `exp`, e.g.              \"2030-01-01T00:00:00Z\"",
        )
    })?;
    let revocation = key_admin::revoke_token(
        &*state.store,
        &actor,
        &body.jti,
        body.tenant.as_deref(),
        expires_at,
    )
    .await
    .map_err(|e| ApiError::from_action(e, &state.keys))?;
    Ok(axum::Json(json!({
        "jti": revocation.jti,
        "tenant": revocation.tenant,
        "expires_at": humantime::format_rfc3339_millis(revocation.expires_at).to_string(),
        "revoked": true,
        "effective_within": revocation_within(),
    }))
    .into_response())
}

fn tenant_rate_json(rate: &TenantRate) -> Value {
    json!({
        "tenant": rate.tenant,
        "quota": rate.quota,
        "limit": rate.limit,
        "per": humantime::format_duration(rate.per).to_string(),
        "burst": rate.burst,
        "updated_at": humantime::format_rfc3339_millis(rate.updated_at).to_string(),
    })
}

async fn set_tenant_rate(
    State(state): State<Arc<AdminState>>,
    Caller(actor): Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (tenant, quota) = path_param(path)?;
    let body: TenantRateBody = json_body(&headers, body)?
        .ok_or_else(|| ApiError::bad_request("a JSON body is required"))?;
    let per = match body.per.as_deref() {
        Some(text) => humantime::parse_duration(text).map_err(|_| {
            ApiError::bad_request("per: not a duration; write e.g. \"1s\" or \"1m\"")
        })?,
        // The quota's own period; an unknown quota is refused below, naming the quotas.
        None => state
            .limits
            .quotas
            .iter()
            .find(|q| q.name == quota)
            .map_or(Duration::from_secs(1), |q| q.rate.per),
    };
    let rate = TenantRate {
        tenant,
        quota,
        limit: body.limit,
        per,
        burst: body.burst.unwrap_or(body.limit),
        updated_at: state.store.clock().now(),
    };
    let rate = key_admin::set_tenant_rate(&*state.store, &actor, &state.limits, rate)
        .await
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    let mut out = tenant_rate_json(&rate);
    out["effective_within"] = revocation_within().into();
    Ok(axum::Json(out).into_response())
}

async fn clear_tenant_rate(
    State(state): State<Arc<AdminState>>,
    Caller(actor): Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (tenant, quota) = path_param(path)?;
    let cleared = key_admin::clear_tenant_rate(&*state.store, &actor, &tenant, &quota)
        .await
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    Ok(axum::Json(json!({
        "tenant": tenant,
        "quota": quota,
        "cleared": cleared,
        "effective_within": revocation_within(),
    }))
    .into_response())
}

async fn tenant_rates(State(state): State<Arc<AdminState>>) -> Result<Response, ApiError> {
    let rates = key_admin::tenant_rates(&*state.store)
        .await
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    let all: Vec<Value> = rates.iter().map(tenant_rate_json).collect();
    Ok(axum::Json(Value::Array(all)).into_response())
}

async fn suspend_subject(
    State(state): State<Arc<AdminState>>,
    Caller(actor): Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (tenant, subject) = path_param(path)?;
    set_subject_suspended(state, actor, tenant, subject, true).await
}

async fn unsuspend_subject(
    State(state): State<Arc<AdminState>>,
    Caller(actor): Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (tenant, subject) = path_param(path)?;
    set_subject_suspended(state, actor, tenant, subject, false).await
}

async fn set_subject_suspended(
    state: Arc<AdminState>,
    actor: Actor,
    tenant: String,
    subject: String,
    suspended: bool,
) -> Result<Response, ApiError> {
    let done = if suspended {
        key_admin::suspend_subject(&*state.store, &actor, &tenant, &subject).await
    } else {
        key_admin::unsuspend_subject(&*state.store, &actor, &tenant, &subject).await
    };
    done.map_err(|e| ApiError::from_action(e, &state.keys))?;
    Ok(axum::Json(json!({
        "tenant": tenant,
        "subject": subject,
        "suspended": suspended,
        "effective_within": revocation_within(),
    }))
    .into_response())
}

async fn audit(
    State(state): State<Arc<AdminState>>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let limit = query(q)?.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    if limit > MAX_AUDIT_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit: at most {MAX_AUDIT_LIMIT}"
        )));
    }
    let records = key_admin::audit(&*state.store, limit)
        .await
        .map_err(|e| ApiError::from_action(e, &state.keys))?;
    let all: Vec<Value> = records.iter().map(key_admin::audit_json).collect();
    Ok(axum::Json(Value::Array(all)).into_response())
}
