//! Which requests the probe sends, derived from the compiled policy alone (no network), so the
//! plan can be tested and reviewed on its own.
//!
//! In this order, cut at [`MAX_REQUESTS`]:
//! 1. one `GET` per route (the default route last) on a path the policy routes to it;
//! 2. one cross-site, cookie-bearing `POST` on a route where the CSRF check is enforced;
//! 3. per route, a preflight from an origin the route allows (on a route without a CORS policy,
//!    an origin the policy allows elsewhere: it must not be reflected there);
//! 4. per route with a CORS policy, preflights from look-alike origins it does not allow.

use std::fmt;

use http::Method;
use http::header::{
    ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, COOKIE, HeaderName, HeaderValue, ORIGIN,
};
use portcullis::policy::auth::AuthMode;
use portcullis::policy::csrf::CsrfMode;
use portcullis::policy::{Policy, Route};

use super::origins::{self, Adversary, STAND_IN_ORIGIN};
use super::sample;

/// The most requests one probe sends, whatever the policy's size. Requests beyond it are
/// listed as not sent.
pub const MAX_REQUESTS: usize = 40;

/// The attacker's page in the cross-site `POST`.
pub const CROSS_SITE_ORIGIN: &str = "https://evil.test";
/// The value of the probe's cookie: it authenticates nothing.
const PROBE_COOKIE_VALUE: &str = "portcullis-probe";
/// The cookie name when the policy does not name its session cookies (then any cookie counts).
const DEFAULT_COOKIE_NAME: &str = "session";

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// What a request is sent to find out; the checks read it to know what to expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// The route's header posture, on a plain `GET`.
    Posture,
    /// A preflight from an origin the route's CORS policy allows: it must be reflected.
    AllowedPreflight {
        origin: String,
        /// The `Access-Control-Allow-Origin` the policy promises: the origin, or `*`.
        expect_allow_origin: String,
        credentials: bool,
    },
    /// A preflight from an origin the route does not allow: it must not be reflected.
    UnlistedPreflight {
        origin: String,
        /// `None`: an origin the policy allows on other routes, sent to a route without CORS.
        adversary: Option<Adversary>,
    },
    /// A cross-site `POST` riding on a cookie: the CSRF check must refuse it.
    CrossSitePost,
    /// `GET /.well-known/security.txt`: it must be served, as text, with every line the
    /// policy's `[disclosure]` gives (`Contact: …`, `Expires: …`, …). Its body is read.
    SecurityTxt { lines: Vec<String> },
}

/// Where RFC 9116 puts the disclosure file.
pub const SECURITY_TXT_PATH: &str = "/.well-known/security.txt";

/// One request of the plan.
#[derive(Debug, Clone)]
pub struct PlannedRequest {
    /// Index into `policy.all_routes()` (`policy.routes.len()` is the default route).
    pub route_index: usize,
    pub route: String,
    pub method: Method,
    /// Path to request, already a valid URI path.
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub purpose: Purpose,
}

impl fmt::Display for PlannedRequest {
    /// How the report names the request: `OPTIONS /v1/status (Origin: null)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        match &self.purpose {
            Purpose::Posture => Ok(()),
            Purpose::AllowedPreflight { origin, .. } => write!(f, " (Origin: {origin})"),
            Purpose::UnlistedPreflight {
                origin,
                adversary: Some(adversary),
            } => write!(f, " (Origin: {origin}, {adversary})"),
            Purpose::UnlistedPreflight {
                origin,
                adversary: None,
            } => write!(f, " (Origin: {origin}, no CORS policy)"),
            Purpose::CrossSitePost => {
                write!(f, " (cross-site from {CROSS_SITE_ORIGIN}, with a cookie)")
            }
            Purpose::SecurityTxt { .. } => Ok(()),
        }
    }
}

/// Something the probe could not test, and why: informational, never drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotProbed {
    pub route: String,
    pub what: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub requests: Vec<PlannedRequest>,
    pub not_probed: Vec<NotProbed>,
}

/// The plan for `policy`; see the module docs.
pub fn plan(policy: &Policy) -> Plan {
    let mut not_probed = Vec::new();
    let routes: Vec<(usize, &Route, Option<String>)> = policy
        .all_routes()
        .enumerate()
        .map(|(index, route)| (index, route, sample::sample_path(policy, index)))
        .collect();
    let mut gets = Vec::new();
    for (index, route, path) in &routes {
        match path {
            Some(path) => gets.push(request(*index, route, Method::GET, path, Purpose::Posture)),
            None => not_probed.push(NotProbed {
                route: route.name.clone(),
                what: "route".to_owned(),
                reason: "no pattern gives a path that reaches this route (parameters are \
                         filled in, but earlier routes claim every candidate)"
                    .to_owned(),
            }),
        }
    }
    let csrf = cross_site_post(policy, &routes, &mut not_probed);
    let mut allowed = Vec::new();
    let mut unlisted = Vec::new();
    let elsewhere = policy
        .cors
        .iter()
        .find_map(|c| origins::allowed_origin(c.active_origins()))
        .unwrap_or_else(|| STAND_IN_ORIGIN.to_owned());
    for (index, route, path) in &routes {
        let Some(path) = path else { continue };
        let cors = route.cors.as_deref().and_then(|n| policy.cors_policy(n));
        let Some(cors) = cors else {
            unlisted.push(preflight(
                *index,
                route,
                path,
                Method::GET,
                Purpose::UnlistedPreflight {
                    origin: elsewhere.clone(),
                    adversary: None,
                },
            ));
            continue;
        };
        let Some(method) = preflight_method(&cors.methods) else {
            not_probed.push(NotProbed {
                route: route.name.clone(),
                what: "CORS preflights".to_owned(),
                reason: format!("CORS policy `{}` allows no method", cors.name),
            });
            continue;
        };
        let list = origins::allow_list(cors.active_origins());
        let base = match origins::allowed_origin(cors.active_origins()) {
            Some(origin) => {
                allowed.push(preflight(
                    *index,
                    route,
                    path,
                    method.clone(),
                    Purpose::AllowedPreflight {
                        expect_allow_origin: if list.is_any() {
                            "*".to_owned()
                        } else {
                            origin.clone()
                        },
                        origin: origin.clone(),
                        credentials: cors.credentials,
                    },
                ));
                origin
            }
            None => {
                not_probed.push(NotProbed {
                    route: route.name.clone(),
                    what: "allowed-origin preflight".to_owned(),
                    reason: format!(
                        "CORS policy `{}` lists no web origin in {}",
                        cors.name, policy.environment
                    ),
                });
                STAND_IN_ORIGIN.to_owned()
            }
        };
        for (adversary, origin) in origins::adversaries(&base, &list) {
            unlisted.push(preflight(
                *index,
                route,
                path,
                method.clone(),
                Purpose::UnlistedPreflight {
                    origin,
                    adversary: Some(adversary),
                },
            ));
        }
    }
    let security_txt = policy.disclosure.as_ref().map(|disclosure| {
        let (index, route) = policy.match_route(SECURITY_TXT_PATH);
        let lines = disclosure
            .to_security_txt()
            .lines()
            .map(str::to_owned)
            .collect();
        request(
            index,
            route,
            Method::GET,
            SECURITY_TXT_PATH,
            Purpose::SecurityTxt { lines },
        )
    });
    let mut requests: Vec<PlannedRequest> = gets
        .into_iter()
        .chain(security_txt)
        .chain(csrf)
        .chain(allowed)
        .chain(unlisted)
        .collect();
    if requests.len() > MAX_REQUESTS {
        for dropped in requests.split_off(MAX_REQUESTS) {
            not_probed.push(NotProbed {
                route: dropped.route.clone(),
                what: dropped.to_string(),
                reason: format!("not sent: the probe sends at most {MAX_REQUESTS} requests"),
            });
        }
    }
    Plan {
        requests,
        not_probed,
    }
}

/// `GET` when the policy allows it (the most ordinary preflight), else its first method.
fn preflight_method(methods: &[Method]) -> Option<Method> {
    if methods.contains(&Method::GET) {
        Some(Method::GET)
    } else {
        methods.first().cloned()
    }
}

/// The one cross-site `POST`: on the first route where the check applies and a refusal can
/// only come from it or from authentication. Login routes (lockout) are avoided so the probe
/// never counts as a failed login, WebSocket routes because a `POST` means nothing there, and
/// routes requiring credentials are used only if there is no other (authentication answers
/// first there, which is a refusal too but does not show the CSRF check at work).
fn cross_site_post(
    policy: &Policy,
    routes: &[(usize, &Route, Option<String>)],
    not_probed: &mut Vec<NotProbed>,
) -> Option<PlannedRequest> {
    let csrf = &policy.csrf;
    let what = "cross-site POST".to_owned();
    if csrf.mode != CsrfMode::Enforce {
        not_probed.push(NotProbed {
            route: "*".to_owned(),
            what,
            reason: format!(
                "[csrf] mode is `{}`: cross-site requests are not refused",
                csrf.mode.as_str()
            ),
        });
        return None;
    }
    let trusted = origins::allow_list(&csrf.trusted_origins.active);
    let attacker = portcullis::layers::origin::Origin::parse(CROSS_SITE_ORIGIN.as_bytes()).ok()?;
    let candidates = routes.iter().filter_map(|(index, route, path)| {
        let path = path.as_ref()?;
        let decoded = portcullis::policy::normalize_path(path).ok()?.decoded;
        let exempt = csrf.exempt.iter().any(|e| e.pattern.matches(&decoded));
        let route_trusts = route
            .cors
            .as_deref()
            .and_then(|n| policy.cors_policy(n))
            .filter(|c| c.credentials)
            .is_some_and(|c| origins::allow_list(c.active_origins()).allows(&attacker));
        let usable = !exempt
            && !route_trusts
            && !trusted.allows(&attacker)
            && route.lockout.is_none()
            && !route.websocket;
        usable.then_some((*index, *route, path))
    });
    let candidates: Vec<(usize, &Route, &String)> = candidates.collect();
    let chosen = candidates
        .iter()
        .find(|(_, route, _)| route.auth.mode != AuthMode::Required)
        .or_else(|| candidates.first())
        .copied();
    let Some((index, route, path)) = chosen else {
        not_probed.push(NotProbed {
            route: "*".to_owned(),
            what,
            reason: "no probed route is subject to the CSRF check (exempt, login or WebSocket \
                     routes, or the attacker's origin is trusted)"
                .to_owned(),
        });
        return None;
    };
    let cookie_name = csrf
        .session_cookies
        .first()
        .map_or(DEFAULT_COOKIE_NAME, String::as_str);
    let mut req = request(index, route, Method::POST, path, Purpose::CrossSitePost);
    req.headers = [
        (ORIGIN, CROSS_SITE_ORIGIN.to_owned()),
        (SEC_FETCH_SITE, "cross-site".to_owned()),
        (COOKIE, format!("{cookie_name}={PROBE_COOKIE_VALUE}")),
        // What a form on the attacker's page submits.
        (CONTENT_TYPE, "application/x-www-form-urlencoded".to_owned()),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, HeaderValue::from_str(&value).ok()?)))
    .collect();
    Some(req)
}

fn request(
    index: usize,
    route: &Route,
    method: Method,
    path: &str,
    purpose: Purpose,
) -> PlannedRequest {
    PlannedRequest {
        route_index: index,
        route: route.name.clone(),
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        purpose,
    }
}

fn preflight(
    index: usize,
    route: &Route,
    path: &str,
    method: Method,
    purpose: Purpose,
) -> PlannedRequest {
    let origin = match &purpose {
        Purpose::AllowedPreflight { origin, .. } | Purpose::UnlistedPreflight { origin, .. } => {
            origin.clone()
        }
        Purpose::Posture | Purpose::CrossSitePost | Purpose::SecurityTxt { .. } => String::new(),
    };
    let mut req = request(index, route, Method::OPTIONS, path, purpose);
    req.headers = [
        (ORIGIN, origin),
        (ACCESS_CONTROL_REQUEST_METHOD, method.to_string()),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, HeaderValue::from_str(&value).ok()?)))
    .collect();
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis::policy::{CompileOptions, load_str};

    fn policy(text: &str) -> Policy {
        load_str("t.toml", text, &CompileOptions::default())
            .unwrap()
            .policy
    }

    const TWO_ROUTES: &str = r#"
environment = "production"
[cors.app]
origins = ["https://app.example.com"]
methods = ["GET", "POST"]
credentials = true
[csrf]
session-cookies = ["sid"]
[[route]]
name = "account"
paths = ["/v1/account/*"]
cors = "app"
cache-control = "no-store, private"
[[route]]
name = "status"
paths = ["/v1/status"]
cache-control = "public, max-age=30"
"#;

    fn described(plan: &Plan) -> Vec<String> {
        plan.requests
            .iter()
            .map(|r| format!("{} {r}", r.route))
            .collect()
    }

    #[test]
    fn gets_then_the_post_then_preflights() {
        let plan = plan(&policy(TWO_ROUTES));
        assert_eq!(
            described(&plan),
            [
                "account GET /v1/account/probe",
                "status GET /v1/status",
                "default GET /portcullis-probe",
                "account POST /v1/account/probe (cross-site from https://evil.test, with a cookie)",
                "account OPTIONS /v1/account/probe (Origin: https://app.example.com)",
                "account OPTIONS /v1/account/probe (Origin: null, null origin)",
                "account OPTIONS /v1/account/probe (Origin: https://app.example.com.evil.test, suffix look-alike)",
                "account OPTIONS /v1/account/probe (Origin: https://evilapp.example.com, prefix look-alike)",
                "account OPTIONS /v1/account/probe (Origin: http://app.example.com, plain-http variant)",
                "status OPTIONS /v1/status (Origin: https://app.example.com, no CORS policy)",
                "default OPTIONS /portcullis-probe (Origin: https://app.example.com, no CORS policy)",
            ]
        );
        assert!(plan.not_probed.is_empty(), "{:?}", plan.not_probed);
        let post = &plan.requests[3];
        let header = |name: &str| {
            post.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap())
        };
        assert_eq!(header("cookie"), Some("sid=portcullis-probe"));
        assert_eq!(header("sec-fetch-site"), Some("cross-site"));
        assert_eq!(header("origin"), Some(CROSS_SITE_ORIGIN));
        let allowed = &plan.requests[4];
        assert_eq!(
            allowed.purpose,
            Purpose::AllowedPreflight {
                origin: "https://app.example.com".into(),
                expect_allow_origin: "https://app.example.com".into(),
                credentials: true,
            }
        );
    }

    #[test]
    fn exempt_and_login_routes_get_no_post_and_report_only_gets_none_at_all() {
        let text = TWO_ROUTES.replace(
            "session-cookies = [\"sid\"]",
            "exempt = [{ path = \"/v1/status\", reason = \"callback\" }]",
        );
        let exempted = plan(&policy(&text));
        let post = exempted
            .requests
            .iter()
            .find(|r| r.purpose == Purpose::CrossSitePost)
            .unwrap();
        // The first route still qualifies; the exempt one would never be picked.
        assert_eq!(post.route, "account");
        let cookie = post.headers.iter().find(|(n, _)| n == "cookie").unwrap();
        assert_eq!(cookie.1, "session=portcullis-probe");

        let text = TWO_ROUTES.replace("[csrf]", "[csrf]\nmode = \"report-only\"");
        let report_only = plan(&policy(&text));
        assert!(
            report_only
                .requests
                .iter()
                .all(|r| r.purpose != Purpose::CrossSitePost)
        );
        assert!(
            report_only
                .not_probed
                .iter()
                .any(|n| n.what == "cross-site POST")
        );
    }

    #[test]
    fn the_post_avoids_routes_that_require_credentials_when_it_can() {
        let text = format!(
            "{TWO_ROUTES}\n[auth]\n[auth.api-keys]\nprefix = \"pk\"\nstore = \"sqlite:/tmp/unused.db\"\n"
        )
        .replace(
            "cache-control = \"public, max-age=30\"",
            "cache-control = \"public, max-age=30\"\nauth = { mode = \"none\" }",
        );
        let plan = plan(&policy(&text));
        let post = plan
            .requests
            .iter()
            .find(|r| r.purpose == Purpose::CrossSitePost)
            .unwrap();
        assert_eq!(post.route, "status");
    }

    #[test]
    fn the_request_count_is_capped() {
        let mut text = TWO_ROUTES.to_owned();
        for i in 0..30 {
            text.push_str(&format!(
                "[[route]]\nname = \"r{i}\"\npaths = [\"/r{i}/*\"]\ncors = \"app\"\ncache-control = \"no-store\"\n"
            ));
        }
        let plan = plan(&policy(&text));
        assert_eq!(plan.requests.len(), MAX_REQUESTS);
        // Every route's GET made it in before any preflight.
        assert_eq!(
            plan.requests
                .iter()
                .filter(|r| r.purpose == Purpose::Posture)
                .count(),
            33
        );
        assert!(
            plan.not_probed
                .iter()
                .any(|n| n.reason.contains("at most 40 requests"))
        );
    }
}
