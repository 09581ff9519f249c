//! WebSocket upgrades (RFC 6455 over HTTP/1.1): the handshake is proxied like any request, and
//! once both sides have switched protocols the two connections are spliced byte for byte.
//!
//! Only a strict HTTP/1.1 handshake is an upgrade here (see [`is_upgrade`]); any other
//! `Upgrade` (h2c, `websocket, h2c`, a POST, HTTP/1.0) is stripped as hop-by-hop and the request
//! is forwarded as a plain one, as before. The origin check is not here: the CORS layer refuses
//! a browser's handshake from a foreign origin before the proxy sees it.
//!
//! The tunnel is opened only on a 101 that answers a WebSocket handshake with one
//! (`Upgrade: websocket` and a `Sec-WebSocket-Accept`). Anything else is a normal response; a
//! 101 that is not a WebSocket answer is a 502, since splicing on it would give the client a raw
//! byte stream to an upstream that is still speaking HTTP, past every check of the policy.
//! The `Sec-WebSocket-Accept` value itself is left to the client to verify (it needs SHA-1,
//! which the gateway has no other use for).
//!
//! Tunnels outlive the HTTP connection they came from, so the server's graceful shutdown no
//! longer sees them; [`Tunnels`] tracks them so shutdown can wait for them and then close them.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version, header, request};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use portcullis_layers::Rejection;
use portcullis_layers::framing::strip_hop_by_hop;
use tokio::sync::watch;
use tracing::Instrument;

use super::ProxyBody;

/// Whether a request is a WebSocket handshake the gateway will tunnel: HTTP/1.1, `GET`,
/// `Connection` listing `upgrade`, and `Upgrade` being exactly `websocket` (one field, one
/// token). Anything looser stays a plain request with its upgrade headers stripped.
pub fn is_upgrade(parts: &request::Parts) -> bool {
    parts.version == Version::HTTP_11
        && parts.method == Method::GET
        && has_token(&parts.headers, header::CONNECTION, "upgrade")
        && only_websocket(&parts.headers)
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

fn only_websocket(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::UPGRADE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"),
        _ => false,
    }
}

/// For a WebSocket handshake, the client side of the upgrade-to-be, taken out of the request;
/// `None` for any other request. Refuses a handshake that could not be completed.
pub fn take_client_upgrade(
    parts: &mut request::Parts,
    upstream: Version,
) -> Result<Option<OnUpgrade>, Rejection> {
    if !is_upgrade(parts) {
        return Ok(None);
    }
    // hyper's HTTP/2 client has no HTTP/1.1 upgrades, and RFC 8441 (WebSocket over HTTP/2) is
    // not implemented: refuse rather than send a handshake that cannot work.
    if upstream == Version::HTTP_2 {
        return Err(unsupported(
            "the upstream speaks h2c; WebSocket needs an HTTP/1.1 upstream",
        ));
    }
    // hyper puts this in every HTTP/1.1 request with `Upgrade` on a connection served with
    // upgrades; without it the switch could never be completed.
    parts
        .extensions
        .remove::<OnUpgrade>()
        .map(Some)
        .ok_or_else(|| unsupported("this connection cannot switch protocols"))
}

/// Puts back the two hop-by-hop headers the handshake needs, after the proxy stripped them all.
pub fn set_upgrade_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// 501: the handshake cannot be tunnelled (an h2c upstream, or a connection that cannot switch).
pub fn unsupported(detail: &str) -> Rejection {
    Rejection::new(
        StatusCode::NOT_IMPLEMENTED,
        "websocket_unsupported",
        "WebSocket upgrades are not supported here",
    )
    .with_detail(detail)
}

/// Whether the upstream's 101 really accepts a WebSocket handshake.
fn accepts_websocket(headers: &HeaderMap) -> bool {
    only_websocket(headers) && headers.contains_key(header::SEC_WEBSOCKET_ACCEPT)
}

/// Answers the client's handshake with the upstream's 101 and splices the two connections
/// once hyper has handed both over. `parts` are the upstream's 101 as received.
pub fn switch(
    mut parts: http::response::Parts,
    client: OnUpgrade,
    tunnels: &Tunnels,
) -> Result<Response<ProxyBody>, Rejection> {
    if !accepts_websocket(&parts.headers) {
        return Err(Rejection::bad_gateway(
            "the upstream switched protocols without accepting the WebSocket handshake",
        ));
    }
    let upstream = parts
        .extensions
        .remove::<OnUpgrade>()
        .ok_or_else(|| Rejection::bad_gateway("the upstream connection cannot be upgraded"))?;
    strip_hop_by_hop(&mut parts.headers);
    set_upgrade_headers(&mut parts.headers);
    // A 101 ends the HTTP message stream: no body and no length (RFC 9110 §15.2.2). hyper adds
    // none itself, but would pass on the upstream's.
    parts.headers.remove(header::CONTENT_LENGTH);
    tunnels.spawn(client, upstream);
    Ok(Response::from_parts(parts, ProxyBody::default()))
}

/// The open tunnels of one gateway. Each tunnel holds a receiver of a "close now" flag, so the
/// receiver count is the number of open tunnels and [`Tunnels::drained`] waits for it to reach
/// zero. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tunnels {
    close: Arc<watch::Sender<bool>>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Self {
            close: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl Tunnels {
    /// How many tunnels are open (or waiting for both sides to switch).
    pub fn count(&self) -> usize {
        self.close.receiver_count()
    }

    /// Completes once no tunnel is open.
    pub async fn drained(&self) {
        self.close.closed().await;
    }

    /// Closes every open tunnel, and every tunnel opened from now on.
    pub fn close_all(&self) {
        self.close.send_replace(true);
    }

    fn spawn(&self, client: OnUpgrade, upstream: OnUpgrade) {
        let mut closing = self.close.subscribe();
        // In the request's span (the handshake's response is being made in it), so the
        // tunnel's lines carry the correlation ID of the request that opened it.
        let span = tracing::Span::current();
        let tunnel = async move {
            let splice = async {
                let (client, upstream) = tokio::try_join!(client, upstream)
                    .map_err(|e| std::io::Error::other(format!("upgrade failed: {e}")))?;
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                tokio::io::copy_bidirectional(&mut client, &mut upstream).await
            };
            tokio::select! {
                result = splice => match result {
                    Ok((up, down)) => tracing::debug!(
                        bytes_to_upstream = up,
                        bytes_to_client = down,
                        "websocket tunnel closed"
                    ),
                    Err(e) => tracing::debug!(error = %e, "websocket tunnel ended with an error"),
                },
                // Dropping the splice closes both connections. An `Err` (the gateway itself is
                // gone) disables this branch: the tunnel then runs until either side closes.
                Ok(_) = closing.wait_for(|close| *close) => {
                    tracing::debug!("websocket tunnel closed by shutdown");
                }
            }
        };
        tokio::spawn(tunnel.instrument(span));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(version: Version, method: Method, headers: &[(&str, &str)]) -> request::Parts {
        let mut b = Request::builder()
            .method(method)
            .version(version)
            .uri("/ws");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_strict_http11_websocket_handshakes_upgrade() {
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ];
        assert!(is_upgrade(&parts(Version::HTTP_11, Method::GET, &ws)));
        for (version, method, headers) in [
            (Version::HTTP_10, Method::GET, &ws[..]),
            (Version::HTTP_2, Method::GET, &ws[..]),
            (Version::HTTP_11, Method::POST, &ws[..]),
            (
                Version::HTTP_11,
                Method::GET,
                &[("upgrade", "websocket")][..],
            ),
            (
                Version::HTTP_11,
                Method::GET,
                &[("connection", "upgrade"), ("upgrade", "h2c")][..],
            ),
            (
                Version::HTTP_11,
                Method::GET,
                &[("connection", "upgrade"), ("upgrade", "websocket, h2c")][..],
            ),
            (
                Version::HTTP_11,
                Method::GET,
                &[
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                    ("upgrade", "websocket"),
                ][..],
            ),
            (
                Version::HTTP_11,
                Method::GET,
                &[("connection", "upgraded"), ("upgrade", "websocket")][..],
            ),
        ] {
            assert!(
                !is_upgrade(&parts(version, method.clone(), headers)),
                "{version:?} {method} {headers:?}"
            );
        }
    }

    #[test]
    fn a_101_must_accept_the_websocket_handshake() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(!accepts_websocket(&h));
        h.insert(
            "sec-websocket-accept",
            HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        );
        assert!(accepts_websocket(&h));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        assert!(!accepts_websocket(&h));
    }

    #[tokio::test]
    async fn a_tunnel_whose_upgrade_fails_stops_counting() {
        let tunnels = Tunnels::default();
        assert_eq!(tunnels.count(), 0);
        tunnels.drained().await;
        // Messages hyper never upgraded: both futures fail at once.
        let client = hyper::upgrade::on(Request::new(()));
        let upstream = hyper::upgrade::on(Request::new(()));
        tunnels.spawn(client, upstream);
        assert_eq!(tunnels.count(), 1);
        tokio::time::timeout(std::time::Duration::from_secs(5), tunnels.drained())
            .await
            .unwrap();
        assert_eq!(tunnels.count(), 0);
    }
}
