//! Routing: normalise the path, find the policy route, and send the canonical path on.
//!
//! The route is recorded as [`MatchedRoute`] in the request's extensions and copied onto the
//! response's, so response-side layers apply that route's posture. The request URI is
//! rewritten to the canonical path (see [`portcullis_policy::normalize_path`]) so that what the
//! upstream routes on is exactly what the gateway matched. A path that cannot be normalised
//! without guessing is refused with 400.
//!
//! Routing also runs the client-IP steps (docs/gateway.md's step 6a): before matching, the
//! client IP is resolved ([`ClientIpLayer`]) and the global IP lists checked; after, the
//! route's. They are `portcullis_layers` layers, run inline here rather than stacked: every
//! extra layer deepens [`crate::PolicyService`]'s type, and rustc's time to check a service
//! wrapping it grows steeply with that depth (three more layers took the axum example's
//! `cargo check` from under a minute to well over two).

use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use portcullis_layers::ip_filter::{IpFilterLayer, IpRules};
use portcullis_layers::{ClientIpLayer, EitherFuture, MatchedRoute, OriginalTarget, Rejection};
use portcullis_policy::{Policy, normalize_path};
use tower::{Layer, Service};

#[derive(Debug)]
struct Table {
    policy: Arc<Policy>,
    /// Route names by index, the default route last.
    names: Vec<Arc<str>>,
    client_ip: ClientIpLayer,
    global_ip_filter: IpFilterLayer,
    /// Indexed like `names`.
    route_ip_filter: IpFilterLayer,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct RoutingLayer {
    table: Arc<Table>,
}

impl RoutingLayer {
    pub fn new(policy: Arc<Policy>) -> Self {
        let names = policy
            .all_routes()
            .map(|r| Arc::from(r.name.as_str()))
            .collect();
        let client_ip = ClientIpLayer::new(
            policy.server.trusted_proxies.clone(),
            policy.server.ipv6_bucket,
        );
        let global_ip_filter = IpFilterLayer::global(IpRules::new(
            policy.ip_filter.allow.clone(),
            policy.ip_filter.deny.clone(),
            "global",
        ));
        let route_ip_filter = IpFilterLayer::per_route(
            policy
                .all_routes()
                .map(|r| {
                    IpRules::new(
                        r.ip_filter.allow.clone(),
                        r.ip_filter.deny.clone(),
                        r.name.as_str(),
                    )
                })
                .collect(),
        );
        Self {
            table: Arc::new(Table {
                policy,
                names,
                client_ip,
                global_ip_filter,
                route_ip_filter,
            }),
        }
    }
}

impl<S> Layer<S> for RoutingLayer {
    type Service = Routing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Routing {
            inner,
            table: self.table.clone(),
        }
    }
}

/// See [`RoutingLayer`].
#[derive(Debug, Clone)]
pub struct Routing<S> {
    inner: S,
    table: Arc<Table>,
}

type Rejected<B, E> = Ready<Result<Response<B>, E>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Routing<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = EitherFuture<RoutedFuture<S::Future>, Rejected<ResBody, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        self.table.client_ip.insert(&mut req);
        if let Err(rejection) = self.table.global_ip_filter.check(&req) {
            return EitherFuture::right(ready(Ok(rejection.into_response())));
        }
        let matched = match route(&self.table, &mut req) {
            Ok(matched) => matched,
            Err(rejection) => return EitherFuture::right(ready(Ok(rejection.into_response()))),
        };
        req.extensions_mut().insert(matched.clone());
        if let Err(rejection) = self.table.route_ip_filter.check(&req) {
            // The refusal carries the route, so it gets the route's posture.
            let mut res = rejection.into_response();
            res.extensions_mut().insert(matched);
            return EitherFuture::right(ready(Ok(res)));
        }
        EitherFuture::left(RoutedFuture {
            inner: self.inner.call(req),
            matched: Some(matched),
        })
    }
}

/// Normalises the request's path, rewrites the URI to the canonical form, and matches it.
fn route<B>(table: &Table, req: &mut Request<B>) -> Result<MatchedRoute, Rejection> {
    let normalized = normalize_path(req.uri().path()).map_err(|e| {
        Rejection::bad_request("the request path is ambiguous").with_detail(e.to_string())
    })?;
    let (index, _) = table.policy.match_route(&normalized.decoded);
    if normalized.canonical != req.uri().path() {
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{}?{q}", normalized.canonical),
            None => normalized.canonical.into_owned(),
        };
        // A request signature covers the target as sent: keep it for the signature check.
        if let Some(original) = req.uri().path_and_query().cloned() {
            req.extensions_mut().insert(OriginalTarget::new(original));
        }
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).map_err(|e| {
            Rejection::bad_request("the request target is invalid").with_detail(e.to_string())
        })?);
        *req.uri_mut() = Uri::from_parts(parts).map_err(|e| {
            Rejection::bad_request("the request target is invalid").with_detail(e.to_string())
        })?;
    }
    let name = table
        .names
        .get(index)
        .cloned()
        .unwrap_or_else(|| Arc::from("default"));
    Ok(MatchedRoute { index, name })
}

pin_project_lite::pin_project! {
    /// Copies the matched route onto the response.
    pub struct RoutedFuture<F> {
        #[pin]
        inner: F,
        matched: Option<MatchedRoute>,
    }
}

impl<F, ResBody, E> std::future::Future for RoutedFuture<F>
where
    F: std::future::Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        if let Some(matched) = this.matched.take() {
            res.extensions_mut().insert(matched);
        }
        Poll::Ready(Ok(res))
    }
}
