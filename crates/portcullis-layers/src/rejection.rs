//! The one JSON error: every refusal and failure the gateway itself produces.
//!
//! A layer that refuses a request returns [`Rejection::into_response`]: the status, an empty
//! body, and the rejection attached to the response's extensions, so outer layers (and, later,
//! the audit log) can see *why*. [`RenderErrorsLayer`] is the one place that turns it into the
//! body `{"error": {"code", "message", "correlation_id"}}`, adding internal detail only when the
//! policy allows it (never in production).
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use portcullis_layers::rejection::{ErrorDetail, Rejection, RenderErrorsLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio_test_block_on(async {
//! let svc = ServiceBuilder::new()
//!     .layer(RenderErrorsLayer::new(ErrorDetail::Hide))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Rejection::bad_gateway("connection refused").into_response::<Bytes>())
//!     }));
//! let res: Response<Bytes> = svc.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
//! let body = std::str::from_utf8(res.body()).unwrap();
//! assert!(body.contains("\"code\":\"upstream_unavailable\""));
//! assert!(!body.contains("connection refused")); // detail hidden
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use tower::{Layer, Service};

use crate::correlation_id::CorrelationId;

/// The future of a layer that answers a refusal itself, without calling the service inside.
pub type RefusedFuture<B, E> = std::future::Ready<Result<Response<B>, E>>;

/// `d` in whole seconds, rounded up, at least 1: a client told "0" would retry at once.
pub fn whole_seconds_up(d: std::time::Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// A typed refusal with a stable machine-readable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    detail: Option<String>,
    retry_after: Option<std::time::Duration>,
}

impl Rejection {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    /// Internal detail (why an upstream failed, which check refused). Shown only where the
    /// policy exposes detail, i.e. never in production; always logged.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// When the client may try again (`429`, `503`): sent as `Retry-After` in whole seconds,
    /// rounded up, at least 1.
    pub fn with_retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Stable identifier clients can branch on (`bad_request`, `upstream_timeout`, ...).
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// 400 for a request that is malformed or ambiguous.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 405 for a method the gateway never forwards.
    pub fn method_not_allowed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        )
    }

    /// 502: the upstream could not be reached or answered with something unusable.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            "the upstream service is unavailable",
        )
        .with_detail(detail)
    }

    /// 504: the upstream did not answer in time.
    pub fn gateway_timeout(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the upstream service did not answer in time",
        )
        .with_detail(detail)
    }

    /// The refusal as a response with an empty body; [`RenderErrorsLayer`] writes the body.
    pub fn into_response<B: Default>(self) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = self.status;
        if let Some(after) = self.retry_after {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(whole_seconds_up(after)),
            );
        }
        res.extensions_mut().insert(self);
        res
    }

    /// The JSON body, `{"error": {"code", "message", "correlation_id"[, "detail"]}}`.
    pub fn to_json(&self, correlation_id: Option<&str>, detail: ErrorDetail) -> Bytes {
        let mut error = serde_json::Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.as_ref().into());
        error.insert(
            "correlation_id".into(),
            correlation_id.map_or(serde_json::Value::Null, Into::into),
        );
        if let (ErrorDetail::Expose, Some(d)) = (detail, &self.detail) {
            error.insert("detail".into(), d.as_str().into());
        }
        let body = serde_json::json!({ "error": error });
        Bytes::from(body.to_string())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

/// Whether error bodies carry internal detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDetail {
    /// Development: the body says why (e.g. "connection refused").
    Expose,
    /// Production: code, message and correlation ID only.
    Hide,
}

/// Renders every response carrying a [`Rejection`] into the JSON error body.
#[derive(Debug, Clone, Copy)]
pub struct RenderErrorsLayer {
    detail: ErrorDetail,
}

impl RenderErrorsLayer {
    pub fn new(detail: ErrorDetail) -> Self {
        Self { detail }
    }
}

impl<S> Layer<S> for RenderErrorsLayer {
    type Service = RenderErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RenderErrors {
            inner,
            detail: self.detail,
        }
    }
}

/// See [`RenderErrorsLayer`].
#[derive(Debug, Clone)]
pub struct RenderErrors<S> {
    inner: S,
    detail: ErrorDetail,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RenderErrors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RenderErrorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let correlation_id = req.extensions().get::<CorrelationId>().cloned();
        RenderErrorsFuture {
            inner: self.inner.call(req),
            correlation_id,
            detail: self.detail,
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`RenderErrors`].
    pub struct RenderErrorsFuture<F> {
        #[pin]
        inner: F,
        correlation_id: Option<CorrelationId>,
        detail: ErrorDetail,
    }
}

impl<F, ResBody, E> Future for RenderErrorsFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let Some(rejection) = res.extensions().get::<Rejection>() else {
            return Poll::Ready(Ok(res));
        };
        let id = this.correlation_id.as_ref().map(CorrelationId::as_str);
        let body = rejection.to_json(id, *this.detail);
        if rejection.status().is_server_error() {
            tracing::warn!(
                status = rejection.status().as_u16(),
                code = rejection.code(),
                detail = rejection.detail(),
                "request failed"
            );
        } else {
            tracing::info!(
                status = rejection.status().as_u16(),
                code = rejection.code(),
                detail = rejection.detail(),
                "request refused"
            );
        }
        let (mut parts, _) = res.into_parts();
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        Poll::Ready(Ok(Response::from_parts(parts, ResBody::from(body))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_and_detail_policy() {
        let r = Rejection::gateway_timeout("no answer after 30s");
        let hidden: serde_json::Value =
            serde_json::from_slice(&r.to_json(Some("abc"), ErrorDetail::Hide)).unwrap();
        assert_eq!(hidden["error"]["code"], "upstream_timeout");
        assert_eq!(hidden["error"]["correlation_id"], "abc");
        assert!(hidden["error"].get("detail").is_none());
        let shown: serde_json::Value =
            serde_json::from_slice(&r.to_json(None, ErrorDetail::Expose)).unwrap();
        assert_eq!(shown["error"]["detail"], "no answer after 30s");
        assert!(shown["error"]["correlation_id"].is_null());
    }
}
