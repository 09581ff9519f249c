//! What the probe reports: one [`Finding`] per difference between a response and the policy.

use std::fmt;

/// Every kind of drift, with the stable name the table and the JSON use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// A header the policy sends on the route is absent.
    HeaderMissing,
    /// A header the policy sends has another value.
    HeaderMismatch,
    /// A header the policy removes or deliberately does not set is present.
    HeaderExtra,
    /// Cache-Control differs from the route's.
    CacheControlMismatch,
    /// The route is private (`no-store` or `private`) but the response may be cached.
    PrivateCacheable,
    /// `Server` is present although the policy removes it.
    ServerLeak,
    /// `X-Powered-By` (or an ASP.NET version header) is present although the policy removes it.
    PoweredByLeak,
    /// The correlation-ID header is absent.
    CorrelationIdMissing,
    /// A route with quotas answered without the rate-limit headers.
    RateLimitHeadersMissing,
    /// An origin the route does not allow was granted access.
    CorsOriginReflected,
    /// `Access-Control-Allow-Origin: *` together with credentials.
    CorsWildcardCredentials,
    /// An origin the route allows was not granted access.
    CorsAllowedOriginRefused,
    /// A response of a CORS route does not vary on `Origin`.
    CorsVaryMissing,
    /// A cross-site, cookie-bearing `POST` was accepted.
    CsrfCrossSiteAccepted,
    /// `/.well-known/security.txt` is not served as the policy's `[disclosure]` says.
    SecurityTxtDrift,
}

impl Check {
    #[cfg(test)]
    pub const ALL: [Check; 15] = [
        Check::HeaderMissing,
        Check::HeaderMismatch,
        Check::HeaderExtra,
        Check::CacheControlMismatch,
        Check::PrivateCacheable,
        Check::ServerLeak,
        Check::PoweredByLeak,
        Check::CorrelationIdMissing,
        Check::RateLimitHeadersMissing,
        Check::CorsOriginReflected,
        Check::CorsWildcardCredentials,
        Check::CorsAllowedOriginRefused,
        Check::CorsVaryMissing,
        Check::CsrfCrossSiteAccepted,
        Check::SecurityTxtDrift,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Check::HeaderMissing => "header-missing",
            Check::HeaderMismatch => "header-mismatch",
            Check::HeaderExtra => "header-extra",
            Check::CacheControlMismatch => "cache-control-mismatch",
            Check::PrivateCacheable => "private-cacheable",
            Check::ServerLeak => "server-leak",
            Check::PoweredByLeak => "powered-by-leak",
            Check::CorrelationIdMissing => "correlation-id-missing",
            Check::RateLimitHeadersMissing => "rate-limit-headers-missing",
            Check::CorsOriginReflected => "cors-origin-reflected",
            Check::CorsWildcardCredentials => "cors-wildcard-credentials",
            Check::CorsAllowedOriginRefused => "cors-allowed-origin-refused",
            Check::CorsVaryMissing => "cors-vary-missing",
            Check::CsrfCrossSiteAccepted => "csrf-cross-site-accepted",
            Check::SecurityTxtDrift => "security-txt-drift",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One difference: which check, where, and both sides of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub route: String,
    /// The request that showed it, as [`PlannedRequest`](super::plan::PlannedRequest) displays.
    pub request: String,
    pub expected: String,
    pub got: String,
}

/// Keeps the first of findings that say the same thing about the same route (the same header
/// missing on the route's `GET` and on each of its preflights is one problem, not five).
pub fn dedup(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for finding in findings {
        let seen = out.iter().any(|f| {
            f.check == finding.check
                && f.route == finding.route
                && f.expected == finding.expected
                && f.got == finding.got
        });
        if !seen {
            out.push(finding);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<&str> = Check::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Check::ALL.len());
    }

    #[test]
    fn dedup_keeps_the_first_request() {
        let f = |request: &str, route: &str| Finding {
            check: Check::HeaderMissing,
            route: route.into(),
            request: request.into(),
            expected: "x-frame-options: DENY".into(),
            got: "absent".into(),
        };
        let out = dedup(vec![
            f("GET /a", "a"),
            f("OPTIONS /a", "a"),
            f("GET /b", "b"),
        ]);
        assert_eq!(out, vec![f("GET /a", "a"), f("GET /b", "b")]);
    }
}
