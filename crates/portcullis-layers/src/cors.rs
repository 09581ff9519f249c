//! CORS: per-route allow-lists that reflect the matched origin and deny everything else.
//!
//! Each route has an optional [`CorsPolicy`]; the route comes from [`MatchedRoute`] (the last
//! entry serves requests without one, like the response posture). The policy decides, and the
//! upstream cannot widen it: `Access-Control-*` headers in upstream responses are always
//! removed.
//!
//! - **Preflight** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`): answered here,
//!   never forwarded. An allowed origin asking for allowed methods and headers gets `204` with
//!   the policy's `Access-Control-Allow-*` headers and `Access-Control-Max-Age`; anything else
//!   (an unlisted origin, a method or header not allowed, a route with no CORS policy) gets
//!   `403` with the JSON error `cors_preflight_refused` and no CORS headers.
//! - **Actual requests** are forwarded whatever their origin: CORS decides what a *browser* may
//!   read, not what a server accepts (the CSRF check guards state changes). An allowed origin
//!   is reflected in `Access-Control-Allow-Origin` (`*` only for an any-origin policy without
//!   credentials), with `Access-Control-Allow-Credentials` and `-Expose-Headers` as configured;
//!   an unlisted origin gets no CORS header at all.
//! - `Vary: Origin` goes on every response of a route with a CORS policy, matched or not, so a
//!   cache never serves one origin's answer to another.
//! - **WebSocket upgrades** carrying an `Origin` must come from an origin the route's policy
//!   allows, or from the host they are addressed to; others get `403`
//!   (`websocket_origin_refused`) before the upgrade. Browsers always send `Origin` on a
//!   WebSocket handshake and the same-origin policy does not apply to WebSockets, so this check
//!   is the only thing between a malicious page and a socket carrying the user's cookies.
//!
//! tower-http's `CorsLayer` applies one policy to everything, answers refused preflights with a
//! 200 that lacks the headers, and forwards headers set by the inner service; the policy needs
//! per-route policies, a 403 that never reaches the upstream, and upstream headers removed.
//!
//! ```
//! use std::time::Duration;
//! use http::{header, Method, Request, Response, StatusCode};
//! use portcullis_layers::cors::{CorsLayer, CorsPolicy};
//! use portcullis_layers::origin::AllowedOrigins;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let policy = CorsPolicy::new(AllowedOrigins::new().allow("https://app.example.com").unwrap())
//!     .methods([Method::GET, Method::POST])
//!     .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
//!     .max_age(Duration::from_secs(600))
//!     .credentials(true);
//! let layer = CorsLayer::new(vec![Some(policy)]).unwrap();
//! let svc = ServiceBuilder::new().layer(layer).service(service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(()))
//! }));
//!
//! let preflight = Request::options("/v1/things")
//!     .header("origin", "https://app.example.com")
//!     .header("access-control-request-method", "POST")
//!     .header("access-control-request-headers", "content-type")
//!     .body(()).unwrap();
//! let res = svc.clone().oneshot(preflight).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NO_CONTENT);
//! assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
//! assert_eq!(res.headers()["access-control-max-age"], "600");
//!
//! let evil = Request::get("/v1/things").header("origin", "https://evil.test").body(()).unwrap();
//! let res = svc.oneshot(evil).await.unwrap();
//! assert!(res.headers().get("access-control-allow-origin").is_none());
//! assert_eq!(res.headers()["vary"], "origin");
//! # });
//! ```

use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::either_future::EitherFuture;
use crate::matched_route::MatchedRoute;
use crate::origin::{AllowedOrigins, Origin};
use crate::rejection::Rejection;

/// One named CORS policy: who may read responses from a browser, and how.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: AllowedOrigins,
    methods: Vec<Method>,
    allow_headers: Vec<HeaderName>,
    expose_headers: Vec<HeaderName>,
    max_age: Option<Duration>,
    credentials: bool,
}

/// Why a [`CorsLayer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsError {
    /// Browsers refuse `Access-Control-Allow-Origin: *` on credentialed requests, and
    /// reflecting every origin instead would hand any site the user's session.
    #[error("an any-origin (`*`) CORS policy cannot allow credentials")]
    AnyWithCredentials,
    #[error("a CORS list is too long to fit in one header value")]
    HeaderValue,
}

impl CorsPolicy {
    /// A policy for `origins` with no methods, headers or credentials yet.
    pub fn new(origins: AllowedOrigins) -> Self {
        Self {
            origins,
            methods: Vec::new(),
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age: None,
            credentials: false,
        }
    }

    /// Methods a preflight may ask for.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// Request headers a preflight may ask for.
    pub fn allow_headers(mut self, h: impl IntoIterator<Item = HeaderName>) -> Self {
        self.allow_headers = h.into_iter().collect();
        self
    }

    /// Response headers a page may read beyond the CORS-safelisted ones.
    pub fn expose_headers(mut self, h: impl IntoIterator<Item = HeaderName>) -> Self {
        self.expose_headers = h.into_iter().collect();
        self
    }

    /// How long a browser may cache a successful preflight.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Whether pages may send cookies (and read the answers to requests that carry them).
    pub fn credentials(mut self, credentials: bool) -> Self {
        self.credentials = credentials;
        self
    }

    pub fn origins(&self) -> &AllowedOrigins {
        &self.origins
    }

    pub fn allows_credentials(&self) -> bool {
        self.credentials
    }
}

/// A [`CorsPolicy`] with its header values computed once.
#[derive(Debug)]
struct Compiled {
    origins: AllowedOrigins,
    methods: Vec<Method>,
    allow_headers: Vec<HeaderName>,
    credentials: bool,
    /// Headers every preflight answer carries besides the origin.
    preflight: HeaderMap,
    expose: Option<HeaderValue>,
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> Result<Option<HeaderValue>, CorsError> {
    let joined = items.collect::<Vec<_>>().join(", ");
    if joined.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(&joined)
        .map(Some)
        .map_err(|_| CorsError::HeaderValue)
}

impl Compiled {
    fn new(policy: CorsPolicy) -> Result<Self, CorsError> {
        if policy.origins.is_any() && policy.credentials {
            return Err(CorsError::AnyWithCredentials);
        }
        let mut preflight = HeaderMap::new();
        if let Some(v) = join(policy.methods.iter().map(Method::as_str))? {
            preflight.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if let Some(v) = join(policy.allow_headers.iter().map(HeaderName::as_str))? {
            preflight.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(max_age) = policy.max_age {
            preflight.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(max_age.as_secs()),
            );
        }
        if policy.credentials {
            preflight.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        // A preflight's answer depends on all three request headers.
        preflight.insert(
            header::VARY,
            HeaderValue::from_static(
                "origin, access-control-request-method, access-control-request-headers",
            ),
        );
        Ok(Self {
            expose: join(policy.expose_headers.iter().map(HeaderName::as_str))?,
            origins: policy.origins,
            methods: policy.methods,
            allow_headers: policy.allow_headers,
            credentials: policy.credentials,
            preflight,
        })
    }

    /// `Access-Control-Allow-Origin` for an allowed origin.
    fn allow_origin(&self, origin: &Origin) -> Option<HeaderValue> {
        if self.origins.is_any() && !origin.is_null() {
            return Some(HeaderValue::from_static("*"));
        }
        // The canonical form is ASCII without control characters, so this cannot fail; if it
        // ever did, sending no header is the safe answer.
        HeaderValue::from_str(origin.as_str()).ok()
    }

    fn preflight<B: Default>(&self, origin: &HeaderValue, headers: &HeaderMap) -> Response<B> {
        match self.check_preflight(origin, headers) {
            Ok(allow_origin) => {
                let mut res = Response::new(B::default());
                *res.status_mut() = StatusCode::NO_CONTENT;
                *res.headers_mut() = self.preflight.clone();
                res.headers_mut()
                    .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
                res
            }
            Err(detail) => {
                let mut res = refuse_preflight(detail);
                res.headers_mut().insert(
                    header::VARY,
                    HeaderValue::from_static(
                        "origin, access-control-request-method, access-control-request-headers",
                    ),
                );
                res
            }
        }
    }

    fn check_preflight(
        &self,
        origin: &HeaderValue,
        headers: &HeaderMap,
    ) -> Result<HeaderValue, String> {
        let origin = Origin::parse(origin.as_bytes())
            .ok()
            .filter(|o| self.origins.allows(o))
            .ok_or_else(|| format!("origin {origin:?} is not allowed"))?;
        let method = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !self.methods.iter().any(|m| m.as_str().as_bytes() == method) {
            return Err(format!(
                "method {:?} is not allowed",
                String::from_utf8_lossy(method)
            ));
        }
        for value in headers.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            for name in value.as_bytes().split(|b| *b == b',') {
                let name = name.trim_ascii();
                let allowed = name.is_empty()
                    || self
                        .allow_headers
                        .iter()
                        .any(|h| h.as_str().as_bytes().eq_ignore_ascii_case(name));
                if !allowed {
                    return Err(format!(
                        "request header {:?} is not allowed",
                        String::from_utf8_lossy(name)
                    ));
                }
            }
        }
        self.allow_origin(&origin)
            .ok_or_else(|| "origin cannot be reflected".to_owned())
    }
}

fn refuse_preflight<B: Default>(detail: String) -> Response<B> {
    Rejection::new(
        StatusCode::FORBIDDEN,
        "cors_preflight_refused",
        "this cross-origin request is not allowed",
    )
    .with_detail(detail)
    .into_response()
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct CorsLayer {
    /// One entry per route, the default route last; `None`: cross-origin access denied.
    per_route: Arc<[Option<Compiled>]>,
}

impl CorsLayer {
    /// `per_route[i]` is route `i`'s policy; the last entry also serves requests without a
    /// [`MatchedRoute`]. An empty list denies cross-origin access everywhere.
    pub fn new(per_route: Vec<Option<CorsPolicy>>) -> Result<Self, CorsError> {
        let per_route = per_route
            .into_iter()
            .map(|p| p.map(Compiled::new).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            per_route: per_route.into(),
        })
    }
}

impl CorsLayer {
    /// No cross-origin access anywhere: no CORS headers, every preflight refused.
    pub fn deny_all() -> Self {
        Self {
            per_route: Arc::from(Vec::new()),
        }
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cors {
            inner,
            per_route: self.per_route.clone(),
        }
    }
}

/// See [`CorsLayer`].
#[derive(Debug, Clone)]
pub struct Cors<S> {
    inner: S,
    per_route: Arc<[Option<Compiled>]>,
}

type Answered<B, E> = Ready<Result<Response<B>, E>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = EitherFuture<CorsFuture<S::Future>, Answered<ResBody, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let index = req
            .extensions()
            .get::<MatchedRoute>()
            .map_or(self.per_route.len().saturating_sub(1), |m| m.index);
        let policy = self.per_route.get(index).and_then(Option::as_ref);
        let origin = single(req.headers(), &header::ORIGIN);

        let is_preflight = req.method() == Method::OPTIONS
            && req.headers().contains_key(header::ORIGIN)
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if is_preflight {
            let res = match (policy, origin) {
                (Some(policy), Some(origin)) => policy.preflight(origin, req.headers()),
                (None, Some(_)) => {
                    refuse_preflight("this route allows no cross-origin requests".into())
                }
                // Several `Origin` headers: no browser sends that.
                (_, None) => refuse_preflight("several Origin headers".into()),
            };
            return EitherFuture::right(ready(Ok(res)));
        }
        if let Some(origin) = origin
            && is_websocket_upgrade(req.headers())
            && let Err(detail) = check_websocket_origin(policy, origin, req.headers())
        {
            let res = Rejection::new(
                StatusCode::FORBIDDEN,
                "websocket_origin_refused",
                "this origin may not open a WebSocket here",
            )
            .with_detail(detail)
            .into_response();
            return EitherFuture::right(ready(Ok(res)));
        }

        let allow = match (policy, origin) {
            (Some(policy), Some(origin)) => Origin::parse(origin.as_bytes())
                .ok()
                .filter(|o| policy.origins.allows(o))
                .and_then(|o| policy.allow_origin(&o))
                .map(|value| Allow {
                    origin: value,
                    credentials: policy.credentials,
                    expose: policy.expose.clone(),
                }),
            _ => None,
        };
        EitherFuture::left(CorsFuture {
            inner: self.inner.call(req),
            enabled: policy.is_some(),
            allow,
        })
    }
}

/// The one value of a header that must appear at most once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::UPGRADE).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"websocket"))
    })
}

fn check_websocket_origin(
    policy: Option<&Compiled>,
    origin: &HeaderValue,
    headers: &HeaderMap,
) -> Result<(), String> {
    let parsed = Origin::parse(origin.as_bytes())
        .map_err(|_| format!("origin {origin:?} is not an origin"))?;
    let same_host =
        single(headers, &header::HOST).is_some_and(|h| parsed.is_same_host(h.as_bytes()));
    // `*` is for reading public data; it never opens a socket for any page on the web.
    let listed = policy.is_some_and(|p| !p.origins.is_any() && p.origins.allows(&parsed));
    if same_host || listed {
        Ok(())
    } else {
        Err(format!("origin {} is not allowed", parsed.as_str()))
    }
}

/// What an allowed actual request adds to its response.
#[derive(Debug)]
struct Allow {
    origin: HeaderValue,
    credentials: bool,
    expose: Option<HeaderValue>,
}

pin_project_lite::pin_project! {
    /// Response future of [`Cors`] for forwarded requests.
    pub struct CorsFuture<F> {
        #[pin]
        inner: F,
        enabled: bool,
        allow: Option<Allow>,
    }
}

impl<F, ResBody, E> std::future::Future for CorsFuture<F>
where
    F: std::future::Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        let headers = res.headers_mut();
        remove_upstream_cors(headers);
        if *this.enabled {
            add_vary_origin(headers);
        }
        if let Some(allow) = this.allow.take() {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow.origin);
            if allow.credentials {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            if let Some(expose) = allow.expose {
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
            }
        }
        Poll::Ready(Ok(res))
    }
}

/// The upstream does not get to widen the policy.
fn remove_upstream_cors(headers: &mut HeaderMap) {
    if !headers
        .keys()
        .any(|k| k.as_str().starts_with("access-control-"))
    {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Appends `origin` to `Vary` unless the response already varies on it (or on everything).
fn add_vary_origin(headers: &mut HeaderMap) {
    let covered = headers.get_all(header::VARY).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|t| {
            let t = t.trim_ascii();
            t == b"*" || t.eq_ignore_ascii_case(b"origin")
        })
    });
    if !covered {
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn sdk_policy() -> CorsPolicy {
        CorsPolicy::new(
            AllowedOrigins::new()
                .allow("https://app.example.com")
                .unwrap()
                .allow("https://*.partners.example.com")
                .unwrap(),
        )
        .methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers(
            ["authorization", "content-type", "x-request-id"].map(HeaderName::from_static),
        )
        .expose_headers(["x-request-id", "retry-after"].map(HeaderName::from_static))
        .max_age(Duration::from_secs(600))
        .credentials(true)
    }

    /// Route 0 has the SDK policy, route 1 (the default) none. The upstream answers with its
    /// own, wide-open CORS headers, which must never survive.
    fn call(req: Request<()>, route: usize) -> (Response<()>, usize) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let layer = CorsLayer::new(vec![Some(sdk_policy()), None]).unwrap();
        let svc = layer.layer(tower::service_fn(move |_req: Request<()>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("access-control-allow-origin", "*")
                        .header("access-control-allow-credentials", "true")
                        .header("vary", "accept-encoding")
                        .body(())
                        .unwrap(),
                )
            }
        }));
        let mut req = req;
        req.extensions_mut().insert(MatchedRoute {
            index: route,
            name: Arc::from("r"),
        });
        let res = rt().block_on(svc.oneshot(req)).unwrap();
        (res, calls.load(Ordering::SeqCst))
    }

    fn preflight(origin: &str, method: &str, headers: Option<&str>) -> Request<()> {
        let mut b = Request::options("/v1/x")
            .header("origin", origin)
            .header("access-control-request-method", method);
        if let Some(h) = headers {
            b = b.header("access-control-request-headers", h);
        }
        b.body(()).unwrap()
    }

    fn get(origin: Option<&str>) -> Request<()> {
        let mut b = Request::get("/v1/x");
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(()).unwrap()
    }

    fn acao(res: &Response<()>) -> Option<&str> {
        res.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap())
    }

    fn rejection(res: &Response<()>) -> Option<&'static str> {
        res.extensions().get::<Rejection>().map(Rejection::code)
    }

    #[test]
    fn allowed_preflight_is_answered_without_the_upstream() {
        let (res, calls) = call(
            preflight(
                "https://APP.example.com:443",
                "DELETE",
                Some("Authorization, content-type"),
            ),
            0,
        );
        assert_eq!(calls, 0);
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(h["access-control-allow-methods"], "GET, POST, DELETE");
        assert_eq!(
            h["access-control-allow-headers"],
            "authorization, content-type, x-request-id"
        );
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert!(h["vary"].to_str().unwrap().starts_with("origin"));
        assert!(h.get("access-control-expose-headers").is_none());
    }

    #[test]
    fn refused_preflights_get_403_and_no_cors_headers() {
        for (req, route) in [
            (preflight("https://evil.test", "GET", None), 0),
            (
                preflight("https://app.example.com.evil.test", "GET", None),
                0,
            ),
            (preflight("http://app.example.com", "GET", None), 0),
            (preflight("null", "GET", None), 0),
            (preflight("https://app.example.com", "PUT", None), 0),
            (preflight("https://app.example.com", "get", None), 0),
            (
                preflight("https://app.example.com", "GET", Some("x-secret")),
                0,
            ),
            (
                preflight(
                    "https://app.example.com",
                    "GET",
                    Some("content-type, x-secret"),
                ),
                0,
            ),
            // The default route has no CORS policy: internal, deny.
            (preflight("https://app.example.com", "GET", None), 1),
        ] {
            let (res, calls) = call(req, route);
            assert_eq!(calls, 0);
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
            assert_eq!(rejection(&res), Some("cors_preflight_refused"));
            assert!(acao(&res).is_none());
            assert!(res.headers().get("access-control-allow-methods").is_none());
        }
    }

    #[test]
    fn two_origin_headers_are_never_allowed() {
        let mut req = preflight("https://app.example.com", "GET", None);
        req.headers_mut().append(
            "origin",
            HeaderValue::from_static("https://app.example.com"),
        );
        let (res, _) = call(req, 0);
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let mut req = get(Some("https://app.example.com"));
        req.headers_mut().append(
            "origin",
            HeaderValue::from_static("https://app.example.com"),
        );
        let (res, calls) = call(req, 0);
        assert_eq!(calls, 1);
        assert!(acao(&res).is_none());
    }

    #[test]
    fn actual_requests_reflect_allowed_origins_only() {
        let (res, calls) = call(get(Some("https://eu.partners.example.com")), 0);
        assert_eq!(calls, 1);
        assert_eq!(acao(&res), Some("https://eu.partners.example.com"));
        assert_eq!(res.headers()["access-control-allow-credentials"], "true");
        assert_eq!(
            res.headers()["access-control-expose-headers"],
            "x-request-id, retry-after"
        );
        let vary: Vec<_> = res.headers().get_all("vary").iter().collect();
        assert_eq!(vary, ["accept-encoding", "origin"]);

        for origin in [
            Some("https://evil.test"),
            Some("https://partners.example.com"),
            Some("https://a.b.partners.example.com"),
            Some("null"),
            Some("https://user@app.example.com"),
            None,
        ] {
            let (res, calls) = call(get(origin), 0);
            assert_eq!(calls, 1, "{origin:?}");
            let h = res.headers();
            assert!(
                !h.keys().any(|k| k.as_str().starts_with("access-control-")),
                "{origin:?}: {h:?}"
            );
            assert!(
                h.get_all("vary").iter().any(|v| v == "origin"),
                "{origin:?}"
            );
        }
    }

    #[test]
    fn routes_without_a_policy_send_no_cors_headers_at_all() {
        let (res, calls) = call(get(Some("https://app.example.com")), 1);
        assert_eq!(calls, 1);
        assert!(
            !res.headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-"))
        );
        assert_eq!(res.headers()["vary"], "accept-encoding");
    }

    #[test]
    fn any_origin_policies() {
        assert_eq!(
            CorsLayer::new(vec![Some(
                CorsPolicy::new(AllowedOrigins::any()).credentials(true)
            )])
            .err(),
            Some(CorsError::AnyWithCredentials)
        );
        let layer = CorsLayer::new(vec![Some(
            CorsPolicy::new(AllowedOrigins::any()).methods([Method::GET]),
        )])
        .unwrap();
        let svc = layer.layer(tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
        let res = rt()
            .block_on(svc.clone().oneshot(get(Some("https://anyone.test"))))
            .unwrap();
        assert_eq!(acao(&res), Some("*"));
        assert!(
            res.headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
        let res = rt().block_on(svc.oneshot(get(Some("null")))).unwrap();
        assert!(acao(&res).is_none());
    }

    fn websocket(origin: &str, host: &str) -> Request<()> {
        Request::get("/v1/socket")
            .header("host", host)
            .header("origin", origin)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap()
    }

    #[test]
    fn websocket_origins() {
        for (origin, host, route, ok) in [
            ("https://app.example.com", "api.example.com", 0, true),
            ("https://x.partners.example.com", "api.example.com", 0, true),
            ("https://api.example.com", "api.example.com", 0, true),
            ("https://api.example.com", "api.example.com", 1, true),
            ("https://evil.test", "api.example.com", 0, false),
            ("https://app.example.com", "api.example.com", 1, false),
            ("null", "api.example.com", 0, false),
            ("https://api.example.com", "api.example.com:8443", 1, false),
        ] {
            let (res, calls) = call(websocket(origin, host), route);
            assert_eq!(calls == 1, ok, "{origin} -> {host} on route {route}");
            if !ok {
                assert_eq!(res.status(), StatusCode::FORBIDDEN);
                assert_eq!(rejection(&res), Some("websocket_origin_refused"));
            }
        }
        // No Origin: not a browser, nothing to check.
        let mut req = websocket("https://evil.test", "api.example.com");
        req.headers_mut().remove("origin");
        assert_eq!(call(req, 1).1, 1);
    }

    #[test]
    fn plain_options_without_request_method_is_forwarded() {
        let req = Request::options("/v1/x")
            .header("origin", "https://evil.test")
            .body(())
            .unwrap();
        let (_, calls) = call(req, 0);
        assert_eq!(calls, 1);
    }
}
