//! Path normalisation: one canonical spelling per resource.
//!
//! Route matching, and the request the upstream receives, both use the output of
//! [`normalize_path`], so a request cannot be matched as one path by the gateway and routed as
//! another by the upstream. The steps follow RFC 3986 §6.2.2 (percent-decoding, §5.2.4 dot-segment
//! removal) plus duplicate-slash collapsing. Spellings that servers disagree about are refused
//! outright instead of being guessed at: an encoded `/` or `\`, a raw `\`, decoded control
//! characters, invalid UTF-8, and Tomcat-style `..;` dot segments.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// Characters re-encoded in a canonical path segment: everything but RFC 3986 `pchar`
/// (unreserved, sub-delims, `:` and `@`). Non-ASCII is always encoded.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A request path in normalised form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath<'a> {
    /// Decoded, for matching against route patterns: `/v1/account/x`.
    pub decoded: Cow<'a, str>,
    /// Re-encoded canonically, for the request sent upstream: `/v1/account/a%20b`.
    pub canonical: Cow<'a, str>,
}

/// Why a path was refused. Every variant is a 400: the request is ambiguous, not merely unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target is not an absolute path")]
    NotAbsolute,
    #[error("the path contains an encoded or literal slash or backslash inside a segment")]
    AmbiguousSeparator,
    #[error("the path contains control characters")]
    ControlCharacter,
    #[error("the path is not valid UTF-8 once decoded")]
    InvalidUtf8,
    #[error("the path contains a dot segment with parameters (`..;`)")]
    AmbiguousDotSegment,
}

/// Normalises a request path (the path component of the request target, still encoded).
pub fn normalize_path(raw: &str) -> Result<NormalizedPath<'_>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(raw) {
        return Ok(NormalizedPath {
            decoded: Cow::Borrowed(raw),
            canonical: Cow::Borrowed(raw),
        });
    }
    let mut segments: Vec<Cow<'_, str>> = Vec::new();
    let mut trailing_slash = false;
    for raw_segment in raw[1..].split('/') {
        if raw_segment.contains('\\') {
            return Err(PathError::AmbiguousSeparator);
        }
        let decoded = percent_decode_str(raw_segment)
            .decode_utf8()
            .map_err(|_| PathError::InvalidUtf8)?;
        if decoded.contains(['/', '\\']) {
            return Err(PathError::AmbiguousSeparator);
        }
        if decoded.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        trailing_slash = false;
        match decoded.as_ref() {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            other if is_dot_with_params(other) => return Err(PathError::AmbiguousDotSegment),
            _ => segments.push(decoded),
        }
    }
    let mut decoded = String::with_capacity(raw.len());
    let mut canonical = String::with_capacity(raw.len());
    for segment in &segments {
        decoded.push('/');
        decoded.push_str(segment);
        canonical.push('/');
        canonical.extend(utf8_percent_encode(segment, SEGMENT));
    }
    if trailing_slash || segments.is_empty() {
        decoded.push('/');
        canonical.push('/');
    }
    Ok(NormalizedPath {
        decoded: Cow::Owned(decoded),
        canonical: Cow::Owned(canonical),
    })
}

/// `.;x` and `..;x`: Tomcat and others treat them as dot segments, most servers do not.
fn is_dot_with_params(segment: &str) -> bool {
    matches!(segment.split(';').next(), Some("." | ".."))
}

/// The fast path: a path already in canonical form needs no allocation. True when every byte is
/// a plain `pchar` or `/`, and no segment is empty (but a trailing one), `.`, `..` or `..;x`.
fn is_canonical(raw: &str) -> bool {
    let plain = raw.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'/' | b'-'
                    | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            )
    });
    if !plain {
        return false;
    }
    let body = &raw[1..];
    if body.is_empty() {
        return true;
    }
    body.strip_suffix('/')
        .unwrap_or(body)
        .split('/')
        .all(|segment| !segment.is_empty() && !is_dot_with_params(segment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(raw: &str) -> (String, String) {
        let n = normalize_path(raw).unwrap();
        (n.decoded.into_owned(), n.canonical.into_owned())
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        let n = normalize_path("/v1/account/x").unwrap();
        assert!(matches!(n.decoded, Cow::Borrowed(_)));
        assert!(matches!(n.canonical, Cow::Borrowed(_)));
        assert!(matches!(
            normalize_path("/").unwrap().decoded,
            Cow::Borrowed("/")
        ));
    }

    #[test]
    fn removes_dot_segments_and_duplicate_slashes() {
        assert_eq!(norm("/v1//account/../account/x").0, "/v1/account/x");
        assert_eq!(norm("/v1/./status").0, "/v1/status");
        assert_eq!(norm("/../../etc/passwd").0, "/etc/passwd");
        assert_eq!(norm("/a/b/..").0, "/a/");
        assert_eq!(norm("//").0, "/");
    }

    #[test]
    fn decodes_before_removing_dot_segments() {
        assert_eq!(norm("/v1/public/%2e%2e/admin").0, "/v1/admin");
        assert_eq!(norm("/v1/%61ccount").0, "/v1/account");
        assert_eq!(norm("/v1/a%20b"), ("/v1/a b".into(), "/v1/a%20b".into()));
        assert_eq!(norm("/caf%C3%A9").1, "/caf%C3%A9");
        assert_eq!(norm("/100%25").1, "/100%25");
    }

    #[test]
    fn refuses_ambiguous_spellings() {
        assert_eq!(normalize_path("/a%2Fb"), Err(PathError::AmbiguousSeparator));
        assert_eq!(normalize_path("/a%5cb"), Err(PathError::AmbiguousSeparator));
        assert_eq!(normalize_path("/a\\b"), Err(PathError::AmbiguousSeparator));
        assert_eq!(normalize_path("/a%00b"), Err(PathError::ControlCharacter));
        assert_eq!(
            normalize_path("/a%0d%0ab"),
            Err(PathError::ControlCharacter)
        );
        assert_eq!(normalize_path("/a%ffb"), Err(PathError::InvalidUtf8));
        assert_eq!(
            normalize_path("/public/..;/admin"),
            Err(PathError::AmbiguousDotSegment)
        );
        assert_eq!(
            normalize_path("/public/.;x/admin"),
            Err(PathError::AmbiguousDotSegment)
        );
        assert_eq!(normalize_path("*"), Err(PathError::NotAbsolute));
    }

    proptest! {
        /// Normalising is idempotent, and the canonical form decodes to the matched form: the
        /// upstream always sees the same resource the gateway matched.
        #[test]
        fn canonical_form_is_a_fixed_point(raw in "/[a-zA-Z0-9%./;~ _-]{0,40}") {
            if let Ok(first) = normalize_path(&raw) {
                let again = normalize_path(&first.canonical).unwrap();
                prop_assert_eq!(&again.decoded, &first.decoded);
                prop_assert_eq!(&again.canonical, &first.canonical);
            }
        }
    }
}
