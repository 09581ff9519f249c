//! Cross-site request forgery: refuse state-changing requests that ride on ambient cookies
//! from a page the policy does not trust.
//!
//! A browser attaches cookies to every request to a site, including a form another site
//! submits. A CSRF attack needs exactly three things: an unsafe method, an ambient credential,
//! and a request the victim's browser sent on behalf of some other origin. This layer refuses
//! the combination, in the manner of Go 1.25's `net/http.CrossOriginProtection`: it trusts the
//! browser's own `Sec-Fetch-Site` header first and falls back to comparing `Origin` with the
//! request's host. No tokens: both headers are forbidden request headers, which a page cannot
//! set or forge, and every browser since 2020 sends `Origin` on unsafe requests.
//!
//! The decision ([`CsrfConfig::evaluate`]), in order:
//!
//! 1. A safe method (`GET`, `HEAD`, `OPTIONS`, `TRACE`) passes. Every other method, including
//!    extension methods such as `PROPFIND`, is unsafe.
//! 2. A request without cookies passes: there is no ambient credential to ride on. With
//!    [`CsrfConfig::session_cookies`] set, only those cookie names count.
//! 3. A request carrying a credential browsers never attach on their own passes:
//!    `Authorization: Bearer ...` or a configured API-key header. A page can add these to a
//!    cross-site request only after a CORS preflight, which the CORS layer decides.
//! 4. `Sec-Fetch-Site: same-origin` or `none` (typed URL, bookmark) passes. Any other value
//!    passes only if `Origin` is a trusted origin.
//! 5. Without `Sec-Fetch-Site` (an old browser, or not a browser): no `Origin` passes, as in
//!    Go; a malformed or `null` `Origin` fails; a trusted `Origin`, or one naming the request's
//!    own host and port, passes; anything else fails.
//! 6. A failing request on an exempt path ([`PathExemption`]) passes after all.
//!
//! In [`CsrfMode::Enforce`] a failing request is answered with 403 `csrf_origin_mismatch`
//! and never reaches the inner service; in [`CsrfMode::ReportOnly`] it goes through. Both log
//! one warning (target `portcullis::csrf`) and count `portcullis_csrf_violations_total`, so a
//! deployment can watch report-only traffic before it enforces.
//!
//! Place the layer inside the routing layer (it reads [`MatchedRoute`] for route-scoped trusted
//! origins and for logs) and inside [`RenderErrorsLayer`](crate::rejection::RenderErrorsLayer).
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use portcullis_layers::csrf::{CsrfConfig, CsrfLayer, CsrfMode};
//! use portcullis_layers::origin::AllowedOrigins;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let config = CsrfConfig::new(CsrfMode::Enforce)
//!     .trusted(AllowedOrigins::new().allow("https://app.example.com").unwrap())
//!     .session_cookies(vec!["session".to_owned()]);
//! let svc = ServiceBuilder::new()
//!     .layer(CsrfLayer::new(config))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(()))
//!     }));
//! let transfer = |origin: &str| {
//!     Request::post("/transfer")
//!         .header("host", "api.example.com")
//!         .header("cookie", "session=s3cr3t")
//!         .header("sec-fetch-site", "cross-site")
//!         .header("origin", origin)
//!         .body(())
//!         .unwrap()
//! };
//! let refused = svc.clone().oneshot(transfer("https://evil.test")).await.unwrap();
//! assert_eq!(refused.status(), StatusCode::FORBIDDEN);
//! let allowed = svc.oneshot(transfer("https://app.example.com")).await.unwrap();
//! assert_eq!(allowed.status(), StatusCode::OK);
//! # });
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::ready;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version, header,
};
use tower::{Layer, Service};

use crate::either_future::EitherFuture;
use crate::matched_route::MatchedRoute;
use crate::origin::{AllowedOrigins, Origin};
use crate::rejection::{RefusedFuture, Rejection};

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Header values longer than this are cut in logs and error detail: an attacker chooses them.
const MAX_LOGGED_VALUE: usize = 256;

/// Whether a failing request is refused or only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfMode {
    /// Refuse with 403.
    Enforce,
    /// Let it through; log and count it.
    ReportOnly,
}

impl CsrfMode {
    /// `enforce` or `report-only`, as in logs and the metric's `mode` label.
    pub fn as_str(self) -> &'static str {
        match self {
            CsrfMode::Enforce => "enforce",
            CsrfMode::ReportOnly => "report-only",
        }
    }
}

impl fmt::Display for CsrfMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Paths on which a failing request is let through anyway (e.g. a payment provider's
/// callback that posts from its own site). Called with the request's path, without query.
pub trait PathExemption: Send + Sync + fmt::Debug {
    fn is_exempt(&self, path: &str) -> bool;
}

/// What the layer checks against; see the module docs. Built with [`CsrfConfig::new`] and
/// the builder methods, then given to [`CsrfLayer::new`].
#[derive(Debug, Clone)]
pub struct CsrfConfig {
    mode: CsrfMode,
    trusted: AllowedOrigins,
    /// Extra trusted origins by route index. A map rather than a vector indexed by route: the
    /// index comes from the caller, and a stray large one must not allocate a huge table.
    route_trusted: HashMap<usize, AllowedOrigins>,
    api_key_headers: Vec<HeaderName>,
    session_cookies: Vec<String>,
    exemptions: Vec<Arc<dyn PathExemption>>,
}

impl CsrfConfig {
    /// No trusted origins, no API-key headers, every cookie counts, no exempt paths.
    pub fn new(mode: CsrfMode) -> Self {
        Self {
            mode,
            trusted: AllowedOrigins::new(),
            route_trusted: HashMap::new(),
            api_key_headers: Vec::new(),
            session_cookies: Vec::new(),
            exemptions: Vec::new(),
        }
    }

    pub fn mode(&self) -> CsrfMode {
        self.mode
    }

    /// Adds origins trusted on every route.
    pub fn trusted(mut self, origins: AllowedOrigins) -> Self {
        self.trusted = std::mem::take(&mut self.trusted).extend(&origins);
        self
    }

    /// Adds origins trusted only on the route with this index (the [`MatchedRoute`] index), on
    /// top of the global list.
    pub fn trusted_on_route(mut self, route_index: usize, origins: AllowedOrigins) -> Self {
        let slot = self.route_trusted.entry(route_index).or_default();
        *slot = std::mem::take(slot).extend(&origins);
        self
    }

    /// Adds a header that carries an API key; a request with a non-empty value passes step 3.
    /// Repeatable.
    ///
    /// A header a browser sends by itself or lets a page set on a simple cross-site request
    /// (`Cookie`, `Authorization`, `Referer`, `User-Agent`, `Content-Type`, `Sec-*`, ...) would
    /// prove nothing, so such a name is ignored: the request is then checked on its origin,
    /// which fails closed rather than open.
    pub fn api_key_header(mut self, name: HeaderName) -> Self {
        if !is_browser_controlled(&name) && !self.api_key_headers.contains(&name) {
            self.api_key_headers.push(name);
        }
        self
    }

    /// The names of the cookies that authenticate (session cookies). Empty, the default, means
    /// any `Cookie` header counts as a credential. Names are case-sensitive, as cookies are.
    pub fn session_cookies(mut self, names: Vec<String>) -> Self {
        // An empty name would match the name-less `Cookie: value` form and nothing intended.
        self.session_cookies = names.into_iter().filter(|n| !n.is_empty()).collect();
        self
    }

    /// Adds paths on which failing requests pass. Repeatable: a path is exempt if any
    /// exemption says so.
    pub fn exempt(mut self, exemption: Arc<dyn PathExemption>) -> Self {
        self.exemptions.push(exemption);
        self
    }

    /// Decides a request; see the module docs. Pure and free of logging, so it can be
    /// benchmarked and reused. Allocates nothing for safe methods and cookie-less requests.
    pub fn evaluate<B>(&self, req: &Request<B>) -> CsrfVerdict {
        match self.check(req) {
            Ok(pass) => CsrfVerdict::Pass(pass),
            Err(fail) if self.is_exempt(req.uri().path()) => {
                CsrfVerdict::Pass(PassReason::ExemptPath(fail))
            }
            Err(fail) => CsrfVerdict::Fail(fail),
        }
    }

    fn check<B>(&self, req: &Request<B>) -> Result<PassReason, FailReason> {
        if is_safe(req.method()) {
            return Ok(PassReason::SafeMethod);
        }
        let headers = req.headers();
        if !self.carries_cookie(headers) {
            return Ok(PassReason::NoCookie);
        }
        if carries_bearer(headers) {
            return Ok(PassReason::BearerToken);
        }
        if self.carries_api_key(headers) {
            return Ok(PassReason::ApiKey);
        }
        // A repeated header is not something a browser sends; treat it as the worst reading
        // rather than pick one of the values.
        let fetch_site = match single(headers, &SEC_FETCH_SITE) {
            Single::Absent => None,
            Single::One(v) => Some(FetchSite::from_bytes(v.as_bytes())),
            Single::Many => Some(FetchSite::Other),
        };
        let origin = match single(headers, &header::ORIGIN) {
            Single::Absent => None,
            Single::One(v) => Some(Origin::parse(v.as_bytes()).ok()),
            Single::Many => Some(None),
        };
        match fetch_site {
            Some(FetchSite::SameOrigin) => Ok(PassReason::SameOrigin),
            Some(FetchSite::UserInitiated) => Ok(PassReason::UserInitiated),
            // `same-site` is a sibling subdomain, which is not the same security principal
            // (a compromised or user-content subdomain must not post here), so it needs the
            // trusted list like `cross-site` does.
            Some(site) => match origin {
                None => Err(FailReason::MissingOrigin { fetch_site: site }),
                Some(None) => Err(FailReason::MalformedOrigin {
                    fetch_site: Some(site),
                }),
                Some(Some(o)) if self.trusts(&o, req) => Ok(PassReason::TrustedOrigin),
                Some(Some(o)) if o.is_null() => Err(FailReason::NullOrigin {
                    fetch_site: Some(site),
                }),
                Some(Some(_)) => Err(FailReason::UntrustedOrigin {
                    fetch_site: Some(site),
                }),
            },
            None => match origin {
                // Browsers that predate `Sec-Fetch-Site` still send `Origin` on cross-site
                // POSTs (all since 2020), so its absence means a non-browser client, which has
                // no ambient cookies to abuse.
                None => Ok(PassReason::NoOrigin),
                Some(None) => Err(FailReason::MalformedOrigin { fetch_site: None }),
                // `null` is an opaque origin (sandboxed frame, `file:`, redirect): anyone.
                Some(Some(o)) if o.is_null() => Err(FailReason::NullOrigin { fetch_site: None }),
                Some(Some(o)) if self.trusts(&o, req) => Ok(PassReason::TrustedOrigin),
                Some(Some(o)) if request_authority(req).is_some_and(|a| o.is_same_host(a)) => {
                    Ok(PassReason::SameHost)
                }
                Some(Some(_)) => Err(FailReason::UntrustedOrigin { fetch_site: None }),
            },
        }
    }

    /// Whether the request carries a cookie that could authenticate it.
    fn carries_cookie(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::COOKIE).iter();
        if self.session_cookies.is_empty() {
            return values.next().is_some();
        }
        // HTTP/2 clients may split cookies over several `Cookie` fields, so look at them all.
        values.any(|value| {
            value.as_bytes().split(|b| *b == b';').any(|pair| {
                // `name=value`; a pair without `=` is read as a name, as some servers read it,
                // so a bare `session` still counts.
                let name = match pair.iter().position(|b| *b == b'=') {
                    Some(eq) => pair.get(..eq).unwrap_or(pair),
                    None => pair,
                };
                let name = name.trim_ascii();
                self.session_cookies.iter().any(|s| s.as_bytes() == name)
            })
        })
    }

    fn carries_api_key(&self, headers: &HeaderMap) -> bool {
        self.api_key_headers
            .iter()
            .any(|name| headers.get_all(name).iter().any(|v| !v.is_empty()))
    }

    fn trusts<B>(&self, origin: &Origin, req: &Request<B>) -> bool {
        if self.trusted.allows(origin) {
            return true;
        }
        req.extensions()
            .get::<MatchedRoute>()
            .and_then(|route| self.route_trusted.get(&route.index))
            .is_some_and(|list| list.allows(origin))
    }

    fn is_exempt(&self, path: &str) -> bool {
        self.exemptions.iter().any(|e| e.is_exempt(path))
    }
}

fn is_safe(method: &Method) -> bool {
    // RFC 9110 section 9.2.1. Method names are case-sensitive: `get` is an extension method,
    // and unsafe.
    *method == Method::GET
        || *method == Method::HEAD
        || *method == Method::OPTIONS
        || *method == Method::TRACE
}

/// `Authorization: Bearer ...`. Basic, Digest, Negotiate and NTLM do not count: once a user
/// has logged in with them the browser attaches them to every request to the site, cross-site
/// forms included, so they are as ambient as cookies. Nothing ever attaches a bearer token but
/// a script, and a cross-site script can only do so after a CORS preflight.
fn carries_bearer(headers: &HeaderMap) -> bool {
    headers.get_all(header::AUTHORIZATION).iter().any(|v| {
        let value = v.as_bytes();
        let scheme = match value.iter().position(|b| *b == b' ') {
            Some(space) => value.get(..space).unwrap_or(value),
            None => value,
        };
        scheme.eq_ignore_ascii_case(b"bearer")
    })
}

/// Headers a browser sends on its own or lets a page set without a preflight: their presence
/// proves nothing about who sent a request.
fn is_browser_controlled(name: &HeaderName) -> bool {
    const NAMES: &[&str] = &[
        // Attached by the browser.
        "cookie",
        "authorization",
        "host",
        "origin",
        "referer",
        "user-agent",
        "connection",
        "content-length",
        "accept-encoding",
        // CORS-safelisted: a page may set them on a cross-site request without a preflight.
        "accept",
        "accept-language",
        "content-language",
        "content-type",
        "range",
    ];
    let name = name.as_str();
    NAMES.contains(&name) || name.starts_with("sec-") || name.starts_with("proxy-")
}

enum Single<'a> {
    Absent,
    One(&'a HeaderValue),
    Many,
}

/// A header that must appear at most once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Single<'a> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Single::Absent,
        (Some(v), None) => Single::One(v),
        (Some(_), Some(_)) => Single::Many,
    }
}

/// The host the request was sent to: `Host`, or for HTTP/2 and later the `:authority`, which
/// hyper places in the URI.
fn request_authority<B>(req: &Request<B>) -> Option<&[u8]> {
    let from_uri = req.uri().authority().map(|a| a.as_str().as_bytes());
    let from_host = match single(req.headers(), &header::HOST) {
        Single::One(v) => Some(v.as_bytes()),
        // Several `Host` fields name no host at all (the framing layer refuses them anyway).
        Single::Absent | Single::Many => None,
    };
    if req.version() == Version::HTTP_2 || req.version() == Version::HTTP_3 {
        from_uri.or(from_host)
    } else {
        from_host.or(from_uri)
    }
}

/// The value of `Sec-Fetch-Site`: which site initiated the request, as the browser saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchSite {
    /// `same-origin`.
    SameOrigin,
    /// `same-site`: another origin on the same registrable domain.
    SameSite,
    /// `cross-site`.
    CrossSite,
    /// `none`: the user, not a page (address bar, bookmark).
    UserInitiated,
    /// Anything else (or the header repeated); treated like `cross-site`.
    Other,
}

impl FetchSite {
    fn from_bytes(value: &[u8]) -> Self {
        match value {
            b"same-origin" => FetchSite::SameOrigin,
            b"same-site" => FetchSite::SameSite,
            b"cross-site" => FetchSite::CrossSite,
            b"none" => FetchSite::UserInitiated,
            _ => FetchSite::Other,
        }
    }
}

impl fmt::Display for FetchSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FetchSite::SameOrigin => "same-origin",
            FetchSite::SameSite => "same-site",
            FetchSite::CrossSite => "cross-site",
            FetchSite::UserInitiated => "none",
            FetchSite::Other => "(unrecognised)",
        })
    }
}

/// The outcome of [`CsrfConfig::evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfVerdict {
    Pass(PassReason),
    Fail(FailReason),
}

impl CsrfVerdict {
    pub fn is_pass(&self) -> bool {
        matches!(self, CsrfVerdict::Pass(_))
    }
}

impl fmt::Display for CsrfVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsrfVerdict::Pass(reason) => write!(f, "pass: {reason}"),
            CsrfVerdict::Fail(reason) => write!(f, "fail: {reason}"),
        }
    }
}

/// Why a request passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassReason {
    SafeMethod,
    /// No cookie (or no session cookie): nothing ambient to ride on.
    NoCookie,
    BearerToken,
    ApiKey,
    /// `Sec-Fetch-Site: same-origin`.
    SameOrigin,
    /// `Sec-Fetch-Site: none`.
    UserInitiated,
    TrustedOrigin,
    /// No `Sec-Fetch-Site`, and `Origin` names the request's own host.
    SameHost,
    /// Neither `Sec-Fetch-Site` nor `Origin`: not a browser, or a very old one.
    NoOrigin,
    /// Would have failed for this reason, but the path is exempt.
    ExemptPath(FailReason),
}

impl fmt::Display for PassReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassReason::SafeMethod => f.write_str("safe method"),
            PassReason::NoCookie => f.write_str("no session cookie"),
            PassReason::BearerToken => f.write_str("Authorization: Bearer"),
            PassReason::ApiKey => f.write_str("API key header"),
            PassReason::SameOrigin => f.write_str("Sec-Fetch-Site: same-origin"),
            PassReason::UserInitiated => f.write_str("Sec-Fetch-Site: none"),
            PassReason::TrustedOrigin => f.write_str("trusted Origin"),
            PassReason::SameHost => f.write_str("Origin is the request's host"),
            PassReason::NoOrigin => f.write_str("neither Sec-Fetch-Site nor Origin"),
            PassReason::ExemptPath(fail) => write!(f, "exempt path (would fail: {fail})"),
        }
    }
}

/// Why a request failed. `fetch_site` is `None` when `Sec-Fetch-Site` was absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// `Sec-Fetch-Site` names another site and there is no `Origin` to vouch for it.
    MissingOrigin { fetch_site: FetchSite },
    /// `Origin` is not one origin (unparseable, or repeated).
    MalformedOrigin { fetch_site: Option<FetchSite> },
    /// `Origin: null` (sandboxed frame, `file:`, cross-origin redirect) and not trusted.
    NullOrigin { fetch_site: Option<FetchSite> },
    /// `Origin` is not trusted (and, without `Sec-Fetch-Site`, is not the request's host).
    UntrustedOrigin { fetch_site: Option<FetchSite> },
}

impl FailReason {
    pub fn fetch_site(&self) -> Option<FetchSite> {
        match *self {
            FailReason::MissingOrigin { fetch_site } => Some(fetch_site),
            FailReason::MalformedOrigin { fetch_site }
            | FailReason::NullOrigin { fetch_site }
            | FailReason::UntrustedOrigin { fetch_site } => fetch_site,
        }
    }

    /// Writes the reason, naming the `Origin` value when one is given.
    fn describe(&self, origin: Option<&str>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fetch_site() {
            Some(site) => write!(f, "Sec-Fetch-Site: {site}, ")?,
            None => f.write_str("no Sec-Fetch-Site, ")?,
        }
        let origin = DisplayOrigin(origin);
        match self {
            FailReason::MissingOrigin { .. } => f.write_str("no Origin"),
            FailReason::MalformedOrigin { .. } => {
                write!(f, "{origin} is not a single valid origin")
            }
            FailReason::NullOrigin { .. } => f.write_str("Origin null not trusted"),
            FailReason::UntrustedOrigin {
                fetch_site: Some(_),
            } => write!(f, "{origin} not trusted"),
            FailReason::UntrustedOrigin { fetch_site: None } => {
                write!(f, "{origin} neither trusted nor the request's host")
            }
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe(None, f)
    }
}

/// `Origin`, or `Origin <value>` when the value is known.
struct DisplayOrigin<'a>(Option<&'a str>);

impl fmt::Display for DisplayOrigin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "Origin {value}"),
            None => f.write_str("Origin"),
        }
    }
}

/// A [`FailReason`] with the request's `Origin` value, for the rejection's detail.
struct Detail<'a>(FailReason, Option<&'a str>);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.describe(self.1, f)
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct CsrfLayer {
    config: Arc<CsrfConfig>,
}

impl CsrfLayer {
    pub fn new(config: CsrfConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Csrf {
            inner,
            config: self.config.clone(),
        }
    }
}

/// See [`CsrfLayer`].
#[derive(Debug, Clone)]
pub struct Csrf<S> {
    inner: S,
    config: Arc<CsrfConfig>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Csrf<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = EitherFuture<S::Future, RefusedFuture<ResBody, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let reason = match self.config.evaluate(&req) {
            CsrfVerdict::Pass(_) => return EitherFuture::left(self.inner.call(req)),
            CsrfVerdict::Fail(reason) => reason,
        };
        let mode = self.config.mode;
        report(mode, reason, &req);
        match mode {
            CsrfMode::Enforce => {
                let origin = logged_value(req.headers(), &header::ORIGIN);
                let rejection = Rejection::new(
                    StatusCode::FORBIDDEN,
                    "csrf_origin_mismatch",
                    "cross-site request refused: its origin is not trusted",
                )
                .with_detail(Detail(reason, origin).to_string());
                EitherFuture::right(ready(Ok(rejection.into_response())))
            }
            CsrfMode::ReportOnly => EitherFuture::left(self.inner.call(req)),
        }
    }
}

/// Logs and counts one violation. Only the headers the decision read are logged, never
/// `Cookie` or `Authorization` values, and the path without its query (queries carry tokens).
fn report<B>(mode: CsrfMode, reason: FailReason, req: &Request<B>) {
    metrics::counter!("portcullis_csrf_violations_total", "mode" => mode.as_str()).increment(1);
    let route = req
        .extensions()
        .get::<MatchedRoute>()
        .map(|r| r.name.as_ref());
    tracing::warn!(
        target: "portcullis::csrf",
        mode = mode.as_str(),
        method = req.method().as_str(),
        path = req.uri().path(),
        origin = logged_value(req.headers(), &header::ORIGIN),
        sec_fetch_site = logged_value(req.headers(), &SEC_FETCH_SITE),
        route,
        reason = %reason,
        "cross-site request with an untrusted origin"
    );
}

/// The first value of a header, for logs: visible ASCII only (no control characters can reach
/// a log line) and at most [`MAX_LOGGED_VALUE`] bytes.
fn logged_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let value = headers.get(name)?;
    let text = value.to_str().unwrap_or("(not visible ASCII)");
    // `to_str` succeeded, so the text is ASCII and any byte index is a char boundary.
    Some(text.get(..MAX_LOGGED_VALUE).unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use tower::{ServiceExt, service_fn};

    const HOST: &str = "api.example.com";
    const TRUSTED: &str = "https://app.example.com";

    fn origins(entries: &[&str]) -> AllowedOrigins {
        entries
            .iter()
            .fold(AllowedOrigins::new(), |l, e| l.allow(e).unwrap())
    }

    fn config(mode: CsrfMode) -> CsrfConfig {
        CsrfConfig::new(mode)
            .trusted(origins(&[TRUSTED]))
            .api_key_header(HeaderName::from_static("x-api-key"))
    }

    /// Runs a request through the layer; returns the response and whether the inner service ran.
    async fn run(config: CsrfConfig, req: Request<()>) -> (Response<()>, bool) {
        let called = Arc::new(AtomicBool::new(false));
        let seen = called.clone();
        let svc = CsrfLayer::new(config).layer(service_fn(move |_req: Request<()>| {
            let seen = seen.clone();
            async move {
                seen.store(true, Ordering::SeqCst);
                Ok::<_, Infallible>(Response::new(()))
            }
        }));
        let res = svc.oneshot(req).await.unwrap();
        (res, called.load(Ordering::SeqCst))
    }

    fn post(headers: &[(&str, &str)]) -> Request<()> {
        headers
            .iter()
            .fold(Request::post("/transfer?token=t0ps3cret"), |b, (k, v)| {
                b.header(*k, *v)
            })
            .body(())
            .unwrap()
    }

    // The dimensions of the table test, each with the header it adds.

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Cookie {
        None,
        Session,
        OnlyOther,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Auth {
        None,
        Bearer,
        Basic,
        ApiKey,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Fetch {
        Absent,
        SameOrigin,
        None,
        SameSite,
        CrossSite,
        Garbage,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Orig {
        Absent,
        SameHost,
        Trusted,
        Untrusted,
        Null,
        Malformed,
    }

    /// The rule, spelled out independently of the implementation: `true` means pass.
    fn expected(
        method: &str,
        cookie: Cookie,
        auth: Auth,
        site: Fetch,
        origin: Orig,
        named_session: bool,
    ) -> bool {
        let safe = ["GET", "HEAD", "OPTIONS", "TRACE"].contains(&method);
        if safe {
            return true;
        }
        let has_credential_cookie = match cookie {
            Cookie::None => false,
            Cookie::Session => true,
            // A cookie that is not a session cookie counts only when no names are configured.
            Cookie::OnlyOther => !named_session,
        };
        if !has_credential_cookie {
            return true;
        }
        if auth == Auth::Bearer || auth == Auth::ApiKey {
            return true;
        }
        match site {
            Fetch::SameOrigin | Fetch::None => true,
            Fetch::SameSite | Fetch::CrossSite | Fetch::Garbage => origin == Orig::Trusted,
            Fetch::Absent => match origin {
                Orig::Absent | Orig::SameHost | Orig::Trusted => true,
                Orig::Untrusted | Orig::Null | Orig::Malformed => false,
            },
        }
    }

    fn build(method: &str, cookie: Cookie, auth: Auth, site: Fetch, origin: Orig) -> Request<()> {
        let mut b = Request::builder()
            .method(method)
            .uri("/account/email?session=leak")
            .header("host", HOST);
        b = match cookie {
            Cookie::None => b,
            Cookie::Session => b.header("cookie", "theme=dark; session=SECRETCOOKIE"),
            Cookie::OnlyOther => b.header("cookie", "theme=dark; sessionid=x"),
        };
        b = match auth {
            Auth::None => b,
            Auth::Bearer => b.header("authorization", "Bearer SECRETTOKEN"),
            Auth::Basic => b.header("authorization", "Basic dXNlcjpTRUNSRVQ="),
            Auth::ApiKey => b.header("x-api-key", "SECRETKEY"),
        };
        b = match site {
            Fetch::Absent => b,
            Fetch::SameOrigin => b.header("sec-fetch-site", "same-origin"),
            Fetch::None => b.header("sec-fetch-site", "none"),
            Fetch::SameSite => b.header("sec-fetch-site", "same-site"),
            Fetch::CrossSite => b.header("sec-fetch-site", "cross-site"),
            Fetch::Garbage => b.header("sec-fetch-site", "Same-Origin"),
        };
        b = match origin {
            Orig::Absent => b,
            Orig::SameHost => b.header("origin", "https://api.example.com"),
            Orig::Trusted => b.header("origin", TRUSTED),
            Orig::Untrusted => b.header("origin", "https://app.example.com.evil.test"),
            Orig::Null => b.header("origin", "null"),
            // Looks like the trusted origin, but an origin has no path.
            Orig::Malformed => b.header("origin", "https://app.example.com/"),
        };
        b.body(()).unwrap()
    }

    #[tokio::test]
    async fn every_combination_matches_the_rule() {
        let methods = ["GET", "POST", "DELETE", "PROPFIND"];
        let cookies = [Cookie::None, Cookie::Session, Cookie::OnlyOther];
        let auths = [Auth::None, Auth::Bearer, Auth::Basic, Auth::ApiKey];
        let sites = [
            Fetch::Absent,
            Fetch::SameOrigin,
            Fetch::None,
            Fetch::SameSite,
            Fetch::CrossSite,
            Fetch::Garbage,
        ];
        let froms = [
            Orig::Absent,
            Orig::SameHost,
            Orig::Trusted,
            Orig::Untrusted,
            Orig::Null,
            Orig::Malformed,
        ];
        let mut checked = 0;
        for named_session in [true, false] {
            let with_names = |mode| {
                let c = config(mode);
                if named_session {
                    c.session_cookies(vec!["session".to_owned()])
                } else {
                    c
                }
            };
            for method in methods {
                for cookie in cookies {
                    for auth in auths {
                        for site in sites {
                            for origin in froms {
                                let case = format!(
                                    "{method} {cookie:?} {auth:?} {site:?} {origin:?} named={named_session}"
                                );
                                let want =
                                    expected(method, cookie, auth, site, origin, named_session);
                                let req = build(method, cookie, auth, site, origin);
                                let verdict = with_names(CsrfMode::Enforce).evaluate(&req);
                                assert_eq!(verdict.is_pass(), want, "{case}: {verdict}");

                                let (res, called) = run(with_names(CsrfMode::Enforce), req).await;
                                if want {
                                    assert_eq!(res.status(), StatusCode::OK, "{case}");
                                    assert!(called, "{case}");
                                } else {
                                    assert_eq!(res.status(), StatusCode::FORBIDDEN, "{case}");
                                    assert!(!called, "{case}: inner service called");
                                    let rejection = res.extensions().get::<Rejection>().unwrap();
                                    assert_eq!(rejection.code(), "csrf_origin_mismatch");
                                }

                                let req = build(method, cookie, auth, site, origin);
                                let (res, called) =
                                    run(with_names(CsrfMode::ReportOnly), req).await;
                                assert_eq!(res.status(), StatusCode::OK, "{case}");
                                assert!(called, "{case}");
                                assert!(res.extensions().get::<Rejection>().is_none());
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 4 * 3 * 4 * 6 * 6);
    }

    #[tokio::test]
    async fn enforce_refuses_with_a_detail_naming_the_reason() {
        let req = post(&[
            ("host", HOST),
            ("cookie", "session=abc"),
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.test"),
        ]);
        let (res, called) = run(config(CsrfMode::Enforce), req).await;
        assert!(!called);
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let rejection = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(rejection.code(), "csrf_origin_mismatch");
        assert_eq!(
            rejection.detail(),
            Some("Sec-Fetch-Site: cross-site, Origin https://evil.test not trusted")
        );

        let req = post(&[
            ("host", HOST),
            ("cookie", "session=abc"),
            ("origin", "https://evil.test"),
        ]);
        let (res, _) = run(config(CsrfMode::Enforce), req).await;
        let rejection = res.extensions().get::<Rejection>().unwrap();
        assert_eq!(
            rejection.detail(),
            Some(
                "no Sec-Fetch-Site, Origin https://evil.test neither trusted nor the request's host"
            )
        );
    }

    #[tokio::test]
    async fn report_only_lets_failures_through() {
        let req = post(&[
            ("host", HOST),
            ("cookie", "session=abc"),
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.test"),
        ]);
        let (res, called) = run(config(CsrfMode::ReportOnly), req).await;
        assert!(called);
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[test]
    fn route_scoped_origins_apply_only_on_their_route() {
        let config = config(CsrfMode::Enforce)
            .trusted_on_route(2, origins(&["https://partner.test"]))
            .trusted_on_route(2, origins(&["https://other-partner.test"]));
        let on_route = |index: Option<usize>, origin: &str| {
            let mut req = post(&[
                ("host", HOST),
                ("cookie", "session=abc"),
                ("sec-fetch-site", "cross-site"),
                ("origin", origin),
            ]);
            if let Some(index) = index {
                req.extensions_mut().insert(MatchedRoute {
                    index,
                    name: "r".into(),
                });
            }
            config.evaluate(&req)
        };
        assert_eq!(
            on_route(Some(2), "https://partner.test"),
            CsrfVerdict::Pass(PassReason::TrustedOrigin)
        );
        assert!(on_route(Some(2), "https://other-partner.test").is_pass());
        // The global list still applies on the route.
        assert!(on_route(Some(2), TRUSTED).is_pass());
        for index in [None, Some(0), Some(1), Some(3), Some(usize::MAX)] {
            assert!(
                !on_route(index, "https://partner.test").is_pass(),
                "{index:?}"
            );
            assert!(on_route(index, TRUSTED).is_pass(), "{index:?}");
        }
    }

    #[derive(Debug)]
    struct Prefix(&'static str);

    impl PathExemption for Prefix {
        fn is_exempt(&self, path: &str) -> bool {
            path.starts_with(self.0)
        }
    }

    #[tokio::test]
    async fn exempt_paths_pass() {
        let config = config(CsrfMode::Enforce)
            .exempt(Arc::new(Prefix("/webhooks/")))
            .exempt(Arc::new(Prefix("/sso/")));
        let at = |path: &str| {
            Request::post(path)
                .header("host", HOST)
                .header("cookie", "session=abc")
                .header("sec-fetch-site", "cross-site")
                .header("origin", "https://psp.test")
                .body(())
                .unwrap()
        };
        let fail = FailReason::UntrustedOrigin {
            fetch_site: Some(FetchSite::CrossSite),
        };
        assert_eq!(
            config.evaluate(&at("/webhooks/payment?sig=x")),
            CsrfVerdict::Pass(PassReason::ExemptPath(fail))
        );
        assert!(config.evaluate(&at("/sso/acs")).is_pass());
        assert_eq!(config.evaluate(&at("/transfer")), CsrfVerdict::Fail(fail));
        // The exemption sees the path, not the query.
        assert!(!config.evaluate(&at("/transfer?/webhooks/")).is_pass());
        let (res, called) = run(config, at("/webhooks/payment")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(called);
    }

    #[test]
    fn origin_must_match_host_and_port() {
        let config = config(CsrfMode::Enforce);
        let check = |host: &str, origin: &str| {
            config.evaluate(&post(&[
                ("host", host),
                ("cookie", "session=abc"),
                ("origin", origin),
            ]))
        };
        assert_eq!(
            check("localhost:3000", "http://localhost:3000"),
            CsrfVerdict::Pass(PassReason::SameHost)
        );
        assert!(check("api.example.com:443", "https://api.example.com").is_pass());
        assert!(!check("localhost:3001", "http://localhost:3000").is_pass());
        assert!(!check("api.example.com", "https://api.example.com:8443").is_pass());
        assert!(!check("api.example.com:8443", "https://api.example.com").is_pass());
        assert!(!check("api.example.com", "https://example.com").is_pass());
        assert!(!check("example.com", "https://api.example.com").is_pass());
        // No usable Host: nothing to be the same as.
        assert!(
            !config
                .evaluate(&post(&[
                    ("cookie", "session=abc"),
                    ("origin", "https://api.example.com")
                ]))
                .is_pass()
        );
        assert!(
            !config
                .evaluate(&post(&[
                    ("host", HOST),
                    ("host", HOST),
                    ("cookie", "session=abc"),
                    ("origin", "https://api.example.com")
                ]))
                .is_pass()
        );
    }

    #[test]
    fn http2_uses_the_authority() {
        let config = config(CsrfMode::Enforce);
        let req = |origin: &str| {
            Request::post("https://api.example.com/transfer")
                .version(Version::HTTP_2)
                .header("cookie", "session=abc")
                .header("origin", origin)
                .body(())
                .unwrap()
        };
        assert_eq!(
            config.evaluate(&req("https://api.example.com")),
            CsrfVerdict::Pass(PassReason::SameHost)
        );
        assert!(!config.evaluate(&req("https://evil.test")).is_pass());
    }

    #[test]
    fn only_bearer_authorization_is_non_ambient() {
        let config = config(CsrfMode::Enforce);
        let with_auth = |value: &str| {
            config.evaluate(&post(&[
                ("host", HOST),
                ("cookie", "session=abc"),
                ("authorization", value),
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.test"),
            ]))
        };
        for bearer in ["Bearer abc", "bearer abc", "BEARER abc"] {
            assert_eq!(
                with_auth(bearer),
                CsrfVerdict::Pass(PassReason::BearerToken),
                "{bearer}"
            );
        }
        for ambient in [
            "Basic dXNlcjpwYXNz",
            "Digest username=\"u\"",
            "Negotiate YIIB",
            "NTLM TlRMTVNT",
            "Bearerx abc",
            "abc",
        ] {
            assert!(!with_auth(ambient).is_pass(), "{ambient}");
        }
    }

    #[test]
    fn api_key_headers_need_a_value_and_a_name_browsers_do_not_control() {
        let config = config(CsrfMode::Enforce)
            .api_key_header(HeaderName::from_static("x-tenant-key"))
            .api_key_header(header::CONTENT_TYPE)
            .api_key_header(header::REFERER)
            .api_key_header(HeaderName::from_static("sec-fetch-mode"));
        let with = |name: &str, value: &str| {
            config.evaluate(&post(&[
                ("host", HOST),
                ("cookie", "session=abc"),
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.test"),
                (name, value),
            ]))
        };
        assert_eq!(
            with("x-api-key", "k"),
            CsrfVerdict::Pass(PassReason::ApiKey)
        );
        assert!(with("x-tenant-key", "k").is_pass());
        assert!(!with("x-api-key", "").is_pass());
        assert!(!with("x-other-key", "k").is_pass());
        assert!(!with("content-type", "text/plain").is_pass());
        assert!(!with("referer", "https://evil.test/").is_pass());
        assert!(!with("sec-fetch-mode", "navigate").is_pass());
    }

    #[test]
    fn session_cookie_names_are_parsed_exactly() {
        let config = config(CsrfMode::Enforce).session_cookies(vec![
            "session".to_owned(),
            "__Host-sid".to_owned(),
            String::new(),
        ]);
        let with_cookies = |values: &[&str]| {
            let mut headers: Vec<(&str, &str)> = vec![
                ("host", HOST),
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.test"),
            ];
            headers.extend(values.iter().map(|v| ("cookie", *v)));
            config.evaluate(&post(&headers))
        };
        for counts in [
            &["session=abc"][..],
            &["theme=dark;session=abc"],
            &["theme=dark;   session  =abc"],
            &["\tsession=abc"],
            &["__Host-sid=1"],
            &["session"],
            &["session="],
            &["theme=dark", "session=abc"],
        ] {
            assert!(!with_cookies(counts).is_pass(), "{counts:?}");
        }
        for ignored in [
            &[][..],
            &[""],
            &["Session=abc"],
            &["sessionid=abc"],
            &["xsession=abc"],
            &["theme=session"],
            &["__host-sid=1"],
            &["=abc"],
            &["abc"],
            &["theme=dark", "lang=en"],
        ] {
            assert_eq!(
                with_cookies(ignored),
                CsrfVerdict::Pass(PassReason::NoCookie),
                "{ignored:?}"
            );
        }
    }

    #[test]
    fn repeated_or_unusual_headers_fail_closed() {
        let config = config(CsrfMode::Enforce);
        let check = |headers: &[(&str, &str)]| {
            let mut all = vec![("host", HOST), ("cookie", "session=abc")];
            all.extend_from_slice(headers);
            config.evaluate(&post(&all))
        };
        assert_eq!(
            check(&[("origin", TRUSTED), ("origin", TRUSTED)]),
            CsrfVerdict::Fail(FailReason::MalformedOrigin { fetch_site: None })
        );
        assert_eq!(
            check(&[
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-site", "same-origin")
            ]),
            CsrfVerdict::Fail(FailReason::MissingOrigin {
                fetch_site: FetchSite::Other
            })
        );
        assert_eq!(
            check(&[("sec-fetch-site", "cross-site")]),
            CsrfVerdict::Fail(FailReason::MissingOrigin {
                fetch_site: FetchSite::CrossSite
            })
        );
        // Lower-case `post` is an extension method, so unsafe.
        let lower = Request::builder()
            .method("post")
            .header("host", HOST)
            .header("cookie", "session=abc")
            .header("origin", "https://evil.test")
            .body(())
            .unwrap();
        assert!(!config.evaluate(&lower).is_pass());
    }

    #[test]
    fn null_origin_passes_only_when_listed_and_vouched_for_by_fetch_metadata() {
        let config = config(CsrfMode::Enforce).trusted(origins(&["null"]));
        let check = |site: Option<&str>| {
            let mut headers = vec![
                ("host", HOST),
                ("cookie", "session=abc"),
                ("origin", "null"),
            ];
            headers.extend(site.map(|s| ("sec-fetch-site", s)));
            config.evaluate(&post(&headers))
        };
        assert_eq!(
            check(Some("cross-site")),
            CsrfVerdict::Pass(PassReason::TrustedOrigin)
        );
        // Without Sec-Fetch-Site, `null` is refused before the trusted list is consulted.
        assert_eq!(
            check(None),
            CsrfVerdict::Fail(FailReason::NullOrigin { fetch_site: None })
        );
        // `*` never covers `null`.
        let any = CsrfConfig::new(CsrfMode::Enforce).trusted(AllowedOrigins::any());
        let req = post(&[
            ("host", HOST),
            ("cookie", "session=abc"),
            ("sec-fetch-site", "cross-site"),
            ("origin", "null"),
        ]);
        assert!(!any.evaluate(&req).is_pass());
    }

    /// Records events as `name=value` text.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    struct Fields<'a>(&'a mut String);

    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut line = format!(
                "{} target={} ",
                event.metadata().level(),
                event.metadata().target()
            );
            event.record(&mut Fields(&mut line));
            self.0.lock().unwrap().push(line);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// Counts counter increments by name and labels.
    #[derive(Default)]
    struct Counts(Mutex<HashMap<String, Arc<AtomicU64>>>);

    struct Count(Arc<AtomicU64>);

    impl metrics::CounterFn for Count {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::SeqCst);
        }
        fn absolute(&self, value: u64) {
            self.0.store(value, Ordering::SeqCst);
        }
    }

    impl metrics::Recorder for Counts {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            key: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            let mut name = key.name().to_owned();
            for label in key.labels() {
                name.push_str(&format!(" {}={}", label.key(), label.value()));
            }
            let count = self.0.lock().unwrap().entry(name).or_default().clone();
            metrics::Counter::from_arc(Arc::new(Count(count)))
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    #[test]
    fn violations_are_logged_without_secrets_and_counted() {
        let capture = Capture::default();
        let counts = Counts::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let request = || {
            let mut req = Request::post("/transfer?token=SECRETQUERY")
                .header("host", HOST)
                .header("cookie", "session=SECRETCOOKIE")
                .header("authorization", "Basic U0VDUkVUQVVUSA==")
                .header("sec-fetch-site", "same-site")
                .header("origin", "https://blog.example.com")
                .body(())
                .unwrap();
            req.extensions_mut().insert(MatchedRoute {
                index: 0,
                name: "payments".into(),
            });
            req
        };
        tracing::subscriber::with_default(capture.clone(), || {
            metrics::with_local_recorder(&counts, || {
                rt.block_on(async {
                    run(config(CsrfMode::Enforce), request()).await;
                    run(config(CsrfMode::ReportOnly), request()).await;
                    run(config(CsrfMode::ReportOnly), request()).await;
                    // A pass is neither logged nor counted.
                    run(
                        config(CsrfMode::Enforce),
                        build(
                            "GET",
                            Cookie::Session,
                            Auth::None,
                            Fetch::CrossSite,
                            Orig::Untrusted,
                        ),
                    )
                    .await;
                })
            })
        });
        let lines = capture.0.lock().unwrap();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        for (line, mode) in lines.iter().zip(["enforce", "report-only", "report-only"]) {
            assert!(line.starts_with("WARN target=portcullis::csrf "), "{line}");
            for field in [
                format!("mode=\"{mode}\""),
                "method=\"POST\"".to_owned(),
                "path=\"/transfer\"".to_owned(),
                "origin=\"https://blog.example.com\"".to_owned(),
                "sec_fetch_site=\"same-site\"".to_owned(),
                "route=\"payments\"".to_owned(),
                "reason=Sec-Fetch-Site: same-site, Origin not trusted".to_owned(),
            ] {
                assert!(line.contains(&field), "{field} missing from {line}");
            }
            assert!(!line.contains("SECRET"), "{line}");
            assert!(!line.contains("U0VDUkVU"), "{line}");
        }
        let counts = counts.0.lock().unwrap();
        let get = |k: &str| counts.get(k).map_or(0, |c| c.load(Ordering::SeqCst));
        assert_eq!(get("portcullis_csrf_violations_total mode=enforce"), 1);
        assert_eq!(get("portcullis_csrf_violations_total mode=report-only"), 2);
    }
}
