//! Correlation IDs: one ID per request, in every log line, error body and upstream request.
//!
//! The caller's ID is kept when it is well-formed (bounded length, a safe charset that cannot
//! inject into logs or headers); otherwise a random UUID is generated. The ID is forwarded
//! upstream in the configured header, echoed on the response, stored in the request's
//! extensions as [`CorrelationId`], and recorded on a `request` tracing span that wraps the rest
//! of the pipeline, so every log line emitted while serving the request carries it.
//!
//! tower-http's `SetRequestId`/`PropagateRequestId` cover one header and take any value the
//! caller sends; a gateway must validate the caller's value and accept several header names,
//! hence this module.
//!
//! ```
//! use http::{HeaderName, Request, Response};
//! use portcullis_layers::correlation_id::{CorrelationId, CorrelationIdLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let layer = CorrelationIdLayer::new(HeaderName::from_static("x-correlation-id")).accept(vec![
//!     HeaderName::from_static("x-correlation-id"),
//!     HeaderName::from_static("x-request-id"),
//! ]);
//! let svc = ServiceBuilder::new().layer(layer).service(service_fn(|req: Request<()>| async move {
//!     let id = req.extensions().get::<CorrelationId>().unwrap().clone();
//!     assert_eq!(id.as_str(), "abc-123");
//!     Ok::<_, std::convert::Infallible>(Response::new(()))
//! }));
//! let req = Request::builder().header("x-request-id", "abc-123").body(()).unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.headers()["x-correlation-id"], "abc-123");
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::instrument::Instrumented;

/// The request's correlation ID, as stored in request extensions.
#[derive(Clone, PartialEq, Eq)]
pub struct CorrelationId(HeaderValue);

impl CorrelationId {
    /// A fresh random ID.
    pub fn generate() -> Self {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
        Self(HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid")))
    }

    /// The caller's ID, if it is well-formed: 1 to `max_length` characters of
    /// `A-Z a-z 0-9 - _ . : + = / @`.
    pub fn from_caller(value: &HeaderValue, max_length: usize) -> Option<Self> {
        let bytes = value.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= max_length
            && bytes.iter().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'_' | b'.' | b':' | b'+' | b'=' | b'/' | b'@')
            });
        ok.then(|| Self(value.clone()))
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from validated ASCII.
        self.0.to_str().unwrap_or("")
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    pub fn into_header_value(self) -> HeaderValue {
        self.0
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CorrelationId")
            .field(&self.as_str())
            .finish()
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
struct Config {
    header: HeaderName,
    accept: Vec<HeaderName>,
    max_length: usize,
}

/// Assigns every request a [`CorrelationId`]. See the module docs.
#[derive(Debug, Clone)]
pub struct CorrelationIdLayer {
    config: Arc<Config>,
}

impl CorrelationIdLayer {
    /// Uses `header` to forward and echo the ID, and accepts the caller's ID from it.
    pub fn new(header: HeaderName) -> Self {
        Self {
            config: Arc::new(Config {
                accept: vec![header.clone()],
                header,
                max_length: 128,
            }),
        }
    }

    /// Take the caller's ID only from these headers, in order (by default, from the ID header
    /// itself). An empty list means the ID is always generated.
    pub fn accept(self, headers: Vec<HeaderName>) -> Self {
        self.map(|c| c.accept = headers)
    }

    /// Longest caller-supplied ID kept (default 128).
    pub fn max_length(self, max_length: usize) -> Self {
        self.map(|c| c.max_length = max_length)
    }

    fn map(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            header: self.config.header.clone(),
            accept: self.config.accept.clone(),
            max_length: self.config.max_length,
        };
        f(&mut config);
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for CorrelationIdLayer {
    type Service = CorrelationIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorrelationIdService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// See [`CorrelationIdLayer`].
#[derive(Debug, Clone)]
pub struct CorrelationIdService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CorrelationIdService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = CorrelationIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let id = config
            .accept
            .iter()
            .find_map(|name| req.headers().get(name))
            .and_then(|value| CorrelationId::from_caller(value, config.max_length))
            .unwrap_or_else(CorrelationId::generate);
        // Whatever the caller sent in any accepted header is replaced by the one chosen ID, so
        // the upstream never sees an unvalidated or conflicting value.
        crate::remove_headers::remove_all(req.headers_mut(), &config.accept);
        req.headers_mut()
            .insert(config.header.clone(), id.header_value().clone());
        let span = tracing::info_span!("request", correlation_id = %id);
        req.extensions_mut().insert(id.clone());
        // Inside the span for the call too, not only for the polls of its future: layers that
        // refuse a request log while they are called (the IP filter, CSRF in report-only
        // mode), and those lines need the correlation ID like every other.
        // (A guard rather than `in_scope`: the closure cost a copy of the request and of the
        // returned future.)
        let entered = span.enter();
        let inner = self.inner.call(req);
        drop(entered);
        CorrelationIdFuture {
            inner: inner.instrument(span),
            header: config.header.clone(),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`CorrelationIdService`].
    pub struct CorrelationIdFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        header: HeaderName,
        id: Option<CorrelationId>,
    }
}

impl<F, ResBody, E> Future for CorrelationIdFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            res.headers_mut().insert(this.header.clone(), id.0);
        }
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_are_validated() {
        let ok = HeaderValue::from_static("req_01HX:abc.def-9");
        assert!(CorrelationId::from_caller(&ok, 128).is_some());
        for bad in ["", "has space", "quote\"", "semi;colon", "<script>"] {
            let v = HeaderValue::from_str(bad).unwrap();
            assert!(CorrelationId::from_caller(&v, 128).is_none(), "{bad:?}");
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert!(CorrelationId::from_caller(&long, 128).is_none());
    }

    #[tokio::test]
    async fn an_empty_accept_list_always_generates() {
        use tower::{ServiceExt, service_fn};
        let layer =
            CorrelationIdLayer::new(HeaderName::from_static("x-correlation-id")).accept(vec![]);
        let svc = layer.layer(service_fn(|req: Request<()>| async move {
            assert_eq!(req.headers().get_all("x-correlation-id").iter().count(), 1);
            Ok::<_, std::convert::Infallible>(Response::new(()))
        }));
        let req = Request::builder()
            .header("x-correlation-id", "mine")
            .body(())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_ne!(res.headers()["x-correlation-id"], "mine");
    }

    #[test]
    fn generated_ids_are_unique_uuids() {
        let a = CorrelationId::generate();
        let b = CorrelationId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 36);
    }
}
