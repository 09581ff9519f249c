//! Request framing hygiene: refuse what servers could read two ways.
//!
//! Request smuggling lives in the gap between two parsers. This layer refuses, with a 400,
//! every request whose framing or routing a lenient server behind the gateway could interpret
//! differently from the gateway (RFC 9110 and RFC 9112 "MUST reject" cases and then some):
//!
//! - more than one `Content-Length`, or `Content-Length` together with `Transfer-Encoding`;
//! - an HTTP/1.1 request without exactly one valid `Host`, or whose `Host` disagrees with the
//!   authority of an absolute-form target (or HTTP/2 `:authority`);
//! - a header name that is a framing or hop-by-hop header spelt with `_` (`Content_Length`,
//!   `Transfer_Encoding`): CGI-style servers fold `_` and `-` together;
//! - control characters in a header value (CR, LF, NUL, ...);
//! - `CONNECT` and `TRACE` (405): the gateway is not a forward proxy and never echoes requests.
//!
//! Limits on the number and size of header fields are the server's (connection-level) job: by
//! the time a layer runs, other layers may have added headers of their own.
//!
//! Other header names containing `_` are removed, as nginx does by default: a CGI-style upstream
//! would see `X_Tenant` and `X-Tenant` as the same header, which lets a client slip past a
//! header the gateway strips or sets.
//!
//! hyper's HTTP/1 parser resolves `Content-Length` + `Transfer-Encoding` (in favour of chunked)
//! and folds identical duplicate lengths before a layer sees the request. A server that knows
//! what the wire said attaches a [`WireFraming`] to the request (the Portcullis gateway does,
//! from its connection scanner) and this layer refuses on it too. Refusals for ambiguous
//! framing carry `Connection: close`: the body's extent is in doubt, so the connection is not
//! reused.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use portcullis_layers::framing::FramingLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let svc = ServiceBuilder::new().layer(FramingLayer::new()).service(service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(()))
//! }));
//! let req = Request::builder()
//!     .uri("/x")
//!     .header("host", "api.example.com")
//!     .header("transfer_encoding", "chunked")
//!     .body(())
//!     .unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::BAD_REQUEST);
//! # });
//! ```

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use http::uri::Authority;
use http::{HeaderMap, HeaderName, Method, Request, Response, Version, header};
use tower::{Layer, Service};

use crate::either_future::EitherFuture;
use crate::rejection::Rejection;

/// Framing and hop-by-hop header names; an `_` spelling of any of them is refused.
const FRAMING_NAMES: &[&str] = &[
    "connection",
    "content-length",
    "expect",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The framing headers of a request as they were on the wire, before the server's parser
/// resolved them. Inserted into request extensions by servers that can see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireFraming {
    /// How many Content-Length values (fields, and comma-separated values within them).
    pub content_length_values: usize,
    /// Whether any Transfer-Encoding field was present.
    pub transfer_encoding: bool,
}

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct FramingLayer {
    _private: (),
}

impl FramingLayer {
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for FramingLayer {
    type Service = Framing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Framing { inner }
    }
}

/// See [`FramingLayer`].
#[derive(Debug, Clone)]
pub struct Framing<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Framing<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = EitherFuture<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match check(&mut req) {
            Ok(()) => EitherFuture::left(self.inner.call(req)),
            Err(rejection) => {
                let mut res: Response<ResBody> = rejection.into_response();
                if res.status() == http::StatusCode::BAD_REQUEST {
                    res.headers_mut()
                        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
                }
                EitherFuture::right(ready(Ok(res)))
            }
        }
    }
}

/// Checks a request, removing ambiguous `_` header names in place.
pub fn check<B>(req: &mut Request<B>) -> Result<(), Rejection> {
    if req.method() == Method::CONNECT || req.method() == Method::TRACE {
        return Err(Rejection::method_not_allowed(
            "CONNECT and TRACE are not forwarded",
        ));
    }
    let headers = req.headers();
    let wire = req
        .extensions()
        .get::<WireFraming>()
        .copied()
        .unwrap_or_default();
    let lengths = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.as_bytes().split(|&b| b == b',').count())
        .sum::<usize>()
        .max(wire.content_length_values);
    if lengths > 1 {
        return Err(Rejection::bad_request("more than one Content-Length"));
    }
    let transfer_encoding =
        wire.transfer_encoding || headers.contains_key(header::TRANSFER_ENCODING);
    if lengths == 1 && transfer_encoding {
        return Err(Rejection::bad_request(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    check_host(req)?;

    let mut underscored: Vec<HeaderName> = Vec::new();
    for (name, value) in req.headers() {
        if has_control_character(value.as_bytes()) {
            return Err(Rejection::bad_request(
                "control character in a header value",
            ));
        }
        let text = name.as_str();
        if text.as_bytes().contains(&b'_') {
            let folded = text.replace('_', "-");
            if FRAMING_NAMES.contains(&folded.as_str()) {
                return Err(Rejection::bad_request(
                    "a header name spells a framing header with `_`",
                ));
            }
            if !underscored.contains(name) {
                underscored.push(name.clone());
            }
        }
    }
    for name in underscored {
        tracing::debug!(header = %name, "removed a header whose name contains `_`");
        req.headers_mut().remove(name);
    }
    Ok(())
}

/// Whether `value` holds a control character other than HTAB (RFC 9110 §5.5). Every byte is
/// looked at, without an early exit, so the loop compiles to vector instructions: this runs on
/// every byte of every request header, and a refused request is rare.
fn has_control_character(value: &[u8]) -> bool {
    value.iter().fold(false, |found, &b| {
        found | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
    })
}

fn check_host<B>(req: &Request<B>) -> Result<(), Rejection> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Rejection::bad_request("more than one Host header"));
    }
    let host = match host {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<Authority>().ok())
                .filter(|a| !a.as_str().contains('@'))
                .ok_or_else(|| Rejection::bad_request("the Host header is not a valid host"))?,
        ),
        None => None,
    };
    match (req.uri().authority(), host) {
        (Some(target), Some(host)) if !same_authority(target, &host) => Err(
            Rejection::bad_request("the Host header disagrees with the request target"),
        ),
        (None, None) if req.version() == Version::HTTP_11 => Err(Rejection::bad_request(
            "HTTP/1.1 requests need a Host header",
        )),
        _ => Ok(()),
    }
}

fn same_authority(a: &Authority, b: &Authority) -> bool {
    a.host().eq_ignore_ascii_case(b.host()) && a.port_u16() == b.port_u16()
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus any header the `Connection` header names.
/// A proxy removes them in both directions.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of these. One pass over the names (compared as `HeaderName`s,
    // an enum match for the standard ones) finds that out; removing each by name would parse
    // and hash ten names per message, twice per proxied request.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    crate::remove_headers::remove_all(headers, &HOP_BY_HOP);
}

const HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("http2-settings"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri("/x");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    fn status(mut r: Request<()>) -> Option<u16> {
        check(&mut r).err().map(|e| e.status().as_u16())
    }

    #[test]
    fn control_characters_are_every_ctl_but_htab() {
        for b in 0u8..=255 {
            let control = (b < 0x20 && b != b'\t') || b == 0x7f;
            let value = [b'a', b, b'z'];
            assert_eq!(has_control_character(&value), control, "byte {b:#04x}");
        }
        assert!(!has_control_character(b""));
        assert!(has_control_character(
            &[b'x'; 100].iter().copied().chain([0]).collect::<Vec<_>>()
        ));
    }

    #[test]
    fn refuses_ambiguous_framing() {
        assert_eq!(
            status(req(&[
                ("host", "a"),
                ("content-length", "1"),
                ("content-length", "1")
            ])),
            Some(400)
        );
        assert_eq!(
            status(req(&[
                ("host", "a"),
                ("content-length", "1"),
                ("transfer-encoding", "chunked")
            ])),
            Some(400)
        );
        assert_eq!(
            status(req(&[("host", "a"), ("content_length", "1")])),
            Some(400)
        );
        assert_eq!(
            status(req(&[("host", "a"), ("Transfer_Encoding", "chunked")])),
            Some(400)
        );
    }

    #[test]
    fn refuses_what_the_wire_said_even_when_the_parser_hid_it() {
        let mut r = req(&[("host", "a"), ("transfer-encoding", "chunked")]);
        r.extensions_mut().insert(WireFraming {
            content_length_values: 1,
            transfer_encoding: true,
        });
        assert_eq!(check(&mut r).unwrap_err().status(), 400);
        let mut r = req(&[("host", "a"), ("content-length", "3")]);
        r.extensions_mut().insert(WireFraming {
            content_length_values: 2,
            transfer_encoding: false,
        });
        assert_eq!(check(&mut r).unwrap_err().status(), 400);
        assert_eq!(
            status(req(&[("host", "a"), ("content-length", "3, 3")])),
            Some(400)
        );
    }

    #[test]
    fn host_rules() {
        assert_eq!(status(req(&[])), Some(400));
        assert_eq!(status(req(&[("host", "a"), ("host", "b")])), Some(400));
        assert_eq!(status(req(&[("host", "user@evil")])), Some(400));
        assert_eq!(status(req(&[("host", "api.example.com:8080")])), None);
        let absolute = Request::builder()
            .uri("http://a.example/x")
            .header("host", "b.example")
            .body(())
            .unwrap();
        assert_eq!(status(absolute), Some(400));
        let absolute = Request::builder()
            .uri("http://A.example/x")
            .header("host", "a.example")
            .body(())
            .unwrap();
        assert_eq!(status(absolute), None);
        let http10 = Request::builder()
            .version(Version::HTTP_10)
            .uri("/x")
            .body(())
            .unwrap();
        assert_eq!(status(http10), None);
    }

    #[test]
    fn refuses_connect_and_trace() {
        let connect = Request::builder()
            .method("CONNECT")
            .uri("a:443")
            .body(())
            .unwrap();
        assert_eq!(status(connect), Some(405));
        let trace = Request::builder()
            .method("TRACE")
            .uri("/")
            .header("host", "a")
            .body(())
            .unwrap();
        assert_eq!(status(trace), Some(405));
    }

    #[test]
    fn removes_other_underscore_headers() {
        let mut r = req(&[("host", "a"), ("x_tenant", "evil"), ("x-tenant", "ok")]);
        check(&mut r).unwrap();
        assert!(r.headers().get("x_tenant").is_none());
        assert_eq!(r.headers()["x-tenant"], "ok");
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("http2-settings", "AAA".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));

        // Each one alone is found, the non-standard names included.
        for name in [
            "te",
            "trailer",
            "proxy-connection",
            "keep-alive",
            "http2-settings",
        ] {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_static(name), "x".parse().unwrap());
            h.insert("x-kept", "1".parse().unwrap());
            strip_hop_by_hop(&mut h);
            assert_eq!(h.len(), 1, "{name}");
        }
        // Nothing to strip: nothing changes.
        let mut h = HeaderMap::new();
        h.insert("x-kept", "1".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
    }
}
