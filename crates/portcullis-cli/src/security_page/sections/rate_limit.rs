//! Rate limits: quotas, which routes spend from which, per-tenant rates, the headers clients
//! receive, and the store.

use portcullis::policy::Policy;
use portcullis::policy::rate_limit::{QuotaRule, RateKey};

use super::caching::{route_label, routes};
use super::refusal_table;
use crate::security_page::model::{Line, Section, Table, code, code_list, strong, text};
use crate::security_page::refusals;
use crate::security_page::wording::{duration, on_store_error, rate, store};

/// The quota headers, as `portcullis_layers::rate_limit::headers` writes them (a unit test in
/// `refusals` checks the names against that file).
pub const RESPONSE_HEADERS: [&str; 6] = [
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Bucket",
    "RateLimit-Policy",
    "RateLimit",
];

fn key(rule: &QuotaRule) -> Line {
    let mut line = match &rule.key {
        RateKey::Header(name) => vec![text("request header "), code(name.as_str())],
        RateKey::Ip => vec![text("client IP")],
        RateKey::ApiKey => vec![text("API key")],
        RateKey::Tenant => vec![text("tenant")],
        RateKey::Subject => vec![text("subject")],
    };
    line.push(text(if rule.key.before_auth() {
        " (counted before authentication)"
    } else {
        " (counted after authentication; without one, per client IP)"
    }));
    line
}

pub fn section(policy: &Policy) -> Section {
    let limits = &policy.rate_limit;
    let mut s = Section::new("rate-limits", "Rate limits");
    if limits.quotas.is_empty() {
        s.paragraph(vec![text("No rate limits.")]);
        return s;
    }
    s.subheading(vec![text("Quotas")]);
    let mut table = Table::new(&["Quota", "Limit", "Per", "Burst", "Counted per", "Why"]);
    for q in &limits.quotas {
        table.row(vec![
            vec![code(q.name.clone())],
            vec![text(q.rate.limit.to_string())],
            vec![text(duration(q.rate.per))],
            vec![text(q.rate.burst.to_string())],
            key(q),
            q.reason.clone().map(text).into_iter().collect(),
        ]);
    }
    s.table(table);
    s.subheading(vec![text("Which routes spend from which quotas")]);
    let mut table = Table::new(&["Route", "Quotas"]);
    for (route, is_default) in routes(policy) {
        table.row(vec![
            vec![strong(route_label(route, is_default))],
            code_list(
                route
                    .rate_limit
                    .iter()
                    .filter_map(|&i| limits.quotas.get(i))
                    .map(|q| q.name.clone()),
                "none (not rate-limited)",
            ),
        ]);
    }
    s.table(table);
    let tenants: Vec<(&QuotaRule, &String, String)> = limits
        .quotas
        .iter()
        .flat_map(|q| q.tenants.iter().map(move |(t, r)| (q, t, rate(r))))
        .collect();
    s.subheading(vec![text("Per-tenant rates")]);
    if tenants.is_empty() {
        s.paragraph(vec![text(
            "The policy gives no tenant its own rate: every tenant gets the quota's.",
        )]);
    } else {
        let mut table = Table::new(&["Quota", "Tenant", "Rate"]);
        for (q, tenant, r) in tenants {
            table.row(vec![
                vec![code(q.name.clone())],
                vec![code(tenant.clone())],
                vec![text(r)],
            ]);
        }
        s.table(table);
    }
    if policy.auth.api_keys.is_some() {
        s.paragraph(vec![
            text("Tenants' plans set in the key store ("),
            code("portcullis keys limit"),
            text(") come before the policy's rates and apply on every instance within a second."),
        ]);
    }
    s.subheading(vec![text("What clients see")]);
    let mut x_headers = vec![text("On every response of a limited route: ")];
    x_headers.extend(code_list(RESPONSE_HEADERS[..4].iter().copied(), ""));
    x_headers.push(text(
        " for the quota closest to refusing (Limit is its burst, Reset the seconds until it is full again, Bucket its name); ",
    ));
    x_headers.extend(code_list(RESPONSE_HEADERS[4..].iter().copied(), ""));
    x_headers.push(text(
        " listing every quota the request was counted in (draft-ietf-httpapi-ratelimit-headers).",
    ));
    s.paragraph(x_headers);
    s.paragraph(vec![
        text("A spent quota: "),
        code("429"),
        text(" with "),
        code("Retry-After"),
        text(" (whole seconds)."),
    ]);
    s.subheading(vec![text("Store")]);
    let mut store_line = vec![text("Counters: ")];
    store_line.extend(store(&limits.store));
    let fallback = if limits.store.is_shared() {
        store_line.push(text("."));
        format!(
            "limits still apply, counted by each instance alone (in memory, at most {} buckets) until the store is back.",
            limits.max_buckets
        )
    } else {
        store_line.push(text(format!("; at most {} buckets.", limits.max_buckets)));
        "limits still apply.".to_owned()
    };
    let mut error_line = vec![text("When the store cannot be reached: ")];
    error_line.extend(on_store_error(
        limits.on_store_error,
        &fallback,
        vec![
            text("nothing rate-limited is admitted ("),
            code("503"),
            text(")."),
        ],
    ));
    s.list(vec![store_line, error_line]);
    s.table(refusal_table(&[
        refusals::RATE_LIMITED,
        refusals::RATE_LIMIT_UNAVAILABLE,
    ]));
    s
}
