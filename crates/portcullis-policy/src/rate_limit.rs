//! `[rate-limit]`: named quotas, the routes they apply to, per-tenant overrides, and where the
//! counters live.
//!
//! ```toml
//! [rate-limit]
//! store = { env = "REDIS_URL" }     # or "memory" (the default)
//! on-store-error = "fail-open"      # Redis unreachable: this instance's own limits; or "fail-closed": 503
//! default = ["per-key"]             # quotas of every route without its own `rate-limit`
//!
//! [rate-limit.quotas.per-key]
//! key = "api-key"                   # ip | api-key | tenant | subject | header (with `header = "x-…"`)
//! limit = 10
//! per = "1s"
//! burst = 20                        # default: `limit`
//! reason = "seed 004: 10 requests/second per API key"
//!
//! [rate-limit.tenants.acme]
//! per-key = { limit = 100, per = "1s", burst = 200 }
//!
//! [[route]]
//! rate-limit = ["per-key", "per-ip-hourly"]   # `[]`: no quota on this route
//! ```
//!
//! A quota is one budget per key value: `per-key` on two routes is one budget for each API key,
//! spent by both. For a separate budget per route, declare two quotas.
//!
//! The promise, for each key: in any interval of length T, admitted ≤ burst + limit·T/per, also
//! across every gateway instance sharing one Redis (the algorithm is in `portcullis_store`'s
//! `rate_limit` module).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::raw::RawSecret;
use crate::state_store::{self, StateStore};

/// `[rate-limit]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawRateLimits {
    pub store: Option<RawSecret>,
    pub on_store_error: Option<String>,
    pub max_buckets: Option<i64>,
    pub default: Option<Vec<String>>,
    pub quotas: Option<BTreeMap<String, RawQuota>>,
    pub tenants: Option<BTreeMap<String, BTreeMap<String, RawRate>>>,
}

/// `[rate-limit.quotas.NAME]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawQuota {
    pub key: Option<String>,
    pub header: Option<String>,
    pub limit: Option<i64>,
    pub per: Option<String>,
    pub burst: Option<i64>,
    pub reason: Option<String>,
}

/// A tenant's override of one quota, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawRate {
    pub limit: Option<i64>,
    pub per: Option<String>,
    pub burst: Option<i64>,
}

/// `[rate-limit]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Where the counters live.
    pub store: StateStore,
    /// What happens while the shared store cannot be reached.
    pub on_store_error: OnStoreError,
    /// Most buckets the in-memory store holds (also the fallback's bound).
    pub max_buckets: usize,
    /// Every quota, sorted by name; routes refer to them by index.
    pub quotas: Vec<QuotaRule>,
    /// The quotas of routes without their own `rate-limit`, as indices into `quotas`.
    pub default: Vec<usize>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            store: StateStore::Memory,
            on_store_error: OnStoreError::FailOpen,
            max_buckets: DEFAULT_MAX_BUCKETS,
            quotas: Vec::new(),
            default: Vec::new(),
        }
    }
}

/// What a rate-limited request gets while the shared store cannot be reached: with `FailOpen`,
/// limits still apply, counted by this instance alone (seed 002's in-memory fallback; with N
/// instances a key may get up to N times its budget until the store is back); with
/// `FailClosed`, `503`: nothing rate-limited is admitted without the shared count.
pub use crate::state_store::OnStoreError;

/// One named quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRule {
    pub name: String,
    /// What the budget is counted per.
    pub key: RateKey,
    pub rate: Rate,
    pub reason: Option<String>,
    /// Tenants with their own rate for this quota, sorted by tenant.
    pub tenants: Vec<(String, Rate)>,
}

impl QuotaRule {
    /// The rate for a request from `tenant`.
    pub fn rate_for(&self, tenant: Option<&str>) -> Rate {
        tenant
            .and_then(|t| {
                self.tenants
                    .binary_search_by(|(name, _)| name.as_str().cmp(t))
                    .ok()
            })
            .map_or(self.rate, |i| self.tenants[i].1)
    }
}

/// `limit` requests per `per`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub limit: u32,
    pub per: Duration,
    pub burst: u32,
}

/// What a quota's budget is counted per. A request that lacks the value (no API key on the
/// request, no such header) is counted per client IP instead, so leaving it out never escapes
/// the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    /// The client IP as `[server] trusted-proxies` resolves it (IPv6 by `ipv6-bucket`).
    Ip,
    /// The verified API key (its id; every key of a rotation pair shares nothing).
    ApiKey,
    /// The verified tenant.
    Tenant,
    /// The verified subject (JWT `sub`, or an API key's subject label).
    Subject,
    /// A request header's value, as sent.
    Header(HeaderName),
}

impl RateKey {
    /// Whether the key is known before authentication: those quotas are counted before
    /// credentials are checked, so a flood of bad credentials is limited too.
    pub fn before_auth(&self) -> bool {
        matches!(self, Self::Ip | Self::Header(_))
    }

    /// The name written in the policy.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::ApiKey => "api-key",
            Self::Tenant => "tenant",
            Self::Subject => "subject",
            Self::Header(_) => "header",
        }
    }
}

pub const DEFAULT_MAX_BUCKETS: usize = 1_000_000;
/// The store's clock is in microseconds: a quota must leave at least that much between two
/// requests at its sustained rate.
const MIN_EMISSION_INTERVAL: Duration = Duration::from_micros(1);

pub(crate) fn build(cx: &mut Cx, raw: Option<RawRateLimits>) -> RateLimits {
    let at = KeyPath::root().key("rate-limit");
    let Some(raw) = raw else {
        return RateLimits::default();
    };
    let store = state_store::build(cx, &at.key("store"), raw.store);
    let on_store_error = state_store::on_store_error(
        cx,
        &at.key("on-store-error"),
        raw.on_store_error.as_deref(),
        &store,
    );
    let max_buckets = state_store::capacity(
        cx,
        &at.key("max-buckets"),
        raw.max_buckets,
        DEFAULT_MAX_BUCKETS,
    );

    let mut quotas: Vec<QuotaRule> = raw
        .quotas
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, q)| quota(cx, &at.key("quotas").key(&name), name, q))
        .collect();
    for (tenant, overrides) in raw.tenants.unwrap_or_default() {
        let tenant_at = at.key("tenants").key(&tenant);
        if tenant.trim().is_empty() {
            cx.error(tenant_at.clone(), "a tenant name cannot be empty");
        }
        for (name, raw_rate) in overrides {
            let rate_at = tenant_at.key(&name);
            let Some(rule) = quotas.iter_mut().find(|q| q.name == name) else {
                cx.error(rate_at, format!("no quota named `{name}`"));
                continue;
            };
            if rule.key.before_auth() {
                cx.error(
                    rate_at,
                    format!(
                        "quota `{name}` is counted per {}, before authentication, when the tenant is not known yet; tenant rates apply to quotas keyed by api-key, tenant or subject",
                        rule.key.as_str()
                    ),
                );
                continue;
            }
            let Some(limit) = raw_rate.limit else {
                cx.missing(rate_at.key("limit"), "a tenant's rate needs `limit`");
                continue;
            };
            // Without `per`, the quota's own period.
            let per = match raw_rate.per.as_deref() {
                None => Some(rule.rate.per),
                Some(text) => period(cx, &rate_at, text),
            };
            if let Some(rate) = rate(cx, &rate_at, limit, per, raw_rate.burst) {
                rule.tenants.push((tenant.clone(), rate));
            }
        }
    }
    let default = names(cx, &at.key("default"), raw.default, &quotas).unwrap_or_default();
    RateLimits {
        store,
        on_store_error,
        max_buckets,
        quotas,
        default,
    }
}

fn quota(cx: &mut Cx, at: &KeyPath, name: String, raw: RawQuota) -> Option<QuotaRule> {
    // Names are sent to clients (`X-RateLimit-Bucket`, `RateLimit-Policy`) and keyed on in
    // Redis: a small alphabet keeps them valid everywhere.
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid_name {
        cx.error(
            at.clone(),
            format!("quota name `{name}`: use 1 to 64 of a-z, 0-9, `-` and `_`"),
        );
        return None;
    }
    let key = match raw.key.as_deref() {
        None => {
            cx.missing(
                at.key("key"),
                "a quota needs `key`: ip, api-key, tenant, subject or header",
            );
            return None;
        }
        Some("ip") => RateKey::Ip,
        Some("api-key") => RateKey::ApiKey,
        Some("tenant") => RateKey::Tenant,
        Some("subject") => RateKey::Subject,
        Some("header") => {
            let Some(header) = raw.header.as_deref() else {
                cx.missing(
                    at.key("header"),
                    "`key = \"header\"` needs `header`, the header whose value is counted",
                );
                return None;
            };
            RateKey::Header(cx.header_name(&at.key("header"), header)?)
        }
        Some(other) => {
            cx.error(
                at.key("key"),
                format!("`{other}`: expected ip, api-key, tenant, subject or header"),
            );
            return None;
        }
    };
    if raw.header.is_some() && !matches!(key, RateKey::Header(_)) {
        cx.error(
            at.key("header"),
            "`header` applies only with `key = \"header\"`",
        );
    }
    let Some(limit) = raw.limit else {
        cx.missing(
            at.key("limit"),
            "a quota needs `limit`, the requests allowed per `per`",
        );
        return None;
    };
    let per = match raw.per.as_deref() {
        None => {
            cx.missing(
                at.key("per"),
                "a quota needs `per`, e.g. \"1s\", \"1m\" or \"1h\"",
            );
            None
        }
        Some(text) => period(cx, at, text),
    };
    let rate = rate(cx, at, limit, per, raw.burst)?;
    Some(QuotaRule {
        name,
        key,
        rate,
        reason: raw.reason,
        tenants: Vec::new(),
    })
}

fn rate(
    cx: &mut Cx,
    at: &KeyPath,
    limit: i64,
    per: Option<Duration>,
    burst: Option<i64>,
) -> Option<Rate> {
    let count = |cx: &mut Cx, key: &str, n: i64| -> Option<u32> {
        match u32::try_from(n) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                cx.error(
                    at.key(key),
                    format!("{n}: expected a whole number from 1 to {}", u32::MAX),
                );
                None
            }
        }
    };
    let limit = count(cx, "limit", limit);
    let burst = match burst {
        None => limit,
        Some(b) => count(cx, "burst", b),
    };
    let (limit, burst, per) = (limit?, burst?, per?);
    if per / limit < MIN_EMISSION_INTERVAL {
        cx.error(
            at.key("limit"),
            format!(
                "{limit} per {} leaves under a microsecond between requests, finer than the counters keep",
                humantime::format_duration(per)
            ),
        );
        return None;
    }
    Some(Rate { limit, per, burst })
}

fn period(cx: &mut Cx, at: &KeyPath, text: &str) -> Option<Duration> {
    Some(cx.duration(at.key("per"), Some(text), Duration::ZERO)).filter(|d| !d.is_zero())
}

/// Resolves a list of quota names to indices, reporting unknown and repeated names.
pub(crate) fn names(
    cx: &mut Cx,
    at: &KeyPath,
    raw: Option<Vec<String>>,
    quotas: &[QuotaRule],
) -> Option<Vec<usize>> {
    let raw = raw?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, name) in raw.iter().enumerate() {
        match quotas.iter().position(|q| &q.name == name) {
            Some(index) if seen.insert(index) => out.push(index),
            Some(_) => cx.error(at.index(i), format!("`{name}` is listed twice")),
            None => {
                let known: Vec<&str> = quotas.iter().map(|q| q.name.as_str()).collect();
                cx.diags.push(
                    Diagnostic::error(at.index(i), format!("no quota named `{name}`")).with_help(
                        if known.is_empty() {
                            "define it as a `[rate-limit.quotas.NAME]` table".to_owned()
                        } else {
                            format!("defined: {}", known.join(", "))
                        },
                    ),
                );
            }
        }
    }
    Some(out)
}

/// Warns about quotas no route uses.
pub(crate) fn unused(cx: &mut Cx, limits: &RateLimits, used: &HashSet<usize>) {
    for (i, quota) in limits.quotas.iter().enumerate() {
        if !used.contains(&i) {
            cx.diags.push(
                Diagnostic::warning(
                    KeyPath::root()
                        .key("rate-limit")
                        .key("quotas")
                        .key(&quota.name),
                    format!("quota `{}` is not used by any route", quota.name),
                )
                .with_help(
                    "list it in a route's `rate-limit = [...]` or in `[rate-limit] default`",
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CompileOptions, Severity, load_str};

    fn compile(rest: &str) -> Result<crate::Compiled, crate::Diagnostics> {
        let text = format!("environment = \"development\"\n{rest}");
        load_str("limits.toml", &text, &CompileOptions::default())
    }

    /// (key path, severity, line) of every diagnostic.
    fn diags(d: &crate::Diagnostics) -> Vec<(String, Severity, Option<usize>)> {
        d.iter()
            .map(|d| (d.path.to_string(), d.severity, d.line_col.map(|(l, _)| l)))
            .collect()
    }

    const QUOTAS: &str = "[rate-limit]\nstore = { env = \"REDIS_URL\" }\non-store-error = \"fail-closed\"\n\
        default = [\"per-key\"]\n\
        [rate-limit.quotas.per-key]\nkey = \"api-key\"\nlimit = 10\nper = \"1s\"\nburst = 20\n\
        [rate-limit.quotas.hourly]\nkey = \"tenant\"\nlimit = 1000\nper = \"1h\"\n\
        [rate-limit.quotas.by-client]\nkey = \"header\"\nheader = \"x-client-id\"\nlimit = 5\nper = \"1m\"\n\
        [rate-limit.tenants.acme]\nper-key = { limit = 100, burst = 200 }\n\
        [rate-limit.tenants.beta]\nhourly = { limit = 50, per = \"1m\" }\n";

    #[test]
    fn quotas_routes_defaults_and_overrides_compile() {
        let policy = compile(&format!(
            "{QUOTAS}[[route]]\nname = \"search\"\npaths = [\"/search\"]\nrate-limit = [\"hourly\", \"per-key\"]\n\
             [[route]]\nname = \"partner\"\npaths = [\"/partner/*\"]\nrate-limit = [\"by-client\"]\n\
             [[route]]\nname = \"health\"\npaths = [\"/health\"]\nrate-limit = []\n"
        ))
        .unwrap()
        .policy;
        let limits = &policy.rate_limit;
        assert!(limits.store.is_shared());
        assert_eq!(limits.on_store_error, OnStoreError::FailClosed);
        let names: Vec<&str> = limits.quotas.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["by-client", "hourly", "per-key"]);
        let per_key = &limits.quotas[2];
        assert_eq!(per_key.key, RateKey::ApiKey);
        assert_eq!(
            per_key.rate,
            Rate {
                limit: 10,
                per: Duration::from_secs(1),
                burst: 20
            }
        );
        // An override without `per` keeps the quota's; without `burst`, its own limit.
        assert_eq!(
            per_key.rate_for(Some("acme")),
            Rate {
                limit: 100,
                per: Duration::from_secs(1),
                burst: 200
            }
        );
        assert_eq!(per_key.rate_for(Some("other")), per_key.rate);
        assert_eq!(per_key.rate_for(None), per_key.rate);
        let hourly = &limits.quotas[1];
        assert_eq!(hourly.rate.burst, 1000, "burst defaults to the limit");
        assert_eq!(
            hourly.rate_for(Some("beta")),
            Rate {
                limit: 50,
                per: Duration::from_secs(60),
                burst: 50
            }
        );
        assert_eq!(
            limits.quotas[0].key,
            RateKey::Header(HeaderName::from_static("x-client-id"))
        );
        assert_eq!(policy.routes[0].rate_limit, [1, 2], "in the order written");
        assert_eq!(policy.routes[1].rate_limit, [0]);
        assert!(policy.routes[2].rate_limit.is_empty(), "`[]` exempts");
        assert_eq!(policy.default_route.rate_limit, [2], "`default` applies");
    }

    #[test]
    fn no_section_means_no_limits() {
        let policy = compile("").unwrap().policy;
        assert_eq!(policy.rate_limit, RateLimits::default());
        assert!(policy.default_route.rate_limit.is_empty());
    }

    #[test]
    fn mistakes_are_reported_with_key_paths_and_lines() {
        let err = compile(
            "[rate-limit]\nstore = \"redis://user:pw@host\"\non-store-error = \"maybe\"\n\
             default = [\"nope\"]\n\
             [rate-limit.quotas.a]\nkey = \"cookie\"\nlimit = 1\nper = \"1s\"\n\
             [rate-limit.quotas.b]\nkey = \"ip\"\nlimit = 0\nper = \"1s\"\n\
             [rate-limit.quotas.c]\nkey = \"ip\"\nlimit = 5\nper = \"soon\"\n\
             [rate-limit.quotas.d]\nkey = \"ip\"\nlimit = 2000000\nper = \"1s\"\n\
             [rate-limit.quotas.e]\nkey = \"header\"\nlimit = 1\nper = \"1s\"\n\
             [rate-limit.quotas.f]\nkey = \"ip\"\nper = \"1s\"\n\
             [rate-limit.tenants.acme]\nzzz = { limit = 1 }\n\
             [rate-limit.tenants.beta]\ng = { limit = 1 }\n\
             [rate-limit.quotas.G]\nkey = \"ip\"\nlimit = 1\nper = \"1s\"\n\
             [rate-limit.quotas.g]\nkey = \"ip\"\nlimit = 1\nper = \"1s\"\n\
             [[route]]\nname = \"r\"\npaths = [\"/r\"]\nrate-limit = [\"f\", \"f\"]\n",
        )
        .unwrap_err();
        let d = diags(&err);
        for expected in [
            ("rate-limit.store", 3),
            ("rate-limit.on-store-error", 4),
            ("rate-limit.default[0]", 5),
            ("rate-limit.quotas.a.key", 7),
            ("rate-limit.quotas.b.limit", 12),
            ("rate-limit.quotas.c.per", 17),
            ("rate-limit.quotas.d.limit", 20),
            ("rate-limit.quotas.e.header", 22),
            ("rate-limit.quotas.f.limit", 26),
            ("rate-limit.tenants.acme.zzz", 30),
            ("rate-limit.tenants.beta.g", 32),
            ("rate-limit.quotas.G", 33),
        ] {
            assert!(
                d.contains(&(expected.0.into(), Severity::Error, Some(expected.1))),
                "{expected:?} in {d:?}"
            );
        }
        // `f` failed to compile, so the route's reference to it is unknown, reported for each entry.
        assert!(
            d.iter()
                .any(|(p, s, _)| p == "route[0].rate-limit[0]" && *s == Severity::Error),
            "{d:?}"
        );
    }

    #[test]
    fn unused_quotas_and_pointless_fail_modes_warn() {
        let compiled = compile(
            "[rate-limit]\non-store-error = \"fail-closed\"\n\
             [rate-limit.quotas.idle]\nkey = \"ip\"\nlimit = 1\nper = \"1s\"\n",
        )
        .unwrap();
        let d = diags(&compiled.warnings);
        assert!(
            d.contains(&(
                "rate-limit.on-store-error".into(),
                Severity::Warning,
                Some(3)
            )),
            "{d:?}"
        );
        assert!(
            d.contains(&("rate-limit.quotas.idle".into(), Severity::Warning, Some(4))),
            "{d:?}"
        );
    }

    #[test]
    fn a_quota_listed_twice_is_an_error() {
        let err = compile(
            "[rate-limit.quotas.q]\nkey = \"ip\"\nlimit = 1\nper = \"1s\"\n\
             [[route]]\nname = \"r\"\npaths = [\"/r\"]\nrate-limit = [\"q\", \"q\"]\n",
        )
        .unwrap_err();
        let d = diags(&err);
        assert!(
            d.contains(&("route[0].rate-limit[1]".into(), Severity::Error, Some(9))),
            "{d:?}"
        );
    }
}
