//! The client IP: one resolver, used by every feature that keys on the caller's address (IP
//! allow/deny lists today; rate limits and lockouts later).
//!
//! The client is the peer, unless the peer is a trusted proxy. Then the forwarding header is
//! walked **right to left** (the right-most entry was written by the proxy nearest to us, the
//! left-most by whoever opened the connection, possibly an attacker), skipping entries inside a
//! trusted range; the first untrusted entry is the client. A client can put anything it likes
//! at the left of `X-Forwarded-For`, so nothing left of the first untrusted entry is ever read.
//!
//! - `X-Forwarded-For` (every header line, joined in order) is read when present; `Forwarded`
//!   (RFC 7239, its `for=` parameters) only when there is no `X-Forwarded-For`. Reading both
//!   would let a client pick whichever one its proxy does not rewrite.
//! - An entry that is not an address (`unknown`, an obfuscated `_node`, garbage) stops the walk:
//!   the client is the last trusted hop walked through (the proxy that forwarded the garbage),
//!   never anything further left. Conservative: a request cannot borrow someone else's address
//!   by confusing the parser.
//! - When every entry is trusted, the left-most one is the client (an internal caller).
//! - IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are canonicalised to IPv4 first.
//!
//! [`ClientIpLayer`] puts a [`ClientIp`] into the request's extensions, computed from the
//! [`PeerAddr`] the server inserts. Without a `PeerAddr` (a service mounting the layers without
//! one) it inserts nothing, and features that key on the client treat it as unknown.
//!
//! ```
//! use std::net::IpAddr;
//! use http::HeaderMap;
//! use portcullis_layers::client_ip::resolve;
//!
//! let trusted = ["10.0.0.0/8".parse().unwrap()];
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().unwrap());
//! let peer: IpAddr = "10.0.0.1".parse().unwrap();
//! assert_eq!(resolve(peer, &headers, &trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, header};
use ipnet::IpNet;
use tower::{Layer, Service};

/// The address of the peer a request arrived from; the server puts it in request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The resolved client address, in request extensions (inserted by [`ClientIpLayer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp {
    /// The client's address.
    pub addr: IpAddr,
    /// The range features key on: the address itself (`/32`) for IPv4, the configured prefix
    /// for IPv6 (a single host usually holds a whole `/64`, so keying on `/128` would let it
    /// rotate through addresses at will).
    pub bucket: IpNet,
}

/// The default IPv6 bucket prefix.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The client address of a request from `peer` carrying `headers`, trusting the proxies in
/// `trusted` (see the module documentation for the rules).
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect();
    let entries: Vec<Option<IpAddr>> = if !xff.is_empty() {
        xff.iter()
            .flat_map(|line| line.split(','))
            .map(|e| parse_node(e.trim()))
            .collect()
    } else {
        headers
            .get_all(header::FORWARDED)
            .iter()
            .flat_map(|v| forwarded_for(v.to_str().unwrap_or("for=\u{0}")))
            .collect()
    };
    let mut nearest = peer;
    for entry in entries.into_iter().rev() {
        let Some(ip) = entry else {
            return nearest;
        };
        let ip = ip.to_canonical();
        if !is_trusted(ip, trusted) {
            return ip;
        }
        nearest = ip;
    }
    nearest
}

/// The range a client address is keyed by: `/32` for IPv4, `/ipv6_prefix` for IPv6.
pub fn bucket(addr: IpAddr, ipv6_prefix: u8) -> IpNet {
    let prefix = match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => ipv6_prefix.clamp(1, 128),
    };
    // The prefix is clamped to the address family's length, so `new` cannot fail; should it,
    // the single address is the narrower (safer) bucket.
    IpNet::new(addr, prefix).map_or_else(|_| IpNet::from(addr), |n| n.trunc())
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// One `X-Forwarded-For` entry or `Forwarded` node: an address, optionally with a port
/// (`192.0.2.1:443`, `[2001:db8::1]:443`). Anything else is `None`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<IpAddr>().ok())
}

/// The `for=` nodes of one `Forwarded` header line, in order; `None` for an element without a
/// readable one. Quoted strings containing `,` or `;` are not valid nodes anyway, so a plain
/// split is enough: they come out as `None` and stop the walk.
fn forwarded_for(line: &str) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    line.split(',').map(|element| {
        element
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
            .and_then(|(_, v)| {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                parse_node(v)
            })
    })
}

/// Inserts a [`ClientIp`] into every request that carries a [`PeerAddr`].
#[derive(Debug, Clone)]
pub struct ClientIpLayer {
    config: Arc<Config>,
}

#[derive(Debug)]
struct Config {
    trusted: Vec<IpNet>,
    ipv6_prefix: u8,
}

impl ClientIpLayer {
    /// Believes forwarding headers from peers in `trusted`; buckets IPv6 clients by
    /// `ipv6_prefix` (clamped to 1..=128).
    pub fn new(trusted: Vec<IpNet>, ipv6_prefix: u8) -> Self {
        Self {
            config: Arc::new(Config {
                trusted,
                ipv6_prefix: ipv6_prefix.clamp(1, 128),
            }),
        }
    }

    /// What the service does, for a service that runs it inline rather than as its own layer
    /// (the policy stack does, to keep its service type shallow).
    pub fn insert<B>(&self, req: &mut Request<B>) {
        if let Some(PeerAddr(peer)) = req.extensions().get::<PeerAddr>().copied() {
            let addr = resolve(peer.ip(), req.headers(), &self.config.trusted);
            let bucket = bucket(addr, self.config.ipv6_prefix);
            req.extensions_mut().insert(ClientIp { addr, bucket });
        }
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ClientIpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientIpService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`ClientIpLayer`] builds.
#[derive(Debug, Clone)]
pub struct ClientIpService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S, B> Service<Request<B>> for ClientIpService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        ClientIpLayer {
            config: self.config.clone(),
        }
        .insert(&mut req);
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", l.parse().unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let h = xff(&["1.2.3.4"]);
        assert_eq!(resolve(ip("203.0.113.9"), &h, &[]), ip("203.0.113.9"));
        let t = nets(&["10.0.0.0/8"]);
        assert_eq!(resolve(ip("203.0.113.9"), &h, &t), ip("203.0.113.9"));
    }

    #[test]
    fn right_most_untrusted_entry_wins() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["6.6.6.6, 198.51.100.1", "10.0.0.7"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("198.51.100.1"));
    }

    #[test]
    fn all_trusted_gives_the_left_most_and_no_header_gives_the_peer() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["10.0.0.9, 10.0.0.8"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("10.0.0.9"));
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &t),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["6.6.6.6, unknown, 10.0.0.8"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("10.0.0.8"));
        let h = xff(&["6.6.6.6, not-an-ip"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"));
    }

    #[test]
    fn ports_and_brackets_are_accepted() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["[2001:db8::1]:443, 192.0.2.1:80"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("192.0.2.1"));
    }

    #[test]
    fn forwarded_is_read_only_without_xff() {
        let t = nets(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::5]:80\";proto=https, for=10.0.0.3"
                .parse()
                .unwrap(),
        );
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("2001:db8::5"));
        h.insert("x-forwarded-for", "198.51.100.2".parse().unwrap());
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("198.51.100.2"));
        let mut h = HeaderMap::new();
        h.insert("forwarded", "for=_hidden, for=10.0.0.3".parse().unwrap());
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("10.0.0.3"));
    }

    #[test]
    fn mapped_ipv4_is_canonical() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["::ffff:192.0.2.1"]);
        assert_eq!(resolve(ip("::ffff:10.0.0.1"), &h, &t), ip("192.0.2.1"));
        let h = xff(&["::ffff:10.0.0.5"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("10.0.0.5"));
    }

    #[test]
    fn ipv6_bucketing() {
        assert_eq!(
            bucket(ip("2001:db8:1:2:3:4:5:6"), 64),
            "2001:db8:1:2::/64".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            bucket(ip("2001:db8::1"), 128),
            "2001:db8::1/128".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            bucket(ip("192.0.2.1"), 64),
            "192.0.2.1/32".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            bucket(ip("2001:db8::1"), 0),
            "::/1".parse::<IpNet>().unwrap().trunc()
        );
    }

    #[tokio::test]
    async fn layer_inserts_the_client_only_with_a_peer() {
        use tower::ServiceExt;
        let layer = ClientIpLayer::new(nets(&["127.0.0.1/32"]), 48);
        let svc = layer.layer(tower::service_fn(|req: Request<()>| async move {
            Ok::<_, std::convert::Infallible>(req.extensions().get::<ClientIp>().copied())
        }));
        let mut req = Request::new(());
        req.headers_mut()
            .insert("x-forwarded-for", "2001:db8:1:2::9".parse().unwrap());
        let out = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(out, None);
        let mut req = Request::new(());
        req.headers_mut()
            .insert("x-forwarded-for", "2001:db8:1:2::9".parse().unwrap());
        req.extensions_mut()
            .insert(PeerAddr("127.0.0.1:9".parse().unwrap()));
        let out = svc.oneshot(req).await.unwrap().unwrap();
        assert_eq!(out.addr, ip("2001:db8:1:2::9"));
        assert_eq!(out.bucket, "2001:db8:1::/48".parse::<IpNet>().unwrap());
    }

    fn v4() -> impl Strategy<Value = IpAddr> {
        any::<[u8; 4]>().prop_map(IpAddr::from)
    }

    proptest! {
        /// Whatever a client writes at the left of `X-Forwarded-For`, the resolved address is
        /// the one the trusted proxy appended.
        #[test]
        fn spoofed_left_entries_never_change_the_client(
            spoofed in proptest::collection::vec("[ -~]{0,20}", 0..5),
            client in v4(),
        ) {
            let t = nets(&["10.0.0.0/8"]);
            prop_assume!(!t[0].contains(&client));
            let honest = xff(&[&client.to_string()]);
            let expected = resolve(ip("10.0.0.1"), &honest, &t);
            prop_assert_eq!(expected, client);
            let mut line = spoofed.join(", ");
            if !line.is_empty() {
                line.push_str(", ");
            }
            line.push_str(&client.to_string());
            let Ok(value) = line.parse() else { return Ok(()); };
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", value);
            prop_assert_eq!(resolve(ip("10.0.0.1"), &h, &t), client);
        }

        /// An untrusted peer is always the client, whatever it sends.
        #[test]
        fn untrusted_peer_always_wins(peer in v4(), header in "[ -~]{0,40}") {
            let t = nets(&["10.0.0.0/8"]);
            prop_assume!(!t[0].contains(&peer));
            let mut h = HeaderMap::new();
            if let Ok(v) = header.parse() {
                h.insert("x-forwarded-for", v);
            }
            prop_assert_eq!(resolve(peer, &h, &t), peer);
        }
    }
}
