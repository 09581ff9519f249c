//! The route a request matched, shared between the layers that need it.

use std::sync::Arc;

/// Which policy route a request belongs to. The routing step inserts it into the request's
/// extensions and copies it onto the response's, so response-side layers (headers, cache
/// posture, access log) see it too. Layers treat a missing value as the default route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedRoute {
    /// Index into the route list the layers were configured with.
    pub index: usize,
    /// The route's name, for logs.
    pub name: Arc<str>,
}
