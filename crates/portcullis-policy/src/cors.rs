//! `[cors.NAME]`: named CORS policies that routes attach with `cors = "NAME"`.
//!
//! A route without one denies cross-origin access (no CORS headers, preflights refused), so a
//! policy with no `[cors]` section at all is deny-all.

use std::time::Duration;

use http::{HeaderName, Method};

use crate::Environment;
use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::origins::{self, ListRules, OriginEntry, OriginLists};
use crate::raw::RawCors;

/// One named CORS policy, compiled for an environment.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    pub name: String,
    /// Allowed origins, per environment; `origins.active` is in force.
    pub origins: OriginLists,
    /// Methods a preflight may ask for.
    pub methods: Vec<Method>,
    /// Request headers a preflight may ask for.
    pub allow_headers: Vec<HeaderName>,
    /// Response headers a page may read.
    pub expose_headers: Vec<HeaderName>,
    /// How long browsers may cache a preflight answer.
    pub max_age: Option<Duration>,
    /// Whether credentialed requests (cookies) are allowed.
    pub credentials: bool,
    pub reason: Option<String>,
}

impl CorsPolicy {
    /// The origins in force in the compiled environment.
    pub fn active_origins(&self) -> &[OriginEntry] {
        &self.origins.active
    }
}

/// Browsers cap preflight caching (Chromium at two hours); a longer max-age only misleads.
const BROWSER_MAX_AGE: u64 = 7200;

pub(crate) fn build(cx: &mut Cx, name: &str, raw: RawCors, environment: Environment) -> CorsPolicy {
    let path = KeyPath::root().key("cors").key(name);
    let credentials = raw.credentials.unwrap_or(false);
    if raw.origins.is_none() {
        cx.missing(
            path.key("origins"),
            "a CORS policy needs `origins`: a list, or one list per environment",
        );
    }
    let origins = origins::build(
        cx,
        &path.key("origins"),
        raw.origins,
        environment,
        ListRules {
            any: true,
            null: true,
        },
    );
    if credentials {
        for (env, list) in &origins.by_environment {
            if list.contains(&OriginEntry::Any) {
                let at = if origins.everywhere {
                    path.key("origins")
                } else {
                    path.key("origins").key(env.as_str())
                };
                cx.diags.push(
                    Diagnostic::error(at, "`*` cannot be combined with `credentials = true`")
                        .with_help("browsers refuse it, and reflecting every origin instead would hand any site your users' sessions; list the origins"),
                );
                break;
            }
        }
    }

    let methods = match raw.methods {
        None => {
            cx.missing(
                path.key("methods"),
                "a CORS policy needs `methods`, e.g. [\"GET\", \"POST\"]",
            );
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                cx.parse(&path.key("methods").index(i), m, |m| {
                    if m == "*" {
                        return Err("list the methods: `*` is not accepted".to_owned());
                    }
                    if m.bytes().any(|b| b.is_ascii_lowercase()) {
                        return Err(format!(
                            "methods are case-sensitive; write `{}`",
                            m.to_ascii_uppercase()
                        ));
                    }
                    Method::from_bytes(m.as_bytes()).map_err(|_| format!("`{m}` is not a method"))
                })
            })
            .collect(),
    };
    let header_list = |cx: &mut Cx, key: &str, list: Option<Vec<String>>| -> Vec<HeaderName> {
        let mut out: Vec<HeaderName> = Vec::new();
        for (i, h) in list.unwrap_or_default().iter().enumerate() {
            let at = path.key(key).index(i);
            if h == "*" {
                cx.error(at, "list the headers: `*` is not accepted");
                continue;
            }
            if let Some(name) = cx.header_name(&at, h) {
                if out.contains(&name) {
                    cx.error(at, format!("`{h}` is listed twice"));
                } else {
                    out.push(name);
                }
            }
        }
        out
    };
    let allow_headers = header_list(cx, "allow-headers", raw.allow_headers);
    let expose_headers = header_list(cx, "expose-headers", raw.expose_headers);

    let max_age = raw.max_age.as_deref().and_then(|v| {
        let at = path.key("max-age");
        let parsed = cx.parse(&at, v, |v| {
            let d = humantime::parse_duration(v)
                .map_err(|e| format!("`{v}` is not a duration ({e}); write e.g. \"10m\""))?;
            if d.subsec_nanos() != 0 {
                return Err("`max-age` is sent in whole seconds".to_owned());
            }
            Ok(d)
        })?;
        if parsed.as_secs() > BROWSER_MAX_AGE {
            cx.diags.push(Diagnostic::warning(
                at,
                format!("browsers cache a preflight for at most {BROWSER_MAX_AGE} s (Chromium); a longer max-age has no effect"),
            ));
        }
        Some(parsed)
    });

    CorsPolicy {
        name: name.to_owned(),
        origins,
        methods,
        allow_headers,
        expose_headers,
        max_age,
        credentials,
        reason: raw.reason,
    }
}
