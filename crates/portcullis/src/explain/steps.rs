//! The reasons: for each pipeline step, what in the policy and the request decides it.
//!
//! Each reason is computed with the function the layer itself uses (route matching, the client
//! IP resolver, the IP rules, the CORS allow-list, the CSRF evaluation), so a reason can only
//! disagree with the run if the stack wires a layer differently from the policy: the tests in
//! `tests/explain.rs` send the same requests to a live gateway to catch that.

use std::net::IpAddr;

use http::{HeaderMap, Method, Request, header};
use portcullis_layers::MatchedRoute;
use portcullis_layers::client_ip;
use portcullis_layers::csrf::CsrfVerdict;
use portcullis_layers::ip_filter::IpRules;
use portcullis_layers::origin::Origin;
use portcullis_policy::auth::{AuthMode, Credential};
use portcullis_policy::csrf::CsrfMode;
use portcullis_policy::ip_filter::IpFilter;
use portcullis_policy::rate_limit::{QuotaRule, RateKey};
use portcullis_policy::{Policy, Route, normalize_path};

use super::ExplainRequest;
use crate::cross_origin;

/// One step's reason; `applies`: the policy has something to say about this request here.
pub(super) struct Reason {
    pub applies: bool,
    pub text: String,
}

impl Reason {
    fn applies(text: impl Into<String>) -> Self {
        Self {
            applies: true,
            text: text.into(),
        }
    }

    fn skip(text: impl Into<String>) -> Self {
        Self {
            applies: false,
            text: text.into(),
        }
    }
}

pub(super) struct Reasons {
    /// In pipeline order.
    pub steps: Vec<(&'static str, Reason)>,
    pub route: Option<String>,
    /// The request carries a credential (a bearer token, an API key header, a query token).
    pub credential_presented: bool,
    /// The global IP lists refuse this client (so `ip_denied` is theirs, not the route's).
    pub global_ip_denied: bool,
}

impl Reasons {
    /// The step a refusal code comes from (`""`: none of these steps, e.g. framing).
    pub fn step_of_code(&self, code: &str) -> &'static str {
        match code {
            "ip_denied" if self.global_ip_denied => "ip-filter",
            "ip_denied" => "route-ip-filter",
            "bad_request" => "route",
            "cors_preflight_refused" | "websocket_origin_refused" => "cors",
            "rate_limited" | "rate_limit_unavailable" => "rate-limit",
            "locked_out" | "lockout_unavailable" => "lockout",
            "csrf_origin_mismatch" => "csrf",
            "authentication_required"
            | "invalid_credentials"
            | "insufficient_scope"
            | "registration_required"
            | "tenant_mismatch"
            | "subject_suspended"
            | "auth_unavailable"
            | "store_unavailable"
            | "signature_required"
            | "invalid_signature"
            | "signature_expired"
            | "signature_replayed"
            | "payload_too_large" => "auth",
            _ => "",
        }
    }
}

pub(super) fn reasons(policy: &Policy, request: &ExplainRequest) -> Reasons {
    let headers = &request.headers;
    let mut steps = Vec::new();

    let trusted = &policy.server.trusted_proxies;
    let client = client_ip::resolve(request.peer.ip(), headers, trusted);
    steps.push(("client-ip", client_ip_reason(policy, request, client)));

    let global = ip_reason(&policy.ip_filter, client, "`[ip-filter]`");
    let global_ip_denied = global.1;
    steps.push(("ip-filter", global.0));

    let path = request.target.path();
    let matched = normalize_path(path).map(|n| {
        let (index, route) = policy.match_route(&n.decoded);
        (index, route, n)
    });
    let (index, route) = match &matched {
        Ok((index, route, normalized)) => {
            let how = match route
                .patterns
                .iter()
                .find(|p| p.matches(&normalized.decoded))
            {
                Some(pattern) => format!("pattern `{pattern}`"),
                None => "no route's pattern matches: the default route".to_owned(),
            };
            steps.push((
                "route",
                Reason::applies(format!(
                    "`{}` ({how}; normalised path `{}`)",
                    route.name, normalized.decoded
                )),
            ));
            (*index, *route)
        }
        Err(e) => {
            steps.push((
                "route",
                Reason::applies(format!("the path cannot be normalised: {e}")),
            ));
            return Reasons {
                steps,
                route: None,
                credential_presented: false,
                global_ip_denied,
            };
        }
    };
    steps.push((
        "route-ip-filter",
        ip_reason(&route.ip_filter, client, &format!("route `{}`", route.name)).0,
    ));
    steps.push(("cors", cors_reason(policy, route, request)));
    steps.push((
        "rate-limit",
        rate_limit_reason(policy, route, client, headers),
    ));
    steps.push(("lockout", lockout_reason(policy, route)));
    let (auth, credential_presented) = auth_reason(policy, route, request);
    steps.push(("auth", auth));
    let canonical = matched
        .as_ref()
        .map(|(_, _, n)| n.decoded.clone())
        .unwrap_or_default();
    steps.push((
        "csrf",
        csrf_reason(policy, index, route, request, &canonical),
    ));

    Reasons {
        steps,
        route: Some(route.name.clone()),
        credential_presented,
        global_ip_denied,
    }
}

fn client_ip_reason(policy: &Policy, request: &ExplainRequest, client: IpAddr) -> Reason {
    let peer = request.peer.ip();
    let trusted = &policy.server.trusted_proxies;
    if trusted.is_empty() {
        return Reason::applies(format!(
            "{client}: the peer (no `[server] trusted-proxies`, so forwarding headers are ignored)"
        ));
    }
    if client == peer {
        Reason::applies(format!(
            "{client}: the peer (not a trusted proxy, or nothing untrusted forwarded)"
        ))
    } else {
        Reason::applies(format!(
            "{client}: the first untrusted address from the right of the forwarding header (peer {peer} is a trusted proxy)"
        ))
    }
}

/// The reason, and whether the lists refuse the client.
fn ip_reason(filter: &IpFilter, client: IpAddr, scope: &str) -> (Reason, bool) {
    let rules = IpRules::new(filter.allow.clone(), filter.deny.clone(), scope);
    if rules.is_empty() {
        return (Reason::skip(format!("{scope}: no IP lists")), false);
    }
    match rules.check(Some(client)) {
        Ok(()) => (
            Reason::applies(format!("{scope}: {client} is admitted")),
            false,
        ),
        Err(denied) => (
            Reason::applies(format!("{scope}: {client} is {denied}")),
            true,
        ),
    }
}

fn cors_reason(policy: &Policy, route: &Route, request: &ExplainRequest) -> Reason {
    let headers = &request.headers;
    let Some(raw) = headers.get(header::ORIGIN) else {
        return Reason::skip("no Origin header: not a cross-origin browser request");
    };
    let preflight = request.method == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let kind = if preflight { "preflight" } else { "request" };
    let shown = String::from_utf8_lossy(raw.as_bytes());
    let Some(cors) = route.cors.as_deref().and_then(|n| policy.cors_policy(n)) else {
        return Reason::applies(format!(
            "{kind} from `{shown}`: route `{}` has no CORS policy, so cross-origin access is denied (no CORS headers{})",
            route.name,
            if preflight {
                "; the preflight is refused"
            } else {
                ""
            }
        ));
    };
    let origin = match Origin::parse(raw.as_bytes()) {
        Ok(origin) => origin,
        Err(e) => {
            return Reason::applies(format!(
                "{kind} from `{shown}`: not an origin ({e}); CORS policy `{}` answers nothing",
                cors.name
            ));
        }
    };
    let matched = cors
        .active_origins()
        .iter()
        .find(|entry| cross_origin::allowed_origins(std::slice::from_ref(*entry)).allows(&origin));
    match matched {
        Some(entry) => Reason::applies(format!(
            "{kind} from `{shown}`: matches `{entry}` of CORS policy `{}`: the origin is reflected{}",
            cors.name,
            if cors.credentials {
                ", with credentials"
            } else {
                ""
            }
        )),
        None => Reason::applies(format!(
            "{kind} from `{shown}`: not listed in CORS policy `{}`: no CORS headers{}",
            cors.name,
            if preflight {
                "; the preflight is refused"
            } else {
                ""
            }
        )),
    }
}

fn rate_limit_reason(
    policy: &Policy,
    route: &Route,
    client: IpAddr,
    headers: &HeaderMap,
) -> Reason {
    if route.rate_limit.is_empty() {
        return Reason::skip(format!("route `{}` has no quotas", route.name));
    }
    let bucket = client_ip::bucket(client, policy.server.ipv6_bucket);
    let quotas: Vec<String> = route
        .rate_limit
        .iter()
        .filter_map(|&i| policy.rate_limit.quotas.get(i))
        .map(|q| describe_quota(q, bucket, headers))
        .collect();
    Reason::applies(format!(
        "{} (explain counts from zero: a first request)",
        quotas.join("; ")
    ))
}

fn describe_quota(quota: &QuotaRule, bucket: ipnet::IpNet, headers: &HeaderMap) -> String {
    let rate = quota.rate;
    let key = match &quota.key {
        RateKey::Ip => format!("key `ip:{bucket}`"),
        RateKey::Header(name) => match headers.get(name) {
            Some(v) => format!("key `{name}: {}`", String::from_utf8_lossy(v.as_bytes())),
            None => format!("no `{name}` header, so key `ip:{bucket}`"),
        },
        RateKey::ApiKey => {
            "per verified API key (after authentication; without one, per client IP)".to_owned()
        }
        RateKey::Tenant => {
            "per verified tenant (after authentication; without one, per client IP)".to_owned()
        }
        RateKey::Subject => {
            "per verified subject (after authentication; without one, per client IP)".to_owned()
        }
    };
    let tenants = if quota.tenants.is_empty() {
        String::new()
    } else {
        format!(", {} tenant rate(s)", quota.tenants.len())
    };
    format!(
        "quota `{}`: {}/{} burst {}, {key}{tenants}",
        quota.name,
        rate.limit,
        humantime::format_duration(rate.per),
        rate.burst
    )
}

fn lockout_reason(policy: &Policy, route: &Route) -> Reason {
    let Some(rule) = route.lockout.and_then(|i| policy.lockout.rules.get(i)) else {
        return Reason::skip(format!("route `{}` is not a login route", route.name));
    };
    let mut per = Vec::new();
    if let Some(field) = &rule.account_field {
        per.push(format!("account (field `{field}`)"));
    }
    if rule.per_ip {
        per.push("client IP".to_owned());
    }
    Reason::applies(format!(
        "login route, rule `{}`: {} failures in {} lock the {} for {} (doubling up to {}); explain starts unlocked",
        rule.name,
        rule.failures,
        humantime::format_duration(rule.window),
        per.join(" and "),
        humantime::format_duration(rule.lockout),
        humantime::format_duration(rule.max_lockout),
    ))
}

/// The reason, and whether the request presents a credential.
fn auth_reason(policy: &Policy, route: &Route, request: &ExplainRequest) -> (Reason, bool) {
    let headers = &request.headers;
    let mut presented = Vec::new();
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let scheme = v
            .to_str()
            .ok()
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        presented.push(format!("Authorization: {scheme} …"));
    }
    for name in &policy.csrf.api_key_headers {
        if headers.contains_key(name) {
            presented.push(format!("{name}"));
        }
    }
    if let Some(param) = &route.auth.query_token
        && request
            .target
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some(param)))
    {
        presented.push(format!("?{param}="));
    }
    let credential_presented = !presented.is_empty() && route.auth.mode != AuthMode::None;
    let accepts: Vec<&str> = route
        .auth
        .credentials
        .iter()
        .map(|c| match c {
            Credential::ApiKey => "an API key",
            Credential::Jwt => "a JWT",
            Credential::SignedKey => "a signed API-key request",
        })
        .collect();
    let scopes = if route.auth.scopes.is_empty() {
        String::new()
    } else {
        format!(" with scope(s) {}", route.auth.scopes.join(", "))
    };
    let shown = if presented.is_empty() {
        "the request presents none".to_owned()
    } else {
        format!("the request presents {}", presented.join(", "))
    };
    let reason = match route.auth.mode {
        AuthMode::None => Reason::skip(format!(
            "route `{}` reads no credential (identity headers from the client are stripped)",
            route.name
        )),
        AuthMode::Optional => Reason::applies(format!(
            "optional: {}{scopes} identifies the caller, none is fine; {shown}",
            accepts.join(" or ")
        )),
        AuthMode::Required => Reason::applies(format!(
            "required: {}{scopes}{}; {shown}",
            accepts.join(" or "),
            if route.auth.require_registered {
                ", guests refused"
            } else {
                ""
            }
        )),
    };
    (reason, credential_presented)
}

fn csrf_reason(
    policy: &Policy,
    index: usize,
    route: &Route,
    request: &ExplainRequest,
    canonical: &str,
) -> Reason {
    let Some(config) = cross_origin::csrf_config(policy) else {
        return Reason::skip("the CSRF check is off (`[csrf] mode = \"off\"`)");
    };
    // What the CSRF layer sees: the request after routing, on its canonical path.
    let mut req = Request::new(());
    *req.method_mut() = request.method.clone();
    *req.headers_mut() = request.headers.clone();
    if let Ok(uri) = canonical.parse() {
        *req.uri_mut() = uri;
    }
    req.extensions_mut().insert(MatchedRoute {
        index,
        name: route.name.as_str().into(),
    });
    let report_only = policy.csrf.mode == CsrfMode::ReportOnly;
    match config.evaluate(&req) {
        CsrfVerdict::Pass(reason) => Reason::applies(reason.to_string()),
        CsrfVerdict::Fail(reason) if report_only => Reason::applies(format!(
            "report-only: would be refused ({reason}); logged and let through"
        )),
        CsrfVerdict::Fail(reason) => Reason::applies(format!("cross-site: {reason}")),
    }
}
