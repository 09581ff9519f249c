//! IP allow/deny lists: `403 ip_denied` before anything else about the request is looked at.
//!
//! Rules, for one [`IpRules`]: a client inside any `deny` range is refused (deny wins); when
//! `allow` is non-empty, a client outside every `allow` range is refused. A request whose client
//! is unknown (no [`ClientIp`] in its extensions: the layers are mounted without a
//! [`PeerAddr`](crate::client_ip::PeerAddr)) matches no range: it is refused wherever an allow
//! list applies, and passes a deny list.
//!
//! [`IpFilterLayer::global`] checks one set of rules on every request; place it right after
//! [`ClientIpLayer`](crate::client_ip::ClientIpLayer). [`IpFilterLayer::per_route`] checks the
//! rules of the request's [`MatchedRoute`] (the last entry serves requests without one); place
//! it right after routing, before CORS, so a refused client gets no CORS answer either.
//! Refusals are logged at info under the `portcullis::ip_filter` target with the client and the
//! rule, and counted in `portcullis_ip_denied_total`.
//!
//! ```
//! use portcullis_layers::ip_filter::{IpFilterLayer, IpRules};
//!
//! let office = IpRules::new(vec!["10.1.0.0/16".parse().unwrap()], vec![], "global");
//! let _layer = IpFilterLayer::global(office);
//! ```

use std::fmt;
use std::future::ready;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use ipnet::IpNet;
use tower::{Layer, Service};

use crate::client_ip::ClientIp;
use crate::either_future::EitherFuture;
use crate::matched_route::MatchedRoute;
use crate::rejection::{RefusedFuture, Rejection};

/// One allow list and one deny list, with a label for logs (`global`, or the route's name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    label: Arc<str>,
}

/// Why a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The client is inside this `deny` range.
    DenyListed(IpNet),
    /// An allow list applies and the client is outside every range in it.
    NotAllowed,
    /// An allow list applies and the client is unknown.
    Unknown,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DenyListed(net) => write!(f, "in deny range {net}"),
            Self::NotAllowed => f.write_str("outside every allow range"),
            Self::Unknown => f.write_str("client address unknown and an allow list applies"),
        }
    }
}

impl IpRules {
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>, label: impl Into<Arc<str>>) -> Self {
        Self {
            allow,
            deny,
            label: label.into(),
        }
    }

    /// Whether these rules admit every client.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Checks one client (`None`: unknown).
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Denied> {
        if let Some(ip) = client
            && let Some(net) = self.deny.iter().find(|n| n.contains(&ip))
        {
            return Err(Denied::DenyListed(*net));
        }
        if self.allow.is_empty() {
            return Ok(());
        }
        match client {
            None => Err(Denied::Unknown),
            Some(ip) if self.allow.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(_) => Err(Denied::NotAllowed),
        }
    }
}

#[derive(Debug)]
enum Scope {
    Global(IpRules),
    PerRoute(Vec<IpRules>),
}

/// Refuses clients the rules do not admit with `403 ip_denied`.
#[derive(Debug, Clone)]
pub struct IpFilterLayer {
    scope: Arc<Scope>,
}

impl IpFilterLayer {
    /// The same rules for every request.
    pub fn global(rules: IpRules) -> Self {
        Self {
            scope: Arc::new(Scope::Global(rules)),
        }
    }

    /// `per_route[i]` applies to route `i`; the last entry also to requests without a
    /// [`MatchedRoute`].
    pub fn per_route(per_route: Vec<IpRules>) -> Self {
        Self {
            scope: Arc::new(Scope::PerRoute(per_route)),
        }
    }

    /// What the service does, for a service that runs it inline rather than as its own layer
    /// (the policy stack does, to keep its service type shallow): the refusal, logged and
    /// counted, or `Ok`.
    pub fn check<B>(&self, req: &Request<B>) -> Result<(), Rejection> {
        let Some(rules) = self.rules_for(req) else {
            return Ok(());
        };
        let client = req.extensions().get::<ClientIp>().map(|c| c.addr);
        let Err(denied) = rules.check(client) else {
            return Ok(());
        };
        metrics::counter!("portcullis_ip_denied_total", "rules" => rules.label.to_string())
            .increment(1);
        let client_text = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        tracing::info!(
            target: "portcullis::ip_filter",
            client = %client_text,
            rules = %rules.label,
            rule = %denied,
            "client IP refused"
        );
        Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "ip_denied",
            "requests from this address are not allowed",
        )
        .with_detail(format!("client {client_text}: {denied} ({})", rules.label)))
    }

    fn rules_for<B>(&self, req: &Request<B>) -> Option<&IpRules> {
        match &*self.scope {
            Scope::Global(rules) => Some(rules),
            Scope::PerRoute(list) => {
                let index = req
                    .extensions()
                    .get::<MatchedRoute>()
                    .map_or(list.len().saturating_sub(1), |m| m.index);
                list.get(index)
            }
        }
    }
}

impl<S> Layer<S> for IpFilterLayer {
    type Service = IpFilter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IpFilter {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`IpFilterLayer`] builds.
#[derive(Debug, Clone)]
pub struct IpFilter<S> {
    inner: S,
    layer: IpFilterLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for IpFilter<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = EitherFuture<S::Future, RefusedFuture<ResBody, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self.layer.check(&req) {
            Ok(()) => EitherFuture::left(self.inner.call(req)),
            Err(rejection) => EitherFuture::right(ready(Ok(rejection.into_response()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn deny_wins_and_allow_admits_only_its_ranges() {
        let r = IpRules::new(nets(&["10.0.0.0/8"]), nets(&["10.9.0.0/16"]), "t");
        assert_eq!(r.check(ip("10.1.2.3")), Ok(()));
        assert_eq!(
            r.check(ip("10.9.0.1")),
            Err(Denied::DenyListed("10.9.0.0/16".parse().unwrap()))
        );
        assert_eq!(r.check(ip("192.0.2.1")), Err(Denied::NotAllowed));
        assert_eq!(r.check(None), Err(Denied::Unknown));
    }

    #[test]
    fn deny_only_admits_the_rest_and_unknown() {
        let r = IpRules::new(vec![], nets(&["2001:db8::/32"]), "t");
        assert!(r.check(ip("2001:db8::1")).is_err());
        assert_eq!(r.check(ip("2001:db9::1")), Ok(()));
        assert_eq!(r.check(None), Ok(()));
        assert!(IpRules::default().is_empty());
    }

    async fn status(layer: IpFilterLayer, req: Request<()>) -> StatusCode {
        let svc = layer.layer(tower::service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }));
        let res = svc.oneshot(req).await.unwrap();
        if res.status() == StatusCode::FORBIDDEN {
            let rejection = res.extensions().get::<Rejection>().unwrap();
            assert_eq!(rejection.code(), "ip_denied");
        }
        res.status()
    }

    fn request(client: Option<&str>, route: Option<usize>) -> Request<()> {
        let mut req = Request::new(());
        if let Some(c) = client {
            let addr: IpAddr = c.parse().unwrap();
            req.extensions_mut().insert(ClientIp {
                addr,
                bucket: IpNet::from(addr),
            });
        }
        if let Some(index) = route {
            req.extensions_mut().insert(MatchedRoute {
                index,
                name: Arc::from("r"),
            });
        }
        req
    }

    #[tokio::test]
    async fn per_route_rules_follow_the_matched_route() {
        let layer = IpFilterLayer::per_route(vec![
            IpRules::new(nets(&["10.1.0.0/16"]), vec![], "admin"),
            IpRules::default(),
        ]);
        let ok = StatusCode::OK;
        let no = StatusCode::FORBIDDEN;
        assert_eq!(
            status(layer.clone(), request(Some("10.1.0.5"), Some(0))).await,
            ok
        );
        assert_eq!(
            status(layer.clone(), request(Some("10.2.0.5"), Some(0))).await,
            no
        );
        assert_eq!(status(layer.clone(), request(None, Some(0))).await, no);
        assert_eq!(
            status(layer.clone(), request(Some("10.2.0.5"), Some(1))).await,
            ok
        );
        assert_eq!(status(layer, request(Some("10.2.0.5"), None)).await, ok);
    }

    #[tokio::test]
    async fn global_rules_apply_everywhere() {
        let layer = IpFilterLayer::global(IpRules::new(vec![], nets(&["192.0.2.0/24"]), "g"));
        let no = StatusCode::FORBIDDEN;
        assert_eq!(
            status(layer.clone(), request(Some("192.0.2.9"), Some(3))).await,
            no
        );
        assert_eq!(
            status(layer, request(Some("192.0.3.9"), None)).await,
            StatusCode::OK
        );
    }
}
