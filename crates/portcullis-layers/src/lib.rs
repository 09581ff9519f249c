//! Portcullis security checks as `tower` middleware.
//!
//! One module per concern, each a `XxxLayer` / `Xxx<S>` / response-future triple in the style of
//! tower-http. The layers know nothing of the policy file: the `portcullis` crate compiles a
//! policy into their configuration, and a Rust service can also configure them by hand.
//!
//! Refusals are [`rejection::Rejection`]s attached to the response's extensions and rendered
//! into one JSON body by [`rejection::RenderErrorsLayer`], which therefore sits outside every
//! layer that can refuse. Layers that refuse need a response body type that is `Default`; the
//! renderer needs `From<Bytes>` (both hold for `axum::body::Body`).

pub mod access_log;
pub mod auth;
pub mod client_ip;
pub mod cookies;
pub mod correlation_id;
pub mod cors;
pub mod csrf;
mod either_future;
pub mod framing;
pub mod identity_headers;
pub mod ip_filter;
pub mod jwt;
pub mod lockout;
pub mod matched_route;
pub mod origin;
mod original_target;
pub mod query_token;
pub mod rate_limit;
pub mod rejection;
pub mod remove_headers;
pub mod response_posture;
pub mod revocation;
pub mod signature;

pub use access_log::AccessLogLayer;
pub use auth::{AuthLayer, Identity, VerifiedApiKey};
pub use client_ip::{ClientIp, ClientIpLayer, PeerAddr};
pub use cookies::{CookiePolicyLayer, CookieRule, CookieRules, SameSite};
pub use correlation_id::{CorrelationId, CorrelationIdLayer};
pub use cors::{CorsLayer, CorsPolicy};
pub use csrf::{CsrfConfig, CsrfLayer, CsrfMode, CsrfVerdict, PathExemption};
pub use either_future::EitherFuture;
pub use framing::{FramingLayer, WireFraming};
pub use ip_filter::{IpFilterLayer, IpRules};
pub use jwt::{JwtKey, JwtVerifier};
pub use matched_route::MatchedRoute;
pub use original_target::OriginalTarget;
pub use rate_limit::{RateLimitLayer, RateLimitOutcome};
pub use rejection::{ErrorDetail, Rejection, RenderErrorsLayer};
pub use response_posture::{ResponsePostureLayer, RoutePosture};
pub use signature::{
    ReplayCheck, SignatureLayer, SignatureRequired, SignatureVerified, SigningSecret,
};
