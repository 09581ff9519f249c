//! The compiled policy: validated, typed, and ready for the gateway and the layers.

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use ipnet::IpNet;

use crate::Environment;
use crate::auth::{AuthSettings, RouteAuth};
use crate::cookies::CookieRule;
use crate::cors::CorsPolicy;
use crate::csrf::CsrfSettings;
use crate::disclosure::Disclosure;
use crate::headers::{HeaderRule, NotSet};
use crate::route::PathPattern;

/// A whole policy, compiled for one environment.
#[derive(Debug, Clone)]
pub struct Policy {
    pub environment: Environment,
    pub server: ServerSettings,
    /// Absent when the policy is only mounted as layers inside a service.
    pub upstream: Option<UpstreamSettings>,
    pub correlation_id: CorrelationIdSettings,
    pub errors: ErrorSettings,
    pub logging: LoggingSettings,
    /// The global header posture (`[headers]`), before route overrides; every route's
    /// `headers` starts from it.
    pub headers: Vec<HeaderRule>,
    /// Headers deliberately not sent globally, with reasons.
    pub not_set: Vec<NotSet>,
    /// Headers removed from every upstream response.
    pub removed_headers: Vec<HeaderName>,
    /// Ordered routes; the first whose pattern matches wins.
    pub routes: Vec<Route>,
    /// Catches every path no route matches.
    pub default_route: Route,
    pub disclosure: Option<Disclosure>,
    /// Named CORS policies (`[cors.NAME]`), sorted by name; routes refer to them by name.
    pub cors: Vec<CorsPolicy>,
    pub csrf: CsrfSettings,
    /// Rules for upstream `Set-Cookie` headers (`[cookies.NAME]`); `name: None` is `"*"`.
    pub cookies: Vec<CookieRule>,
    /// Who may call, and the identity headers the upstream receives.
    pub auth: AuthSettings,
    /// The admin HTTP API (`[admin]`), if the policy enables it.
    pub admin: Option<crate::admin::AdminSettings>,
    /// `[ip-filter]`: IP allow/deny lists checked on every request, before routing.
    pub ip_filter: crate::ip_filter::IpFilter,
    /// `[rate-limit]`: quotas (routes refer to them by index), overrides, the counters' store.
    pub rate_limit: crate::rate_limit::RateLimits,
    /// `[lockout]`: lockout rules (routes refer to them by index) and the counters' store.
    pub lockout: crate::lockout::LockoutSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// How long a client may take to send its request head (slow-loris defence).
    pub header_read_timeout: Duration,
    /// How long in-flight requests may run after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For`/`Forwarded` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Most header fields an HTTP/1.1 request may carry (more: 431, refused by the server).
    pub max_header_count: usize,
    /// Prefix IPv6 clients are bucketed by (`ipv6-bucket`, default 64): one host usually holds
    /// a whole /64, so per-address keys would let it rotate addresses.
    pub ipv6_bucket: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 over plain TCP.
    Http1,
    /// HTTP/2 with prior knowledge over plain TCP.
    H2c,
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// `http://host:port`, optionally with a path prefix.
    pub url: Uri,
    pub protocol: UpstreamProtocol,
    pub connect_timeout: Duration,
    /// Time allowed until the upstream's response head arrives.
    pub request_timeout: Duration,
    /// How long a pooled upstream connection may sit idle.
    pub idle_timeout: Duration,
    /// The most HTTP/1.1 connections open to the upstream at once. A request that finds all of
    /// them busy waits up to `connect_timeout` for one, then gets a 503.
    pub max_connections: usize,
    /// Forward the client's `Host` instead of the upstream's authority.
    pub preserve_host: bool,
}

impl UpstreamSettings {
    /// An HTTP/1.1 upstream at `url` with the default timeouts (connect 5s, response head 30s,
    /// idle 90s), at most 1024 connections, and the upstream's own Host.
    pub fn new(url: Uri) -> Self {
        Self {
            url,
            protocol: UpstreamProtocol::Http1,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            max_connections: 1024,
            preserve_host: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CorrelationIdSettings {
    /// The header the ID is forwarded upstream and echoed back in.
    pub header: HeaderName,
    /// Request headers a caller-supplied ID is taken from, in order.
    pub accept: Vec<HeaderName>,
    pub max_length: usize,
}

#[derive(Debug, Clone)]
pub struct ErrorSettings {
    /// Put internal detail (why the upstream failed) in error bodies. Never in production.
    pub expose_detail: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct LoggingSettings {
    pub format: LogFormat,
    pub access_log: bool,
    /// A `tracing` filter directive such as `info` or `portcullis=debug`.
    pub level: String,
}

/// A named group of paths sharing one response posture.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub patterns: Vec<PathPattern>,
    pub cache_control: HeaderValue,
    pub reason: Option<String>,
    /// Every header rule that applies to this route (global rules with route overrides
    /// applied), including those filtered out in other environments, for the review page.
    pub headers: Vec<HeaderRule>,
    /// Headers deliberately not sent on this route, with reasons.
    pub not_set: Vec<NotSet>,
    /// The route's CORS policy by name; `None`: cross-origin access denied.
    pub cors: Option<String>,
    /// What the route asks of its callers.
    pub auth: RouteAuth,
    /// The route serves WebSocket upgrades (`websocket = true`): the one kind of route where a
    /// JWT may come in the query string (`[route.auth] query-token`), since a browser cannot
    /// set headers on a WebSocket handshake.
    pub websocket: bool,
    /// The route serves HTML documents (`html = true`): the one kind of route a
    /// Content-Security-Policy protects. Linted: such a route must send one.
    pub html: bool,
    /// The route's IP allow/deny lists (`ip-filter`), checked after the global ones.
    pub ip_filter: crate::ip_filter::IpFilter,
    /// The route's quotas, as indices into [`Policy::rate_limit`]'s `quotas` (its own
    /// `rate-limit`, else `[rate-limit] default`).
    pub rate_limit: Vec<usize>,
    /// The route's lockout rule (`lockout = "NAME"`), as an index into [`Policy::lockout`]'s
    /// `rules`: the route is a login route.
    pub lockout: Option<usize>,
}

impl Route {
    /// Whether a normalised, decoded path belongs to this route.
    pub fn matches(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(path))
    }

    /// Headers removed from this route's upstream responses: the policy's `remove` list and
    /// every header it deliberately does not send.
    pub fn removed_headers<'a>(
        &'a self,
        policy: &'a Policy,
    ) -> impl Iterator<Item = &'a HeaderName> {
        policy
            .removed_headers
            .iter()
            .chain(self.not_set.iter().map(|n| &n.name))
    }

    /// The headers this route sends in `environment`, Cache-Control included, ready to insert.
    pub fn response_headers(&self, environment: Environment) -> HeaderMap {
        let mut map = HeaderMap::new();
        for rule in self.headers.iter().filter(|r| r.applies_in(environment)) {
            map.insert(rule.name.clone(), rule.value.clone());
        }
        map.insert(http::header::CACHE_CONTROL, self.cache_control.clone());
        map
    }
}

impl Policy {
    /// The route a normalised, decoded path belongs to, and its index (`routes.len()` for the
    /// default route).
    pub fn match_route(&self, path: &str) -> (usize, &Route) {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.matches(path))
            .unwrap_or((self.routes.len(), &self.default_route))
    }

    /// The CORS policy called `name`.
    pub fn cors_policy(&self, name: &str) -> Option<&CorsPolicy> {
        self.cors.iter().find(|c| c.name == name)
    }

    /// Every route, the default one last; indices agree with [`Policy::match_route`].
    pub fn all_routes(&self) -> impl Iterator<Item = &Route> {
        self.routes
            .iter()
            .chain(std::iter::once(&self.default_route))
    }
}
