//! A JWT in the query string of a WebSocket handshake (`GET /ws?token=eyJ…`).
//!
//! Browsers cannot set headers on a WebSocket handshake, so realtime endpoints (seed 002's hub)
//! take the token in the URL. A URL ends up in browser history, proxy logs and `Referer`
//! headers, so this is allowed only where the policy says so (`[route.auth] query-token` on a
//! `websocket = true` route), only on the upgrade request itself, only for JWTs (short-lived;
//! never an API key), and the parameter is removed before the request goes upstream, so the
//! upstream and its logs never see it. The gateway's own access log never logs queries.
//!
//! ```
//! use http::Request;
//! use portcullis_layers::query_token::{find, is_websocket_upgrade, without};
//!
//! let req = Request::get("/ws?room=7&token=eyJhbGciOi.x.y")
//!     .header("connection", "Upgrade")
//!     .header("upgrade", "websocket")
//!     .body(())
//!     .unwrap();
//! assert!(is_websocket_upgrade(&req));
//! assert_eq!(find(req.uri(), "token"), Some("eyJhbGciOi.x.y"));
//! assert_eq!(without(req.uri(), "token").unwrap(), "/ws?room=7");
//! ```

use http::header::{CONNECTION, UPGRADE};
use http::uri::PathAndQuery;
use http::{Method, Request, Uri};

/// Whether `req` is an HTTP/1.1 WebSocket handshake (`GET`, `Connection: upgrade`,
/// `Upgrade: websocket`).
pub fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    let has_token = |name, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    req.method() == Method::GET
        && has_token(CONNECTION, "upgrade")
        && has_token(UPGRADE, "websocket")
}

/// Every value of query parameter `name`, as sent (a JWT needs no percent-encoding, so none is
/// undone: an encoded token simply does not verify).
fn values<'a>(uri: &'a Uri, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    uri.query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(move |pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
}

/// The value of query parameter `name` when it appears exactly once with a non-empty value.
/// Repeated, it is ambiguous (which one would an upstream read?), and `None` is returned; see
/// [`count`].
pub fn find<'a>(uri: &'a Uri, name: &'a str) -> Option<&'a str> {
    let mut found = values(uri, name);
    match (found.next(), found.next()) {
        (Some(value), None) if !value.is_empty() => Some(value),
        _ => None,
    }
}

/// How many times query parameter `name` appears.
pub fn count(uri: &Uri, name: &str) -> usize {
    values(uri, name).count()
}

/// `uri` without any `name=` parameter; `None` if the result would not be a valid URI (it
/// always is: only whole parameters are removed).
pub fn without(uri: &Uri, name: &str) -> Option<Uri> {
    let query = uri.query()?;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn finding_the_token() {
        assert_eq!(find(&uri("/ws?token=a.b.c"), "token"), Some("a.b.c"));
        assert_eq!(find(&uri("/ws?x=1&token=a.b.c&y"), "token"), Some("a.b.c"));
        assert_eq!(find(&uri("/ws?token="), "token"), None);
        assert_eq!(find(&uri("/ws?token"), "token"), None);
        assert_eq!(find(&uri("/ws?tokens=a"), "token"), None);
        assert_eq!(find(&uri("/ws?xtoken=a"), "token"), None);
        assert_eq!(find(&uri("/ws"), "token"), None);
        // Twice: ambiguous.
        assert_eq!(find(&uri("/ws?token=a&token=b"), "token"), None);
        assert_eq!(count(&uri("/ws?token=a&token=b&token"), "token"), 3);
    }

    #[test]
    fn removing_it() {
        assert_eq!(without(&uri("/ws?token=a"), "token").unwrap(), "/ws");
        assert_eq!(
            without(&uri("/ws?a=1&token=x&b=2&token=y"), "token").unwrap(),
            "/ws?a=1&b=2"
        );
        assert_eq!(
            without(&uri("http://h/ws?token=a&tokens=b"), "token").unwrap(),
            "http://h/ws?tokens=b"
        );
        assert!(without(&uri("/ws"), "token").is_none());
    }

    #[test]
    fn only_websocket_handshakes() {
        let req = |method: &str, connection: &str, upgrade: &str| {
            Request::builder()
                .method(method)
                .uri("/ws")
                .header("connection", connection)
                .header("upgrade", upgrade)
                .body(())
                .unwrap()
        };
        assert!(is_websocket_upgrade(&req(
            "GET",
            "keep-alive, Upgrade",
            "WebSocket"
        )));
        assert!(!is_websocket_upgrade(&req("POST", "upgrade", "websocket")));
        assert!(!is_websocket_upgrade(&req(
            "GET",
            "keep-alive",
            "websocket"
        )));
        assert!(!is_websocket_upgrade(&req("GET", "upgrade", "h2c")));
        assert!(!is_websocket_upgrade(
            &Request::get("/ws").body(()).unwrap()
        ));
    }
}
