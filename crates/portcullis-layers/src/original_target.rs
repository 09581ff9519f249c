//! The request target as the client sent it, kept for the checks that need the exact bytes.
//!
//! Routing normalises the path and rewrites the request's URI, so the layers after it see the
//! canonical form. A request signature covers the target as sent, so the routing step inserts
//! this extension *before* rewriting; a layer that needs the wire form reads it and falls back
//! to the URI when it is absent (the URI was not rewritten, or no routing step ran).
//!
//! ```
//! use http::Request;
//! use portcullis_layers::OriginalTarget;
//!
//! let mut req = Request::get("/v1//things?a=1").body(()).unwrap();
//! if let Some(target) = req.uri().path_and_query().cloned() {
//!     req.extensions_mut().insert(OriginalTarget::new(target));
//! }
//! *req.uri_mut() = "/v1/things?a=1".parse().unwrap();
//! assert_eq!(OriginalTarget::of(&req), "/v1//things?a=1");
//! ```

use http::Request;
use http::uri::PathAndQuery;

/// Request extension: the path and query exactly as received, before normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalTarget(PathAndQuery);

impl OriginalTarget {
    pub fn new(target: PathAndQuery) -> Self {
        Self(target)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The target a request was sent with: this extension if present, else the URI's path and
    /// query, else `/` (an authority-form `CONNECT` target has neither).
    pub fn of<B>(req: &Request<B>) -> &str {
        Self::from_parts(req.extensions(), req.uri())
    }

    pub(crate) fn from_parts<'a>(extensions: &'a http::Extensions, uri: &'a http::Uri) -> &'a str {
        extensions
            .get::<OriginalTarget>()
            .map(OriginalTarget::as_str)
            .or_else(|| uri.path_and_query().map(PathAndQuery::as_str))
            .unwrap_or("/")
    }
}
