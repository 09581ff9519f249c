//! A concrete path for each route, built from its patterns, so the probe can request it.
//!
//! `{param}` segments and the final `*` of a subtree pattern become [`PLACEHOLDER`]; literal
//! segments are kept (percent-encoded where a URI needs it). A candidate only counts if the
//! policy really routes it to the route: an earlier route's pattern may shadow it, and then the
//! response would show the other route's posture.

use portcullis::policy::{Policy, normalize_path};

/// The segment that stands for a parameter or a subtree.
pub const PLACEHOLDER: &str = "probe";

/// Paths tried for the default route, which has no patterns: the first that no route claims.
const DEFAULT_ROUTE_CANDIDATES: &[&str] = &[
    "/portcullis-probe",
    "/portcullis-probe/unrouted",
    "/.portcullis-probe",
];

/// A path the policy routes to route `index` (`policy.routes.len()` is the default route), or
/// `None` when no pattern can be instantiated for it.
pub fn sample_path(policy: &Policy, index: usize) -> Option<String> {
    let candidates: Vec<String> = match policy.routes.get(index) {
        Some(route) => route
            .patterns
            .iter()
            .map(|p| instantiate(p.as_str()))
            .collect(),
        None => DEFAULT_ROUTE_CANDIDATES
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
    };
    candidates
        .into_iter()
        .find(|path| routes_to(policy, path, index))
}

/// Whether the gateway would put a request for `path` in route `index`.
pub fn routes_to(policy: &Policy, path: &str, index: usize) -> bool {
    normalize_path(path).is_ok_and(|n| policy.match_route(&n.decoded).0 == index)
}

/// `/v1/users/{id}/keys` -> `/v1/users/probe/keys`, `/v1/account/*` -> `/v1/account/probe`.
fn instantiate(pattern: &str) -> String {
    let trimmed = pattern.trim_end_matches('/');
    let mut out = String::new();
    for segment in trimmed.split('/').skip(1) {
        out.push('/');
        let is_param = segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}');
        if segment == "*" || is_param {
            out.push_str(PLACEHOLDER);
        } else {
            percent_encode_into(&mut out, segment);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Encodes every byte a path segment may not carry as is (RFC 3986 `pchar`, minus `;`, which
/// the gateway reads as the start of path parameters).
fn percent_encode_into(out: &mut String, segment: &str) {
    for byte in segment.bytes() {
        let plain = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&byte);
        if plain {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis::policy::{CompileOptions, load_str};

    fn policy(routes: &str) -> Policy {
        let text = format!("environment = \"development\"\n{routes}");
        load_str("t.toml", &text, &CompileOptions::default())
            .unwrap()
            .policy
    }

    #[test]
    fn patterns_become_paths() {
        assert_eq!(instantiate("/v1/status"), "/v1/status");
        assert_eq!(instantiate("/v1/status/"), "/v1/status");
        assert_eq!(instantiate("/v1/account/*"), "/v1/account/probe");
        assert_eq!(instantiate("/v1/users/{id}/keys"), "/v1/users/probe/keys");
        assert_eq!(instantiate("/"), "/");
        assert_eq!(instantiate("/*"), "/probe");
        assert_eq!(instantiate("/caf\u{e9}"), "/caf%C3%A9");
    }

    #[test]
    fn each_route_gets_a_path_it_owns() {
        let p = policy(
            r#"
[[route]]
name = "account"
paths = ["/v1/account/*"]
cache-control = "no-store"
[[route]]
name = "keys"
paths = ["/v1/users/{id}/keys"]
cache-control = "no-store"
"#,
        );
        assert_eq!(sample_path(&p, 0).as_deref(), Some("/v1/account/probe"));
        assert_eq!(sample_path(&p, 1).as_deref(), Some("/v1/users/probe/keys"));
        assert_eq!(sample_path(&p, 2).as_deref(), Some("/portcullis-probe"));
    }

    #[test]
    fn shadowed_patterns_are_skipped_and_fully_shadowed_routes_get_none() {
        let p = policy(
            r#"
[[route]]
name = "everything"
paths = ["/v1/*"]
cache-control = "no-store"
[[route]]
name = "status"
paths = ["/v1/status", "/status"]
cache-control = "no-store"
[[route]]
name = "shadowed"
paths = ["/v1/account/*"]
cache-control = "no-store"
"#,
        );
        assert_eq!(sample_path(&p, 1).as_deref(), Some("/status"));
        assert_eq!(sample_path(&p, 2), None);
    }

    #[test]
    fn a_catch_all_route_leaves_the_default_route_unprobed() {
        let p = policy(
            r#"
[[route]]
name = "all"
paths = ["/*"]
cache-control = "no-store"
"#,
        );
        assert_eq!(sample_path(&p, 0).as_deref(), Some("/probe"));
        assert_eq!(sample_path(&p, 1), None);
    }
}
