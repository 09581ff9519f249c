//! Lints: settings that parse but weaken the posture. Warnings in development and test; in
//! production the dangerous ones are errors, so a production gateway refuses to start on them.

use crate::Environment;
use crate::diagnostic::Diagnostic;
use crate::headers::HeaderRule;
use crate::key_path::KeyPath;
use crate::policy::Policy;

/// One year, the minimum HSTS max-age the preload list accepts.
const ONE_YEAR: u64 = 31_536_000;

pub(crate) fn lint(policy: &Policy) -> Vec<Diagnostic> {
    let production = policy.environment == Environment::Production;
    // An error in production, a warning elsewhere.
    let severe = |path: KeyPath, message: String| {
        if production {
            Diagnostic::error(path, message)
        } else {
            Diagnostic::warning(path, message)
        }
    };
    let mut out = Vec::new();

    if production && policy.errors.expose_detail {
        out.push(
            Diagnostic::error(KeyPath::root().key("errors").key("expose-detail"), "internal error detail must not be exposed in production")
                .with_help("remove `expose-detail` or set it to false; production error bodies carry only a code, a message and the correlation ID"),
        );
    }

    // Global rules are linted once, at `headers.set.NAME`; a route only for its own overrides.
    let global = KeyPath::root().key("headers").key("set");
    let mut rules: Vec<(KeyPath, &HeaderRule)> = policy
        .headers
        .iter()
        .map(|r| (global.key(r.name.as_str()), r))
        .collect();
    for (index, route) in policy.all_routes().enumerate() {
        let base = route_path(policy, index).key("headers").key("set");
        rules.extend(
            route
                .headers
                .iter()
                .filter(|r| !policy.headers.contains(r))
                .map(|r| (base.key(r.name.as_str()), r)),
        );
    }
    let serves_html = policy.all_routes().any(|r| r.html);
    for (key, rule) in rules {
        let value = rule.value.to_str().unwrap_or("");
        if rule.name == "content-security-policy"
            && !serves_html
            && rule.applies_in(policy.environment)
            && let Some(allowance) = csp_allowance(value)
        {
            out.push(
                Diagnostic::warning(
                    key.clone(),
                    format!(
                        "no route serves HTML (`html = true`), yet this CSP allows `{allowance}`: a CSP acts only when a response is rendered as a document, and then `default-src 'none'` is stricter"
                    ),
                )
                .with_help("a JSON API needs at most `default-src 'none'; frame-ancestors 'none'` (the built-in), or list it under `not-set` with the reason (seed 000); if a route serves pages, mark it `html = true`"),
            );
        }
        if rule.name == "strict-transport-security" {
            for problem in hsts_problems(value) {
                out.push(severe(key.clone(), problem));
            }
            // A browser that gets HSTS from `localhost` refuses plain HTTP to it afterwards,
            // for every local project, until max-age runs out.
            if policy.environment == Environment::Development
                && rule.applies_in(Environment::Development)
            {
                out.push(
                    Diagnostic::warning(
                        key.clone(),
                        "Strict-Transport-Security is sent in development: a browser then refuses plain HTTP to this host (often localhost) until max-age runs out",
                    )
                    .with_help("add `environments = [\"production\"]` to the rule, as the built-in one has"),
                );
            }
        }
        if rule.name == "x-frame-options"
            && !value.eq_ignore_ascii_case("DENY")
            && !value.eq_ignore_ascii_case("SAMEORIGIN")
        {
            out.push(severe(
                key.clone(),
                format!("X-Frame-Options `{value}` is ignored by browsers; use DENY or SAMEORIGIN"),
            ));
        }
        if rule.name == "x-content-type-options" && !value.eq_ignore_ascii_case("nosniff") {
            out.push(severe(
                key,
                "X-Content-Type-Options only has one valid value: nosniff".to_owned(),
            ));
        }
    }

    for (index, route) in policy.all_routes().enumerate() {
        let base = route_path(policy, index);
        if route.html {
            out.extend(html_without_csp(policy, route, &base, &severe));
        }
        let sends_hsts = route
            .headers
            .iter()
            .any(|r| r.name == "strict-transport-security" && r.applies_in(policy.environment));
        let hsts_not_set = route
            .not_set
            .iter()
            .any(|n| n.name == "strict-transport-security");
        if production && !sends_hsts && !hsts_not_set {
            out.push(
                Diagnostic::warning(
                    base.clone(),
                    format!(
                        "route `{}` sends no Strict-Transport-Security in production",
                        route.name
                    ),
                )
                .with_help("set it, or list it under `not-set` with the reason"),
            );
        }
        let cache = route
            .cache_control
            .to_str()
            .unwrap_or("")
            .to_ascii_lowercase();
        if cache.contains("public") && cache.contains("private") {
            out.push(severe(
                base.key("cache-control"),
                "Cache-Control says both `public` and `private`".to_owned(),
            ));
        }
    }

    if policy
        .server
        .trusted_proxies
        .iter()
        .any(|net| net.prefix_len() == 0)
    {
        out.push(severe(
            KeyPath::root().key("server").key("trusted-proxies"),
            "a /0 range trusts every client's X-Forwarded-For: anyone can pick the client IP the gateway logs and limits".to_owned(),
        ));
    }
    out.extend(trusted_proxies_denied(policy));
    out.extend(shadowed_patterns(policy));
    out.extend(per_ip_without_trusted_proxies(policy));
    out.extend(crate::auth::lint_jwks_urls(&policy.auth, production));
    out
}

/// An HTML route without a Content-Security-Policy: nothing limits what an injected script
/// may load or where it may send data. Not sending one with a stated reason (`not-set`) is a
/// decision a reviewer can read, so it is a warning; silence is severe.
fn html_without_csp(
    policy: &Policy,
    route: &crate::Route,
    base: &KeyPath,
    severe: &dyn Fn(KeyPath, String) -> Diagnostic,
) -> Option<Diagnostic> {
    let sends = route
        .headers
        .iter()
        .any(|r| r.name == "content-security-policy" && r.applies_in(policy.environment));
    if sends {
        return None;
    }
    let deliberate = route
        .not_set
        .iter()
        .any(|n| n.name == "content-security-policy");
    let message = format!(
        "route `{}` serves HTML and sends no Content-Security-Policy{}",
        route.name,
        if deliberate {
            " (it is listed under `not-set`)"
        } else {
            ""
        }
    );
    let diag = if deliberate {
        Diagnostic::warning(base.key("html"), message)
    } else {
        severe(base.key("html"), message)
    };
    Some(diag.with_help("set one on the route (`[route.headers.set]`) or globally: at least `default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'`"))
}

/// The first directive of a CSP that lets a document load or do something (`script-src
/// 'self'`), or `None` when the policy only forbids (`default-src 'none'`, `frame-ancestors
/// 'none'`, `sandbox`, ...): the part that means nothing on a response nobody renders.
pub(crate) fn csp_allowance(value: &str) -> Option<&str> {
    value
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .find(|directive| {
            let mut words = directive.split_ascii_whitespace();
            let name = words.next().unwrap_or("").to_ascii_lowercase();
            let sources: Vec<&str> = words.collect();
            let forbids_all = sources.len() == 1 && sources[0].eq_ignore_ascii_case("'none'");
            let takes_sources = name.ends_with("-src")
                || matches!(
                    name.as_str(),
                    "base-uri" | "form-action" | "frame-ancestors" | "navigate-to"
                );
            takes_sources && !forbids_all
        })
}

/// A trusted proxy inside a `deny` range: the resolver skips trusted hops, so the deny only
/// bites when the proxy calls for itself, not for the clients it forwards; almost certainly not
/// what was meant.
fn trusted_proxies_denied(policy: &Policy) -> Vec<Diagnostic> {
    let mut lists = vec![(KeyPath::root().key("ip-filter"), &policy.ip_filter)];
    for (index, route) in policy.all_routes().enumerate() {
        lists.push((route_path(policy, index).key("ip-filter"), &route.ip_filter));
    }
    let mut out = Vec::new();
    for (path, filter) in lists {
        for deny in &filter.deny {
            let overlap = policy
                .server
                .trusted_proxies
                .iter()
                .find(|t| deny.contains(&t.network()) || t.contains(&deny.network()));
            if let Some(trusted) = overlap {
                out.push(
                    Diagnostic::warning(
                        path.key("deny"),
                        format!("`{deny}` overlaps the trusted proxy range `{trusted}`"),
                    )
                    .with_help("requests a trusted proxy forwards are judged by the client behind it, so this denies only the proxy's own requests; remove the overlap"),
                );
            }
        }
    }
    out
}

/// A pattern that an earlier route's pattern covers never matches first: its route's posture
/// never applies to those paths. A route all of whose patterns are shadowed is unreachable.
fn shadowed_patterns(policy: &Policy) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (index, route) in policy.routes.iter().enumerate() {
        let mut shadowed = 0;
        for (p, pattern) in route.patterns.iter().enumerate() {
            let earlier = policy.routes[..index].iter().find_map(|r| {
                r.patterns
                    .iter()
                    .find(|e| e.covers(pattern))
                    .map(|e| (r.name.as_str(), e))
            });
            if let Some((name, by)) = earlier {
                shadowed += 1;
                out.push(
                    Diagnostic::warning(
                        KeyPath::root().key("route").index(index).key("paths").index(p),
                        format!(
                            "`{pattern}` never matches first: `{by}` of the earlier route `{name}` takes every path it would"
                        ),
                    )
                    .with_help("routes are tried in file order: move the more specific route first, or remove the pattern"),
                );
            }
        }
        if shadowed > 0 && shadowed == route.patterns.len() {
            out.push(
                Diagnostic::warning(
                    KeyPath::root().key("route").index(index).key("name"),
                    format!(
                        "route `{}` is unreachable: earlier routes take every path it names",
                        route.name
                    ),
                )
                .with_help("move it before the routes that cover it"),
            );
        }
    }
    out
}

/// Counting per client IP behind a load balancer without `trusted-proxies` counts the balancer:
/// every client shares one budget (or one lockout).
fn per_ip_without_trusted_proxies(policy: &Policy) -> Vec<Diagnostic> {
    if !policy.server.trusted_proxies.is_empty() {
        return Vec::new();
    }
    let help = "if the gateway runs behind a load balancer or proxy, list it in `[server] trusted-proxies` so the client IP is the client's; if clients connect directly, ignore this";
    let mut out = Vec::new();
    for quota in &policy.rate_limit.quotas {
        if quota.key == crate::rate_limit::RateKey::Ip {
            out.push(
                Diagnostic::warning(
                    KeyPath::root().key("rate-limit").key("quotas").key(&quota.name).key("key"),
                    format!("quota `{}` counts per client IP, and no proxy is trusted: behind a load balancer every client would share the balancer's budget", quota.name),
                )
                .with_help(help),
            );
        }
    }
    for rule in &policy.lockout.rules {
        if rule.per_ip {
            out.push(
                Diagnostic::warning(
                    KeyPath::root().key("lockout").key("rules").key(&rule.name),
                    format!("lockout rule `{}` counts per client IP, and no proxy is trusted: behind a load balancer one client's failures would lock out everyone", rule.name),
                )
                .with_help(help),
            );
        }
    }
    out
}

/// The key path of a route by its index in [`Policy::all_routes`].
fn route_path(policy: &Policy, index: usize) -> KeyPath {
    if index < policy.routes.len() {
        KeyPath::root().key("route").index(index)
    } else {
        KeyPath::root().key("default-route")
    }
}

/// What is wrong with an HSTS value, per RFC 6797 and the preload list's rules.
pub(crate) fn hsts_problems(value: &str) -> Vec<String> {
    let mut max_age = None;
    let mut include_subdomains = false;
    let mut preload = false;
    for directive in value.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let (name, arg) = directive
            .split_once('=')
            .map_or((directive, None), |(n, a)| {
                (n.trim(), Some(a.trim().trim_matches('"')))
            });
        match name.to_ascii_lowercase().as_str() {
            "max-age" => max_age = arg.and_then(|a| a.parse::<u64>().ok()),
            "includesubdomains" => include_subdomains = true,
            "preload" => preload = true,
            _ => {}
        }
    }
    let mut problems = Vec::new();
    let Some(max_age) = max_age else {
        problems.push("Strict-Transport-Security needs a numeric max-age".to_owned());
        return problems;
    };
    if preload && (!include_subdomains || max_age < ONE_YEAR) {
        problems.push("HSTS `preload` requires `includeSubDomains` and a max-age of at least one year (31536000)".to_owned());
    } else if max_age < ONE_YEAR {
        problems.push(format!(
            "HSTS max-age {max_age} is under one year; browsers forget it quickly"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_allowances() {
        assert_eq!(
            csp_allowance("default-src 'none'; frame-ancestors 'none'"),
            None
        );
        assert_eq!(csp_allowance("default-src 'none'; sandbox"), None);
        assert_eq!(
            csp_allowance("default-src 'none'; script-src 'self' https://cdn.example"),
            Some("script-src 'self' https://cdn.example")
        );
        assert_eq!(
            csp_allowance("frame-ancestors 'self'"),
            Some("frame-ancestors 'self'")
        );
        assert_eq!(csp_allowance(""), None);
    }

    #[test]
    fn hsts_rules() {
        assert!(hsts_problems("max-age=63072000; includeSubDomains; preload").is_empty());
        assert!(hsts_problems("max-age=31536000").is_empty());
        assert_eq!(hsts_problems("max-age=63072000; preload").len(), 1);
        assert_eq!(hsts_problems("max-age=600").len(), 1);
        assert_eq!(hsts_problems("includeSubDomains").len(), 1);
    }
}
