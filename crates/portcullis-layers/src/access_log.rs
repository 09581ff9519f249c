//! The access log: one structured line per request, inside the request's correlation span.
//!
//! Logged under the `portcullis::access` target so it can be filtered separately. The path is
//! logged without its query string: queries routinely carry tokens and personal data.
//!
//! ```
//! use http::{Request, Response};
//! use portcullis_layers::access_log::AccessLogLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let svc = ServiceBuilder::new().layer(AccessLogLayer::new(true)).service(service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(()))
//! }));
//! assert_eq!(svc.oneshot(Request::new(())).await.unwrap().status(), 200);
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Method, Request, Response};
use tower::{Layer, Service};

use crate::matched_route::MatchedRoute;
use crate::rejection::Rejection;

/// Logs every request's method, path, status, route, rejection code and duration.
#[derive(Debug, Clone, Copy)]
pub struct AccessLogLayer {
    enabled: bool,
}

impl AccessLogLayer {
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            enabled: self.enabled,
        }
    }
}

/// See [`AccessLogLayer`].
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
    enabled: bool,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AccessLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let entry = (self.enabled
            && tracing::enabled!(target: "portcullis::access", tracing::Level::INFO))
        .then(|| Entry {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            started: Instant::now(),
        });
        AccessLogFuture {
            inner: self.inner.call(req),
            entry,
        }
    }
}

#[derive(Debug)]
struct Entry {
    method: Method,
    path: String,
    started: Instant,
}

pin_project_lite::pin_project! {
    /// Response future of [`AccessLog`].
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        entry: Option<Entry>,
    }
}

impl<F, ResBody, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        if let Some(entry) = this.entry.take() {
            let route = res.extensions().get::<MatchedRoute>().map(|r| &*r.name);
            let refused = res.extensions().get::<Rejection>().map(Rejection::code);
            tracing::info!(
                target: "portcullis::access",
                method = %entry.method,
                path = %entry.path,
                status = res.status().as_u16(),
                route,
                refused,
                duration_us = entry.started.elapsed().as_micros() as u64,
                "request"
            );
        }
        Poll::Ready(Ok(res))
    }
}
