//! `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Real-IP` and `Forwarded`
//! (RFC 7239).
//!
//! A client's own forwarding headers are believed only when the peer is a trusted proxy; from
//! anyone else they are replaced, never appended to, so a client cannot choose the address the
//! upstream logs or rate-limits. `X-Real-IP` is always the gateway's own answer: the client IP
//! it resolved (`portcullis_layers::client_ip`), the one its IP lists, rate limits, lockouts and
//! logs use, so the upstream and the gateway never disagree on who called.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue, header};
use ipnet::IpNet;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Whether `peer` is one of the trusted proxies.
pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&peer))
}

/// Rewrites the forwarding headers of a request arriving from `peer` over plain HTTP.
/// `client` is the client IP the gateway resolved (the peer when it is not a trusted proxy);
/// `host` is the Host the client asked for, if any.
pub fn apply(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    client: Option<IpAddr>,
    trusted: &[IpNet],
    host: Option<&HeaderValue>,
) {
    let ip = peer.ip().to_canonical();
    let trusted = is_trusted(ip, trusted);
    let client = client.map_or(ip, |c| c.to_canonical());
    if !trusted && client == ip {
        // The common case: every value depends on the peer and the Host alone.
        let (ip_text, forwarded) = untrusted_values(ip, host);
        headers.insert(X_REAL_IP, ip_text.clone());
        set_proto_and_host(headers, false, host);
        headers.insert(X_FORWARDED_FOR, ip_text);
        headers.insert(header::FORWARDED, forwarded);
        return;
    }
    let ip_text = ip.to_string();
    // An IP address's text is always a valid header value.
    let real_ip = if client == ip {
        HeaderValue::try_from(ip_text.as_str())
    } else {
        HeaderValue::try_from(client.to_string())
    };
    let Ok(real_ip) = real_ip else {
        return;
    };

    // What an untrusted peer sent is never read, so not even joined.
    let prior = |name: &HeaderName| if trusted { joined(headers, name) } else { None };
    let xff = match prior(&X_FORWARDED_FOR) {
        Some(prior) => format!("{prior}, {ip_text}"),
        None => ip_text.clone(),
    };
    let element = forwarded_element(ip, &ip_text, host);
    let forwarded = match prior(&header::FORWARDED) {
        Some(prior) => format!("{prior}, {element}"),
        None => element,
    };

    // `insert` replaces every value a client or proxy sent.
    headers.insert(X_REAL_IP, real_ip);
    set_proto_and_host(headers, trusted, host);
    // Built only from an IP address and a validated Host value, so always a valid value.
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if let Ok(v) = HeaderValue::try_from(forwarded) {
        headers.insert(header::FORWARDED, v);
    }
}

/// `X-Forwarded-Proto` and `X-Forwarded-Host`: behind a `trusted` proxy, its values stand and
/// ours fill in what it did not say; otherwise ours replace the client's (and a `Host`-less
/// request sends none).
fn set_proto_and_host(headers: &mut HeaderMap, trusted: bool, host: Option<&HeaderValue>) {
    if trusted {
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
        if let Some(h) = host
            && !headers.contains_key(&X_FORWARDED_HOST)
        {
            headers.insert(X_FORWARDED_HOST, h.clone());
        }
    } else {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        match host {
            Some(h) => headers.insert(X_FORWARDED_HOST, h.clone()),
            None => headers.remove(&X_FORWARDED_HOST),
        };
    }
}

/// The values sent for an untrusted peer at `ip` asking for `host`: `X-Forwarded-For` (which
/// is also its `X-Real-IP`) and `Forwarded`.
///
/// Remembered per worker thread for the last peer and Host seen: a keep-alive connection's
/// requests, and a busy client's connections, come from one address for one Host, and
/// formatting the address and building the strings cost about 2 800 instructions per request,
/// 3.5 % of the gateway's (`bench/instructions.sh`). A remembered `HeaderValue` is shared, not
/// copied, by every request that uses it.
fn untrusted_values(ip: IpAddr, host: Option<&HeaderValue>) -> (HeaderValue, HeaderValue) {
    struct Last {
        ip: IpAddr,
        host: Option<HeaderValue>,
        ip_text: HeaderValue,
        forwarded: HeaderValue,
    }
    thread_local! {
        static LAST: RefCell<Option<Last>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some(last) = last.as_ref()
            && last.ip == ip
            && last.host.as_ref() == host
        {
            return (last.ip_text.clone(), last.forwarded.clone());
        }
        let ip_text = ip.to_string();
        let forwarded = forwarded_element(ip, &ip_text, host);
        // An IP address's text is a valid header value, and `forwarded` is built from it and
        // a Host that was one; should that ever fail, nothing is remembered.
        let (Ok(ip_text), Ok(forwarded)) = (
            HeaderValue::try_from(ip_text),
            HeaderValue::try_from(forwarded),
        ) else {
            *last = None;
            return (
                HeaderValue::from_static("unknown"),
                HeaderValue::from_static("for=unknown;proto=http"),
            );
        };
        *last = Some(Last {
            ip,
            host: host.cloned(),
            ip_text: ip_text.clone(),
            forwarded: forwarded.clone(),
        });
        (ip_text, forwarded)
    })
}

/// This hop's `Forwarded` element (RFC 7239): the peer at `ip` (written `ip_text`; an IPv6
/// node quoted and bracketed), plain HTTP, and the Host asked for when it is text.
fn forwarded_element(ip: IpAddr, ip_text: &str, host: Option<&HeaderValue>) -> String {
    let mut element = match ip {
        IpAddr::V4(_) => format!("for={ip_text};proto=http"),
        IpAddr::V6(_) => format!("for=\"[{ip_text}]\";proto=http"),
    };
    if let Some(h) = host.and_then(|h| h.to_str().ok()) {
        element.push_str(";host=\"");
        element.push_str(h);
        element.push('"');
    }
    element
}

/// All values of a header joined by `, `, if present and readable.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    values.peek()?;
    Some(values.collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_address() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert("forwarded", "for=1.2.3.4".parse().unwrap());
        h.insert("x-real-ip", "1.2.3.4".parse().unwrap());
        apply(
            &mut h,
            peer("203.0.113.9:5000"),
            None,
            &[],
            Some(&HeaderValue::from_static("api.example")),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9;proto=http;host=\"api.example\""
        );
        assert_eq!(h["x-forwarded-host"], "api.example");
        assert_eq!(h["x-real-ip"], "203.0.113.9");
    }

    #[test]
    fn an_untrusted_peers_forwarded_host_goes_even_without_a_host() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-host", "evil.example".parse().unwrap());
        h.append("x-forwarded-host", "evil2.example".parse().unwrap());
        h.append("x-real-ip", "1.2.3.4".parse().unwrap());
        h.append("x-real-ip", "5.6.7.8".parse().unwrap());
        apply(&mut h, peer("203.0.113.9:5000"), None, &[], None);
        assert!(h.get("x-forwarded-host").is_none());
        assert_eq!(h.get_all("x-real-ip").iter().count(), 1);
        assert_eq!(h["x-real-ip"], "203.0.113.9");
    }

    #[test]
    fn trusted_proxies_are_appended_to() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert("x-real-ip", "6.6.6.6".parse().unwrap());
        let client = Some("1.2.3.4".parse().unwrap());
        apply(&mut h, peer("10.1.2.3:5000"), client, &trusted, None);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.1.2.3");
        // The client the gateway resolved, not the proxy, nor what the proxy said.
        assert_eq!(h["x-real-ip"], "1.2.3.4");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["forwarded"], "for=10.1.2.3;proto=http");
    }

    #[test]
    fn remembered_values_follow_the_peer_and_the_host() {
        let host = |h: &'static str| HeaderValue::from_static(h);
        let cases = [
            (
                "203.0.113.9:1",
                Some("a.example"),
                "for=203.0.113.9;proto=http;host=\"a.example\"",
            ),
            (
                "203.0.113.9:2",
                Some("a.example"),
                "for=203.0.113.9;proto=http;host=\"a.example\"",
            ),
            (
                "203.0.113.9:3",
                Some("b.example"),
                "for=203.0.113.9;proto=http;host=\"b.example\"",
            ),
            ("203.0.113.9:4", None, "for=203.0.113.9;proto=http"),
            ("198.51.100.7:5", None, "for=198.51.100.7;proto=http"),
            ("[2001:db8::1]:6", None, "for=\"[2001:db8::1]\";proto=http"),
            (
                "198.51.100.7:7",
                Some("a.example"),
                "for=198.51.100.7;proto=http;host=\"a.example\"",
            ),
        ];
        for (from, asked, forwarded) in cases {
            let mut h = HeaderMap::new();
            let asked = asked.map(host);
            apply(&mut h, peer(from), None, &[], asked.as_ref());
            assert_eq!(h["forwarded"], forwarded, "{from} {asked:?}");
            let ip = peer(from).ip().to_string();
            assert_eq!(h["x-forwarded-for"], ip.as_str());
            assert_eq!(h["x-real-ip"], ip.as_str());
        }
    }

    #[test]
    fn ipv6_nodes_are_quoted_and_mapped_v4_is_canonical() {
        let mut h = HeaderMap::new();
        apply(&mut h, peer("[::1]:5000"), None, &[], None);
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=http");
        let mut h = HeaderMap::new();
        apply(&mut h, peer("[::ffff:192.0.2.1]:5000"), None, &[], None);
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
    }
}
