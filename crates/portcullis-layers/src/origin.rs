//! Web origins (RFC 6454) as browsers send them in `Origin`, and allow-lists of them.
//!
//! CORS, the CSRF check and the WebSocket origin check all ask one question: is the origin in
//! this request one the policy trusts? The answer must never come from substring or regex
//! matching (`https://example.com.evil.net` starts with `https://example.com`), so both sides
//! are brought to one canonical form and compared exactly:
//!
//! - [`Origin::parse`] reads a request's `Origin` strictly: `http` or `https`, a host, an
//!   optional port, nothing else (no userinfo, path, query, fragment, percent-encoding or
//!   whitespace). Scheme and host are lower-cased and a default port is dropped, so
//!   `HTTPS://App.Example.com:443` and `https://app.example.com` are one origin. A trailing dot
//!   is kept: `app.example.com.` is a different host to a browser, and so it is here.
//! - [`AllowedOrigins`] holds exact origins (a hash set, so a 100-origin list costs one lookup),
//!   anchored one-label subdomain patterns (`https://*.example.com` matches
//!   `https://a.example.com` and nothing else below or beside it), `null` only when listed, and
//!   `*` for "any origin".
//!
//! Internationalised hosts are compared in their ASCII (punycode) form, which is what browsers
//! send; converting a policy's Unicode spelling is the policy compiler's job.
//!
//! The `url` crate parses URLs the WHATWG way, which *repairs* input (`https://a.com\@b`,
//! stray paths, userinfo) where a security check must refuse it; an origin is small enough that
//! a strict parser is shorter than the checks needed around `url`.
//!
//! ```
//! use portcullis_layers::origin::{AllowedOrigins, Origin};
//!
//! let allowed = AllowedOrigins::new()
//!     .allow("https://app.example.com").unwrap()
//!     .allow("https://*.example.net").unwrap();
//! let ok = |o: &str| Origin::parse(o.as_bytes()).is_ok_and(|o| allowed.allows(&o));
//! assert!(ok("https://APP.example.com:443"));
//! assert!(ok("https://eu.example.net"));
//! assert!(!ok("https://example.net"));
//! assert!(!ok("https://a.b.example.net"));
//! assert!(!ok("https://app.example.com.evil.test"));
//! assert!(!ok("http://app.example.com"));
//! assert!(!ok("null"));
//! ```

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::net::Ipv6Addr;

/// An origin as a request carries it, in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `scheme://host[:port]`, or `null`. A `String`, not a `Box<str>`: shrinking the buffer
    /// would cost a reallocation per request.
    serialized: String,
    /// Length of `scheme://host`: `serialized[..host_end]` is everything but the port.
    host_end: usize,
    scheme: Scheme,
    /// `None` for the scheme's default port.
    port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
    /// The opaque origin `null` (sandboxed frames, `file:`, some redirects).
    Null,
}

impl Scheme {
    fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Http => Some(80),
            Scheme::Https => Some(443),
            Scheme::Null => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Scheme::Http => "http://",
            Scheme::Https => "https://",
            Scheme::Null => "",
        }
    }
}

/// Why a value is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("an origin is `http://` or `https://` followed by a host")]
    Scheme,
    #[error("an origin has no user name, password, path, query or fragment")]
    NotJustAnOrigin,
    #[error("`{0}` is not a valid host name")]
    Host(String),
    #[error("the port must be a number from 1 to 65535")]
    Port,
    #[error(
        "`*` must stand for exactly one leftmost label of a domain with at least two labels (`https://*.example.com`)"
    )]
    Pattern,
}

impl Origin {
    /// Parses an `Origin` header value (or one allow-list entry) strictly; see the module docs.
    pub fn parse(value: &[u8]) -> Result<Origin, OriginError> {
        if value == b"null" {
            return Ok(Origin {
                serialized: "null".to_owned(),
                host_end: 4,
                scheme: Scheme::Null,
                port: None,
            });
        }
        let (scheme, rest) = split_scheme(value)?;
        let (host, port) = split_authority(rest)?;
        let mut serialized = String::with_capacity(value.len());
        serialized.push_str(scheme.prefix());
        push_host(&mut serialized, host)?;
        let host_end = serialized.len();
        let port = port.filter(|p| Some(*p) != scheme.default_port());
        if let Some(port) = port {
            // Writing to a String cannot fail.
            let _ = write!(serialized, ":{port}");
        }
        Ok(Origin {
            serialized,
            host_end,
            scheme,
            port,
        })
    }

    /// The canonical form, ready to reflect in `Access-Control-Allow-Origin`.
    pub fn as_str(&self) -> &str {
        &self.serialized
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The lower-cased host (IPv6 in brackets); empty for `null`.
    pub fn host(&self) -> &str {
        self.serialized
            .get(self.scheme.prefix().len()..self.host_end)
            .unwrap_or_default()
    }

    /// The port, `None` when it is the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    pub fn is_null(&self) -> bool {
        self.scheme == Scheme::Null
    }

    /// Whether this origin names the host a request was addressed to (its `Host` header or
    /// `:authority`), compared as host and effective port. The scheme is not compared: behind
    /// a TLS-terminating proxy the gateway cannot see it.
    pub fn is_same_host(&self, authority: &[u8]) -> bool {
        if self.is_null() {
            return false;
        }
        let Ok((host, port)) = split_authority(authority) else {
            return false;
        };
        let mut canonical = String::with_capacity(host.len());
        if push_host(&mut canonical, host).is_err() || canonical != self.host() {
            return false;
        }
        let port = port.or(self.scheme.default_port());
        port == self.port.or(self.scheme.default_port())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.serialized)
    }
}

fn split_scheme(value: &[u8]) -> Result<(Scheme, &[u8]), OriginError> {
    let pos = value
        .windows(3)
        .position(|w| w == b"://")
        .ok_or(OriginError::Scheme)?;
    let (scheme, rest) = (&value[..pos], &value[pos + 3..]);
    let scheme = if scheme.eq_ignore_ascii_case(b"https") {
        Scheme::Https
    } else if scheme.eq_ignore_ascii_case(b"http") {
        Scheme::Http
    } else {
        return Err(OriginError::Scheme);
    };
    Ok((scheme, rest))
}

/// Splits `host[:port]` (IPv6 in brackets), refusing anything that is not part of an origin.
fn split_authority(rest: &[u8]) -> Result<(&[u8], Option<u16>), OriginError> {
    if rest.is_empty() {
        return Err(OriginError::Host(String::new()));
    }
    if rest
        .iter()
        .any(|b| matches!(b, b'@' | b'/' | b'\\' | b'?' | b'#' | b'%') || !b.is_ascii_graphic())
    {
        return Err(OriginError::NotJustAnOrigin);
    }
    let (host, port) = if rest.starts_with(b"[") {
        let close = rest
            .iter()
            .position(|b| *b == b']')
            .ok_or_else(|| OriginError::Host(String::from_utf8_lossy(rest).into_owned()))?;
        let after = &rest[close + 1..];
        match after {
            [] => (&rest[..=close], None),
            [b':', port @ ..] => (&rest[..=close], Some(port)),
            _ => {
                return Err(OriginError::Host(
                    String::from_utf8_lossy(rest).into_owned(),
                ));
            }
        }
    } else {
        match rest.iter().position(|b| *b == b':') {
            Some(colon) => (&rest[..colon], Some(&rest[colon + 1..])),
            None => (rest, None),
        }
    };
    let port = port.map(parse_port).transpose()?;
    Ok((host, port))
}

fn parse_port(digits: &[u8]) -> Result<u16, OriginError> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(OriginError::Port);
    }
    let port = digits
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(OriginError::Port)
}

/// Appends the canonical (lower-case) host, checking it is a DNS name, IPv4 or bracketed IPv6.
fn push_host(out: &mut String, host: &[u8]) -> Result<(), OriginError> {
    let invalid = || OriginError::Host(String::from_utf8_lossy(host).into_owned());
    if let Some(inner) = host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
        let text = std::str::from_utf8(inner).map_err(|_| invalid())?;
        let addr: Ipv6Addr = text.parse().map_err(|_| invalid())?;
        out.push('[');
        out.push_str(&addr.to_string());
        out.push(']');
        return Ok(());
    }
    // Labels of letters, digits, `-` and `_` (seen in real hosts), separated by single dots;
    // one trailing dot allowed (it is part of the host to a browser).
    let body = host.strip_suffix(b".").unwrap_or(host);
    if body.is_empty() || host.len() > 254 {
        return Err(invalid());
    }
    for label in body.split(|b| *b == b'.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        if !ok {
            return Err(invalid());
        }
    }
    // Validated ASCII above, so this is the host as text.
    let start = out.len();
    out.push_str(std::str::from_utf8(host).map_err(|_| invalid())?);
    if let Some(added) = out.get_mut(start..) {
        added.make_ascii_lowercase();
    }
    Ok(())
}

/// `scheme://*.parent[:port]`: any origin exactly one label below `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubdomainPattern {
    scheme: Scheme,
    /// `.example.com`, with the leading dot, so a suffix match is anchored on a label boundary.
    dot_parent: Box<str>,
    port: Option<u16>,
    source: Box<str>,
}

impl SubdomainPattern {
    fn matches(&self, origin: &Origin) -> bool {
        origin.scheme == self.scheme
            && origin.port == self.port
            && origin
                .host()
                .strip_suffix(&*self.dot_parent)
                .is_some_and(|label| {
                    !label.is_empty() && !label.contains('.') && !label.starts_with('[')
                })
    }
}

/// An allow-list of origins; see the module docs. Empty by default: nothing is allowed.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    exact: HashSet<Box<str>>,
    patterns: Vec<SubdomainPattern>,
    any: bool,
}

impl AllowedOrigins {
    /// An empty list: no origin is allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every origin (`*`). Only for credential-less, public data; the policy compiler refuses
    /// it with credentials and in production.
    pub fn any() -> Self {
        Self {
            any: true,
            ..Self::default()
        }
    }

    /// Adds one entry: an origin (`https://app.example.com`, normalised like requests are),
    /// a one-label subdomain pattern (`https://*.example.com`), `null`, or `*`.
    pub fn allow(mut self, entry: &str) -> Result<Self, OriginError> {
        if entry == "*" {
            self.any = true;
            return Ok(self);
        }
        let bytes = entry.as_bytes();
        let (scheme, rest) = match split_scheme(bytes) {
            Ok(split) => split,
            // `null` and the error for anything else.
            Err(e) => {
                let origin = Origin::parse(bytes).map_err(|_| e)?;
                self.exact.insert(origin.serialized.into_boxed_str());
                return Ok(self);
            }
        };
        if let Some(parent) = rest.strip_prefix(b"*.") {
            let parent_origin = Origin::parse(&[scheme.prefix().as_bytes(), parent].concat())?;
            let parent_host = parent_origin.host();
            let is_dns = !parent_host.starts_with('[')
                && !parent_host.ends_with('.')
                && parent_host.parse::<std::net::Ipv4Addr>().is_err();
            if !is_dns || !parent_host.contains('.') {
                return Err(OriginError::Pattern);
            }
            self.patterns.push(SubdomainPattern {
                scheme,
                dot_parent: format!(".{parent_host}").into_boxed_str(),
                port: parent_origin.port,
                source: entry.into(),
            });
            return Ok(self);
        }
        if rest.contains(&b'*') {
            return Err(OriginError::Pattern);
        }
        let origin = Origin::parse(bytes)?;
        self.exact.insert(origin.serialized.into_boxed_str());
        Ok(self)
    }

    /// Whether `origin` is on the list.
    pub fn allows(&self, origin: &Origin) -> bool {
        if origin.is_null() {
            // `*` does not cover `null`: an opaque origin is anyone (a sandboxed iframe on any
            // site), so it is allowed only where it is listed by name.
            return self.exact.contains("null");
        }
        self.any
            || self.exact.contains(origin.as_str())
            || self.patterns.iter().any(|p| p.matches(origin))
    }

    /// Whether the list is `*`.
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// Whether nothing at all is allowed.
    pub fn is_empty(&self) -> bool {
        !self.any && self.exact.is_empty() && self.patterns.is_empty()
    }

    /// Adds every entry of `other`.
    pub fn extend(mut self, other: &AllowedOrigins) -> Self {
        self.any |= other.any;
        self.exact.extend(other.exact.iter().cloned());
        for p in &other.patterns {
            if !self.patterns.contains(p) {
                self.patterns.push(p.clone());
            }
        }
        self
    }

    /// The entries, canonical exact origins sorted, then patterns as written (for docs, logs).
    pub fn entries(&self) -> Vec<String> {
        let mut exact: Vec<String> = self.exact.iter().map(|o| o.to_string()).collect();
        exact.sort();
        if self.any {
            exact.insert(0, "*".to_owned());
        }
        exact.extend(self.patterns.iter().map(|p| p.source.to_string()));
        exact
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origin(s: &str) -> Option<Origin> {
        Origin::parse(s.as_bytes()).ok()
    }

    fn list(entries: &[&str]) -> AllowedOrigins {
        entries
            .iter()
            .fold(AllowedOrigins::new(), |l, e| l.allow(e).unwrap())
    }

    #[test]
    fn canonical_form() {
        for (input, canonical) in [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.EXAMPLE.com", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            ("http://app.example.com:80", "http://app.example.com"),
            (
                "https://app.example.com:8443",
                "https://app.example.com:8443",
            ),
            ("http://app.example.com:443", "http://app.example.com:443"),
            ("https://app.example.com:0443", "https://app.example.com"),
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
            ("http://[::1]:3000", "http://[::1]:3000"),
            ("http://[0:0:0:0:0:0:0:1]", "http://[::1]"),
            (
                "https://xn--bcher-kva.example",
                "https://xn--bcher-kva.example",
            ),
            ("https://app.example.com.", "https://app.example.com."),
            ("null", "null"),
        ] {
            assert_eq!(
                origin(input).map(|o| o.to_string()).as_deref(),
                Some(canonical),
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_an_origin() {
        for input in [
            "",
            "app.example.com",
            "ftp://app.example.com",
            "https://",
            "https://user@app.example.com",
            "https://user:pw@app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?q",
            "https://app.example.com#f",
            "https://app.example.com\\@evil.test",
            "https://app%2eexample.com",
            "https://app.example.com:",
            "https://app.example.com:65536",
            "https://app.example.com:0",
            "https://app.example.com:-1",
            "https://app..example.com",
            "https://.example.com",
            "https://app.example.com..",
            "https://app example.com",
            "https://bücher.example",
            "https://[::1",
            "https://[nope]",
            "https://[::1]x",
            "Null",
            " null",
            "https://app.example.com ",
        ] {
            assert!(origin(input).is_none(), "{input:?} parsed");
        }
    }

    #[test]
    fn exact_entries_match_only_themselves() {
        let allowed = list(&["https://app.example.com", "http://localhost:5173"]);
        for ok in [
            "https://app.example.com",
            "https://APP.example.COM",
            "https://app.example.com:443",
            "http://localhost:5173",
        ] {
            assert!(allowed.allows(&origin(ok).unwrap()), "{ok}");
        }
        for no in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com.",
            "https://app.example.com.evil.net",
            "https://evilapp.example.com",
            "https://a.app.example.com",
            "https://example.com",
            "http://localhost",
            "http://localhost:5174",
            "null",
        ] {
            assert!(!allowed.allows(&origin(no).unwrap()), "{no}");
        }
    }

    #[test]
    fn subdomain_patterns_are_anchored_to_one_label() {
        let allowed = list(&["https://*.example.com"]);
        assert!(allowed.allows(&origin("https://a.example.com").unwrap()));
        assert!(allowed.allows(&origin("https://A-1.Example.com").unwrap()));
        for no in [
            "https://example.com",
            "https://a.b.example.com",
            "https://example.com.evil.net",
            "https://a.example.com.evil.net",
            "https://evilexample.com",
            "https://aexample.com",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://a.example.com.",
        ] {
            assert!(!allowed.allows(&origin(no).unwrap()), "{no}");
        }
        let with_port = list(&["http://*.dev.example.com:8080"]);
        assert!(with_port.allows(&origin("http://x.dev.example.com:8080").unwrap()));
        assert!(!with_port.allows(&origin("http://x.dev.example.com").unwrap()));
    }

    #[test]
    fn refuses_broad_or_misplaced_wildcards() {
        for entry in [
            "https://*.com",
            "https://*.*.example.com",
            "https://a.*.example.com",
            "https://*example.com",
            "https://ex*ample.com",
            "https://*.127.0.0.1",
            "https://*.[::1]",
            "https://*.example.com.",
            "https://*.example.com/",
            "*.example.com",
            "https://*",
        ] {
            assert!(AllowedOrigins::new().allow(entry).is_err(), "{entry}");
        }
    }

    #[test]
    fn null_only_when_listed_and_never_by_star() {
        let null = origin("null").unwrap();
        assert!(!AllowedOrigins::any().allows(&null));
        assert!(!list(&["https://a.example.com"]).allows(&null));
        assert!(list(&["null"]).allows(&null));
        assert!(AllowedOrigins::any().allows(&origin("https://x.test").unwrap()));
    }

    #[test]
    fn same_host_compares_host_and_effective_port() {
        let o = origin("https://api.example.com").unwrap();
        assert!(o.is_same_host(b"api.example.com"));
        assert!(o.is_same_host(b"API.example.com:443"));
        assert!(!o.is_same_host(b"api.example.com:8443"));
        assert!(!o.is_same_host(b"api.example.com.evil.net"));
        assert!(!o.is_same_host(b"user@api.example.com"));
        let local = origin("http://127.0.0.1:8080").unwrap();
        assert!(local.is_same_host(b"127.0.0.1:8080"));
        assert!(!local.is_same_host(b"127.0.0.1"));
        assert!(!origin("null").unwrap().is_same_host(b"null"));
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
    }

    proptest! {
        /// An exact entry allows exactly the origins whose canonical form is the entry's.
        #[test]
        fn exact_match_is_canonical_equality(
            a in proptest::collection::vec(label(), 1..4),
            b in proptest::collection::vec(label(), 1..4),
            https in any::<bool>(),
            port in proptest::option::of(1u16..),
            upper in any::<bool>(),
        ) {
            let scheme = if https { "https" } else { "http" };
            let entry = format!("{scheme}://{}", a.join("."));
            let allowed = AllowedOrigins::new().allow(&entry).unwrap();
            let mut host = b.join(".");
            if upper { host = host.to_ascii_uppercase(); }
            let request = match port {
                Some(p) => format!("{scheme}://{host}:{p}"),
                None => format!("{scheme}://{host}"),
            };
            let o = Origin::parse(request.as_bytes()).unwrap();
            let default = if https { 443 } else { 80 };
            let same = a.join(".") == b.join(".") && port.is_none_or(|p| p == default);
            prop_assert_eq!(allowed.allows(&o), same);
        }

        /// A subdomain pattern never allows an origin that merely contains its parent.
        #[test]
        fn pattern_is_anchored(
            parent in proptest::collection::vec(label(), 2..4),
            prefix in proptest::collection::vec(label(), 0..3),
            suffix in proptest::collection::vec(label(), 0..2),
            glue in "[a-z0-9]{0,3}",
        ) {
            let parent = parent.join(".");
            let allowed = AllowedOrigins::new().allow(&format!("https://*.{parent}")).unwrap();
            let mut host = prefix.join(".");
            if !host.is_empty() { host.push('.'); }
            host.push_str(&glue);
            host.push_str(&parent);
            if !suffix.is_empty() { host.push('.'); host.push_str(&suffix.join(".")); }
            let Ok(o) = Origin::parse(format!("https://{host}").as_bytes()) else {
                return Ok(());
            };
            // Allowed exactly when the host is one label, a dot, and the whole parent.
            let one_label_below = host
                .strip_suffix(&format!(".{parent}"))
                .is_some_and(|label| !label.is_empty() && !label.contains('.'));
            prop_assert_eq!(allowed.allows(&o), one_label_below, "{}", host);
            if prefix.len() == 1 && glue.is_empty() && suffix.is_empty() {
                prop_assert!(allowed.allows(&o), "{}", host);
            }
        }

        /// Whatever bytes arrive, parsing never panics and what parses is canonical.
        #[test]
        fn parse_is_total_and_idempotent(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(o) = Origin::parse(&bytes) {
                let again = Origin::parse(o.as_str().as_bytes()).unwrap();
                prop_assert_eq!(again.as_str(), o.as_str());
            }
        }
    }
}
