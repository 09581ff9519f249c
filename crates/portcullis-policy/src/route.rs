//! Route patterns and the ordered route table.
//!
//! A pattern is a normalised absolute path made of segments:
//! - a literal segment matches itself exactly (paths are case-sensitive, as RFC 3986 says);
//! - `{name}` matches exactly one non-empty segment;
//! - a final `*` matches the path so far *and* everything below it (`/v1/account/*` matches
//!   `/v1/account`, `/v1/account/` and `/v1/account/a/b`, but never `/v1/accounts`).
//!
//! A trailing slash never moves a request into another group: `/v1/status/` matches the exact
//! pattern `/v1/status`. Matching always runs on the output of [`crate::normalize_path`], so
//! encoded or dotted spellings of a path land in the same group as the plain one.

use std::fmt;

/// One compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
    segments: Vec<PatternSegment>,
    subtree: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternSegment {
    Literal(String),
    Param,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("a path pattern must start with `/`")]
    NotAbsolute,
    #[error("`*` is only allowed as the last segment (`/v1/account/*`)")]
    InnerWildcard,
    #[error(
        "segment `{0}` mixes a parameter or wildcard with text; use `{{name}}` or `*` as a whole segment"
    )]
    MixedSegment(String),
    #[error(
        "segment `{0}` is not normalised (empty, `.`, `..` or percent-encoded); write the path as requests are matched"
    )]
    NotNormalised(String),
}

impl PathPattern {
    /// Parses a pattern such as `/v1/account/*`, `/v1/status` or `/v1/users/{id}/keys`.
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        let rest = source.strip_prefix('/').ok_or(PatternError::NotAbsolute)?;
        let mut segments = Vec::new();
        let mut subtree = false;
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let count = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let last = i + 1 == count;
            if part == "*" {
                if !last {
                    return Err(PatternError::InnerWildcard);
                }
                subtree = true;
            } else if part.starts_with('{') && part.ends_with('}') && part.len() > 2 {
                let name = &part[1..part.len() - 1];
                if name.contains(['{', '}', '*']) {
                    return Err(PatternError::MixedSegment(part.to_owned()));
                }
                segments.push(PatternSegment::Param);
            } else if part.contains(['{', '}', '*']) {
                return Err(PatternError::MixedSegment(part.to_owned()));
            } else if part.is_empty() && last && i > 0 {
                // `/v1/status/`: a trailing slash is ignored like it is on requests.
            } else if part.is_empty() || part == "." || part == ".." || part.contains('%') {
                return Err(PatternError::NotNormalised(part.to_owned()));
            } else {
                segments.push(PatternSegment::Literal(part.to_owned()));
            }
        }
        Ok(Self {
            source: source.to_owned(),
            segments,
            subtree,
        })
    }

    /// The pattern as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether a normalised, decoded path matches this pattern.
    pub fn matches(&self, path: &str) -> bool {
        let Some(mut rest) = path.as_bytes().strip_prefix(b"/") else {
            return false;
        };
        // Normalised paths have no empty segments but the one a trailing slash leaves, and a
        // trailing slash never changes the group: skipping empty segments covers both.
        //
        // Walked rather than split: every request is matched against the patterns in turn
        // until one matches, and most patterns differ from the path in a literal segment. A
        // literal is compared in place (no search for the next `/`), so a pattern is
        // refused at the cost of a short comparison.
        for segment in &self.segments {
            rest = skip_slashes(rest);
            if rest.is_empty() {
                return false;
            }
            rest = match segment {
                PatternSegment::Literal(lit) => match rest.strip_prefix(lit.as_bytes()) {
                    Some(after) if after.first().is_none_or(|&b| b == b'/') => after,
                    _ => return false,
                },
                PatternSegment::Param => {
                    let end = rest.iter().position(|&b| b == b'/');
                    &rest[end.unwrap_or(rest.len())..]
                }
            };
        }
        self.subtree || skip_slashes(rest).is_empty()
    }

    /// Whether every path `other` matches, this pattern matches too: `other` listed after this
    /// one can never be the first match. Exact, not a heuristic: a parameter covers any one
    /// segment, a literal only itself, and `*` any number of further segments.
    pub fn covers(&self, other: &PathPattern) -> bool {
        let n = self.segments.len();
        let m = other.segments.len();
        let lengths_fit = if self.subtree {
            m >= n
        } else {
            !other.subtree && m == n
        };
        lengths_fit
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(mine, theirs)| match (mine, theirs) {
                    (PatternSegment::Param, _) => true,
                    (PatternSegment::Literal(a), PatternSegment::Literal(b)) => a == b,
                    (PatternSegment::Literal(_), PatternSegment::Param) => false,
                })
    }
}

/// `bytes` without its leading `/`s.
fn skip_slashes(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b'/');
    &bytes[start.unwrap_or(bytes.len())..]
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// [`PathPattern::matches`] as first written: the reference the walk is checked against.
    fn matches_by_splitting(pattern: &PathPattern, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/').filter(|part| !part.is_empty());
        for segment in &pattern.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            if let PatternSegment::Literal(lit) = segment
                && lit != part
            {
                return false;
            }
        }
        pattern.subtree || parts.next().is_none()
    }

    fn p(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }

    #[test]
    fn subtree_matches_itself_and_below_but_not_siblings() {
        let pat = p("/v1/account/*");
        for ok in [
            "/v1/account",
            "/v1/account/",
            "/v1/account/x",
            "/v1/account/x/y",
        ] {
            assert!(pat.matches(ok), "{ok}");
        }
        for no in ["/v1/accounts", "/v1/accoun", "/v1", "/", "/v2/account/x"] {
            assert!(!pat.matches(no), "{no}");
        }
    }

    #[test]
    fn exact_ignores_one_trailing_slash() {
        let pat = p("/v1/status");
        assert!(pat.matches("/v1/status"));
        assert!(pat.matches("/v1/status/"));
        assert!(!pat.matches("/v1/status/stream"));
        assert!(!pat.matches("/v1/statuses"));
    }

    #[test]
    fn root_patterns() {
        assert!(p("/").matches("/"));
        assert!(!p("/").matches("/a"));
        assert!(p("/*").matches("/"));
        assert!(p("/*").matches("/anything/at/all"));
    }

    #[test]
    fn params_match_one_non_empty_segment() {
        let pat = p("/v1/users/{id}/keys");
        assert!(pat.matches("/v1/users/42/keys"));
        assert!(!pat.matches("/v1/users/42/keys/1"));
        assert!(!pat.matches("/v1/users/keys"));
    }

    #[test]
    fn refuses_ambiguous_patterns() {
        assert_eq!(PathPattern::parse("v1"), Err(PatternError::NotAbsolute));
        assert_eq!(
            PathPattern::parse("/a/*/b"),
            Err(PatternError::InnerWildcard)
        );
        assert!(matches!(
            PathPattern::parse("/a*"),
            Err(PatternError::MixedSegment(_))
        ));
        assert!(matches!(
            PathPattern::parse("/a//b"),
            Err(PatternError::NotNormalised(_))
        ));
        assert!(matches!(
            PathPattern::parse("/a/../b"),
            Err(PatternError::NotNormalised(_))
        ));
        assert!(matches!(
            PathPattern::parse("/a/%2e"),
            Err(PatternError::NotNormalised(_))
        ));
    }

    #[test]
    fn covering_patterns() {
        for (a, b) in [
            ("/*", "/anything/{id}"),
            ("/v1/*", "/v1"),
            ("/v1/*", "/v1/account/*"),
            ("/v1/{id}", "/v1/me"),
            ("/v1/{id}/*", "/v1/me/keys"),
            ("/v1/status", "/v1/status/"),
        ] {
            assert!(p(a).covers(&p(b)), "{a} covers {b}");
        }
        for (a, b) in [
            ("/v1/me", "/v1/{id}"),
            ("/v1/status", "/v1/status/*"),
            ("/v1/account/*", "/v1/*"),
            ("/v1/a", "/v1/b"),
            ("/v1/{id}", "/v1/a/b"),
        ] {
            assert!(!p(a).covers(&p(b)), "{a} does not cover {b}");
        }
    }

    proptest! {
        /// `covers` never claims more than `matches` shows: a covered pattern's paths all match
        /// the covering one.
        #[test]
        fn covers_agrees_with_matches(
            a in proptest::collection::vec(prop_oneof!["[ab]", Just("{x}".to_owned())], 0..3),
            a_sub in any::<bool>(),
            b in proptest::collection::vec(prop_oneof!["[ab]", Just("{x}".to_owned())], 0..3),
            b_sub in any::<bool>(),
            tail in proptest::collection::vec("[abc]", 0..3),
        ) {
            let pattern = |segs: &[String], sub: bool| {
                let mut text = format!("/{}", segs.join("/"));
                if sub {
                    text = if segs.is_empty() { "/*".to_owned() } else { format!("{text}/*") };
                }
                PathPattern::parse(&text).unwrap()
            };
            let (pa, pb) = (pattern(&a, a_sub), pattern(&b, b_sub));
            // A path pb matches: its segments with parameters filled in, plus a tail if `*`.
            let mut segs: Vec<String> = b.iter().map(|s| if s == "{x}" { "c".to_owned() } else { s.clone() }).collect();
            if b_sub {
                segs.extend(tail.iter().cloned());
            }
            let path = format!("/{}", segs.join("/"));
            prop_assert!(pb.matches(&path));
            if pa.covers(&pb) {
                prop_assert!(pa.matches(&path), "{pa} covers {pb} but not {path}");
            }
        }

        /// The walk agrees with the plain reading: split on `/`, skip empty segments, compare.
        #[test]
        fn matching_agrees_with_splitting(
            pattern in proptest::collection::vec(
                prop_oneof!["[ab]{1,2}", Just("{x}".to_owned())], 0..4),
            subtree in any::<bool>(),
            path in "[ab/]{0,12}",
        ) {
            let source = format!(
                "/{}{}",
                pattern.join("/"),
                if subtree { if pattern.is_empty() { "*" } else { "/*" } } else { "" }
            );
            let compiled = PathPattern::parse(&source).unwrap();
            for path in [path.clone(), format!("/{path}")] {
                prop_assert_eq!(
                    compiled.matches(&path),
                    matches_by_splitting(&compiled, &path),
                    "{} against {}", source, path
                );
            }
        }

        #[test]
        fn subtree_matches_every_descendant(
            base in proptest::collection::vec("[a-z0-9]{1,8}", 0..4),
            tail in proptest::collection::vec("[a-z0-9.~-]{1,8}", 0..4),
        ) {
            let prefix = format!("/{}", base.join("/"));
            let pattern = if base.is_empty() { "/*".to_owned() } else { format!("{prefix}/*") };
            let pat = PathPattern::parse(&pattern).unwrap();
            let mut path = prefix.clone();
            for seg in &tail {
                if !path.ends_with('/') { path.push('/'); }
                path.push_str(seg);
            }
            prop_assert!(pat.matches(&path));
            // A sibling that only shares a string prefix never matches.
            if !base.is_empty() {
                let sibling = format!("{prefix}x");
                prop_assert!(!pat.matches(&sibling));
            }
        }
    }
}
