//! Which `Origin` values the probe sends in preflights: one the policy allows, and look-alikes
//! it must not.
//!
//! The allow-lists are built with the gateway's own matcher
//! ([`AllowedOrigins`](portcullis::layers::origin::AllowedOrigins)), so "allowed" here means
//! exactly what it means to Portcullis: a look-alike the policy happens to allow (an
//! `https://*.example.com` entry does allow `https://evilapp.example.com`) is not sent as an
//! attack.

use std::fmt;

use portcullis::layers::origin::{AllowedOrigins, Origin, Scheme};
use portcullis::policy::origins::OriginEntry;

/// Stands in for an allowed origin when a list only has `*`, or when the policy lists none.
pub const STAND_IN_ORIGIN: &str = "https://portcullis-probe.example";

/// How an unlisted origin imitates an allowed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adversary {
    /// `null`: sandboxed iframes and `file:` pages on any site.
    Null,
    /// The allowed host followed by another domain: `https://app.example.com.evil.test`.
    SuffixLookAlike,
    /// A registrable name ending like the allowed host: `https://evilapp.example.com`.
    PrefixLookAlike,
    /// The allowed `https:` origin over plain `http:`, which a network attacker controls.
    PlainHttp,
}

impl Adversary {
    pub fn as_str(self) -> &'static str {
        match self {
            Adversary::Null => "null origin",
            Adversary::SuffixLookAlike => "suffix look-alike",
            Adversary::PrefixLookAlike => "prefix look-alike",
            Adversary::PlainHttp => "plain-http variant",
        }
    }
}

impl fmt::Display for Adversary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gateway's matcher over a compiled list: the one the gateway builds. An entry it refuses
/// is left out, as the gateway does, which can only make the probe expect less to be allowed.
pub use portcullis::cross_origin::allowed_origins as allow_list;

/// An origin the list allows: its first exact origin, else one subdomain of its first pattern
/// (`https://*.example.com` gives `https://probe.example.com`), else the stand-in when it
/// allows any origin. `None` when the list allows no origin a browser page could have.
pub fn allowed_origin(entries: &[OriginEntry]) -> Option<String> {
    let exact = entries.iter().find_map(|e| match e {
        OriginEntry::Exact(origin) => Some(origin.clone()),
        _ => None,
    });
    let from_pattern = || {
        entries.iter().find_map(|e| match e {
            OriginEntry::Subdomains(pattern) => Some(pattern.replacen("://*.", "://probe.", 1)),
            _ => None,
        })
    };
    let any = || {
        entries
            .contains(&OriginEntry::Any)
            .then(|| STAND_IN_ORIGIN.to_owned())
    };
    exact.or_else(from_pattern).or_else(any)
}

/// Look-alikes of `allowed` that `list` does not allow, in a fixed order.
pub fn adversaries(allowed: &str, list: &AllowedOrigins) -> Vec<(Adversary, String)> {
    let mut out = vec![(Adversary::Null, "null".to_owned())];
    if let Ok(origin) = Origin::parse(allowed.as_bytes())
        && !origin.is_null()
    {
        let scheme = match origin.scheme() {
            Scheme::Https => "https",
            _ => "http",
        };
        let port = origin.port().map(|p| format!(":{p}")).unwrap_or_default();
        let host = origin.host();
        out.push((
            Adversary::SuffixLookAlike,
            format!("{scheme}://{host}.evil.test{port}"),
        ));
        // An IP literal has no prefix look-alike.
        if host.parse::<std::net::Ipv4Addr>().is_err() && !host.starts_with('[') {
            out.push((
                Adversary::PrefixLookAlike,
                format!("{scheme}://evil{host}{port}"),
            ));
        }
        if origin.scheme() == Scheme::Https {
            out.push((Adversary::PlainHttp, format!("http://{host}{port}")));
        }
    }
    out.retain(|(_, candidate)| {
        Origin::parse(candidate.as_bytes()).is_ok_and(|o| !list.allows(&o))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis::policy::origins::parse_origin_entry;

    fn entries(list: &[&str]) -> Vec<OriginEntry> {
        list.iter()
            .map(|e| parse_origin_entry(e).unwrap())
            .collect()
    }

    #[test]
    fn the_allowed_origin_is_the_first_exact_then_a_subdomain_then_the_stand_in() {
        let list = entries(&["https://*.example.com", "https://app.example.org"]);
        assert_eq!(
            allowed_origin(&list).as_deref(),
            Some("https://app.example.org")
        );
        let list = entries(&["null", "https://*.example.com:8443"]);
        assert_eq!(
            allowed_origin(&list).as_deref(),
            Some("https://probe.example.com:8443")
        );
        assert_eq!(
            allowed_origin(&entries(&["*"])).as_deref(),
            Some(STAND_IN_ORIGIN)
        );
        assert_eq!(allowed_origin(&entries(&["null"])), None);
        assert_eq!(allowed_origin(&[]), None);
    }

    #[test]
    fn look_alikes_of_an_https_origin() {
        let list = allow_list(&entries(&["https://example.com"]));
        assert_eq!(
            adversaries("https://example.com", &list),
            vec![
                (Adversary::Null, "null".to_owned()),
                (
                    Adversary::SuffixLookAlike,
                    "https://example.com.evil.test".to_owned()
                ),
                (
                    Adversary::PrefixLookAlike,
                    "https://evilexample.com".to_owned()
                ),
                (Adversary::PlainHttp, "http://example.com".to_owned()),
            ]
        );
    }

    #[test]
    fn look_alikes_the_policy_allows_are_not_attacks() {
        let list = allow_list(&entries(&[
            "https://app.example.com",
            "https://*.example.com",
            "http://app.example.com",
            "null",
        ]));
        assert_eq!(
            adversaries("https://app.example.com", &list),
            vec![(
                Adversary::SuffixLookAlike,
                "https://app.example.com.evil.test".to_owned()
            )]
        );
    }

    #[test]
    fn ports_are_kept_and_ip_hosts_have_no_prefix_look_alike() {
        let list = allow_list(&entries(&["http://127.0.0.1:5173"]));
        let found: Vec<String> = adversaries("http://127.0.0.1:5173", &list)
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(found, ["null", "http://127.0.0.1.evil.test:5173"]);
    }
}
