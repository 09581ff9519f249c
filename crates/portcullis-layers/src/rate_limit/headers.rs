//! The quota headers: seed 000's `X-RateLimit-*` and the IETF `RateLimit-Policy` / `RateLimit`.
//!
//! `X-RateLimit-*` describe one quota, as clients of the de facto convention expect: one that
//! refused, else the one closest to refusing (least remaining; of equals, the one that takes
//! longest to refill):
//! - `X-RateLimit-Limit`: the most requests the bucket admits at once (the quota's burst);
//! - `X-RateLimit-Remaining`: how many more it would admit now;
//! - `X-RateLimit-Reset`: seconds until it is full again (a delay, like `Retry-After`, not an
//!   epoch time: it needs no clock agreement with the client);
//! - `X-RateLimit-Bucket`: the quota's name.
//!
//! `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10/11, Structured
//! Field lists) name every quota the request was counted in: `"per-key";q=10;w=1` (the
//! sustained quota: `q` requests per `w` seconds) and `"per-key";r=9;t=1` (remaining, and
//! seconds until full). A quota whose period is not a whole number of seconds is stated per
//! second, rounded down (`5` per `500ms` is `q=10;w=1`).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{OutcomeEntry, RateLimitOutcome};

static X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
static X_BUCKET: HeaderName = HeaderName::from_static("x-ratelimit-bucket");
static POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Writes the headers for `outcome` (nothing when it is empty), replacing any the upstream
/// sent: the gateway's count is the one that refuses.
pub(super) fn write(headers: &mut HeaderMap, outcome: &RateLimitOutcome) {
    let Some(tightest) = outcome.entries.iter().min_by_key(|e| {
        (
            e.status.allowed,
            e.status.remaining,
            std::cmp::Reverse(e.status.reset_after),
        )
    }) else {
        return;
    };
    headers.insert(&X_LIMIT, HeaderValue::from(tightest.quota.burst()));
    headers.insert(&X_REMAINING, HeaderValue::from(tightest.status.remaining));
    headers.insert(
        &X_RESET,
        HeaderValue::from(seconds_up(tightest.status.reset_after)),
    );
    if let Ok(name) = HeaderValue::from_str(&tightest.name) {
        headers.insert(&X_BUCKET, name);
    }
    let mut policy = String::new();
    let mut current = String::new();
    for entry in &outcome.entries {
        if !policy.is_empty() {
            policy.push_str(", ");
            current.push_str(", ");
        }
        let (q, w) = per_window(entry);
        let name = sf_string(&entry.name);
        policy.push_str(&format!("{name};q={q};w={w}"));
        current.push_str(&format!(
            "{name};r={};t={}",
            entry.status.remaining,
            seconds_up(entry.status.reset_after)
        ));
    }
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert(&POLICY, v);
    }
    if let Ok(v) = HeaderValue::from_str(&current) {
        headers.insert(&RATELIMIT, v);
    }
}

/// `(q, w)`: the sustained quota in whole seconds.
fn per_window(entry: &OutcomeEntry) -> (u64, u64) {
    let quota = &entry.quota;
    let period = quota.period();
    if period.subsec_nanos() == 0 {
        (u64::from(quota.limit()), period.as_secs())
    } else {
        let per_second = f64::from(quota.limit()) / period.as_secs_f64();
        // Saturating float-to-int conversion; at least 1 so the policy never reads "no quota".
        ((per_second as u64).max(1), 1)
    }
}

/// Whole seconds, rounded up: "0" only when nothing is left to wait for.
fn seconds_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A Structured Field string (RFC 8941 §3.3.3): quoted, `"` and `\` escaped. Quota names are
/// restricted by the policy compiler; anything outside printable ASCII is dropped.
fn sf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use portcullis_store::{Quota, QuotaStatus};

    use super::*;

    fn entry(name: &str, quota: Quota, remaining: u32, reset_ms: u64) -> OutcomeEntry {
        OutcomeEntry {
            name: Arc::from(name),
            quota,
            status: QuotaStatus {
                allowed: true,
                remaining,
                reset_after: Duration::from_millis(reset_ms),
                retry_after: Duration::ZERO,
            },
        }
    }

    fn text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
        headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    #[test]
    fn the_tightest_quota_is_described_and_every_quota_is_listed() {
        let per_second = Quota::new(10, Duration::from_secs(1), 20).unwrap();
        let hourly = Quota::new(1000, Duration::from_secs(3600), 1000).unwrap();
        let outcome = RateLimitOutcome {
            entries: vec![
                entry("per-key", per_second, 19, 100),
                entry("hourly", hourly, 3, 3_596_400),
            ],
        };
        let mut headers = HeaderMap::new();
        write(&mut headers, &outcome);
        assert_eq!(text(&headers, "x-ratelimit-limit"), "1000");
        assert_eq!(text(&headers, "x-ratelimit-remaining"), "3");
        assert_eq!(text(&headers, "x-ratelimit-reset"), "3597");
        assert_eq!(text(&headers, "x-ratelimit-bucket"), "hourly");
        assert_eq!(
            text(&headers, "ratelimit-policy"),
            r#""per-key";q=10;w=1, "hourly";q=1000;w=3600"#
        );
        assert_eq!(
            text(&headers, "ratelimit"),
            r#""per-key";r=19;t=1, "hourly";r=3;t=3597"#
        );
    }

    #[test]
    fn sub_second_periods_are_stated_per_second() {
        let quota = Quota::new(5, Duration::from_millis(500), 5).unwrap();
        let outcome = RateLimitOutcome {
            entries: vec![entry("fast", quota, 5, 0)],
        };
        let mut headers = HeaderMap::new();
        write(&mut headers, &outcome);
        assert_eq!(text(&headers, "ratelimit-policy"), r#""fast";q=10;w=1"#);
        assert_eq!(text(&headers, "ratelimit"), r#""fast";r=5;t=0"#);
    }

    #[test]
    fn nothing_is_written_without_quotas_and_upstream_values_are_replaced() {
        let mut headers = HeaderMap::new();
        write(&mut headers, &RateLimitOutcome::default());
        assert!(headers.is_empty());
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("999"));
        let quota = Quota::new(1, Duration::from_secs(60), 1).unwrap();
        let outcome = RateLimitOutcome {
            entries: vec![entry("q", quota, 0, 60_000)],
        };
        write(&mut headers, &outcome);
        assert_eq!(text(&headers, "x-ratelimit-remaining"), "0");
        assert_eq!(headers.get_all("x-ratelimit-remaining").iter().count(), 1);
    }

    #[test]
    fn structured_field_strings_are_escaped() {
        assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(sf_string("tab\there"), r#""tabhere""#);
    }
}
