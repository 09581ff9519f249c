//! Origin lists as a policy writes them: validated, normalised, per environment.
//!
//! Entries are brought to the form browsers send in `Origin` (lower-case scheme and host,
//! Unicode hosts in punycode, default port dropped), so the gateway compares exactly. The `url`
//! crate does the normalisation (IDNA included); what it would silently repair (a trailing
//! slash, a path, userinfo, a backslash) is refused instead, because an entry that can never
//! match what a browser sends is a mistake the author must see.

use std::fmt;

use crate::Environment;
use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::raw::RawOrigins;

/// One allow-list entry, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OriginEntry {
    /// `https://app.example.com[:port]`.
    Exact(String),
    /// `https://*.example.com[:port]`: exactly one label below the parent.
    Subdomains(String),
    /// The opaque origin `null`.
    Null,
    /// `*`: any origin.
    Any,
}

impl OriginEntry {
    pub fn as_str(&self) -> &str {
        match self {
            OriginEntry::Exact(s) | OriginEntry::Subdomains(s) => s,
            OriginEntry::Null => "null",
            OriginEntry::Any => "*",
        }
    }

    /// Whether the entry admits a plain-HTTP origin.
    pub fn is_insecure(&self) -> bool {
        self.as_str().starts_with("http://")
    }
}

impl fmt::Display for OriginEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses and normalises one entry.
pub fn parse_origin_entry(entry: &str) -> Result<OriginEntry, String> {
    match entry {
        "*" => return Ok(OriginEntry::Any),
        "null" => return Ok(OriginEntry::Null),
        _ => {}
    }
    let Some((scheme, rest)) = entry.split_once("://") else {
        return Err(format!(
            "`{entry}` is not an origin: write `https://host[:port]`"
        ));
    };
    if let Some(parent) = rest.strip_prefix("*.").filter(|p| !p.contains('*')) {
        let parent_origin = normalise(&format!("{scheme}://{parent}"))?;
        let (scheme, host_port) = parent_origin.split_once("://").unwrap_or_default();
        let host = host_port
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host_port, |(host, _)| host);
        let is_ip = host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok();
        if is_ip || host.ends_with('.') || !host.contains('.') {
            return Err(format!(
                "`{entry}` is too broad: `*` may stand for one label below a domain of at least two labels (`https://*.example.com`)"
            ));
        }
        return Ok(OriginEntry::Subdomains(format!("{scheme}://*.{host_port}")));
    }
    if rest.contains('*') {
        return Err(format!(
            "`{entry}`: `*` may only be the whole leftmost label (`https://*.example.com`) or the whole entry"
        ));
    }
    normalise(entry).map(OriginEntry::Exact)
}

fn normalise(entry: &str) -> Result<String, String> {
    let not_just_an_origin = || {
        format!(
            "`{entry}` is not just an origin: no path (not even `/`), user name, query or fragment"
        )
    };
    if entry
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\' || c == '%')
    {
        return Err(format!(
            "`{entry}` contains whitespace, `\\` or `%`: write the origin as a browser sends it"
        ));
    }
    let (_, rest) = entry.split_once("://").unwrap_or(("", entry));
    if rest.contains(['/', '?', '#', '@']) {
        return Err(not_just_an_origin());
    }
    let url = url::Url::parse(entry).map_err(|e| format!("`{entry}` is not an origin ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{entry}`: only http:// and https:// origins exist"
        ));
    }
    // The url crate lets `*` and other sub-delimiters through in host names; no browser sends
    // them in an origin.
    if url.host().is_none()
        || url.host_str().is_some_and(|h| {
            !h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
        })
    {
        return Err(format!("`{entry}` has no host"));
    }
    Ok(url.origin().ascii_serialization())
}

/// A compiled origin list: the one for the compiled environment, and all of them (for docs).
#[derive(Debug, Clone, Default)]
pub struct OriginLists {
    /// The entries in force in the compiled environment.
    pub active: Vec<OriginEntry>,
    /// Every environment's list, in [`Environment::ALL`] order.
    pub by_environment: Vec<(Environment, Vec<OriginEntry>)>,
    /// Whether one list applies in every environment.
    pub everywhere: bool,
}

/// What an origin list may contain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListRules {
    /// `*` allowed (never in production).
    pub any: bool,
    /// `null` allowed (always with a warning).
    pub null: bool,
}

/// Validates every environment's list (production rules on the production list, whatever the
/// compiled environment), reporting at `path` (`.production[2]` etc.).
pub(crate) fn build(
    cx: &mut Cx,
    path: &KeyPath,
    raw: Option<RawOrigins>,
    environment: Environment,
    rules: ListRules,
) -> OriginLists {
    let (everywhere, lists): (bool, Vec<(Environment, KeyPath, Vec<String>)>) = match raw {
        None => (true, Vec::new()),
        Some(RawOrigins::Everywhere(list)) => (
            true,
            Environment::ALL
                .into_iter()
                .map(|e| (e, path.clone(), list.clone()))
                .collect(),
        ),
        Some(RawOrigins::PerEnvironment(by)) => (
            false,
            [
                (Environment::Development, by.development),
                (Environment::Test, by.test),
                (Environment::Production, by.production),
            ]
            .into_iter()
            .filter_map(|(e, list)| list.map(|l| (e, path.key(e.as_str()), l)))
            .collect(),
        ),
    };
    let mut out = OriginLists {
        everywhere,
        ..OriginLists::default()
    };
    for (env, list_path, list) in lists {
        // A list shared by every environment is checked once, under production's rules.
        let report = !everywhere || env == Environment::Production;
        let production = env == Environment::Production;
        let mut entries: Vec<OriginEntry> = Vec::new();
        // Where each entry was first written, for duplicate reports.
        let mut first_at: Vec<usize> = Vec::new();
        for (i, raw_entry) in list.iter().enumerate() {
            let key = list_path.index(i);
            let entry = match parse_origin_entry(raw_entry) {
                Ok(entry) => entry,
                Err(message) => {
                    if report {
                        cx.error(key, message);
                    }
                    continue;
                }
            };
            if report {
                check_entry(cx, &key, &entry, production, everywhere, rules);
                if let Some(pos) = entries.iter().position(|e| *e == entry) {
                    cx.error(
                        key.clone(),
                        format!(
                            "`{raw_entry}` duplicates entry {} (both are `{}`)",
                            first_at[pos], entries[pos]
                        ),
                    );
                }
            }
            if !entries.contains(&entry) {
                entries.push(entry);
                first_at.push(i);
            }
        }
        if env == environment {
            out.active = entries.clone();
        }
        out.by_environment.push((env, entries));
    }
    out
}

fn check_entry(
    cx: &mut Cx,
    key: &KeyPath,
    entry: &OriginEntry,
    production: bool,
    everywhere: bool,
    rules: ListRules,
) {
    let scope = if everywhere {
        "this list applies in every environment, production included; use per-environment lists (`{ development = [...], production = [...] }`) for development origins"
    } else {
        "production lists only production origins"
    };
    match entry {
        OriginEntry::Any if !rules.any => cx.error(
            key.clone(),
            "`*` is not allowed here: list the origins you trust",
        ),
        OriginEntry::Any if production => cx.diags.push(
            Diagnostic::error(key.clone(), "`*` (any origin) is not allowed in production")
                .with_help(scope),
        ),
        OriginEntry::Null if !rules.null => cx.error(
            key.clone(),
            "`null` is not allowed here: it is the origin of sandboxed frames on any site",
        ),
        OriginEntry::Null => cx.diags.push(
            Diagnostic::warning(
                key.clone(),
                "`null` admits sandboxed iframes, `file:` pages and some redirects from any site",
            )
            .with_help("list `null` only if a known sandboxed page must call this API"),
        ),
        _ if production && entry.is_insecure() => cx.diags.push(
            Diagnostic::error(
                key.clone(),
                format!("`{entry}` is a plain-HTTP origin, not allowed in production"),
            )
            .with_help(scope),
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_browsers_serialise() {
        for (input, out) in [
            ("https://App.Example.COM", "https://app.example.com"),
            ("HTTPS://app.example.com:443", "https://app.example.com"),
            ("http://localhost:5173", "http://localhost:5173"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("https://*.Example.com", "https://*.example.com"),
            ("https://*.example.com:8443", "https://*.example.com:8443"),
            (
                "https://*.bücher.example",
                "https://*.xn--bcher-kva.example",
            ),
        ] {
            assert_eq!(parse_origin_entry(input).unwrap().as_str(), out, "{input}");
        }
        assert_eq!(parse_origin_entry("*"), Ok(OriginEntry::Any));
        assert_eq!(parse_origin_entry("null"), Ok(OriginEntry::Null));
    }

    #[test]
    fn refuses_malformed_and_broad_entries() {
        for input in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://app.example.com?x",
            "https://app.example.com#x",
            "https://app.example.com\\",
            "https://app%2eexample.com",
            " https://app.example.com",
            "ftp://app.example.com",
            "https://",
            "https://*.com",
            "https://*.*.example.com",
            "https://a.*.example.com",
            "https://*example.com",
            "https://*.127.0.0.1",
            "https://*.[::1]",
            "*.example.com",
            "NULL",
        ] {
            assert!(parse_origin_entry(input).is_err(), "{input} accepted");
        }
    }
}
