//! Signed requests: timestamped HMAC-SHA256 signatures for API keys that must sign.
//!
//! An API key can come with a **signing secret** (a string such as `acme_sig_Q2x...`). Every
//! request sent with such a key carries, besides the key, two headers (their names are
//! configurable; these are the defaults):
//!
//! ```text
//! X-Portcullis-Timestamp: 1700000000
//! X-Portcullis-Signature: 591284d3b0f331a211c390f5e90797dd8c569616ae53c785437060b04b328190
//! ```
//!
//! The gateway checks both before anything reaches the upstream, and removes them.
//!
//! # Computing a signature
//!
//! The signature is the **lowercase hex** (64 characters) of **HMAC-SHA256**, keyed with the
//! UTF-8 bytes of the whole signing secret string, over this canonical string:
//!
//! ```text
//! PORTCULLIS-HMAC-SHA256\n<timestamp>\n<METHOD>\n<path-and-query>\n<hex sha256 of the body>
//! ```
//!
//! - `<timestamp>`: the current Unix time in seconds, written exactly as in the timestamp
//!   header: 1 to 12 ASCII digits, no sign, no spaces, no fraction.
//! - `<METHOD>`: the request method as sent (`GET`, `POST`, ...; uppercase for the standard
//!   ones).
//! - `<path-and-query>`: the request target exactly as sent on the request line: path and
//!   query, with the client's own percent-encoding and parameter order, no scheme, host or
//!   fragment (`/v1/orders?dry-run=1`). `/` if empty. The gateway normalises paths for routing
//!   but checks the signature against the target as received, so the client signs what it
//!   sends.
//! - `<hex sha256 of the body>`: lowercase hex SHA-256 of the exact body bytes; for a request
//!   without a body, of the empty string
//!   (`e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`).
//! - Lines are joined with a single `\n`; there is no trailing newline.
//!
//! The gateway also accepts the signature in uppercase hex.
//!
//! ## Test vector
//!
//! Secret `acme_sig_Q2xpZW50U2VjcmV0`, timestamp `1700000000`, `POST /v1/orders?dry-run=1`,
//! body `{"sku":"A-1","qty":2}`:
//!
//! ```text
//! canonical string:
//! PORTCULLIS-HMAC-SHA256
//! 1700000000
//! POST
//! /v1/orders?dry-run=1
//! d3c95de2d66db9a042603637d7c75dcdb810c4f4a5e5530d450ffd344b022636
//!
//! signature:
//! 591284d3b0f331a211c390f5e90797dd8c569616ae53c785437060b04b328190
//! ```
//!
//! From a shell (an illustration: `-hmac` puts the secret on the command line, where other
//! users of the machine can see it):
//!
//! ```sh
//! ts=$(date +%s)
//! body='{"sku":"A-1","qty":2}'
//! body_hash=$(printf '%s' "$body" | openssl dgst -sha256 -r | cut -d' ' -f1)
//! sig=$(printf 'PORTCULLIS-HMAC-SHA256\n%s\nPOST\n%s\n%s' "$ts" '/v1/orders?dry-run=1' "$body_hash" \
//!   | openssl dgst -sha256 -hmac "$SIGNING_SECRET" -r | cut -d' ' -f1)
//! curl -H "X-API-Key: $API_KEY" -H "X-Portcullis-Timestamp: $ts" -H "X-Portcullis-Signature: $sig" \
//!   -H 'Content-Type: application/json' --data-binary "$body" 'https://api.example/v1/orders?dry-run=1'
//! ```
//!
//! (`--data-binary`, not `-d`, which would alter a body with newlines.) From Rust, with this
//! crate's own functions:
//!
//! ```
//! use std::time::{SystemTime, UNIX_EPOCH};
//! use portcullis_layers::signature::{canonical_string, sign};
//!
//! let secret = "acme_sig_Q2xpZW50U2VjcmV0";
//! let body = br#"{"sku":"A-1","qty":2}"#;
//! let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
//! let signature = sign(secret.as_bytes(), &canonical_string(&timestamp, "POST", "/v1/orders?dry-run=1", body));
//! // Send `timestamp` and `signature` in the two headers, with the API key and this body.
//! assert_eq!(signature.len(), 64);
//!
//! // The test vector above.
//! let canonical = canonical_string("1700000000", "POST", "/v1/orders?dry-run=1", body);
//! assert_eq!(sign(secret.as_bytes(), &canonical), "591284d3b0f331a211c390f5e90797dd8c569616ae53c785437060b04b328190");
//! ```
//!
//! # What the gateway checks
//!
//! [`AuthLayer`](crate::auth::AuthLayer) verifies the API key. A request must be signed when
//! the key has a signing secret (on every route that reads API keys), or when the route accepts
//! API keys only on signed requests ([`RouteRequirement::signed_only`]; a key that cannot sign
//! is refused there). The auth layer then hands the secret on in [`SignatureRequired`], and
//! [`SignatureLayer`], directly inside it, checks in this order:
//!
//! | check | refusal |
//! |---|---|
//! | both headers present | `401 signature_required` |
//! | each header once, well-formed | `401 invalid_signature` |
//! | timestamp within `max_skew` (300 s) of the gateway's clock, either way | `401 signature_expired` |
//! | body at most `max_body` (1 MiB) | `413 payload_too_large` (`400 bad_request` if unreadable) |
//! | the signature matches (constant-time comparison) | `401 invalid_signature` |
//! | the signature was not accepted before | `401 signature_replayed` |
//! | the replay guard answered | `503 auth_unavailable` |
//!
//! The 401s carry `WWW-Authenticate: Bearer realm="api"`. A signature is remembered, by
//! [`ReplayCheck`], for `2 × max_skew`: as long as its timestamp could be accepted again. If the
//! guard cannot answer, signed requests are refused, never let through. Signed bodies are read
//! whole (up to `max_body`) before anything is forwarded; every other request streams.
//!
//! Signature headers on a request whose key does not sign are ignored, and removed like all
//! signature headers: the upstream never sees them. A forwarded signed request carries
//! [`SignatureVerified`] in its extensions.
//!
//! # What a signature does not cover
//!
//! Headers other than the timestamp (`Content-Type` included), the host and the scheme; request
//! trailers, which are dropped from signed requests. A signature shows that the holder of the
//! secret sent this method, target and body within the window, and the replay guard that it is
//! accepted once; TLS protects the rest in transit.
//!
//! [`RouteRequirement::signed_only`]: crate::auth::RouteRequirement::signed_only

mod canonical;
mod layer;
mod replay;
mod secret;

pub use canonical::{
    MAX_TIMESTAMP_DIGITS, SCHEME, canonical_string, parse_timestamp, sign, verify,
};
pub use layer::{
    Clock, DEFAULT_MAX_BODY, DEFAULT_MAX_SKEW, DEFAULT_SIGNATURE_HEADER, DEFAULT_TIMESTAMP_HEADER,
    MAX_MAX_SKEW, Signature, SignatureConfigError, SignatureFuture, SignatureLayer,
    SignatureLayerBuilder, SignatureVerified,
};
pub use replay::{ReplayCheck, ReplayFuture};
pub use secret::{SignatureRequired, SigningSecret};
