//! `[cookies.NAME]`: attributes enforced on the upstream's `Set-Cookie` headers.
//!
//! `[cookies."*"]` covers every cookie not named. A cookie with no rule is left alone.

use crate::Environment;
use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::raw::RawCookie;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// The attributes forced on one cookie (or, with `name: None`, on every cookie not named).
#[derive(Debug, Clone)]
pub struct CookieRule {
    pub name: Option<String>,
    /// Force `Secure` (default: on in production).
    pub secure: bool,
    /// Force `HttpOnly` (default: on).
    pub http_only: bool,
    /// Force this `SameSite`; `None` keeps the upstream's.
    pub same_site: Option<SameSite>,
    /// Force this `Path`; `None` keeps the upstream's.
    pub path: Option<String>,
    pub reason: Option<String>,
}

/// An RFC 6265 cookie name: a token (visible ASCII except separators).
pub(crate) fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'(' | b')'
                        | b'<'
                        | b'>'
                        | b'@'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'/'
                        | b'['
                        | b']'
                        | b'?'
                        | b'='
                        | b'{'
                        | b'}'
                )
        })
}

pub(crate) fn build(
    cx: &mut Cx,
    name: &str,
    raw: RawCookie,
    environment: Environment,
) -> CookieRule {
    let path = KeyPath::root().key("cookies").key(name);
    let production = environment == Environment::Production;
    let every_other = name == "*";
    if !every_other && !is_cookie_name(name) {
        cx.error(path.clone(), format!("`{name}` is not a cookie name"));
    }
    let secure = raw.secure.unwrap_or(production);
    if production && raw.secure == Some(false) {
        cx.diags.push(
            Diagnostic::error(path.key("secure"), "cookies must be `Secure` in production")
                .with_help("a cookie without Secure is sent over plain HTTP, where anyone on the path can read it"),
        );
    }
    let same_site = raw.same_site.as_deref().and_then(|v| {
        cx.parse(&path.key("same-site"), v, |v| match v {
            "strict" => Ok(SameSite::Strict),
            "lax" => Ok(SameSite::Lax),
            "none" => Ok(SameSite::None),
            other => Err(format!(
                "unknown SameSite `{other}`: expected \"strict\", \"lax\" or \"none\""
            )),
        })
    });
    if same_site == Some(SameSite::None) && !secure {
        cx.diags.push(
            Diagnostic::error(
                path.key("same-site"),
                "`same-site = \"none\"` needs `secure = true`",
            )
            .with_help("browsers drop SameSite=None cookies that are not Secure"),
        );
    }
    let cookie_path = raw.path.and_then(|p| {
        cx.parse(&path.key("path"), &p, |p| {
            let ok = p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic() && b != b';');
            if ok {
                Ok(p.to_owned())
            } else {
                Err(format!(
                    "`{p}` must be an absolute path without `;`, spaces or control characters"
                ))
            }
        })
    });
    // The prefixes are browser-enforced promises (RFC 6265bis): a cookie that breaks them is
    // dropped by the browser, so a rule that would break them is a mistake.
    if name.starts_with("__Secure-") || name.starts_with("__Host-") {
        if raw.secure == Some(false) {
            cx.error(
                path.key("secure"),
                format!("`{name}` must be Secure (its prefix says so)"),
            );
        }
        if name.starts_with("__Host-") && cookie_path.as_deref().is_some_and(|p| p != "/") {
            cx.error(
                path.key("path"),
                format!("`{name}` must have `Path=/` (its prefix says so)"),
            );
        }
    }
    let secure = secure || name.starts_with("__Secure-") || name.starts_with("__Host-");
    CookieRule {
        name: (!every_other).then(|| name.to_owned()),
        secure,
        http_only: raw.http_only.unwrap_or(true),
        same_site,
        path: cookie_path,
        reason: raw.reason,
    }
}
