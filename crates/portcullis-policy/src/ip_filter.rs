//! `[ip-filter]` and a route's `ip-filter = { ... }`: CIDR allow/deny lists.
//!
//! Deny wins; a non-empty `allow` admits only its ranges; the global table is checked before
//! the route's. The client address is the one `[server] trusted-proxies` resolves.

use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;

/// `allow`, `deny` and why, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawIpFilter {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub reason: Option<String>,
}

/// One compiled allow/deny pair. Empty lists: every client passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpFilter {
    /// When non-empty, only clients inside one of these ranges pass.
    pub allow: Vec<IpNet>,
    /// Clients inside one of these ranges are refused, whatever `allow` says.
    pub deny: Vec<IpNet>,
    pub reason: Option<String>,
}

impl IpFilter {
    /// Whether the filter admits every client.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

pub(crate) fn build(cx: &mut Cx, path: &KeyPath, raw: Option<RawIpFilter>) -> IpFilter {
    let Some(raw) = raw else {
        return IpFilter::default();
    };
    if raw.allow.is_none() && raw.deny.is_none() {
        cx.diags.push(
            Diagnostic::warning(
                path.clone(),
                "an IP filter without `allow` or `deny` does nothing",
            )
            .with_help("add `allow = [CIDR, ...]` and/or `deny = [CIDR, ...]`, or remove it"),
        );
    }
    let allow = list(cx, &path.key("allow"), raw.allow, true);
    let deny = list(cx, &path.key("deny"), raw.deny, false);
    IpFilter {
        allow,
        deny,
        reason: raw.reason,
    }
}

fn list(cx: &mut Cx, path: &KeyPath, raw: Option<Vec<String>>, allow: bool) -> Vec<IpNet> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    if raw.is_empty() {
        // `allow = []` reads as "nobody" but would admit everyone: refuse the ambiguity.
        if allow {
            cx.diags.push(
                Diagnostic::error(path.clone(), "`allow = []` is empty: it would admit every client, not none")
                    .with_help("remove the key to admit everyone, or deny everyone with `deny = [\"0.0.0.0/0\", \"::/0\"]`"),
            );
        } else {
            cx.diags.push(
                Diagnostic::warning(path.clone(), "`deny = []` is empty and denies nothing")
                    .with_help("remove the key, or list the ranges to refuse"),
            );
        }
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, cidr) in raw.iter().enumerate() {
        let at = path.index(i);
        let Some(net) = cx.parse(&at, cidr, parse_cidr) else {
            continue;
        };
        if net.trunc() != net {
            cx.diags.push(
                Diagnostic::warning(
                    at.clone(),
                    format!("`{cidr}` has host bits set; it means {}", net.trunc()),
                )
                .with_help(format!("write \"{}\"", net.trunc())),
            );
        }
        if allow && net.prefix_len() == 0 {
            cx.diags.push(
                Diagnostic::warning(
                    at,
                    format!("`{cidr}` in `allow` admits every {} client", family(&net)),
                )
                .with_help(
                    "an allow list is meant to narrow who may call; remove the range or the list",
                ),
            );
        }
        out.push(net.trunc());
    }
    out
}

fn family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

/// A CIDR range, or a single address (a `/32` or `/128`).
pub(crate) fn parse_cidr(v: &str) -> Result<IpNet, String> {
    IpNet::from_str(v)
        .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{v}` is not an IP address or CIDR range"))
}

#[cfg(test)]
mod tests {
    use crate::{CompileOptions, Severity, load_str};

    fn compile(rest: &str) -> Result<crate::Compiled, crate::Diagnostics> {
        let text = format!("environment = \"development\"\n{rest}");
        load_str("ip.toml", &text, &CompileOptions::default())
    }

    /// (key path, severity, line) of every diagnostic.
    fn diags(d: &crate::Diagnostics) -> Vec<(String, Severity, Option<usize>)> {
        d.iter()
            .map(|d| (d.path.to_string(), d.severity, d.line_col.map(|(l, _)| l)))
            .collect()
    }

    #[test]
    fn global_route_and_default_lists_compile() {
        let policy = compile(
            "[server]\nipv6-bucket = 48\n\
             [ip-filter]\ndeny = [\"192.0.2.0/24\", \"2001:db8::1\"]\nreason = \"abuse\"\n\
             [default-route]\nip-filter = { deny = [\"198.51.100.0/24\"] }\n\
             [[route]]\nname = \"admin\"\npaths = [\"/admin/*\"]\n\
             ip-filter = { allow = [\"10.1.0.0/16\"], reason = \"office only\" }\n",
        )
        .unwrap()
        .policy;
        assert_eq!(policy.server.ipv6_bucket, 48);
        assert_eq!(policy.ip_filter.deny.len(), 2);
        assert_eq!(policy.ip_filter.deny[1].to_string(), "2001:db8::1/128");
        assert_eq!(policy.ip_filter.reason.as_deref(), Some("abuse"));
        assert_eq!(
            policy.routes[0].ip_filter.allow[0].to_string(),
            "10.1.0.0/16"
        );
        assert!(policy.routes[0].ip_filter.deny.is_empty());
        assert_eq!(policy.default_route.ip_filter.deny.len(), 1);
    }

    #[test]
    fn bad_entries_are_reported_with_key_paths() {
        let err = compile(
            "[server]\nipv6-bucket = 0\n\
             [ip-filter]\nallow = []\ndeny = [\"nope\"]\n\
             [[route]]\nname = \"r\"\npaths = [\"/r\"]\nip-filter = { deny = [\"10.0.0.0/33\"] }\n",
        )
        .unwrap_err();
        let d = diags(&err);
        assert!(
            d.contains(&("server.ipv6-bucket".into(), Severity::Error, Some(3))),
            "{d:?}"
        );
        assert!(
            d.contains(&("ip-filter.allow".into(), Severity::Error, Some(5))),
            "{d:?}"
        );
        assert!(
            d.contains(&("ip-filter.deny[0]".into(), Severity::Error, Some(6))),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|(p, s, _)| p == "route[0].ip-filter.deny[0]" && *s == Severity::Error),
            "{d:?}"
        );
    }

    #[test]
    fn warnings_for_allow_all_host_bits_and_empty_deny() {
        let compiled = compile(
            "[ip-filter]\nallow = [\"0.0.0.0/0\", \"10.1.2.3/16\"]\ndeny = []\n\
             [default-route]\nip-filter = { reason = \"nothing\" }\n",
        )
        .unwrap();
        let d = diags(&compiled.warnings);
        for path in [
            "ip-filter.allow[0]",
            "ip-filter.allow[1]",
            "ip-filter.deny",
            "default-route.ip-filter",
        ] {
            assert!(
                d.iter()
                    .any(|(p, s, _)| p == path && *s == Severity::Warning),
                "{path}: {d:?}"
            );
        }
        let overlap = compile(
            "[server]\ntrusted-proxies = [\"10.0.0.1\"]\n[ip-filter]\ndeny = [\"10.0.0.0/8\"]\n",
        )
        .unwrap();
        assert!(
            diags(&overlap.warnings)
                .iter()
                .any(|(p, s, _)| p == "ip-filter.deny" && *s == Severity::Warning)
        );
        assert_eq!(
            compiled.policy.ip_filter.allow[1].to_string(),
            "10.1.0.0/16"
        );
    }
}
