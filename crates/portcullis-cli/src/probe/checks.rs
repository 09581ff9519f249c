//! Comparing one response with what the policy promises: pure functions, no network.
//!
//! Headers are compared whatever the status: the gateway puts its posture on its own refusals
//! too (a `401`, a refused preflight), so a missing header on a `401` is as much drift as on a
//! `200`. Statuses themselves are only judged where a check is about them (the cross-site
//! `POST`).

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, SERVER, VARY,
};
use http::{HeaderMap, HeaderName, StatusCode};
use portcullis::policy::auth::AuthMode;
use portcullis::policy::{Policy, Route};

use super::finding::{Check, Finding};
use super::plan::{PlannedRequest, Purpose};

/// The rate-limit headers the gateway writes on every response of a route with quotas
/// (`portcullis_layers::rate_limit`).
pub const RATE_LIMIT_HEADERS: &[&str] = &[
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit-policy",
    "ratelimit",
];

/// Headers that name the software behind a server, besides `Server`.
const POWERED_BY_HEADERS: &[&str] = &["x-powered-by", "x-aspnet-version", "x-aspnetmvc-version"];

const ABSENT: &str = "absent";

/// What came back.
#[derive(Debug, Clone)]
pub struct Observed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Read only for the requests that need it (security.txt).
    pub body: Option<bytes::Bytes>,
}

/// Every finding for one response to `request`.
pub fn check(policy: &Policy, request: &PlannedRequest, observed: &Observed) -> Vec<Finding> {
    let Some(route) = policy.all_routes().nth(request.route_index) else {
        return Vec::new();
    };
    let mut out = Findings {
        request,
        found: Vec::new(),
    };
    posture(policy, route, observed, &mut out);
    correlation_id(policy, observed, &mut out);
    cors(route, observed, &mut out);
    match &request.purpose {
        Purpose::Posture => rate_limit_headers(policy, route, observed, &mut out),
        Purpose::AllowedPreflight {
            origin,
            expect_allow_origin,
            credentials,
        } => allowed_preflight(
            origin,
            expect_allow_origin,
            *credentials,
            observed,
            &mut out,
        ),
        Purpose::UnlistedPreflight { origin, .. } => {
            unlisted_preflight(origin, observed, &mut out);
        }
        Purpose::CrossSitePost => cross_site_post(observed, &mut out),
        Purpose::SecurityTxt { lines } => security_txt(lines, observed, &mut out),
    }
    out.found
}

/// The policy's security.txt must be served as text with each of its lines (field names
/// compared as RFC 9116 does, without case; other lines and comments are the server's own).
fn security_txt(lines: &[String], observed: &Observed, out: &mut Findings<'_>) {
    let expected = "200, text/plain, with the policy's [disclosure] fields";
    if observed.status != StatusCode::OK {
        out.push(
            Check::SecurityTxtDrift,
            expected,
            observed.status.to_string(),
        );
        return;
    }
    let content_type = joined(&observed.headers, &http::header::CONTENT_TYPE).unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with("text/plain") {
        out.push(
            Check::SecurityTxtDrift,
            expected,
            format!(
                "Content-Type: {}",
                if content_type.is_empty() {
                    ABSENT
                } else {
                    &content_type
                }
            ),
        );
        return;
    }
    let body = observed.body.as_deref().unwrap_or_default();
    let served: Vec<String> = String::from_utf8_lossy(body)
        .lines()
        .map(normalise_field)
        .collect();
    let missing: Vec<&str> = lines
        .iter()
        .filter(|line| !served.contains(&normalise_field(line)))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        out.push(
            Check::SecurityTxtDrift,
            missing.join("; "),
            "absent from the served file",
        );
    }
}

/// `Contact:  mailto:x` as `contact: mailto:x`: the field name without case, the value as is.
fn normalise_field(line: &str) -> String {
    match line.trim().split_once(':') {
        Some((name, value)) => format!("{}: {}", name.trim().to_ascii_lowercase(), value.trim()),
        None => line.trim().to_owned(),
    }
}

struct Findings<'a> {
    request: &'a PlannedRequest,
    found: Vec<Finding>,
}

impl Findings<'_> {
    fn push(&mut self, check: Check, expected: impl Into<String>, got: impl Into<String>) {
        self.found.push(Finding {
            check,
            route: self.request.route.clone(),
            request: self.request.to_string(),
            expected: expected.into(),
            got: got.into(),
        });
    }
}

/// All values of `name`, joined as one field would be, or `None` when absent.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// The route's headers, Cache-Control, and the headers it removes.
fn posture(policy: &Policy, route: &Route, observed: &Observed, out: &mut Findings<'_>) {
    let headers = &observed.headers;
    let promised = route.response_headers(policy.environment);
    for (name, value) in &promised {
        if name == CACHE_CONTROL {
            continue;
        }
        let expected = String::from_utf8_lossy(value.as_bytes());
        match joined(headers, name) {
            None => out.push(Check::HeaderMissing, format!("{name}: {expected}"), ABSENT),
            Some(got) if got != expected.trim() => {
                out.push(
                    Check::HeaderMismatch,
                    format!("{name}: {expected}"),
                    format!("{name}: {got}"),
                );
            }
            Some(_) => {}
        }
    }
    cache_control(route, headers, out);
    // The gateway removes, then inserts: a removed header the route also sets is expected.
    for name in route.removed_headers(policy) {
        if promised.contains_key(name) {
            continue;
        }
        let Some(got) = joined(headers, name) else {
            continue;
        };
        let check = if name == SERVER {
            Check::ServerLeak
        } else if POWERED_BY_HEADERS.contains(&name.as_str()) {
            Check::PoweredByLeak
        } else {
            Check::HeaderExtra
        };
        out.push(check, format!("no {name}"), format!("{name}: {got}"));
    }
}

/// Directives, lower-cased and without spaces, in a stable order: `private, no-store` and
/// `no-store,private` say the same thing.
fn directives(value: &str) -> Vec<String> {
    let mut out: Vec<String> = value
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase().replace(' ', ""))
        .filter(|d| !d.is_empty())
        .collect();
    out.sort();
    out
}

/// Whether a response with these directives must not be kept by a shared cache.
fn is_private(directives: &[String]) -> bool {
    directives.iter().any(|d| d == "no-store" || d == "private")
}

fn cache_control(route: &Route, headers: &HeaderMap, out: &mut Findings<'_>) {
    let expected = String::from_utf8_lossy(route.cache_control.as_bytes()).into_owned();
    let want = directives(&expected);
    let got = joined(headers, &CACHE_CONTROL);
    let have = got.as_deref().map(directives).unwrap_or_default();
    if want == have {
        return;
    }
    let got = got.map_or_else(|| ABSENT.to_owned(), |g| format!("cache-control: {g}"));
    let check = if is_private(&want) && !is_private(&have) {
        Check::PrivateCacheable
    } else {
        Check::CacheControlMismatch
    };
    out.push(check, format!("cache-control: {expected}"), got);
}

fn correlation_id(policy: &Policy, observed: &Observed, out: &mut Findings<'_>) {
    let name = &policy.correlation_id.header;
    let present = observed
        .headers
        .get(name)
        .is_some_and(|v| !v.as_bytes().trim_ascii().is_empty());
    if !present {
        out.push(
            Check::CorrelationIdMissing,
            format!("{name} on every response"),
            ABSENT,
        );
    }
}

/// On every response: `*` with credentials is never right; on a CORS route, `Vary: Origin`.
fn cors(route: &Route, observed: &Observed, out: &mut Findings<'_>) {
    let headers = &observed.headers;
    let allow_origin = joined(headers, &ACCESS_CONTROL_ALLOW_ORIGIN);
    let credentials = joined(headers, &ACCESS_CONTROL_ALLOW_CREDENTIALS);
    if allow_origin.as_deref() == Some("*") && credentials.as_deref() == Some("true") {
        out.push(
            Check::CorsWildcardCredentials,
            "never `*` with credentials",
            "access-control-allow-origin: *, access-control-allow-credentials: true",
        );
    }
    if route.cors.is_some() {
        let varies = headers.get_all(VARY).iter().any(|v| {
            v.as_bytes().split(|b| *b == b',').any(|token| {
                let token = token.trim_ascii();
                token == b"*" || token.eq_ignore_ascii_case(b"origin")
            })
        });
        if !varies {
            out.push(
                Check::CorsVaryMissing,
                "vary: origin",
                joined(headers, &VARY).map_or_else(|| ABSENT.to_owned(), |v| format!("vary: {v}")),
            );
        }
    }
}

/// The gateway writes the headers on every response of a route with quotas, except where the
/// request stops before any quota is counted: with only quotas keyed by the verified identity,
/// an anonymous request on a route that requires credentials is refused (`401`) first; and an
/// IP filter refuses (`403`) before rate limiting.
fn rate_limit_headers(policy: &Policy, route: &Route, observed: &Observed, out: &mut Findings<'_>) {
    if route.rate_limit.is_empty() {
        return;
    }
    let quotas: Vec<_> = route
        .rate_limit
        .iter()
        .filter_map(|&i| policy.rate_limit.quotas.get(i))
        .collect();
    let counted_before_auth = quotas.iter().any(|q| q.key.before_auth());
    let refused_by_auth = route.auth.mode == AuthMode::Required
        && matches!(
            observed.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        );
    let ip_filtered = observed.status == StatusCode::FORBIDDEN
        && !(policy.ip_filter.is_empty() && route.ip_filter.is_empty());
    if ip_filtered || (refused_by_auth && !counted_before_auth) {
        return;
    }
    let missing: Vec<&str> = RATE_LIMIT_HEADERS
        .iter()
        .copied()
        .filter(|h| !observed.headers.contains_key(*h))
        .collect();
    if !missing.is_empty() {
        let names: Vec<&str> = quotas.iter().map(|q| q.name.as_str()).collect();
        out.push(
            Check::RateLimitHeadersMissing,
            format!(
                "{} (quotas: {})",
                RATE_LIMIT_HEADERS.join(", "),
                names.join(", ")
            ),
            format!("missing: {}", missing.join(", ")),
        );
    }
}

fn allowed_preflight(
    origin: &str,
    expect_allow_origin: &str,
    credentials: bool,
    observed: &Observed,
    out: &mut Findings<'_>,
) {
    let headers = &observed.headers;
    let allow_origin = joined(headers, &ACCESS_CONTROL_ALLOW_ORIGIN);
    let allow_credentials = joined(headers, &ACCESS_CONTROL_ALLOW_CREDENTIALS);
    let origin_ok = allow_origin.as_deref() == Some(expect_allow_origin);
    let credentials_ok = !credentials || allow_credentials.as_deref() == Some("true");
    if origin_ok && credentials_ok {
        return;
    }
    let mut expected = format!("access-control-allow-origin: {expect_allow_origin}");
    if credentials {
        expected.push_str(", access-control-allow-credentials: true");
    }
    let got = match (allow_origin, allow_credentials) {
        (None, _) => format!(
            "no access-control-allow-origin for {origin} ({})",
            observed.status
        ),
        (Some(o), None) => format!("access-control-allow-origin: {o}"),
        (Some(o), Some(c)) => {
            format!("access-control-allow-origin: {o}, access-control-allow-credentials: {c}")
        }
    };
    out.push(Check::CorsAllowedOriginRefused, expected, got);
}

/// The origin itself or `*` both hand the response to a page the policy does not trust.
fn unlisted_preflight(origin: &str, observed: &Observed, out: &mut Findings<'_>) {
    let Some(allow_origin) = joined(&observed.headers, &ACCESS_CONTROL_ALLOW_ORIGIN) else {
        return;
    };
    if allow_origin == "*" || allow_origin.eq_ignore_ascii_case(origin) {
        let credentials = joined(&observed.headers, &ACCESS_CONTROL_ALLOW_CREDENTIALS);
        let got = match credentials {
            Some(c) => format!(
                "access-control-allow-origin: {allow_origin}, access-control-allow-credentials: {c}"
            ),
            None => format!("access-control-allow-origin: {allow_origin}"),
        };
        out.push(
            Check::CorsOriginReflected,
            format!("no access-control-allow-origin for {origin}"),
            got,
        );
    }
}

fn cross_site_post(observed: &Observed, out: &mut Findings<'_>) {
    if observed.status.is_success() {
        out.push(
            Check::CsrfCrossSiteAccepted,
            "refused (the gateway answers 403 csrf_origin_mismatch)",
            format!("{} (accepted)", observed.status),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::plan::plan;
    use portcullis::policy::{CompileOptions, load_str};

    const POLICY: &str = r#"
environment = "production"
[cors.app]
origins = ["https://app.example.com"]
methods = ["GET", "POST"]
credentials = true
[rate-limit]
default = ["per-ip"]
[rate-limit.quotas.per-ip]
key = "ip"
limit = 10
per = "1s"
[[route]]
name = "account"
paths = ["/v1/account/*"]
cors = "app"
cache-control = "no-store, private"
[headers.not-set]
cross-origin-embedder-policy = "no embeddable surfaces"
"#;

    fn policy() -> Policy {
        load_str("t.toml", POLICY, &CompileOptions::default())
            .unwrap()
            .policy
    }

    /// What the gateway itself sends on the route: its posture, an ID, rate-limit headers, Vary.
    fn conforming(policy: &Policy, route: usize) -> HeaderMap {
        let route = policy.all_routes().nth(route).unwrap();
        let mut headers = route.response_headers(policy.environment);
        headers.insert("x-correlation-id", "abc".parse().unwrap());
        headers.insert("vary", "origin".parse().unwrap());
        for name in RATE_LIMIT_HEADERS {
            headers.insert(*name, "1".parse().unwrap());
        }
        headers
    }

    fn run(purpose_index: usize, status: u16, headers: HeaderMap) -> Vec<Check> {
        let policy = policy();
        let plan = plan(&policy);
        let request = &plan.requests[purpose_index];
        let observed = Observed {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: None,
        };
        check(&policy, request, &observed)
            .into_iter()
            .map(|f| f.check)
            .collect()
    }

    // Plan order for POLICY: 0 GET account, 1 GET default, 2 POST account, 3 allowed preflight
    // account, 4..=7 look-alike preflights on account, 8 preflight on default (no CORS).

    #[test]
    fn a_conforming_response_has_no_finding_whatever_its_status() {
        let p = policy();
        for status in [200, 401, 404, 502] {
            assert_eq!(run(0, status, conforming(&p, 0)), [], "{status}");
        }
    }

    #[test]
    fn each_header_difference_is_its_own_check() {
        let p = policy();
        let mut headers = conforming(&p, 0);
        headers.remove("x-content-type-options");
        headers.insert("x-frame-options", "SAMEORIGIN".parse().unwrap());
        headers.insert(
            "cross-origin-embedder-policy",
            "require-corp".parse().unwrap(),
        );
        headers.insert("server", "nginx/1.18.0".parse().unwrap());
        headers.insert("x-powered-by", "Express".parse().unwrap());
        headers.remove("x-correlation-id");
        headers.remove("vary");
        headers.remove("ratelimit");
        let mut found = run(0, 200, headers);
        found.sort();
        assert_eq!(
            found,
            [
                Check::HeaderMissing,
                Check::HeaderMismatch,
                Check::HeaderExtra,
                Check::ServerLeak,
                Check::PoweredByLeak,
                Check::CorrelationIdMissing,
                Check::RateLimitHeadersMissing,
                Check::CorsVaryMissing,
            ]
        );
    }

    #[test]
    fn a_cacheable_private_route_is_worse_than_another_cache_control() {
        let p = policy();
        let mut headers = conforming(&p, 0);
        headers.insert("cache-control", "public, max-age=600".parse().unwrap());
        assert_eq!(run(0, 200, headers.clone()), [Check::PrivateCacheable]);
        headers.remove("cache-control");
        assert_eq!(run(0, 200, headers.clone()), [Check::PrivateCacheable]);
        headers.insert("cache-control", "private, no-cache".parse().unwrap());
        assert_eq!(run(0, 200, headers.clone()), [Check::CacheControlMismatch]);
        // Order and case of directives do not matter.
        headers.insert("cache-control", "Private,  No-Store".parse().unwrap());
        assert_eq!(run(0, 200, headers), []);
    }

    #[test]
    fn rate_limit_headers_are_not_expected_on_a_route_without_quotas() {
        let p = policy();
        // The default route has the per-ip default too; a policy without it expects nothing.
        let mut headers = conforming(&p, 1);
        for name in RATE_LIMIT_HEADERS {
            headers.remove(*name);
        }
        assert_eq!(run(1, 200, headers), [Check::RateLimitHeadersMissing]);
        let text = POLICY.replace("default = [\"per-ip\"]", "default = []");
        let p2 = load_str("t.toml", &text, &CompileOptions::default())
            .unwrap()
            .policy;
        let plan = plan(&p2);
        let mut headers = conforming(&p2, 1);
        for name in RATE_LIMIT_HEADERS {
            headers.remove(*name);
        }
        let observed = Observed {
            status: StatusCode::OK,
            headers,
            body: None,
        };
        assert_eq!(check(&p2, &plan.requests[1], &observed), []);
    }

    #[test]
    fn no_rate_limit_headers_are_expected_where_authentication_refuses_first() {
        let with_auth = |quotas: &str| {
            let text = format!(
                "{POLICY}\n[rate-limit.quotas.per-key]\nkey = \"api-key\"\nlimit = 5\nper = \"1s\"\n\
                 [auth]\n[auth.api-keys]\nprefix = \"pk\"\nstore = \"sqlite:/tmp/unused.db\"\n"
            )
            .replace(
                "cache-control = \"no-store, private\"",
                &format!("cache-control = \"no-store, private\"\nrate-limit = {quotas}"),
            );
            load_str("t.toml", &text, &CompileOptions::default())
                .unwrap()
                .policy
        };
        let findings = |p: &Policy, status: StatusCode| {
            let plan = plan(p);
            let mut headers = conforming(p, 0);
            for name in RATE_LIMIT_HEADERS {
                headers.remove(*name);
            }
            check(
                p,
                &plan.requests[0],
                &Observed {
                    status,
                    headers,
                    body: None,
                },
            )
            .into_iter()
            .map(|f| f.check)
            .collect::<Vec<_>>()
        };
        // Only counted after authentication: a 401 carries none.
        let after = with_auth(r#"["per-key"]"#);
        assert_eq!(findings(&after, StatusCode::UNAUTHORIZED), []);
        // Counted before it: the 401 carries them.
        let before = with_auth(r#"["per-ip", "per-key"]"#);
        assert_eq!(
            findings(&before, StatusCode::UNAUTHORIZED),
            [Check::RateLimitHeadersMissing]
        );
    }

    #[test]
    fn a_removed_header_the_route_sets_again_is_not_extra() {
        let text = POLICY.replace(
            "[headers.not-set]",
            "[headers]\nremove = [\"server\", \"x-frame-options\"]\n[headers.not-set]",
        );
        let p = load_str("t.toml", &text, &CompileOptions::default())
            .unwrap()
            .policy;
        let plan = plan(&p);
        let headers = conforming(&p, 0);
        assert!(headers.contains_key("x-frame-options"));
        let observed = Observed {
            status: StatusCode::OK,
            headers,
            body: None,
        };
        assert_eq!(check(&p, &plan.requests[0], &observed), []);
    }

    #[test]
    fn preflights_reflect_the_allowed_origin_and_no_other() {
        let p = policy();
        let mut allowed = conforming(&p, 0);
        allowed.insert(
            "access-control-allow-origin",
            "https://app.example.com".parse().unwrap(),
        );
        allowed.insert("access-control-allow-credentials", "true".parse().unwrap());
        assert_eq!(run(3, 204, allowed.clone()), []);
        allowed.remove("access-control-allow-credentials");
        assert_eq!(run(3, 204, allowed), [Check::CorsAllowedOriginRefused]);
        assert_eq!(
            run(3, 403, conforming(&p, 0)),
            [Check::CorsAllowedOriginRefused]
        );

        // A refused look-alike: no finding. A reflected one, or `*`: drift.
        for i in 4..=7 {
            assert_eq!(run(i, 403, conforming(&p, 0)), [], "{i}");
        }
        let plan = plan(&p);
        let Purpose::UnlistedPreflight { origin, .. } = &plan.requests[5].purpose else {
            panic!("not a look-alike preflight");
        };
        let mut reflected = conforming(&p, 0);
        reflected.insert("access-control-allow-origin", origin.parse().unwrap());
        assert_eq!(run(5, 204, reflected.clone()), [Check::CorsOriginReflected]);
        reflected.insert("access-control-allow-origin", "*".parse().unwrap());
        reflected.insert("access-control-allow-credentials", "true".parse().unwrap());
        let mut found = run(5, 204, reflected);
        found.sort();
        assert_eq!(
            found,
            [Check::CorsOriginReflected, Check::CorsWildcardCredentials]
        );

        // A route without a CORS policy must not reflect even the policy's allowed origin.
        let mut on_default = conforming(&p, 1);
        on_default.insert(
            "access-control-allow-origin",
            "https://app.example.com".parse().unwrap(),
        );
        assert_eq!(run(8, 204, on_default), [Check::CorsOriginReflected]);
    }

    #[test]
    fn the_cross_site_post_must_not_succeed() {
        let p = policy();
        assert_eq!(run(2, 403, conforming(&p, 0)), []);
        assert_eq!(run(2, 401, conforming(&p, 0)), []);
        assert_eq!(
            run(2, 201, conforming(&p, 0)),
            [Check::CsrfCrossSiteAccepted]
        );
    }

    #[test]
    fn security_txt_must_carry_the_policys_fields() {
        let p = load_str(
            "t.toml",
            "environment = \"development\"\n[disclosure]\ncontact = [\"mailto:security@example.com\"]\nexpires = 2030-01-01T00:00:00Z\n",
            &CompileOptions::default(),
        )
        .unwrap()
        .policy;
        let plan = crate::probe::plan::plan(&p);
        let request = plan
            .requests
            .iter()
            .find(|r| matches!(r.purpose, Purpose::SecurityTxt { .. }))
            .unwrap();
        let served = |status: u16, content_type: Option<&str>, body: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-correlation-id", "abc".parse().unwrap());
            if let Some(ct) = content_type {
                headers.insert("content-type", ct.parse().unwrap());
            }
            let observed = Observed {
                status: StatusCode::from_u16(status).unwrap(),
                headers,
                body: Some(bytes::Bytes::from(body.to_owned())),
            };
            check(&p, request, &observed)
                .into_iter()
                .filter(|f| f.check == Check::SecurityTxtDrift)
                .collect::<Vec<_>>()
        };
        let good = p.disclosure.as_ref().unwrap().to_security_txt();
        assert!(served(200, Some("text/plain; charset=utf-8"), &good).is_empty());
        // Field names without case, extra lines and comments are the server's own.
        let relaxed = format!(
            "# ours\n{}\nHiring: https://jobs.example",
            good.replace("Contact:", "CONTACT:")
        );
        assert!(served(200, Some("text/plain"), &relaxed).is_empty());
        assert_eq!(served(404, Some("text/plain"), &good).len(), 1);
        assert_eq!(served(200, Some("application/json"), &good).len(), 1);
        assert_eq!(served(200, None, &good).len(), 1);
        let other = served(
            200,
            Some("text/plain"),
            "Contact: mailto:someone@else\nExpires: 2030-01-01T00:00:00Z\n",
        );
        assert_eq!(other.len(), 1);
        assert!(
            other[0].expected.contains("mailto:security@example.com"),
            "{other:?}"
        );
    }
}
