//! Response header posture: the built-in secure set, and the rules a policy declares.

use http::{HeaderName, HeaderValue};

use crate::Environment;

/// One header the gateway sends, with the reason a reviewer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    pub name: HeaderName,
    pub value: HeaderValue,
    pub reason: Option<String>,
    /// Sent only in these environments; `None` means every environment.
    pub environments: Option<Vec<Environment>>,
}

impl HeaderRule {
    pub fn applies_in(&self, environment: Environment) -> bool {
        self.environments
            .as_ref()
            .is_none_or(|envs| envs.contains(&environment))
    }
}

/// A header deliberately not sent, and why (seed 000's "What we don't set").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSet {
    pub name: HeaderName,
    pub reason: String,
}

/// The built-in secure header set for a JSON API, used unless `[headers] defaults = false`.
/// Each entry is `(name, value, reason, production only)`.
pub const DEFAULT_HEADERS: &[(&str, &str, &str, bool)] = &[
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
        "A JSON API renders no documents: if a response is ever rendered as HTML, nothing loads and nothing can frame it.",
        false,
    ),
    (
        "cross-origin-resource-policy",
        "same-origin",
        "Other origins cannot embed responses as resources; CORS is the boundary for cross-origin reads.",
        false,
    ),
    (
        "permissions-policy",
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()",
        "Disables powerful browser features no API response needs.",
        false,
    ),
    (
        "referrer-policy",
        "no-referrer",
        "No referrer leaks to third parties.",
        false,
    ),
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
        "One year of HTTPS-only access, subdomains included. Production only: development runs on plain HTTP.",
        true,
    ),
    (
        "x-content-type-options",
        "nosniff",
        "Browsers must not infer MIME types from content.",
        false,
    ),
    (
        "x-dns-prefetch-control",
        "off",
        "Disables speculative DNS resolution of URLs in responses.",
        false,
    ),
    (
        "x-frame-options",
        "DENY",
        "API responses are never framed (for browsers without CSP frame-ancestors).",
        false,
    ),
];

/// Response headers removed from upstream responses unless `[headers] remove` says otherwise:
/// they advertise the software stack and help nobody but an attacker.
pub const DEFAULT_REMOVED: &[&str] = &[
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
];

/// Headers a policy may not set: framing and hop-by-hop headers belong to the connection, and
/// Cache-Control belongs to the route's `cache-control` key so the posture has one source.
pub(crate) const FORBIDDEN_TO_SET: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "cache-control",
];

/// The built-in set as rules.
pub fn default_rules() -> Vec<HeaderRule> {
    DEFAULT_HEADERS
        .iter()
        .map(|(name, value, reason, production_only)| HeaderRule {
            name: HeaderName::from_static(name),
            value: HeaderValue::from_static(value),
            reason: Some((*reason).to_owned()),
            environments: production_only.then(|| vec![Environment::Production]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_hsts_is_production_only() {
        let rules = default_rules();
        assert_eq!(rules.len(), DEFAULT_HEADERS.len());
        let hsts = rules
            .iter()
            .find(|r| r.name == "strict-transport-security")
            .unwrap();
        assert!(hsts.applies_in(Environment::Production));
        assert!(!hsts.applies_in(Environment::Development));
        for name in DEFAULT_REMOVED {
            HeaderName::from_static(name);
        }
    }
}
