//! The signature layer: verifies the requests [`AuthLayer`](crate::auth::AuthLayer) marked as
//! needing a signature, before anything further in reaches them.
//!
//! A request without [`SignatureRequired`] goes through as it came (its body is not read);
//! only the two signature headers are removed, whatever the request, since no upstream needs
//! them. A request with it is refused, or forwarded with its body read whole, both signature
//! headers removed and [`SignatureVerified`] in its extensions. The checks, in order (the first
//! failure answers):
//!
//! 1. exactly one timestamp header and one signature header: missing, `401`
//!    `signature_required`; repeated, or not 1–12 digits / 64 hex digits, `401`
//!    `invalid_signature`;
//! 2. the timestamp within `max_skew` of the gateway's clock, either way (the edge included):
//!    else `401` `signature_expired`;
//! 3. the body read whole, up to `max_body` bytes: over it (or a larger `Content-Length`),
//!    `413` `payload_too_large`; a body that cannot be read, `400` `bad_request`;
//! 4. the signature over the canonical string, in constant time: else `401`
//!    `invalid_signature`;
//! 5. first use of this signature, asked of the [`ReplayCheck`] (remembered for
//!    `2 × max_skew`, the span during which its timestamp is acceptable): a replay, `401`
//!    `signature_replayed`; a guard that cannot answer, `503` `auth_unavailable`. The request
//!    is never let through unchecked: a replay guard that is down takes signed traffic down
//!    with it, by design.
//!
//! A signature counts as used once it passes, even if the upstream then fails: a client retries
//! with a fresh timestamp and signature.
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use portcullis_layers::signature::{
//!     ReplayCheck, SignatureLayer, SignatureRequired, SigningSecret, canonical_string, sign,
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! /// Accepts every signature as new: for this example only (a real guard remembers them).
//! #[derive(Debug)]
//! struct NoMemory;
//! impl ReplayCheck for NoMemory {
//!     fn first_use<'a>(&'a self, _id: [u8; 32], _ttl: Duration)
//!         -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
//!         Box::pin(async { Ok(true) })
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let layer = SignatureLayer::builder(Arc::new(NoMemory))
//!     .max_skew(Duration::from_secs(300))
//!     .clock(|| UNIX_EPOCH + Duration::from_secs(1_700_000_100))
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new().layer(layer).service(service_fn(|req: Request<Full<Bytes>>| async move {
//!     assert!(req.headers().get("x-portcullis-signature").is_none());
//!     Ok::<_, std::convert::Infallible>(Response::new(()))
//! }));
//!
//! let secret = b"acme_sig_Q2xpZW50U2VjcmV0";
//! let body = r#"{"sku":"A-1","qty":2}"#;
//! let signature = sign(secret, &canonical_string("1700000000", "POST", "/v1/orders?dry-run=1", body.as_bytes()));
//! let mut req = Request::post("/v1/orders?dry-run=1")
//!     .header("x-portcullis-timestamp", "1700000000")
//!     .header("x-portcullis-signature", signature)
//!     .body(Full::new(Bytes::from(body)))
//!     .unwrap();
//! // In the gateway, AuthLayer inserts this for a key that signs.
//! req.extensions_mut().insert(SignatureRequired::new(SigningSecret::new(secret.to_vec())));
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
//! # });
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::{Layer, Service};

use super::canonical::{canonical_string, decode_signature, parse_timestamp, verify_tag};
use super::replay::{ReplayCheck, replay_id};
use super::secret::SignatureRequired;
use crate::auth::{Identity, unauthorized};
use crate::either_future::EitherFuture;
use crate::original_target::OriginalTarget;
use crate::rejection::Rejection;

/// Default header carrying the Unix timestamp, in seconds.
pub const DEFAULT_TIMESTAMP_HEADER: &str = "x-portcullis-timestamp";
/// Default header carrying the hex signature.
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-portcullis-signature";
/// Default tolerance between the request's timestamp and the gateway's clock, either way.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(300);
/// Default largest signed body: signed bodies are held in memory until checked.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// The widest window the builder takes: every accepted signature is remembered for twice it.
pub const MAX_MAX_SKEW: Duration = Duration::from_secs(24 * 60 * 60);

/// Where the layer reads the time (injected, so tests need not sleep).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Request extension: this request's signature was verified (for later layers, handlers and
/// the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureVerified;

/// Why a [`SignatureLayer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureConfigError {
    #[error("the timestamp and the signature need two different headers")]
    SameHeader,
    #[error("a max skew of zero would refuse nearly every request")]
    ZeroSkew,
    #[error("a max skew over {} s keeps signatures replayable for too long", MAX_MAX_SKEW.as_secs())]
    SkewTooLarge,
}

struct Config {
    /// The timestamp header, then the signature header: stripped together from every request.
    headers: [HeaderName; 2],
    max_skew: Duration,
    /// How long a used signature is remembered: `2 × max_skew`.
    replay_ttl: Duration,
    max_body: usize,
    clock: Clock,
    replay: Arc<dyn ReplayCheck>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureConfig")
            .field("timestamp_header", self.timestamp_header())
            .field("signature_header", self.signature_header())
            .field("max_skew", &self.max_skew)
            .field("max_body", &self.max_body)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SignatureLayer`]; see [`SignatureLayer::builder`].
pub struct SignatureLayerBuilder {
    timestamp_header: HeaderName,
    signature_header: HeaderName,
    max_skew: Duration,
    max_body: usize,
    clock: Clock,
    replay: Arc<dyn ReplayCheck>,
}

impl fmt::Debug for SignatureLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureLayerBuilder")
            .field("timestamp_header", &self.timestamp_header)
            .field("signature_header", &self.signature_header)
            .field("max_skew", &self.max_skew)
            .field("max_body", &self.max_body)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

impl SignatureLayerBuilder {
    /// The header carrying the timestamp (default `x-portcullis-timestamp`).
    pub fn timestamp_header(mut self, name: HeaderName) -> Self {
        self.timestamp_header = name;
        self
    }

    /// The header carrying the signature (default `x-portcullis-signature`).
    pub fn signature_header(mut self, name: HeaderName) -> Self {
        self.signature_header = name;
        self
    }

    /// How far a timestamp may be from the clock, either way (default 300 s; compared in whole
    /// seconds).
    pub fn max_skew(mut self, max_skew: Duration) -> Self {
        self.max_skew = max_skew;
        self
    }

    /// The largest signed body read, in bytes (default 1 MiB).
    pub fn max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    /// The clock timestamps are compared with (default: the system clock).
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn build(self) -> Result<SignatureLayer, SignatureConfigError> {
        if self.timestamp_header == self.signature_header {
            return Err(SignatureConfigError::SameHeader);
        }
        if self.max_skew.is_zero() {
            return Err(SignatureConfigError::ZeroSkew);
        }
        if self.max_skew > MAX_MAX_SKEW {
            return Err(SignatureConfigError::SkewTooLarge);
        }
        Ok(SignatureLayer {
            config: Arc::new(Config {
                headers: [self.timestamp_header, self.signature_header],
                max_skew: self.max_skew,
                // A timestamp passes from `-skew` to `+skew` around the clock: a signature must
                // be remembered for as long as it could pass again.
                replay_ttl: self.max_skew * 2,
                max_body: self.max_body,
                clock: self.clock,
                replay: self.replay,
            }),
        })
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct SignatureLayer {
    config: Arc<Config>,
}

impl SignatureLayer {
    /// A layer remembering signatures with `replay`, and the defaults for everything else.
    pub fn builder(replay: Arc<dyn ReplayCheck>) -> SignatureLayerBuilder {
        SignatureLayerBuilder {
            timestamp_header: HeaderName::from_static(DEFAULT_TIMESTAMP_HEADER),
            signature_header: HeaderName::from_static(DEFAULT_SIGNATURE_HEADER),
            max_skew: DEFAULT_MAX_SKEW,
            max_body: DEFAULT_MAX_BODY,
            clock: Arc::new(SystemTime::now),
            replay,
        }
    }
}

impl<S> Layer<S> for SignatureLayer {
    type Service = Signature<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Signature {
            inner,
            config: self.config.clone(),
        }
    }
}

/// See [`SignatureLayer`].
#[derive(Debug, Clone)]
pub struct Signature<S> {
    inner: S,
    config: Arc<Config>,
}

/// The response future of [`Signature`]: the inner service's own future for requests that need
/// no signature, a boxed one (reading the body, asking the replay guard) for those that do.
pub type SignatureFuture<F, B, E> =
    EitherFuture<F, Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Signature<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<Box<dyn StdError + Send + Sync>>,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = SignatureFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Taken out, so the secret travels no further down the stack.
        let Some(required) = req.extensions_mut().remove::<SignatureRequired>() else {
            self.config.strip(req.headers_mut());
            return EitherFuture::left(self.inner.call(req));
        };
        let config = self.config.clone();
        // The service that was polled ready handles this request; a fresh clone takes its
        // place for the next one (tower's guidance for services that move into futures).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        EitherFuture::right(Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let body = match check(&config, &required, &parts, body).await {
                Ok(body) => body,
                Err(refusal) => return Ok(refusal.into_response(&parts)),
            };
            drop(required);
            config.strip(&mut parts.headers);
            parts.extensions.insert(SignatureVerified);
            inner
                .call(Request::from_parts(parts, ReqBody::from(body)))
                .await
        }))
    }
}

impl Config {
    fn timestamp_header(&self) -> &HeaderName {
        &self.headers[0]
    }

    fn signature_header(&self) -> &HeaderName {
        &self.headers[1]
    }

    fn strip(&self, headers: &mut HeaderMap) {
        crate::remove_headers::remove_all(headers, &self.headers);
    }
}

/// Checks a signed request; returns its body.
async fn check<B>(
    config: &Config,
    required: &SignatureRequired,
    parts: &Parts,
    body: B,
) -> Result<Bytes, Refusal>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    // 1. The headers.
    let missing = |name: &HeaderName| Refusal::required(format!("no `{name}` header"));
    let (timestamp, signature) = match (
        single(&parts.headers, config.timestamp_header()),
        single(&parts.headers, config.signature_header()),
    ) {
        (Ok(Some(timestamp)), Ok(Some(signature))) => (timestamp, signature),
        // An unsigned request (or half of one) is told to sign, before any other complaint.
        (Ok(None), _) => return Err(missing(config.timestamp_header())),
        (_, Ok(None)) => return Err(missing(config.signature_header())),
        (Err(refusal), _) | (_, Err(refusal)) => return Err(refusal),
    };
    let Some(seconds) = parse_timestamp(timestamp.as_bytes()) else {
        return Err(Refusal::invalid(format!(
            "`{}` is not 1 to 12 digits",
            config.timestamp_header()
        )));
    };
    let Some(tag) = signature.to_str().ok().and_then(decode_signature) else {
        return Err(Refusal::invalid(format!(
            "`{}` is not 64 hex digits",
            config.signature_header()
        )));
    };
    // `parse_timestamp` accepted only ASCII digits, so this is the value as sent.
    let Ok(timestamp) = timestamp.to_str() else {
        return Err(Refusal::invalid("timestamp is not text".to_owned()));
    };

    // 2. The clock. Compared in whole seconds (the timestamp's unit); a clock before 1970 is
    // not one to trust either way, and reads as 0.
    let now = (config.clock)()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (off, direction) = if seconds <= now {
        (now - seconds, "behind")
    } else {
        (seconds - now, "ahead of")
    };
    if Duration::from_secs(off) > config.max_skew {
        return Err(Refusal::expired(format!(
            "the timestamp is {off} s {direction} the gateway's clock (at most {} s either way)",
            config.max_skew.as_secs()
        )));
    }

    // 3. The body, whole: the signature covers its hash. A declared length over the limit is
    // refused without reading anything.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body as u64) {
        return Err(Refusal::too_large(config.max_body));
    }
    let body = match Limited::new(body, config.max_body).collect().await {
        // Trailers, if any, are dropped: they are not signed.
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(Refusal::too_large(config.max_body));
        }
        Err(e) => {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "bad_request",
                message: "the request body could not be read",
                detail: format!("reading the signed body: {e}"),
            });
        }
    };

    // 4. The signature.
    let target = OriginalTarget::from_parts(&parts.extensions, &parts.uri);
    let canonical = canonical_string(timestamp, parts.method.as_str(), target, &body);
    if !verify_tag(required.secret().expose(), &canonical, &tag) {
        return Err(Refusal::invalid(
            "the signature does not match the request".to_owned(),
        ));
    }

    // 5. Replays: only now, so that unverified requests cannot fill the guard.
    match config
        .replay
        .first_use(replay_id(&canonical, &tag), config.replay_ttl)
        .await
    {
        Ok(true) => Ok(body),
        Ok(false) => Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "signature_replayed",
            message: "this signed request was already received",
            detail: "the signature was used before".to_owned(),
        }),
        Err(e) => Err(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "auth_unavailable",
            message: "credentials cannot be checked right now",
            detail: format!("replay guard: {e}"),
        }),
    }
}

/// The one value of `name`: `Ok(None)` when absent, a refusal when repeated.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a http::HeaderValue>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Refusal::invalid(format!("`{name}` is repeated")));
    }
    Ok(first)
}

/// A refused signed request. The detail is for logs (and development error bodies): it never
/// holds the signature, the secret or the key.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    detail: String,
}

impl Refusal {
    fn required(detail: String) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "signature_required",
            message: "this request must be signed",
            detail,
        }
    }

    fn invalid(detail: String) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_signature",
            message: "the request signature is invalid",
            detail,
        }
    }

    fn expired(detail: String) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "signature_expired",
            message: "the request timestamp is too far from the current time",
            detail,
        }
    }

    fn too_large(max_body: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: "the request body is too large",
            detail: format!("a signed body may have at most {max_body} bytes"),
        }
    }

    fn into_response<B: Default>(self, parts: &Parts) -> Response<B> {
        let key_id = parts
            .extensions
            .get::<Identity>()
            .map(|i| i.key_id.as_str());
        if self.status.is_server_error() {
            tracing::error!(
                target: "portcullis::auth",
                key_id,
                code = self.code,
                reason = %self.detail,
                "signature could not be checked"
            );
        } else {
            tracing::info!(
                target: "portcullis::auth",
                key_id,
                code = self.code,
                reason = %self.detail,
                "signed request refused"
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            unauthorized(self.code, self.message, self.detail)
        } else {
            Rejection::new(self.status, self.code, self.message)
                .with_detail(self.detail)
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;

    use http::HeaderValue;
    use http_body_util::Full;

    use super::super::canonical::sign;
    use super::super::replay::testing::MemoryReplay;
    use super::super::secret::SigningSecret;
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const SECRET: &[u8] = b"acme_sig_Q2xpZW50U2VjcmV0";
    const MAX_BODY: usize = 64;
    const TS: &str = "x-portcullis-timestamp";
    const SIG: &str = "x-portcullis-signature";

    fn layer(replay: &Arc<MemoryReplay>) -> SignatureLayer {
        let replay: Arc<dyn ReplayCheck> = replay.clone();
        SignatureLayer::builder(replay)
            .max_body(MAX_BODY)
            .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
            .build()
            .unwrap()
    }

    /// What the inner service got.
    #[derive(Debug)]
    struct Seen {
        method: http::Method,
        uri: http::Uri,
        headers: HeaderMap,
        body: Bytes,
        verified: bool,
        secret_passed_on: bool,
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Sends `req` through `layer` to a recording inner service.
    fn run(layer: &SignatureLayer, req: Request<Full<Bytes>>) -> (Response<()>, Option<Seen>) {
        let signature = req.headers().get(SIG).cloned();
        let seen = Arc::new(Mutex::new(None));
        let record = seen.clone();
        let svc = layer.layer(tower::service_fn(move |req: Request<Full<Bytes>>| {
            let record = record.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                *record.lock().unwrap() = Some(Seen {
                    verified: parts.extensions.get::<SignatureVerified>().is_some(),
                    secret_passed_on: parts.extensions.get::<SignatureRequired>().is_some(),
                    method: parts.method,
                    uri: parts.uri,
                    headers: parts.headers,
                    body,
                });
                Ok::<_, Infallible>(Response::new(()))
            }
        }));
        let res = block_on(tower::ServiceExt::oneshot(svc, req)).unwrap();
        // What is logged (the detail) never holds the secret or the signature.
        if let Some(rejection) = res.extensions().get::<Rejection>() {
            let detail = rejection.detail().unwrap_or_default();
            assert!(
                !detail.contains(std::str::from_utf8(SECRET).unwrap()),
                "{detail}"
            );
            if let Some(sig) = signature.as_ref().and_then(|s| s.to_str().ok())
                && sig.len() > 8
            {
                assert!(!detail.contains(sig), "{detail}");
            }
        }
        let seen = seen.lock().unwrap().take();
        (res, seen)
    }

    fn code(res: &Response<()>) -> Option<&'static str> {
        res.extensions().get::<Rejection>().map(Rejection::code)
    }

    /// A request signed with `secret` at `timestamp`, marked by auth as needing a signature
    /// with `SECRET`.
    fn signed_with(
        secret: &[u8],
        method: &str,
        target: &str,
        body: &'static [u8],
        timestamp: &str,
    ) -> Request<Full<Bytes>> {
        let signature = sign(secret, &canonical_string(timestamp, method, target, body));
        let mut req = Request::builder()
            .method(method)
            .uri(target)
            .header(TS, timestamp)
            .header(SIG, signature)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        req.extensions_mut()
            .insert(SignatureRequired::new(SigningSecret::new(SECRET.to_vec())));
        req
    }

    fn signed(
        method: &str,
        target: &str,
        body: &'static [u8],
        timestamp: &str,
    ) -> Request<Full<Bytes>> {
        signed_with(SECRET, method, target, body, timestamp)
    }

    const BODY: &[u8] = br#"{"sku":"A-1","qty":2}"#;

    fn order() -> Request<Full<Bytes>> {
        signed("POST", "/v1/orders?dry-run=1", BODY, &NOW.to_string())
    }

    fn assert_refused(res: &Response<()>, seen: &Option<Seen>, status: StatusCode, expected: &str) {
        assert_eq!(res.status(), status);
        assert_eq!(code(res), Some(expected));
        assert!(seen.is_none(), "the inner service was called");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
        } else {
            assert!(res.headers().get("www-authenticate").is_none());
        }
    }

    #[test]
    fn a_valid_signature_passes_with_the_exact_body_and_without_the_headers() {
        let replay = Arc::new(MemoryReplay::default());
        let (res, seen) = run(&layer(&replay), order());
        assert_eq!(res.status(), StatusCode::OK);
        let seen = seen.unwrap();
        assert_eq!(seen.body, BODY);
        assert_eq!(seen.method, http::Method::POST);
        assert_eq!(seen.uri, "/v1/orders?dry-run=1");
        assert!(seen.headers.get(TS).is_none());
        assert!(seen.headers.get(SIG).is_none());
        assert_eq!(seen.headers["content-type"], "application/json");
        assert!(seen.verified);
        assert!(
            !seen.secret_passed_on,
            "the secret went further down the stack"
        );
        // Remembered for twice the skew.
        let remembered = replay.seen.lock().unwrap();
        assert_eq!(remembered.len(), 1);
        assert_eq!(remembered.values().next(), Some(&Duration::from_secs(600)));
    }

    #[test]
    fn the_test_vector_passes() {
        let replay = Arc::new(MemoryReplay::default());
        let mut req = Request::post("/v1/orders?dry-run=1")
            .header(TS, "1700000000")
            .header(
                SIG,
                "591284d3b0f331a211c390f5e90797dd8c569616ae53c785437060b04b328190",
            )
            .body(Full::new(Bytes::from_static(BODY)))
            .unwrap();
        req.extensions_mut()
            .insert(SignatureRequired::new(SigningSecret::new(SECRET.to_vec())));
        let (res, _) = run(&layer(&replay), req);
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[test]
    fn wrong_secret_or_tampered_request() {
        let replay = Arc::new(MemoryReplay::default());
        let layer = layer(&replay);
        let ts = NOW.to_string();

        let wrong_secret = signed_with(b"acme_sig_other", "POST", "/v1/orders", BODY, &ts);
        let tampered_body =
            order().map(|_| Full::new(Bytes::from_static(br#"{"sku":"A-1","qty":200}"#)));
        let mut tampered_path = order();
        *tampered_path.uri_mut() = "/v1/refunds?dry-run=1".parse().unwrap();
        let mut tampered_query = order();
        *tampered_query.uri_mut() = "/v1/orders?dry-run=0".parse().unwrap();
        let mut dropped_query = order();
        *dropped_query.uri_mut() = "/v1/orders".parse().unwrap();
        let mut tampered_method = order();
        *tampered_method.method_mut() = http::Method::PUT;
        let mut tampered_timestamp = order();
        tampered_timestamp
            .headers_mut()
            .insert(TS, HeaderValue::from(NOW + 1));
        let mut flipped = order();
        let mut sig = flipped.headers()[SIG]
            .to_str()
            .unwrap()
            .to_owned()
            .into_bytes();
        sig[0] = if sig[0] == b'0' { b'1' } else { b'0' };
        flipped
            .headers_mut()
            .insert(SIG, HeaderValue::from_bytes(&sig).unwrap());

        for (what, req) in [
            ("wrong secret", wrong_secret),
            ("tampered body", tampered_body),
            ("tampered path", tampered_path),
            ("tampered query", tampered_query),
            ("dropped query", dropped_query),
            ("tampered method", tampered_method),
            ("tampered timestamp", tampered_timestamp),
            ("flipped signature", flipped),
        ] {
            let (res, seen) = run(&layer, req);
            assert_eq!(code(&res), Some("invalid_signature"), "{what}");
            assert_refused(&res, &seen, StatusCode::UNAUTHORIZED, "invalid_signature");
        }
        assert!(
            replay.seen.lock().unwrap().is_empty(),
            "a bad signature was remembered"
        );
    }

    #[test]
    fn timestamps_outside_the_window_are_refused_and_the_edges_accepted() {
        let replay = Arc::new(MemoryReplay::default());
        let layer = layer(&replay);
        for (ts, ok) in [
            (NOW - 300, true),
            (NOW + 300, true),
            (NOW - 1, true),
            (NOW + 1, true),
            (NOW - 301, false),
            (NOW + 301, false),
            (0, false),
            (999_999_999_999, false),
        ] {
            let (res, seen) = run(&layer, signed("GET", "/v1/things", b"", &ts.to_string()));
            if ok {
                assert_eq!(res.status(), StatusCode::OK, "{ts}");
                assert!(seen.is_some());
            } else {
                assert_refused(&res, &seen, StatusCode::UNAUTHORIZED, "signature_expired");
            }
        }
        let (res, _) = run(
            &layer,
            signed("GET", "/v1/things", b"", &(NOW - 301).to_string()),
        );
        let detail = res
            .extensions()
            .get::<Rejection>()
            .unwrap()
            .detail()
            .unwrap();
        assert!(detail.contains("301 s behind"), "{detail}");
        let (res, _) = run(
            &layer,
            signed("GET", "/v1/things", b"", &(NOW + 400).to_string()),
        );
        let detail = res
            .extensions()
            .get::<Rejection>()
            .unwrap()
            .detail()
            .unwrap();
        assert!(detail.contains("400 s ahead of"), "{detail}");
    }

    #[test]
    fn malformed_timestamps_and_signatures() {
        let replay = Arc::new(MemoryReplay::default());
        let layer = layer(&replay);
        // Signed correctly over the malformed value, so only its form refuses it.
        for ts in [
            "-1700000000",
            "+1700000000",
            " 1700000000",
            "1700000000.0",
            "1.7e9",
            "",
            "0001700000000",
        ] {
            let (res, seen) = run(&layer, signed("GET", "/v1/things", b"", ts));
            assert_eq!(code(&res), Some("invalid_signature"), "{ts:?}");
            assert_refused(&res, &seen, StatusCode::UNAUTHORIZED, "invalid_signature");
        }
        let good = order().headers()[SIG].to_str().unwrap().to_owned();
        for sig in [
            &good[..63],
            &format!("{good}0"),
            &format!("{}g", &good[..63]),
            "",
            "sha256=abc",
        ] {
            let mut req = order();
            req.headers_mut()
                .insert(SIG, HeaderValue::from_str(sig).unwrap());
            let (res, seen) = run(&layer, req);
            assert_refused(&res, &seen, StatusCode::UNAUTHORIZED, "invalid_signature");
        }
        // Uppercase hex is the same signature.
        let mut req = order();
        req.headers_mut().insert(
            SIG,
            HeaderValue::from_str(&good.to_ascii_uppercase()).unwrap(),
        );
        assert_eq!(run(&layer, req).0.status(), StatusCode::OK);
    }

    #[test]
    fn missing_and_repeated_headers() {
        let replay = Arc::new(MemoryReplay::default());
        let layer = layer(&replay);
        for remove in [&[TS][..], &[SIG], &[TS, SIG]] {
            let mut req = order();
            for name in remove {
                req.headers_mut().remove(*name);
            }
            let (res, seen) = run(&layer, req);
            assert_refused(&res, &seen, StatusCode::UNAUTHORIZED, "signature_required");
        }
        for name in [TS, SIG] {
            let mut req = order();
            let value = req.headers()[name].clone();
            req.headers_mut().append(name, value);
            let (res, seen) = run(&layer, req);
            assert_refused(&res, &seen, StatusCode::UNAUTHORIZED, "invalid_signature");
        }
        // Missing beats repeated: the client is told to sign.
        let mut req = order();
        req.headers_mut().remove(TS);
        let value = req.headers()[SIG].clone();
        req.headers_mut().append(SIG, value);
        let (res, seen) = run(&layer, req);
        assert_refused(&res, &seen, StatusCode::UNAUTHORIZED, "signature_required");
    }

    #[test]
    fn bodies_over_the_limit_are_refused_unread() {
        let replay = Arc::new(MemoryReplay::default());
        let layer = layer(&replay);
        let ts = NOW.to_string();
        const AT_LIMIT: &[u8] = &[b'a'; MAX_BODY];
        const OVER: &[u8] = &[b'a'; MAX_BODY + 1];
        let (res, seen) = run(&layer, signed("POST", "/v1/upload", AT_LIMIT, &ts));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(seen.unwrap().body.len(), MAX_BODY);

        let (res, seen) = run(&layer, signed("POST", "/v1/upload", OVER, &ts));
        assert_refused(
            &res,
            &seen,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        );

        // A declared length over the limit, even with a small body.
        let mut req = signed("POST", "/v1/upload", b"{}", &ts);
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(10_000_000));
        let (res, seen) = run(&layer, req);
        assert_refused(
            &res,
            &seen,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        );
        assert_eq!(replay.seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_signature_is_accepted_once() {
        let replay = Arc::new(MemoryReplay::default());
        let layer = layer(&replay);
        assert_eq!(run(&layer, order()).0.status(), StatusCode::OK);
        let (res, seen) = run(&layer, order());
        assert_refused(&res, &seen, StatusCode::UNAUTHORIZED, "signature_replayed");
        // The same signature in uppercase is the same signature.
        let mut upper = order();
        let sig = upper.headers()[SIG].to_str().unwrap().to_ascii_uppercase();
        upper
            .headers_mut()
            .insert(SIG, HeaderValue::from_str(&sig).unwrap());
        let (res, seen) = run(&layer, upper);
        assert_refused(&res, &seen, StatusCode::UNAUTHORIZED, "signature_replayed");
        // A fresh timestamp is a fresh signature.
        let again = signed("POST", "/v1/orders?dry-run=1", BODY, &(NOW + 1).to_string());
        assert_eq!(run(&layer, again).0.status(), StatusCode::OK);
    }

    #[test]
    fn the_same_request_from_two_keys_in_the_same_second_is_no_replay() {
        let replay = Arc::new(MemoryReplay::default());
        let layer = layer(&replay);
        let ts = NOW.to_string();
        assert_eq!(
            run(&layer, signed("GET", "/v1/status", b"", &ts))
                .0
                .status(),
            StatusCode::OK
        );
        let mut other = signed_with(b"globex_sig_x", "GET", "/v1/status", b"", &ts);
        other
            .extensions_mut()
            .insert(SignatureRequired::new(SigningSecret::new(
                b"globex_sig_x".to_vec(),
            )));
        assert_eq!(run(&layer, other).0.status(), StatusCode::OK);
    }

    #[test]
    fn an_unavailable_replay_guard_refuses_with_503() {
        let replay = Arc::new(MemoryReplay {
            unavailable: true,
            ..MemoryReplay::default()
        });
        let (res, seen) = run(&layer(&replay), order());
        assert_refused(
            &res,
            &seen,
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_unavailable",
        );
    }

    #[test]
    fn the_target_as_sent_is_signed_not_the_normalised_one() {
        let replay = Arc::new(MemoryReplay::default());
        let layer = layer(&replay);
        let ts = NOW.to_string();
        let rewritten = |original: bool| {
            let mut req = signed("GET", "/v1//things/%7Euser?a=1", b"", &ts);
            if original {
                let target = req.uri().path_and_query().cloned().unwrap();
                req.extensions_mut().insert(OriginalTarget::new(target));
            }
            // What routing does to the URI.
            *req.uri_mut() = "/v1/things/~user?a=1".parse().unwrap();
            req
        };
        let (res, seen) = run(&layer, rewritten(true));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(seen.unwrap().uri, "/v1/things/~user?a=1");
        let (res, seen) = run(&layer, rewritten(false));
        assert_refused(&res, &seen, StatusCode::UNAUTHORIZED, "invalid_signature");
    }

    /// A body that fails when read; `0` marks one rebuilt from bytes.
    #[derive(Debug)]
    struct Unreadable(u32);

    impl Body for Unreadable {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(Some(Err(std::io::Error::other("connection reset"))))
        }
    }

    impl From<Bytes> for Unreadable {
        fn from(_: Bytes) -> Self {
            Unreadable(0)
        }
    }

    /// Sends a request with an [`Unreadable`] body through the layer; returns the response and
    /// the body ID and headers the inner service got.
    fn run_unreadable(req: Request<Unreadable>) -> (Response<()>, Option<(u32, HeaderMap)>) {
        let replay = Arc::new(MemoryReplay::default());
        let seen = Arc::new(Mutex::new(None));
        let record = seen.clone();
        let svc = layer(&replay).layer(tower::service_fn(move |req: Request<Unreadable>| {
            *record.lock().unwrap() = Some((req.body().0, req.headers().clone()));
            async { Ok::<_, Infallible>(Response::new(())) }
        }));
        let res = block_on(tower::ServiceExt::oneshot(svc, req)).unwrap();
        let seen = seen.lock().unwrap().take();
        (res, seen)
    }

    #[test]
    fn requests_that_need_no_signature_stream_through_unread() {
        // Signature headers from a key that does not sign: ignored, and not forwarded.
        let req = Request::post("/v1/orders")
            .header(TS, "garbage")
            .header(SIG, "garbage")
            .header("content-type", "application/json")
            .body(Unreadable(7))
            .unwrap();
        let (res, seen) = run_unreadable(req);
        assert_eq!(res.status(), StatusCode::OK);
        let (id, headers) = seen.unwrap();
        assert_eq!(id, 7, "the body was replaced");
        assert!(headers.get(TS).is_none());
        assert!(headers.get(SIG).is_none());
        assert_eq!(headers["content-type"], "application/json");
    }

    #[test]
    fn an_unreadable_signed_body_is_a_bad_request() {
        let ts = NOW.to_string();
        let mut req = Request::post("/v1/orders")
            .header(TS, ts.as_str())
            .header(
                SIG,
                sign(SECRET, &canonical_string(&ts, "POST", "/v1/orders", b"")),
            )
            .body(Unreadable(7))
            .unwrap();
        req.extensions_mut()
            .insert(SignatureRequired::new(SigningSecret::new(SECRET.to_vec())));
        let (res, seen) = run_unreadable(req);
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            res.extensions().get::<Rejection>().map(Rejection::code),
            Some("bad_request")
        );
        assert!(seen.is_none());
    }

    #[test]
    fn configuration_is_checked_when_built() {
        let replay: Arc<dyn ReplayCheck> = Arc::new(MemoryReplay::default());
        let build = |f: fn(SignatureLayerBuilder) -> SignatureLayerBuilder| {
            f(SignatureLayer::builder(replay.clone()))
                .build()
                .map(|_| ())
        };
        assert_eq!(build(|b| b), Ok(()));
        assert_eq!(
            build(|b| b.signature_header(HeaderName::from_static(DEFAULT_TIMESTAMP_HEADER))),
            Err(SignatureConfigError::SameHeader)
        );
        assert_eq!(
            build(|b| b.max_skew(Duration::ZERO)),
            Err(SignatureConfigError::ZeroSkew)
        );
        assert_eq!(
            build(|b| b.max_skew(MAX_MAX_SKEW + Duration::from_secs(1))),
            Err(SignatureConfigError::SkewTooLarge)
        );
        // Custom header names are the ones read and removed.
        let replay = Arc::new(MemoryReplay::default());
        let custom = {
            let replay: Arc<dyn ReplayCheck> = replay.clone();
            SignatureLayer::builder(replay)
                .timestamp_header(HeaderName::from_static("x-acme-timestamp"))
                .signature_header(HeaderName::from_static("x-acme-signature"))
                .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
                .build()
                .unwrap()
        };
        let mut req = order();
        let ts = req.headers_mut().remove(TS).unwrap();
        let sig = req.headers_mut().remove(SIG).unwrap();
        req.headers_mut().insert("x-acme-timestamp", ts);
        req.headers_mut().insert("x-acme-signature", sig);
        let (res, seen) = run(&custom, req);
        assert_eq!(res.status(), StatusCode::OK);
        assert!(seen.unwrap().headers.get("x-acme-signature").is_none());
        assert!(!format!("{custom:?}").is_empty());
    }
}
