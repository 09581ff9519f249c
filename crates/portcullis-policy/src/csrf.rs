//! `[csrf]`: the origin check for cookie-authenticated state-changing requests.
//!
//! On by default (`mode = "enforce"`): it only ever looks at unsafe methods that carry a
//! cookie and no non-ambient credential, so an API without cookies never meets it.

use http::HeaderName;

use crate::Environment;
use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::origins::{self, ListRules, OriginLists};
use crate::raw::RawCsrf;
use crate::route::PathPattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfMode {
    /// Refuse failing requests with 403.
    Enforce,
    /// Log and count failing requests, but let them through (to roll the check out safely).
    ReportOnly,
    /// No check.
    Off,
}

impl CsrfMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CsrfMode::Enforce => "enforce",
            CsrfMode::ReportOnly => "report-only",
            CsrfMode::Off => "off",
        }
    }
}

/// A path the check never refuses, and why.
#[derive(Debug, Clone)]
pub struct CsrfExemption {
    pub pattern: PathPattern,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct CsrfSettings {
    pub mode: CsrfMode,
    /// Origins whose cross-site requests are trusted (besides the request's own host and the
    /// credentialed CORS origins of its route).
    pub trusted_origins: OriginLists,
    /// Headers carrying an API key: a request with one is not cookie-authenticated.
    pub api_key_headers: Vec<HeaderName>,
    /// Cookies that authenticate; empty: any cookie counts.
    pub session_cookies: Vec<String>,
    pub exempt: Vec<CsrfExemption>,
}

pub(crate) fn build(cx: &mut Cx, raw: Option<RawCsrf>, environment: Environment) -> CsrfSettings {
    let path = KeyPath::root().key("csrf");
    let raw = raw.unwrap_or_default();
    let mode = match raw.mode.as_deref() {
        None | Some("enforce") => CsrfMode::Enforce,
        Some("report-only") => CsrfMode::ReportOnly,
        Some("off") => CsrfMode::Off,
        Some(other) => {
            cx.error(
                path.key("mode"),
                format!("unknown mode `{other}`: expected \"enforce\", \"report-only\" or \"off\""),
            );
            CsrfMode::Enforce
        }
    };
    if mode != CsrfMode::Enforce && environment == Environment::Production {
        cx.diags.push(
            Diagnostic::warning(
                path.key("mode"),
                format!("the CSRF check is `{}` in production", mode.as_str()),
            )
            .with_help("cookie-authenticated requests from other sites are not refused; use \"enforce\" once report-only shows no legitimate failures"),
        );
    }
    let trusted_origins = origins::build(
        cx,
        &path.key("trusted-origins"),
        raw.trusted_origins,
        environment,
        ListRules {
            any: false,
            null: false,
        },
    );
    let api_key_headers = match raw.api_key_headers {
        None => vec![HeaderName::from_static("x-api-key")],
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let at = path.key("api-key-headers").index(i);
                let name = cx.header_name(&at, h)?;
                if name == http::header::COOKIE || name == http::header::AUTHORIZATION {
                    cx.error(
                        at,
                        format!("`{h}` cannot mark a request as API-key authenticated"),
                    );
                    return None;
                }
                Some(name)
            })
            .collect(),
    };
    let session_cookies = raw
        .session_cookies
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, name)| {
            if crate::cookies::is_cookie_name(&name) {
                Some(name)
            } else {
                cx.error(
                    path.key("session-cookies").index(i),
                    format!("`{name}` is not a cookie name"),
                );
                None
            }
        })
        .collect();
    let mut exempt = Vec::new();
    for (i, e) in raw.exempt.unwrap_or_default().into_iter().enumerate() {
        let at = path.key("exempt").index(i);
        let reason = match e.reason {
            Some(r) if !r.trim().is_empty() => r,
            _ => {
                cx.missing(
                    at.key("reason"),
                    "say why this path may receive cross-site cookie-authenticated requests",
                );
                String::new()
            }
        };
        let Some(p) = e.path else {
            cx.missing(at.key("path"), "an exemption needs a `path`");
            continue;
        };
        match PathPattern::parse(&p) {
            Ok(_) if p.ends_with('*') => {
                cx.diags.push(
                    Diagnostic::error(at.key("path"), format!("`{p}` exempts a whole subtree"))
                        .with_help("exemptions are for single endpoints such as an SSO callback: write the exact path (`{param}` segments are allowed)"),
                );
            }
            Ok(pattern) => exempt.push(CsrfExemption { pattern, reason }),
            Err(err) => cx.error(at.key("path"), format!("`{p}`: {err}")),
        }
    }
    CsrfSettings {
        mode,
        trusted_origins,
        api_key_headers,
        session_cookies,
        exempt,
    }
}
