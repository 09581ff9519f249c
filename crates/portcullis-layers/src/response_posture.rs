//! Response posture: security headers, Cache-Control and removed headers, per route.
//!
//! Each route has one precomputed [`RoutePosture`]: a [`HeaderMap`] (security headers plus its
//! Cache-Control) inserted into every response, overriding what the upstream sent, and a list
//! of headers removed from it (those that advertise the stack, like `Server`, and those the
//! policy deliberately does not send). The policy is the single source of the posture: what a
//! reviewer reads is what a client gets, whatever the upstream does. The route comes from
//! [`MatchedRoute`] in the response's extensions; responses without one (a request refused
//! before routing) get the default route's posture, which is the last entry.
//!
//! tower-http's `SetResponseHeader` sets one fixed header per layer; a per-route set needs one
//! lookup and one loop instead, hence this module.
//!
//! ```
//! use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
//! use portcullis_layers::response_posture::{ResponsePostureLayer, RoutePosture};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut default = HeaderMap::new();
//! default.insert("cache-control", HeaderValue::from_static("no-store"));
//! default.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
//! let layer = ResponsePostureLayer::new(vec![RoutePosture {
//!     insert: default,
//!     remove: vec![HeaderName::from_static("server")],
//! }]);
//! let svc = ServiceBuilder::new().layer(layer).service(service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::builder().header("server", "nginx/1.2.3").body(()).unwrap())
//! }));
//! let res = svc.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(res.headers()["cache-control"], "no-store");
//! assert!(res.headers().get("server").is_none());
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, HeaderName, Request, Response};
use tower::{Layer, Service};

use crate::matched_route::MatchedRoute;

/// What one route does to its responses.
#[derive(Debug, Clone, Default)]
pub struct RoutePosture {
    /// Inserted, replacing any upstream value.
    pub insert: HeaderMap,
    /// Removed from upstream responses.
    pub remove: Vec<HeaderName>,
}

#[derive(Debug)]
struct Posture {
    /// One entry per route; the last one is the default route's.
    per_route: Vec<RoutePosture>,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ResponsePostureLayer {
    posture: Arc<Posture>,
}

impl ResponsePostureLayer {
    /// `per_route[i]` applies to responses of route `i`; the last entry also serves responses
    /// with no [`MatchedRoute`]. An empty list changes nothing.
    pub fn new(per_route: Vec<RoutePosture>) -> Self {
        Self {
            posture: Arc::new(Posture { per_route }),
        }
    }
}

impl<S> Layer<S> for ResponsePostureLayer {
    type Service = ResponsePosture<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponsePosture {
            inner,
            posture: self.posture.clone(),
        }
    }
}

/// See [`ResponsePostureLayer`].
#[derive(Debug, Clone)]
pub struct ResponsePosture<S> {
    inner: S,
    posture: Arc<Posture>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ResponsePosture<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponsePostureFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        ResponsePostureFuture {
            inner: self.inner.call(req),
            posture: self.posture.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`ResponsePosture`].
    pub struct ResponsePostureFuture<F> {
        #[pin]
        inner: F,
        posture: Arc<Posture>,
    }
}

impl<F, ResBody, E> Future for ResponsePostureFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        let posture = &**this.posture;
        let index = res.extensions().get::<MatchedRoute>().map(|r| r.index);
        let route = index
            .and_then(|i| posture.per_route.get(i))
            .or_else(|| posture.per_route.last());
        if let Some(route) = route {
            let headers = res.headers_mut();
            crate::remove_headers::remove_all(headers, &route.remove);
            // One growth for all of them rather than one per threshold crossed.
            headers.reserve(route.insert.len());
            for (name, value) in &route.insert {
                headers.insert(name.clone(), value.clone());
            }
        }
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use tower::{ServiceExt, service_fn};

    fn map(cache: &'static str) -> RoutePosture {
        let mut insert = HeaderMap::new();
        insert.insert("cache-control", HeaderValue::from_static(cache));
        RoutePosture {
            insert,
            remove: vec![HeaderName::from_static("content-security-policy")],
        }
    }

    #[tokio::test]
    async fn picks_the_matched_route_and_overrides_upstream() {
        let layer = ResponsePostureLayer::new(vec![map("no-store, private"), map("no-store")]);
        let svc = layer.layer(service_fn(|_req: Request<()>| async {
            let mut res = Response::builder()
                .header("cache-control", "public, max-age=9999")
                .body(())
                .unwrap();
            res.extensions_mut().insert(MatchedRoute {
                index: 0,
                name: "account".into(),
            });
            Ok::<_, std::convert::Infallible>(res)
        }));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.headers().get_all("cache-control").iter().count(), 1);
        assert_eq!(res.headers()["cache-control"], "no-store, private");
    }

    #[tokio::test]
    async fn unrouted_responses_get_the_default_posture() {
        let layer = ResponsePostureLayer::new(vec![map("no-store, private"), map("no-store")]);
        let svc = layer.layer(service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(()))
        }));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.headers()["cache-control"], "no-store");
    }
}
