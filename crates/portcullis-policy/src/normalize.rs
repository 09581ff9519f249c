//! Path normalisation: one canonical spelling per resource.
//!
//! Route matching, and the request the upstream receives, both use the output of
//! [`normalize_path`], so a request cannot be matched as one path by the gateway and routed as
//! another by the upstream:
//!
//! - the canonical form sent upstream follows RFC 3986 §6.2.2: percent-encoded *unreserved*
//!   characters are decoded (`%61` → `a`), other escapes are kept with upper-case hex (`%3B`
//!   stays `%3B`, since decoding a reserved character changes what the path means), dot
//!   segments are removed (§5.2.4) and duplicate slashes collapsed;
//! - the form matched against routes is fully decoded, with each segment's `;parameters`
//!   removed, as Servlet containers (Tomcat, Jetty, Spring) do before routing: `/v1/users;x/1`
//!   lands in the same group as `/v1/users/1`, because that is where a Java upstream sends it.
//!
//! Spellings that servers disagree about are refused outright instead of being guessed at: an
//! encoded `/` or `\`, a raw `\`, decoded control characters, invalid UTF-8, dot segments with
//! parameters (`..;`) and parameters on an empty segment.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// Characters percent-encoded in a canonical path segment: everything but RFC 3986 `pchar`
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
    /// Decoded and without `;parameters`, for matching against route patterns: `/v1/account/x`.
    pub decoded: Cow<'a, str>,
    /// RFC 3986 normal form, for the request sent upstream: `/v1/account/a%20b;v=1`.
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
    #[error("the path contains a dot or empty segment with parameters (`..;`, `/;x/`)")]
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
    // (name used for matching, canonical raw segment) per kept segment.
    let mut segments: Vec<(Cow<'_, str>, String)> = Vec::new();
    let mut trailing_slash = false;
    for raw_segment in raw[1..].split('/') {
        if raw_segment.contains('\\') {
            return Err(PathError::AmbiguousSeparator);
        }
        let (raw_name, raw_params) = match raw_segment.split_once(';') {
            Some((name, params)) => (name, Some(params)),
            None => (raw_segment, None),
        };
        let name = decode(raw_name)?;
        if let Some(params) = raw_params {
            decode(params)?;
        }
        trailing_slash = false;
        match (name.as_ref(), raw_params) {
            ("" | "." | "..", Some(_)) => return Err(PathError::AmbiguousDotSegment),
            ("" | ".", None) => trailing_slash = true,
            ("..", None) => {
                segments.pop();
                trailing_slash = true;
            }
            _ => segments.push((name, canonical_segment(raw_segment))),
        }
    }
    let mut decoded = String::with_capacity(raw.len());
    let mut canonical = String::with_capacity(raw.len());
    for (name, segment) in &segments {
        decoded.push('/');
        decoded.push_str(name);
        canonical.push('/');
        canonical.push_str(segment);
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

/// Fully decodes one segment (or its parameters), refusing what no server agrees on.
fn decode(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::InvalidUtf8)?;
    if decoded.contains(['/', '\\']) {
        return Err(PathError::AmbiguousSeparator);
    }
    if decoded.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    Ok(decoded)
}

/// RFC 3986 §6.2.2 normal form of one raw segment: unreserved escapes decoded, other escapes
/// upper-cased, characters outside `pchar` encoded.
fn canonical_segment(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)? << 4) | hex(*bytes.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                out.push(char::from(b));
                i += 3;
            }
            Some(b) => {
                out.push_str(&format!("%{b:02X}"));
                i += 3;
            }
            None => {
                // A literal byte; `%` not starting a valid escape is encoded as `%25`.
                let end = raw[i..].chars().next().map_or(1, char::len_utf8);
                out.extend(utf8_percent_encode(&raw[i..i + end], SEGMENT));
                i += end;
            }
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// The fast path: a path already in canonical form needs no allocation. True when every byte is
/// a plain `pchar` or `/` (no `%` escapes, no `;` parameters), and no segment is empty (but a
/// trailing one), `.` or `..`.
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
        .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
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
        assert_eq!(norm("/caf%c3%a9").1, "/caf%C3%A9");
        assert_eq!(norm("/100%25").1, "/100%25");
        assert_eq!(norm("/100%zz"), ("/100%zz".into(), "/100%25zz".into()));
    }

    #[test]
    fn keeps_reserved_escapes_and_matches_without_path_parameters() {
        assert_eq!(norm("/a%3Bb"), ("/a;b".into(), "/a%3Bb".into()));
        assert_eq!(
            norm("/v1/users;x=1/7"),
            ("/v1/users/7".into(), "/v1/users;x=1/7".into())
        );
        assert_eq!(
            norm("/v1/%75sers;v/7"),
            ("/v1/users/7".into(), "/v1/users;v/7".into())
        );
        assert_eq!(
            normalize_path("/a/;x/b"),
            Err(PathError::AmbiguousDotSegment)
        );
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

    /// Decodes every escape of a canonical path and drops `;parameters`, independently of the
    /// code under test, to check the two forms agree.
    fn decode_for_matching(canonical: &str) -> String {
        canonical
            .split('/')
            .map(|seg| {
                percent_decode_str(seg.split(';').next().unwrap_or(""))
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    proptest! {
        /// Normalising is idempotent, and the canonical form decodes to the matched form: the
        /// upstream always sees the same resource the gateway matched.
        #[test]
        fn canonical_form_is_a_fixed_point(raw in "/[a-zA-Z0-9%./;~ _-]{0,40}") {
            if let Ok(first) = normalize_path(&raw) {
                // Idempotence and agreement of the matched and forwarded forms.
                let again = normalize_path(&first.canonical).unwrap();
                prop_assert_eq!(&again.decoded, &first.decoded);
                prop_assert_eq!(&again.canonical, &first.canonical);
                prop_assert_eq!(decode_for_matching(&first.canonical), first.decoded.as_ref());
            }
        }
    }
}
