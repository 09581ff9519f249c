//! Cookie policy: force `Secure`, `HttpOnly`, `SameSite` and `Path` on the upstream's cookies.
//!
//! Every `Set-Cookie` header of a response whose cookie has a [`CookieRule`] (by exact name, or
//! the rule for every other cookie) is parsed with the `cookie` crate, given the attributes the
//! rule forces, and serialised again. The policy, not each upstream, decides whether a session
//! cookie can be read by scripts, sent over plain HTTP, sent cross-site, or sent to every path.
//!
//! What is left alone is left alone byte for byte: a cookie without a rule, and a cookie that
//! already has every forced attribute (and no conflicting spelling of it), keep the upstream's
//! header. A rewritten header keeps the upstream's `name=value` bytes exactly (no percent
//! decoding or encoding) and the other attributes the `cookie` crate understands (`Domain`,
//! `Max-Age`, `Expires`, `Partitioned`), in the crate's canonical order and spelling (`Expires`
//! as an IMF-fixdate); attributes it does not know or cannot read (`Priority`, an `Expires` in
//! an unusual date format) are dropped. A header that cannot be parsed while a rule could
//! apply to it is removed: the gateway cannot enforce a policy on a cookie it cannot read, so
//! it fails closed.
//!
//! A cookie under a rule that ends up with `SameSite=None` but without `Secure` gets `Secure`,
//! even if the rule does not force it: browsers reject such cookies outright, so the
//! alternative is a cookie that silently never exists.
//!
//! Cookie values are credentials: nothing here logs them, only cookie names.
//!
//! ```
//! use http::{Request, Response};
//! use portcullis_layers::cookies::{CookiePolicyLayer, CookieRule, CookieRules, SameSite};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let rules = CookieRules::new().cookie(
//!     "session",
//!     CookieRule {
//!         secure: true,
//!         http_only: true,
//!         same_site: Some(SameSite::Strict),
//!         path: Some("/auth".into()),
//!     },
//! );
//! let svc = ServiceBuilder::new().layer(CookiePolicyLayer::new(rules)).service(service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(
//!         Response::builder()
//!             .header("set-cookie", "session=abc123; Path=/; SameSite=Lax")
//!             .header("set-cookie", "theme=dark")
//!             .body(())
//!             .unwrap(),
//!     )
//! }));
//! let res = svc.oneshot(Request::new(())).await.unwrap();
//! let cookies: Vec<_> = res.headers().get_all("set-cookie").iter().collect();
//! assert_eq!(cookies[0], "session=abc123; HttpOnly; SameSite=Strict; Secure; Path=/auth");
//! assert_eq!(cookies[1], "theme=dark");
//! # });
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use cookie::Cookie;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

/// A `SameSite` value to force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameSite {
    Strict,
    Lax,
    /// Implies `Secure`: see the module docs.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

impl From<SameSite> for cookie::SameSite {
    fn from(value: SameSite) -> Self {
        match value {
            SameSite::Strict => Self::Strict,
            SameSite::Lax => Self::Lax,
            SameSite::None => Self::None,
        }
    }
}

/// What is forced on one cookie. The default forces nothing, but still removes the cookie if
/// its header cannot be parsed and still adds `Secure` to `SameSite=None`.
#[derive(Debug, Clone, Default)]
pub struct CookieRule {
    /// `true` forces the `Secure` attribute on; `false` leaves it as the upstream sent it.
    pub secure: bool,
    /// `true` forces the `HttpOnly` attribute on; `false` leaves it as the upstream sent it.
    pub http_only: bool,
    /// Forces this `SameSite` value, replacing the upstream's.
    pub same_site: Option<SameSite>,
    /// Forces this `Path`, replacing the upstream's. It must be a cookie path value (no `;`,
    /// no control characters): a cookie whose rule has any other path is removed, since
    /// writing it would let the path inject attributes.
    pub path: Option<String>,
}

/// The rules of a [`CookiePolicyLayer`]: one per cookie name, and optionally one for every
/// cookie not named.
#[derive(Debug, Clone, Default)]
pub struct CookieRules {
    named: HashMap<String, CookieRule>,
    every_other: Option<CookieRule>,
}

impl CookieRules {
    pub fn new() -> Self {
        Self::default()
    }

    /// The rule for the cookie called exactly `name` (case-sensitive, as browsers compare
    /// cookie names). A second rule for the same name replaces the first.
    pub fn cookie(mut self, name: impl Into<String>, rule: CookieRule) -> Self {
        self.named.insert(name.into(), rule);
        self
    }

    /// The rule for every cookie that has no rule of its own, including cookies whose name
    /// cannot be read.
    pub fn every_other(mut self, rule: CookieRule) -> Self {
        self.every_other = Some(rule);
        self
    }

    /// Whether no cookie has a rule, so the layer changes nothing.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.every_other.is_none()
    }

    /// The rule for a cookie name; `None` for a name that is not UTF-8.
    fn rule_for(&self, name: Option<&str>) -> Option<&CookieRule> {
        name.and_then(|n| self.named.get(n))
            .or(self.every_other.as_ref())
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct CookiePolicyLayer {
    /// `None` when there are no rules: decided once here, so a response then costs nothing
    /// beyond one branch, whatever its headers.
    rules: Option<Arc<CookieRules>>,
}

impl CookiePolicyLayer {
    pub fn new(rules: CookieRules) -> Self {
        Self {
            rules: (!rules.is_empty()).then(|| Arc::new(rules)),
        }
    }
}

impl<S> Layer<S> for CookiePolicyLayer {
    type Service = CookiePolicy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CookiePolicy {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// See [`CookiePolicyLayer`].
#[derive(Debug, Clone)]
pub struct CookiePolicy<S> {
    inner: S,
    rules: Option<Arc<CookieRules>>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CookiePolicy<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = CookiePolicyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        CookiePolicyFuture {
            inner: self.inner.call(req),
            rules: self.rules.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`CookiePolicy`].
    #[derive(Debug)]
    pub struct CookiePolicyFuture<F> {
        #[pin]
        inner: F,
        rules: Option<Arc<CookieRules>>,
    }
}

impl<F, ResBody, E> Future for CookiePolicyFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(rules) = this.rules.as_deref() {
            enforce(res.headers_mut(), rules);
        }
        Poll::Ready(Ok(res))
    }
}

/// What happens to one `Set-Cookie` header.
enum Verdict {
    Keep,
    Replace(HeaderValue),
    Remove,
}

/// Applies the rules to every `Set-Cookie` header, keeping their order. The map is only
/// touched if some header changes, which is the common case's fast path.
fn enforce(headers: &mut HeaderMap, rules: &CookieRules) {
    let mut rewritten: Option<Vec<HeaderValue>> = None;
    for (i, value) in headers.get_all(SET_COOKIE).iter().enumerate() {
        let verdict = verdict(value, rules);
        if rewritten.is_none() && !matches!(verdict, Verdict::Keep) {
            rewritten = Some(
                headers
                    .get_all(SET_COOKIE)
                    .iter()
                    .take(i)
                    .cloned()
                    .collect(),
            );
        }
        if let Some(out) = rewritten.as_mut() {
            match verdict {
                Verdict::Keep => out.push(value.clone()),
                Verdict::Replace(new) => out.push(new),
                Verdict::Remove => {}
            }
        }
    }
    if let Some(values) = rewritten {
        headers.remove(SET_COOKIE);
        for value in values {
            headers.append(SET_COOKIE, value);
        }
    }
}

fn verdict(value: &HeaderValue, rules: &CookieRules) -> Verdict {
    let (raw_name, raw_value) = raw_pair(value.as_bytes());
    let name = std::str::from_utf8(raw_name).ok();
    let Some(rule) = rules.rule_for(name) else {
        return Verdict::Keep;
    };
    // Only the name is logged (empty when not UTF-8). It comes from `raw_pair`, which never
    // takes a name from a pair without `=`: there the whole pair is the value
    // (`Set-Cookie: token`), and values are credentials.
    let logged_name = name.unwrap_or_default();
    let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
        tracing::warn!(
            cookie = logged_name,
            "removed a Set-Cookie that is not UTF-8"
        );
        return Verdict::Remove;
    };
    let Ok(mut cookie) = Cookie::parse(text) else {
        tracing::warn!(
            cookie = logged_name,
            "removed a Set-Cookie that cannot be parsed"
        );
        return Verdict::Remove;
    };
    if rule.path.as_deref().is_some_and(|p| !is_path_value(p)) {
        tracing::warn!(
            cookie = logged_name,
            "removed a Set-Cookie: the policy's Path for it is not a valid cookie path"
        );
        return Verdict::Remove;
    }
    if satisfies(text, &cookie, rule) {
        return Verdict::Keep;
    }

    if rule.secure {
        cookie.set_secure(true);
    }
    if rule.http_only {
        cookie.set_http_only(true);
    }
    if let Some(same_site) = rule.same_site {
        cookie.set_same_site(cookie::SameSite::from(same_site));
    }
    if let Some(path) = rule.path.as_deref() {
        cookie.set_path(path);
    }
    // Browsers reject `SameSite=None` without `Secure`. The cookie crate happens to write
    // `Secure` for it too (unless told `set_secure(false)`), but that is a serialisation detail;
    // the policy should not depend on it.
    if cookie.same_site() == Some(cookie::SameSite::None) {
        cookie.set_secure(true);
    }
    // The crate trims the name and value of all Unicode whitespace; browsers trim only spaces
    // and tabs. Writing the upstream's own bytes back keeps both exactly what the browser would
    // have seen. Both are UTF-8 here, since the whole header is.
    if let (Ok(name), Ok(value)) = (
        std::str::from_utf8(raw_name),
        std::str::from_utf8(raw_value),
    ) {
        cookie.set_name(name);
        cookie.set_value(value);
    }

    // `write!` rather than `to_string`: the crate formats `Expires` fallibly, and `to_string`
    // panics on a formatting error.
    let mut out = String::with_capacity(text.len() + 48);
    if write!(out, "{cookie}").is_err() {
        tracing::warn!(
            cookie = logged_name,
            "removed a Set-Cookie that cannot be written"
        );
        return Verdict::Remove;
    }
    match HeaderValue::from_str(&out) {
        Ok(new) => Verdict::Replace(new),
        Err(_) => {
            tracing::warn!(
                cookie = logged_name,
                "removed a Set-Cookie that cannot be written"
            );
            Verdict::Remove
        }
    }
}

/// Whether the upstream's header already says everything the rule forces, so it can be kept
/// as sent. `SameSite` and `Path` are checked on the raw attributes: browsers take the *last*
/// occurrence of an attribute (and an unknown `SameSite` value as the default), while the
/// cookie crate skips values it does not understand, so `SameSite=Strict; SameSite=x` would
/// look strict to it and not to a browser. Every occurrence must therefore say the forced
/// value; anything else is rewritten into one unambiguous attribute.
fn satisfies(text: &str, cookie: &Cookie<'_>, rule: &CookieRule) -> bool {
    let same_site = rule
        .same_site
        .map(cookie::SameSite::from)
        .or(cookie.same_site());
    (!rule.secure || cookie.secure() == Some(true))
        && (!rule.http_only || cookie.http_only() == Some(true))
        && rule.same_site.is_none_or(|forced| {
            every_attribute(text, "samesite", |v| {
                v.eq_ignore_ascii_case(forced.as_str())
            })
        })
        && rule
            .path
            .as_deref()
            .is_none_or(|forced| every_attribute(text, "path", |v| v == forced))
        && (same_site != Some(cookie::SameSite::None) || cookie.secure() == Some(true))
}

/// Whether the header has an attribute called `name` (ASCII case-insensitive) and every such
/// attribute has a value that passes `accept`.
fn every_attribute(text: &str, name: &str, accept: impl Fn(&str) -> bool) -> bool {
    let mut seen = false;
    for attribute in text.split(';').skip(1) {
        let (key, value) = match attribute.split_once('=') {
            Some((key, value)) => (trim(key), Some(trim(value))),
            None => (trim(attribute), None),
        };
        if key.eq_ignore_ascii_case(name) {
            if !value.is_some_and(&accept) {
                return false;
            }
            seen = true;
        }
    }
    seen
}

/// The name and value of a `Set-Cookie` header as a browser reads them (RFC 6265bis 5.6): the
/// part before the first `;`, split at its first `=`, trimmed of spaces and tabs. Without an
/// `=` the name is empty.
fn raw_pair(header: &[u8]) -> (&[u8], &[u8]) {
    let pair = header.split(|&b| b == b';').next().unwrap_or_default();
    let (name, value) = match pair.iter().position(|&b| b == b'=') {
        Some(i) => (&pair[..i], &pair[i + 1..]),
        None => (&pair[..0], pair),
    };
    (trim_bytes(name), trim_bytes(value))
}

fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn trim_bytes(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// A cookie `path-value` (RFC 6265): any character but controls and `;`.
fn is_path_value(path: &str) -> bool {
    !path.chars().any(|c| c == ';' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tower::{ServiceExt, service_fn};

    /// The Set-Cookie headers of a response to an upstream that sends `cookies`.
    async fn rewrite(rules: CookieRules, cookies: Vec<HeaderValue>) -> Vec<HeaderValue> {
        let svc = CookiePolicyLayer::new(rules).layer(service_fn(move |_req: Request<()>| {
            let cookies = cookies.clone();
            async move {
                let mut res = Response::new(());
                for cookie in cookies {
                    res.headers_mut().append(SET_COOKIE, cookie);
                }
                Ok::<_, std::convert::Infallible>(res)
            }
        }));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        res.headers().get_all(SET_COOKIE).iter().cloned().collect()
    }

    async fn rewrite_strs(rules: CookieRules, cookies: &[&'static str]) -> Vec<String> {
        let values = cookies
            .iter()
            .map(|c| HeaderValue::from_static(c))
            .collect();
        rewrite(rules, values)
            .await
            .into_iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    fn only(name: &str, rule: CookieRule) -> CookieRules {
        CookieRules::new().cookie(name, rule)
    }

    fn strict_auth() -> CookieRule {
        CookieRule {
            secure: true,
            http_only: true,
            same_site: Some(SameSite::Strict),
            path: Some("/auth".into()),
        }
    }

    #[tokio::test]
    async fn forces_secure() {
        let rule = CookieRule {
            secure: true,
            ..CookieRule::default()
        };
        let out = rewrite_strs(only("sid", rule), &["sid=1; HttpOnly"]).await;
        assert_eq!(out, ["sid=1; HttpOnly; Secure"]);
    }

    #[tokio::test]
    async fn forces_http_only() {
        let rule = CookieRule {
            http_only: true,
            ..CookieRule::default()
        };
        let out = rewrite_strs(only("sid", rule), &["sid=1; Secure"]).await;
        assert_eq!(out, ["sid=1; HttpOnly; Secure"]);
    }

    #[tokio::test]
    async fn forces_same_site() {
        for (same_site, expected) in [
            (SameSite::Strict, "sid=1; SameSite=Strict"),
            (SameSite::Lax, "sid=1; SameSite=Lax"),
            (SameSite::None, "sid=1; SameSite=None; Secure"),
        ] {
            let rule = CookieRule {
                same_site: Some(same_site),
                ..CookieRule::default()
            };
            let out = rewrite_strs(only("sid", rule), &["sid=1"]).await;
            assert_eq!(out, [expected]);
        }
    }

    #[tokio::test]
    async fn forces_path() {
        let rule = CookieRule {
            path: Some("/auth".into()),
            ..CookieRule::default()
        };
        let out = rewrite_strs(only("sid", rule), &["sid=1"]).await;
        assert_eq!(out, ["sid=1; Path=/auth"]);
    }

    #[tokio::test]
    async fn forced_same_site_replaces_the_upstreams() {
        let out = rewrite_strs(
            only("sid", strict_auth()),
            &["sid=1; SameSite=Lax; Secure; HttpOnly; Path=/auth"],
        )
        .await;
        assert_eq!(
            out,
            ["sid=1; HttpOnly; SameSite=Strict; Secure; Path=/auth"]
        );
    }

    #[tokio::test]
    async fn forced_path_replaces_the_upstreams() {
        let out = rewrite_strs(
            only("sid", strict_auth()),
            &["sid=1; Path=/; Secure; HttpOnly; SameSite=Strict"],
        )
        .await;
        assert_eq!(
            out,
            ["sid=1; HttpOnly; SameSite=Strict; Secure; Path=/auth"]
        );
    }

    #[tokio::test]
    async fn every_other_rule_applies_to_unnamed_cookies_only() {
        let rules = CookieRules::new()
            .cookie("sid", strict_auth())
            .every_other(CookieRule {
                secure: true,
                ..CookieRule::default()
            });
        let out = rewrite_strs(rules, &["theme=dark", "sid=1", "SID=2"]).await;
        assert_eq!(
            out,
            [
                "theme=dark; Secure",
                "sid=1; HttpOnly; SameSite=Strict; Secure; Path=/auth",
                // Names are case-sensitive: `SID` is another cookie.
                "SID=2; Secure",
            ]
        );
    }

    #[tokio::test]
    async fn cookies_without_a_rule_are_kept_byte_for_byte() {
        // Odd spacing, unknown attributes, an unparseable header and non-UTF-8 bytes: none of
        // it is this layer's business when no rule applies.
        let odd = [
            "theme =  dark ;path=/;  Priority=High; SameSite=None",
            "no equals sign",
            "=empty-name",
        ];
        let mut cookies: Vec<HeaderValue> =
            odd.iter().map(|c| HeaderValue::from_static(c)).collect();
        cookies.push(HeaderValue::from_bytes(b"latin=caf\xe9").unwrap());
        let out = rewrite(only("sid", strict_auth()), cookies.clone()).await;
        assert_eq!(out, cookies);
    }

    #[tokio::test]
    async fn cookies_that_already_comply_are_kept_byte_for_byte() {
        let sent = "sid=1;path=/auth;  secure; HTTPONLY; samesite=strict; Priority=High";
        let out = rewrite_strs(only("sid", strict_auth()), &[sent]).await;
        assert_eq!(out, [sent]);
    }

    #[tokio::test]
    async fn an_ambiguous_attribute_is_not_taken_as_compliant() {
        // A browser takes the last SameSite, and an unknown value as the default; the cookie
        // crate skips the unknown one and sees Strict.
        let out = rewrite_strs(
            only("sid", strict_auth()),
            &["sid=1; Path=/auth; Secure; HttpOnly; SameSite=Strict; SameSite=bogus"],
        )
        .await;
        assert_eq!(
            out,
            ["sid=1; HttpOnly; SameSite=Strict; Secure; Path=/auth"]
        );
    }

    #[tokio::test]
    async fn multiple_set_cookie_headers_keep_their_order() {
        let rules = CookieRules::new()
            .cookie("b", strict_auth())
            .cookie("d", CookieRule::default());
        let out = rewrite_strs(rules, &["a=1", "b=2", "c=3", "d=4; SameSite=None", "e=5"]).await;
        assert_eq!(
            out,
            [
                "a=1",
                "b=2; HttpOnly; SameSite=Strict; Secure; Path=/auth",
                "c=3",
                "d=4; SameSite=None; Secure",
                "e=5",
            ]
        );
    }

    #[tokio::test]
    async fn same_site_none_gains_secure() {
        let rule = CookieRule {
            http_only: true,
            ..CookieRule::default()
        };
        let out = rewrite_strs(only("sid", rule), &["sid=1; SameSite=None"]).await;
        assert_eq!(out, ["sid=1; HttpOnly; SameSite=None; Secure"]);
    }

    #[tokio::test]
    async fn unparseable_set_cookies_are_removed() {
        let rules = CookieRules::new()
            .cookie("sid", strict_auth())
            .every_other(CookieRule::default());
        // No `=`: browsers read the whole pair as the value of a nameless cookie.
        let out = rewrite_strs(rules.clone(), &["a=1", "secret-token; Path=/", "=x", "b=2"]).await;
        assert_eq!(out, ["a=1", "b=2"]);

        let cookies = vec![
            HeaderValue::from_bytes(b"sid=caf\xe9").unwrap(),
            HeaderValue::from_static("c=3"),
        ];
        let out = rewrite(rules, cookies).await;
        assert_eq!(out, [HeaderValue::from_static("c=3")]);
    }

    #[tokio::test]
    async fn an_invalid_forced_path_removes_the_cookie() {
        let rule = CookieRule {
            path: Some("/; Domain=evil.example".into()),
            ..CookieRule::default()
        };
        let out = rewrite_strs(only("sid", rule), &["sid=1", "a=2"]).await;
        assert_eq!(out, ["a=2"]);
    }

    #[tokio::test]
    async fn values_are_kept_exactly() {
        let out = rewrite_strs(
            only("sid", strict_auth()),
            &["sid=a%20b%3D==c%; Max-Age=60; Domain=example.com"],
        )
        .await;
        assert_eq!(
            out,
            [
                "sid=a%20b%3D==c%; HttpOnly; SameSite=Strict; Secure; Path=/auth; Domain=example.com; Max-Age=60"
            ]
        );

        // Quotes belong to the value, and UTF-8 survives too.
        let cookies = vec![
            HeaderValue::from_static("sid=\"quoted\""),
            HeaderValue::from_bytes("sid=café".as_bytes()).unwrap(),
        ];
        let out = rewrite(only("sid", strict_auth()), cookies).await;
        assert_eq!(
            out[0],
            "sid=\"quoted\"; HttpOnly; SameSite=Strict; Secure; Path=/auth"
        );
        assert_eq!(
            out[1].as_bytes(),
            "sid=café; HttpOnly; SameSite=Strict; Secure; Path=/auth".as_bytes()
        );
    }

    #[tokio::test]
    async fn empty_rules_change_nothing() {
        assert!(CookieRules::new().is_empty());
        assert!(CookiePolicyLayer::new(CookieRules::new()).rules.is_none());
        let out = rewrite_strs(
            CookieRules::new(),
            &["no equals sign", "sid=1; SameSite=None"],
        )
        .await;
        assert_eq!(out, ["no equals sign", "sid=1; SameSite=None"]);
    }

    #[tokio::test]
    async fn errors_pass_through() {
        let svc = CookiePolicyLayer::new(only("sid", strict_auth())).layer(service_fn(
            |_req: Request<()>| async { Err::<Response<()>, _>("upstream down") },
        ));
        assert_eq!(
            svc.oneshot(Request::new(())).await.unwrap_err(),
            "upstream down"
        );
    }

    /// RFC 6265 `token` characters, for names.
    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$&'*+.^_`|~-]{1,16}"
    }

    /// RFC 6265 `cookie-octet`s (no space, `"`, `,`, `;` or `\`), so `%` and `=` included.
    fn value() -> impl Strategy<Value = String> {
        "[\\x21\\x23-\\x2B\\x2D-\\x3A\\x3C-\\x5B\\x5D-\\x7E]{0,32}"
    }

    fn attributes() -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(
            vec![
                "Secure",
                "HttpOnly",
                "SameSite=None",
                "SameSite=Lax",
                "samesite=strict",
                "Path=/",
                "path=/auth",
                "Domain=example.com",
                "Max-Age=60",
                "Priority=High",
            ],
            0..6,
        )
    }

    proptest! {
        /// Whatever the upstream sends, the rewritten cookie has its name and value and every
        /// forced attribute.
        #[test]
        fn name_and_value_survive_and_forced_attributes_are_present(
            name in name(),
            value in value(),
            attributes in attributes(),
            every_other in any::<bool>(),
        ) {
            let rules = if every_other {
                CookieRules::new().every_other(strict_auth())
            } else {
                only(&name, strict_auth())
            };
            let mut sent = format!("{name}={value}");
            for attribute in attributes {
                sent.push_str("; ");
                sent.push_str(attribute);
            }
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let out = runtime.block_on(rewrite(rules, vec![HeaderValue::from_str(&sent).unwrap()]));
            prop_assert_eq!(out.len(), 1);
            let text = out[0].to_str().unwrap();
            let pair = format!("{name}={value};");
            prop_assert!(text.starts_with(&pair), "{} does not start with {}", text, pair);
            let cookie = Cookie::parse(text).unwrap();
            prop_assert_eq!(cookie.name(), name.as_str());
            prop_assert_eq!(cookie.value(), value.as_str());
            prop_assert_eq!(cookie.secure(), Some(true));
            prop_assert_eq!(cookie.http_only(), Some(true));
            prop_assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict));
            prop_assert_eq!(cookie.path(), Some("/auth"));
            prop_assert!(every_attribute(text, "samesite", |v| v.eq_ignore_ascii_case("strict")));
            prop_assert!(every_attribute(text, "path", |v| v == "/auth"));
        }
    }
}
