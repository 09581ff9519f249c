//! The gateway's own refusals, as the layers send them: status and the stable `code` of the JSON
//! error body. The page lists the ones a policy switches on; the test below checks that every
//! code here is still produced by the layer named beside it, so the page cannot drift from
//! what clients receive.

/// One refusal a client may receive.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub when: &'static str,
}

const fn refusal(status: u16, code: &'static str, when: &'static str) -> Refusal {
    Refusal { status, code, when }
}

// crates/portcullis-layers/src/auth.rs
pub const AUTHENTICATION_REQUIRED: Refusal = refusal(
    401,
    "authentication_required",
    "no credential on a route that requires one",
);
pub const INVALID_CREDENTIALS: Refusal = refusal(
    401,
    "invalid_credentials",
    "a credential that does not verify (malformed, unknown, wrong secret, expired, revoked), several credentials at once, or one the route does not accept; refused on optional routes too",
);
pub const AUTH_UNAVAILABLE: Refusal = refusal(
    503,
    "auth_unavailable",
    "the key store (or the signature replay store) cannot be reached",
);
pub const SUBJECT_SUSPENDED: Refusal = refusal(
    403,
    "subject_suspended",
    "the caller's subject is suspended in the key store",
);
pub const TENANT_MISMATCH: Refusal = refusal(
    403,
    "tenant_mismatch",
    "the request's tenant header names a tenant other than the caller's",
);
pub const REGISTRATION_REQUIRED: Refusal = refusal(
    403,
    "registration_required",
    "a guest identity on a route that requires a registered caller",
);
pub const INSUFFICIENT_SCOPE: Refusal = refusal(
    403,
    "insufficient_scope",
    "the credential lacks a scope the route requires",
);
// crates/portcullis-layers/src/auth.rs and signature/layer.rs
pub const SIGNATURE_REQUIRED: Refusal = refusal(
    401,
    "signature_required",
    "an unsigned request from a key that must sign, or a key that cannot sign on a signed-only route",
);
// crates/portcullis-layers/src/signature/layer.rs
pub const INVALID_SIGNATURE: Refusal = refusal(
    401,
    "invalid_signature",
    "the signature does not match the request",
);
pub const SIGNATURE_EXPIRED: Refusal = refusal(
    401,
    "signature_expired",
    "the signed timestamp is further from the gateway's clock than the allowed skew",
);
pub const SIGNATURE_REPLAYED: Refusal = refusal(
    401,
    "signature_replayed",
    "a signed request received before",
);
pub const SIGNED_BODY_TOO_LARGE: Refusal = refusal(
    413,
    "payload_too_large",
    "a signed body larger than the signing limit",
);
// crates/portcullis-layers/src/rate_limit.rs
pub const RATE_LIMITED: Refusal = refusal(
    429,
    "rate_limited",
    "a quota is spent; Retry-After says when to retry",
);
pub const RATE_LIMIT_UNAVAILABLE: Refusal = refusal(
    503,
    "rate_limit_unavailable",
    "the rate-limit store cannot answer (fail-closed, or the in-memory table is full)",
);
// crates/portcullis-layers/src/lockout.rs
pub const LOCKED_OUT: Refusal = refusal(
    429,
    "locked_out",
    "the account or the client IP is locked after repeated failures; Retry-After says when to retry",
);
pub const LOGIN_BODY_TOO_LARGE: Refusal = refusal(
    413,
    "payload_too_large",
    "a login body larger than the rule's limit",
);
pub const LOCKOUT_UNAVAILABLE: Refusal = refusal(
    503,
    "lockout_unavailable",
    "the lockout store cannot answer and the policy says fail-closed",
);
// crates/portcullis-layers/src/ip_filter.rs
pub const IP_DENIED: Refusal = refusal(
    403,
    "ip_denied",
    "the client address is denied, or not in a non-empty allow list",
);
// crates/portcullis-layers/src/cors.rs
pub const CORS_PREFLIGHT_REFUSED: Refusal = refusal(
    403,
    "cors_preflight_refused",
    "a preflight from an origin, or asking for a method or header, the route's policy does not allow",
);
pub const WEBSOCKET_ORIGIN_REFUSED: Refusal = refusal(
    403,
    "websocket_origin_refused",
    "a WebSocket handshake from an origin the route's CORS policy does not allow",
);
// crates/portcullis-layers/src/csrf.rs
pub const CSRF_ORIGIN_MISMATCH: Refusal = refusal(
    403,
    "csrf_origin_mismatch",
    "an unsafe, cookie-authenticated request from a site the policy does not trust",
);
// crates/portcullis-layers/src/rejection.rs
pub const BAD_REQUEST: Refusal = refusal(400, "bad_request", "a malformed or ambiguous request");
pub const METHOD_NOT_ALLOWED: Refusal = refusal(
    405,
    "method_not_allowed",
    "a method the gateway never forwards",
);
pub const UPSTREAM_UNAVAILABLE: Refusal = refusal(
    502,
    "upstream_unavailable",
    "the upstream cannot be reached or answers with something unusable",
);
pub const UPSTREAM_TIMEOUT: Refusal = refusal(
    504,
    "upstream_timeout",
    "the upstream does not answer in time",
);
// crates/portcullis/src/proxy/mod.rs
pub const UPSTREAM_BUSY: Refusal = refusal(
    503,
    "upstream_busy",
    "every allowed connection to the upstream stays busy for the connect timeout",
);

#[cfg(test)]
mod tests {
    use super::*;

    const LAYERS: &[(&str, &str)] = &[
        (
            "auth.rs",
            include_str!("../../../portcullis-layers/src/auth.rs"),
        ),
        (
            "signature/layer.rs",
            include_str!("../../../portcullis-layers/src/signature/layer.rs"),
        ),
        (
            "rate_limit.rs",
            include_str!("../../../portcullis-layers/src/rate_limit.rs"),
        ),
        (
            "lockout.rs",
            include_str!("../../../portcullis-layers/src/lockout.rs"),
        ),
        (
            "ip_filter.rs",
            include_str!("../../../portcullis-layers/src/ip_filter.rs"),
        ),
        (
            "cors.rs",
            include_str!("../../../portcullis-layers/src/cors.rs"),
        ),
        (
            "csrf.rs",
            include_str!("../../../portcullis-layers/src/csrf.rs"),
        ),
        (
            "rejection.rs",
            include_str!("../../../portcullis-layers/src/rejection.rs"),
        ),
        (
            "proxy/mod.rs",
            include_str!("../../../portcullis/src/proxy/mod.rs"),
        ),
    ];

    /// Every code on the page is one a layer (or the proxy) really sends: the page must not invent codes, and
    /// a renamed code must fail here rather than go stale on reviewers' pages.
    #[test]
    fn every_code_is_produced_by_a_layer() {
        let all = [
            AUTHENTICATION_REQUIRED,
            INVALID_CREDENTIALS,
            AUTH_UNAVAILABLE,
            SUBJECT_SUSPENDED,
            TENANT_MISMATCH,
            REGISTRATION_REQUIRED,
            INSUFFICIENT_SCOPE,
            SIGNATURE_REQUIRED,
            INVALID_SIGNATURE,
            SIGNATURE_EXPIRED,
            SIGNATURE_REPLAYED,
            SIGNED_BODY_TOO_LARGE,
            RATE_LIMITED,
            RATE_LIMIT_UNAVAILABLE,
            LOCKED_OUT,
            LOGIN_BODY_TOO_LARGE,
            LOCKOUT_UNAVAILABLE,
            IP_DENIED,
            CORS_PREFLIGHT_REFUSED,
            WEBSOCKET_ORIGIN_REFUSED,
            CSRF_ORIGIN_MISMATCH,
            BAD_REQUEST,
            METHOD_NOT_ALLOWED,
            UPSTREAM_UNAVAILABLE,
            UPSTREAM_TIMEOUT,
            UPSTREAM_BUSY,
        ];
        for r in all {
            let quoted = format!("\"{}\"", r.code);
            let found = LAYERS.iter().find(|(_, src)| src.contains(&quoted));
            assert!(found.is_some(), "no layer produces code {}", r.code);
        }
    }

    #[test]
    fn rate_limit_header_names_are_the_layers() {
        let headers = include_str!("../../../portcullis-layers/src/rate_limit/headers.rs");
        for name in super::super::sections::rate_limit::RESPONSE_HEADERS {
            assert!(
                headers.contains(&format!("\"{}\"", name.to_ascii_lowercase())),
                "{name}"
            );
        }
    }
}
