//! Raw policy -> compiled [`Policy`], collecting every diagnostic on the way.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use ipnet::IpNet;

use crate::Environment;
use crate::admin;
use crate::auth::{self, RouteAuth};
use crate::cookies;
use crate::cors::{self, CorsPolicy};
use crate::csrf;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::disclosure::Disclosure;
use crate::headers::{self, HeaderRule, NotSet};
use crate::ip_filter;
use crate::key_path::{self, KeyPath, Segment};
use crate::lints;
use crate::lockout;
use crate::policy::*;
use crate::rate_limit;
use crate::raw::*;
use crate::route::PathPattern;

/// Settings that come from outside the file (command-line flags).
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Compile for this environment instead of the file's `environment`.
    pub environment: Option<Environment>,
}

/// A successfully compiled policy and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub policy: Policy,
    pub warnings: Diagnostics,
}

/// Compiles policy source text. `origin` names the file in diagnostics.
pub fn compile(
    origin: &Path,
    text: &str,
    options: &CompileOptions,
) -> Result<Compiled, Diagnostics> {
    let (doc, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    let mut diags: Vec<Diagnostic> = syntax_errors
        .iter()
        .map(|e| serde_diagnostic(doc.get_ref(), e))
        .collect();
    if !diags.is_empty() {
        return Err(finish(origin, text, doc.get_ref(), diags));
    }

    let raw = read_sections(doc.get_ref(), &mut diags);
    let mut cx = Cx {
        diags,
        failed: raw.failed.clone(),
    };
    let policy = build(&mut cx, raw, options);
    if let Some(policy) = &policy {
        cx.diags.extend(lints::lint(policy));
    }
    let has_errors = cx.diags.iter().any(Diagnostic::is_error);
    let diags = finish(origin, text, doc.get_ref(), cx.diags);
    match policy {
        Some(policy) if !has_errors => Ok(Compiled {
            policy,
            warnings: diags,
        }),
        _ => Err(diags),
    }
}

/// Deserialises the raw policy one top-level section (and one `[[route]]`) at a time.
fn read_sections(doc: &toml::de::DeTable<'_>, diags: &mut Vec<Diagnostic>) -> RawPolicy {
    let mut raw = RawPolicy::default();
    for (key, value) in doc.iter() {
        let name = key.get_ref().as_ref();
        let path = KeyPath::root().key(name);
        let ok = match name {
            "environment" => section(doc, &path, value, diags).map(|v| raw.environment = v),
            "server" => section(doc, &path, value, diags).map(|v| raw.server = v),
            "upstream" => section(doc, &path, value, diags).map(|v| raw.upstream = v),
            "correlation-id" => section(doc, &path, value, diags).map(|v| raw.correlation_id = v),
            "errors" => section(doc, &path, value, diags).map(|v| raw.errors = v),
            "logging" => section(doc, &path, value, diags).map(|v| raw.logging = v),
            "headers" => section(doc, &path, value, diags).map(|v| raw.headers = v),
            "default-route" => section(doc, &path, value, diags).map(|v| raw.default_route = v),
            "disclosure" => section(doc, &path, value, diags).map(|v| raw.disclosure = v),
            "cors" => section(doc, &path, value, diags).map(|v| raw.cors = v),
            "csrf" => section(doc, &path, value, diags).map(|v| raw.csrf = v),
            "cookies" => section(doc, &path, value, diags).map(|v| raw.cookies = v),
            "auth" => section(doc, &path, value, diags).map(|v| raw.auth = v),
            "admin" => section(doc, &path, value, diags).map(|v| raw.admin = v),
            "ip-filter" => section(doc, &path, value, diags).map(|v| raw.ip_filter = Some(v)),
            "rate-limit" => section(doc, &path, value, diags).map(|v| raw.rate_limit = Some(v)),
            "lockout" => section(doc, &path, value, diags).map(|v| raw.lockout = Some(v)),
            "route" => match value.get_ref() {
                toml::de::DeValue::Array(items) => {
                    let mut all = Some(());
                    for (i, item) in items.iter().enumerate() {
                        match section(doc, &path.index(i), item, diags) {
                            Some(route) => raw.route.push(route),
                            None => {
                                raw.route.push(RawRoute::default());
                                all = None;
                            }
                        }
                    }
                    all
                }
                _ => section::<Vec<RawRoute>>(doc, &path, value, diags).map(|v| raw.route = v),
            },
            _ => {
                diags.push(unknown_key(path.clone()));
                Some(())
            }
        };
        if ok.is_none() {
            raw.failed.push(path);
        }
    }
    raw.failed.extend(diags.iter().map(|d| d.path.clone()));
    raw
}

/// Deserialises one value, reporting every unknown key and every type error inside it.
///
/// serde stops at the first type error, so after each one the offending key is removed from a
/// copy of the value and deserialisation is retried: one run of `check` lists them all.
fn section<T: serde::de::DeserializeOwned>(
    doc: &toml::de::DeTable<'_>,
    path: &KeyPath,
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    let mut value = value.clone();
    // Each retry removes one key, so this ends; the bound only guards against a bug.
    for _ in 0..64 {
        let mut unknown = Vec::new();
        let deserializer = toml::de::ValueDeserializer::from(value.clone());
        let result = serde_ignored::deserialize(deserializer, |inner| {
            unknown.push(path.join(&KeyPath::from_ignored(&inner)));
        });
        match result {
            Ok(v) => {
                diags.extend(unknown.into_iter().map(unknown_key));
                // Partial values are still validated (the bad keys are gone), so the rest of
                // the section's problems show up in the same run.
                return Some(v);
            }
            Err(e) => {
                let diag = serde_diagnostic(doc, &e);
                let removed = diag
                    .path
                    .segments()
                    .strip_prefix(path.segments())
                    .is_some_and(|rel| remove_key(&mut value, rel));
                diags.push(diag);
                if !removed {
                    diags.extend(unknown.into_iter().map(unknown_key));
                    return None;
                }
            }
        }
    }
    None
}

/// Removes the key at `rel` (an array element removes the whole array, so the indices of
/// later diagnostics stay true). False if there is nothing to remove.
fn remove_key(value: &mut toml::Spanned<toml::de::DeValue<'_>>, rel: &[Segment]) -> bool {
    let keys_only: Vec<&str> = rel
        .iter()
        .map_while(|s| match s {
            Segment::Key(k) => Some(k.as_str()),
            Segment::Index(_) => None,
        })
        .collect();
    let Some((last, parents)) = keys_only.split_last() else {
        return false;
    };
    let mut current = value.get_mut();
    for key in parents {
        let toml::de::DeValue::Table(table) = current else {
            return false;
        };
        let Some(next) = table.get_mut(*key) else {
            return false;
        };
        current = next.get_mut();
    }
    match current {
        toml::de::DeValue::Table(table) => table.remove(*last).is_some(),
        _ => false,
    }
}

fn unknown_key(path: KeyPath) -> Diagnostic {
    Diagnostic::error(path, "unknown key").with_help(
        "a misspelt key would silently weaken the policy, so unknown keys are errors; docs/policy.md lists every key",
    )
}

fn serde_diagnostic(doc: &toml::de::DeTable<'_>, error: &toml::de::Error) -> Diagnostic {
    let path = error
        .span()
        .map(|span| key_path::path_at(doc, &span))
        .unwrap_or_default();
    let mut diag = Diagnostic::error(path, error.message().trim().to_owned());
    diag.span = error.span();
    diag
}

fn finish(
    origin: &Path,
    text: &str,
    doc: &toml::de::DeTable<'_>,
    mut diags: Vec<Diagnostic>,
) -> Diagnostics {
    for diag in &mut diags {
        if diag.span.is_none() {
            diag.span = key_path::locate(doc, &diag.path);
        }
    }
    Diagnostics::new(origin, text, diags)
}

/// The diagnostics collected while building.
pub(crate) struct Cx {
    pub(crate) diags: Vec<Diagnostic>,
    /// Keys already reported with a type error: not reported again as missing.
    failed: Vec<KeyPath>,
}

impl Cx {
    /// Reports a missing or empty required key, unless it was already reported as mistyped.
    pub(crate) fn missing(&mut self, path: KeyPath, message: impl Into<String>) {
        if !self.failed.contains(&path) {
            self.error(path, message);
        }
    }

    pub(crate) fn error(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(path, message));
    }

    /// Parses a value, recording a diagnostic on failure.
    pub(crate) fn parse<T>(
        &mut self,
        path: &KeyPath,
        value: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(path.clone(), message);
                None
            }
        }
    }

    pub(crate) fn duration(
        &mut self,
        path: KeyPath,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        self.parse(&path, value, |v| {
            let d = humantime::parse_duration(v).map_err(|e| {
                format!("`{v}` is not a duration ({e}); write e.g. \"30s\", \"10m\", \"1h\"")
            })?;
            if d.is_zero() {
                return Err("a zero duration is not allowed here".to_owned());
            }
            Ok(d)
        })
        .unwrap_or(default)
    }

    pub(crate) fn header_name(&mut self, path: &KeyPath, name: &str) -> Option<HeaderName> {
        self.parse(path, name, |n| {
            // Header names are case-insensitive; one spelling per header keeps a policy from
            // holding two entries for the same header, one silently overriding the other.
            if n.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "write header names in lower case (`{}`)",
                    n.to_ascii_lowercase()
                ));
            }
            HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| format!("`{n}` is not a valid header name"))
        })
    }

    pub(crate) fn environment_list(
        &mut self,
        path: &KeyPath,
        names: &[String],
    ) -> Vec<Environment> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match Environment::from_str(name) {
                Ok(env) => out.push(env),
                Err(e) => self.error(path.index(i), e.to_string()),
            }
        }
        out
    }
}

fn build(cx: &mut Cx, raw: RawPolicy, options: &CompileOptions) -> Option<Policy> {
    let root = KeyPath::root();
    let file_env = match raw.environment.as_deref() {
        None if raw.failed.contains(&root.key("environment")) => None,
        None => {
            cx.diags.push(
                Diagnostic::error(root.key("environment"), "missing key `environment`")
                    .with_help("add `environment = \"development\"` (or \"test\", \"production\") at the top of the file"),
            );
            None
        }
        Some(name) => match Environment::from_str(name) {
            Ok(env) => Some(env),
            Err(e) => {
                cx.error(root.key("environment"), e.to_string());
                None
            }
        },
    };
    // An unusable `environment` is already an error; keep validating the rest as if it were
    // development so that every other problem is reported in the same run.
    let environment = options
        .environment
        .or(file_env)
        .unwrap_or(Environment::Development);
    let development = environment == Environment::Development;

    let server = build_server(cx, raw.server.unwrap_or_default());
    let upstream = raw.upstream.map(|u| build_upstream(cx, u));
    let correlation_id = build_correlation(cx, raw.correlation_id.unwrap_or_default());

    let errors = ErrorSettings {
        expose_detail: raw
            .errors
            .and_then(|e| e.expose_detail)
            .unwrap_or(development),
    };

    let raw_logging = raw.logging.unwrap_or_default();
    let format = match raw_logging.format.as_deref() {
        None if development => LogFormat::Text,
        None => LogFormat::Json,
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => {
            cx.error(
                root.key("logging").key("format"),
                format!("unknown log format `{other}`: expected \"json\" or \"text\""),
            );
            LogFormat::Json
        }
    };
    let logging = LoggingSettings {
        format,
        access_log: raw_logging.access_log.unwrap_or(true),
        level: match raw_logging.level {
            None => "info".to_owned(),
            Some(level) => {
                if let Err(message) = check_log_level(&level) {
                    cx.error(root.key("logging").key("level"), message);
                }
                level
            }
        },
    };

    // Global headers: the built-in set (unless disabled), then the file's `set`, minus `not-set`.
    let headers_path = root.key("headers");
    let raw_headers = raw.headers.unwrap_or_default();
    let mut global = if raw_headers.defaults.unwrap_or(true) {
        headers::default_rules()
    } else {
        Vec::new()
    };
    let mut global_not_set = Vec::new();
    apply_header_overrides(
        cx,
        &headers_path,
        &raw_headers,
        &mut global,
        &mut global_not_set,
    );
    let removed_headers = match &raw_headers.remove {
        None => headers::DEFAULT_REMOVED
            .iter()
            .map(|n| HeaderName::from_static(n))
            .collect(),
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| cx.header_name(&headers_path.key("remove").index(i), n))
            .collect(),
    };

    let default_path = root.key("default-route");
    let default_raw = raw.default_route.unwrap_or_default();
    if let Some(h) = &default_raw.headers {
        check_route_headers(cx, &default_path.key("headers"), h);
    }
    let auth = auth::build(cx, raw.auth);
    let admin = admin::build(cx, raw.admin, environment, &auth, server.listen);
    let cors: Vec<CorsPolicy> = raw
        .cors
        .unwrap_or_default()
        .into_iter()
        .map(|(name, c)| cors::build(cx, &name, c, environment))
        .collect();
    let mut cors_used = std::collections::HashSet::new();
    let mut route_cors = |cx: &mut Cx, at: KeyPath, name: Option<String>| -> Option<String> {
        let name = name?;
        if cors.iter().any(|c| c.name == name) {
            cors_used.insert(name.clone());
            Some(name)
        } else {
            let known: Vec<&str> = cors.iter().map(|c| c.name.as_str()).collect();
            cx.diags.push(
                Diagnostic::error(at, format!("no CORS policy named `{name}`")).with_help(
                    if known.is_empty() {
                        "define it as a `[cors.NAME]` table".to_owned()
                    } else {
                        format!("defined: {}", known.join(", "))
                    },
                ),
            );
            None
        }
    };

    let mut default_route = build_route(
        cx,
        &default_path,
        "default".to_owned(),
        Vec::new(),
        default_raw.cache_control,
        default_raw.reason,
        default_raw.headers,
        &global,
        &global_not_set,
    );
    default_route.cors = route_cors(cx, default_path.key("cors"), default_raw.cors);
    default_route.html = default_raw.html.unwrap_or(false);
    default_route.ip_filter =
        ip_filter::build(cx, &default_path.key("ip-filter"), default_raw.ip_filter);
    let rate_limit = rate_limit::build(cx, raw.rate_limit);
    let mut quotas_used = std::collections::HashSet::new();
    let mut route_quotas = |cx: &mut Cx, at: KeyPath, names: Option<Vec<String>>| {
        let quotas = rate_limit::names(cx, &at, names, &rate_limit.quotas)
            .unwrap_or_else(|| rate_limit.default.clone());
        quotas_used.extend(quotas.iter().copied());
        quotas
    };
    default_route.rate_limit =
        route_quotas(cx, default_path.key("rate-limit"), default_raw.rate_limit);
    let lockout = lockout::build(cx, raw.lockout);
    default_route.lockout = lockout::route_rule(
        cx,
        &default_path.key("lockout"),
        default_raw.lockout,
        &lockout,
    );
    default_route.auth = auth::build_route(
        cx,
        &default_path.key("auth"),
        default_raw.auth,
        &auth,
        false,
    );

    let mut routes = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, r) in raw.route.into_iter().enumerate() {
        let path = root.key("route").index(i);
        let name = match r.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => {
                cx.missing(path.key("name"), "every route needs a non-empty `name` (it labels the group in logs and the review page)");
                format!("route[{i}]")
            }
        };
        if name == "default" || !names.insert(name.clone()) {
            cx.error(
                path.key("name"),
                format!("route name `{name}` is used twice (`default` is the default route's)"),
            );
        }
        let patterns = match r.paths {
            Some(paths) if !paths.is_empty() => paths
                .iter()
                .enumerate()
                .filter_map(|(j, p)| match PathPattern::parse(p) {
                    Ok(pat) => Some(pat),
                    Err(e) => {
                        cx.error(path.key("paths").index(j), format!("`{p}`: {e}"));
                        None
                    }
                })
                .collect(),
            _ => {
                cx.error(
                    path.key("paths"),
                    "every route needs `paths`, a non-empty list of path patterns",
                );
                Vec::new()
            }
        };
        if let Some(h) = &r.headers {
            check_route_headers(cx, &path.key("headers"), h);
        }
        let mut route = build_route(
            cx,
            &path,
            name,
            patterns,
            r.cache_control,
            r.reason,
            r.headers,
            &global,
            &global_not_set,
        );
        route.cors = route_cors(cx, path.key("cors"), r.cors);
        route.websocket = r.websocket.unwrap_or(false);
        route.html = r.html.unwrap_or(false);
        route.ip_filter = ip_filter::build(cx, &path.key("ip-filter"), r.ip_filter);
        route.rate_limit = route_quotas(cx, path.key("rate-limit"), r.rate_limit);
        route.lockout = lockout::route_rule(cx, &path.key("lockout"), r.lockout, &lockout);
        route.auth = auth::build_route(cx, &path.key("auth"), r.auth, &auth, route.websocket);
        routes.push(route);
    }
    for policy in cors.iter().filter(|c| !cors_used.contains(&c.name)) {
        cx.diags.push(
            Diagnostic::warning(
                root.key("cors").key(&policy.name),
                format!("CORS policy `{}` is not used by any route", policy.name),
            )
            .with_help("attach it with `cors = \"NAME\"` on a `[[route]]` or `[default-route]`"),
        );
    }
    rate_limit::unused(cx, &rate_limit, &quotas_used);
    let lockouts_used: Vec<Option<usize>> = routes
        .iter()
        .chain(std::iter::once(&default_route))
        .map(|r: &Route| r.lockout)
        .collect();
    lockout::unused(cx, &lockout, &lockouts_used);
    let csrf = csrf::build(cx, raw.csrf, environment);
    let cookies = raw
        .cookies
        .unwrap_or_default()
        .into_iter()
        .map(|(name, c)| cookies::build(cx, &name, c, environment))
        .collect();

    let disclosure = raw.disclosure.and_then(|d| build_disclosure(cx, d));
    let ip_filter = ip_filter::build(cx, &root.key("ip-filter"), raw.ip_filter);

    Some(Policy {
        environment,
        server,
        upstream,
        correlation_id,
        errors,
        logging,
        headers: global,
        not_set: global_not_set,
        removed_headers,
        routes,
        default_route,
        disclosure,
        cors,
        csrf,
        cookies,
        auth,
        admin,
        ip_filter,
        rate_limit,
        lockout,
    })
}

fn build_server(cx: &mut Cx, raw: RawServer) -> ServerSettings {
    let path = KeyPath::root().key("server");
    let listen = raw
        .listen
        .as_deref()
        .and_then(|l| {
            cx.parse(&path.key("listen"), l, |v| {
                SocketAddr::from_str(v).map_err(|_| format!("`{v}` is not a socket address; write e.g. \"127.0.0.1:8080\" or \"[::]:8080\""))
            })
        })
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, cidr)| {
            cx.parse(&path.key("trusted-proxies").index(i), cidr, |v| {
                IpNet::from_str(v)
                    .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{v}` is not an IP address or CIDR range"))
            })
        })
        .collect();
    let ipv6_bucket = match raw.ipv6_bucket {
        None => 64,
        Some(n) if (1..=128).contains(&n) => n as u8,
        Some(n) => {
            cx.error(
                path.key("ipv6-bucket"),
                format!("{n} is out of range (1 to 128): the IPv6 prefix clients are grouped by"),
            );
            64
        }
    };
    let max_header_count = match raw.max_header_count {
        None => 100,
        // 256 is also the most the gateway's wire-framing scanner reads in one head.
        Some(n) if (1..=256).contains(&n) => n as usize,
        Some(n) => {
            cx.error(
                path.key("max-header-count"),
                format!("{n} is out of range (1 to 256)"),
            );
            100
        }
    };
    ServerSettings {
        listen,
        header_read_timeout: cx.duration(
            path.key("header-read-timeout"),
            raw.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        shutdown_grace: cx.duration(
            path.key("shutdown-grace"),
            raw.shutdown_grace.as_deref(),
            Duration::from_secs(30),
        ),
        trusted_proxies,
        max_header_count,
        ipv6_bucket,
    }
}

fn build_upstream(cx: &mut Cx, raw: RawUpstream) -> UpstreamSettings {
    let path = KeyPath::root().key("upstream");
    let url = match raw.url.as_deref() {
        None => {
            cx.error(
                path.key("url"),
                "missing key `url` (e.g. \"http://127.0.0.1:3000\")",
            );
            Uri::from_static("http://127.0.0.1/")
        }
        Some(u) => cx
            .parse(&path.key("url"), u, parse_upstream_url)
            .unwrap_or_else(|| Uri::from_static("http://127.0.0.1/")),
    };
    let protocol = match raw.protocol.as_deref() {
        None | Some("http1") => UpstreamProtocol::Http1,
        Some("h2c") => UpstreamProtocol::H2c,
        Some(other) => {
            cx.error(
                path.key("protocol"),
                format!("unknown protocol `{other}`: expected \"http1\" or \"h2c\""),
            );
            UpstreamProtocol::Http1
        }
    };
    let defaults = UpstreamSettings::new(url);
    let preserve_host = raw.preserve_host.unwrap_or(defaults.preserve_host);
    if preserve_host && protocol == UpstreamProtocol::H2c {
        // HTTP/2 carries the host in `:authority`, which names the connection's peer here.
        cx.error(
            path.key("preserve-host"),
            "`preserve-host` is not supported with an h2c upstream yet",
        );
    }
    UpstreamSettings {
        protocol,
        connect_timeout: cx.duration(
            path.key("connect-timeout"),
            raw.connect_timeout.as_deref(),
            defaults.connect_timeout,
        ),
        request_timeout: cx.duration(
            path.key("request-timeout"),
            raw.request_timeout.as_deref(),
            defaults.request_timeout,
        ),
        idle_timeout: cx.duration(
            path.key("idle-timeout"),
            raw.idle_timeout.as_deref(),
            defaults.idle_timeout,
        ),
        max_connections: match raw.max_connections {
            None => defaults.max_connections,
            Some(n) if (1..=MAX_UPSTREAM_CONNECTIONS).contains(&n) => n as usize,
            Some(n) => {
                cx.error(
                    path.key("max-connections"),
                    format!("{n} is out of range (1 to {MAX_UPSTREAM_CONNECTIONS})"),
                );
                defaults.max_connections
            }
        },
        preserve_host,
        ..defaults
    }
}

/// The most `[upstream] max-connections` may be: far past what one upstream serves, and each
/// connection costs the gateway a file descriptor.
const MAX_UPSTREAM_CONNECTIONS: i64 = 65_536;

/// A `tracing` filter: `info`, or `info,portcullis::access=off`. A bare word that is not a
/// level would be read as a target name and silence everything else, so it is refused.
fn check_log_level(value: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let is_level = |l: &str| LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l.trim()));
    for directive in value.split(',') {
        let ok = match directive.split_once('=') {
            Some((target, level)) => !target.trim().is_empty() && is_level(level),
            None => is_level(directive),
        };
        if !ok {
            return Err(format!(
                "`{}` is not a log level or `target=level` directive (levels: {})",
                directive.trim(),
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// An upstream URL: `http://host[:port][/prefix]`, nothing else.
pub fn parse_upstream_url(value: &str) -> Result<Uri, String> {
    let uri = Uri::from_str(value).map_err(|e| format!("`{value}` is not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err("TLS to the upstream is not supported yet; use an `http://` upstream on a private network".to_owned()),
        _ => return Err(format!("`{value}` must be an absolute `http://` URL")),
    }
    if uri.authority().is_none() {
        return Err(format!("`{value}` has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{value}` must not have a query string"));
    }
    Ok(uri)
}

fn build_correlation(cx: &mut Cx, raw: RawCorrelationId) -> CorrelationIdSettings {
    let path = KeyPath::root().key("correlation-id");
    let header = raw
        .header
        .as_deref()
        .and_then(|h| cx.header_name(&path.key("header"), h))
        .unwrap_or_else(|| HeaderName::from_static("x-correlation-id"));
    let accept = match raw.accept {
        None => vec![
            HeaderName::from_static("x-correlation-id"),
            HeaderName::from_static("x-request-id"),
        ],
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| cx.header_name(&path.key("accept").index(i), n))
            .collect(),
    };
    let max_length = match raw.max_length {
        None => 128,
        Some(n) if (8..=1024).contains(&n) => n as usize,
        Some(n) => {
            cx.error(
                path.key("max-length"),
                format!("{n} is out of range (8 to 1024)"),
            );
            128
        }
    };
    CorrelationIdSettings {
        header,
        accept,
        max_length,
    }
}

/// Applies a `[headers]` / `[route.headers]` table's `set` and `not-set` to a rule list.
fn apply_header_overrides(
    cx: &mut Cx,
    path: &KeyPath,
    raw: &RawHeaders,
    rules: &mut Vec<HeaderRule>,
    not_set: &mut Vec<NotSet>,
) {
    for (name, spec) in &raw.set {
        let key = path.key("set").key(name);
        let Some(header) = cx.header_name(&key, name) else {
            continue;
        };
        if headers::FORBIDDEN_TO_SET.contains(&header.as_str()) {
            let help = if header == http::header::CACHE_CONTROL {
                "set Cache-Control with the route's `cache-control` key"
            } else {
                "framing and hop-by-hop headers belong to the connection, not the policy"
            };
            cx.diags.push(
                Diagnostic::error(key, format!("`{name}` cannot be set in a header posture"))
                    .with_help(help),
            );
            continue;
        }
        if raw.not_set.contains_key(name) {
            cx.error(
                key.clone(),
                format!("`{name}` is both in `set` and in `not-set`"),
            );
        }
        let Some(value) = &spec.value else {
            cx.error(key, "missing `value`");
            continue;
        };
        let Some(value) = cx.parse(&key.key("value"), value, |v| {
            HeaderValue::from_str(v).map_err(|_| {
                "header values may not contain control characters or non-ASCII text".to_owned()
            })
        }) else {
            continue;
        };
        let environments = spec
            .environments
            .as_ref()
            .map(|e| cx.environment_list(&key.key("environments"), e));
        rules.retain(|r| r.name != header);
        not_set.retain(|n: &NotSet| n.name != header);
        rules.push(HeaderRule {
            name: header,
            value,
            reason: spec.reason.clone(),
            environments,
        });
    }
    for (name, reason) in &raw.not_set {
        let key = path.key("not-set").key(name);
        let Some(header) = cx.header_name(&key, name) else {
            continue;
        };
        if reason.trim().is_empty() {
            cx.error(
                key.clone(),
                "say why the header is deliberately not set: the reason is what a reviewer reads",
            );
        }
        rules.retain(|r| r.name != header);
        not_set.retain(|n| n.name != header);
        not_set.push(NotSet {
            name: header,
            reason: reason.clone(),
        });
    }
    rules.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    not_set.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
}

/// Keys only the global `[headers]` table may have.
fn check_route_headers(cx: &mut Cx, path: &KeyPath, raw: &RawHeaders) {
    if raw.defaults.is_some() {
        cx.error(
            path.key("defaults"),
            "`defaults` is only allowed in the global `[headers]` table",
        );
    }
    if raw.remove.is_some() {
        cx.error(
            path.key("remove"),
            "`remove` is only allowed in the global `[headers]` table",
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn build_route(
    cx: &mut Cx,
    path: &KeyPath,
    name: String,
    patterns: Vec<PathPattern>,
    cache_control: Option<String>,
    reason: Option<String>,
    overrides: Option<RawHeaders>,
    global: &[HeaderRule],
    global_not_set: &[NotSet],
) -> Route {
    let mut headers = global.to_vec();
    let mut not_set = global_not_set.to_vec();
    if let Some(raw) = &overrides {
        apply_header_overrides(cx, &path.key("headers"), raw, &mut headers, &mut not_set);
    }
    // Private by default: a path nobody thought about must not end up in a shared cache.
    let cache_control = match cache_control {
        None => HeaderValue::from_static("no-store"),
        Some(v) => cx
            .parse(&path.key("cache-control"), &v, |v| {
                if v.trim().is_empty() {
                    return Err("`cache-control` may not be empty".to_owned());
                }
                HeaderValue::from_str(v).map_err(|_| "not a valid header value".to_owned())
            })
            .unwrap_or_else(|| HeaderValue::from_static("no-store")),
    };
    Route {
        name,
        patterns,
        cache_control,
        reason,
        headers,
        not_set,
        cors: None,
        auth: RouteAuth::none(),
        websocket: false,
        html: false,
        ip_filter: ip_filter::IpFilter::default(),
        rate_limit: Vec::new(),
        lockout: None,
    }
}

fn build_disclosure(cx: &mut Cx, raw: RawDisclosure) -> Option<Disclosure> {
    let path = KeyPath::root().key("disclosure");
    let contact = raw.contact.unwrap_or_default();
    if contact.is_empty() {
        cx.error(
            path.key("contact"),
            "security.txt needs at least one `contact` (RFC 9116)",
        );
    }
    for (i, c) in contact.iter().enumerate() {
        if !(c.starts_with("mailto:") || c.starts_with("https://") || c.starts_with("tel:")) {
            cx.error(
                path.key("contact").index(i),
                format!("`{c}` must be a mailto:, https:// or tel: URI"),
            );
        }
    }
    match &raw.expires {
        None => cx.missing(
            path.key("expires"),
            "security.txt needs `expires`, an RFC 3339 date-time such as 2027-06-30T00:00:00Z (RFC 9116)",
        ),
        Some(e) if e.date.is_none() || e.time.is_none() || e.offset.is_none() => cx.error(
            path.key("expires"),
            "`expires` must be a full date-time with an offset, e.g. 2027-06-30T00:00:00Z",
        ),
        Some(_) => {}
    }
    for (key, urls) in [
        ("encryption", &raw.encryption),
        ("canonical", &raw.canonical),
    ] {
        for (i, url) in urls.iter().flatten().enumerate() {
            let ok = url.starts_with("https://")
                || url.starts_with("dns:")
                || url.starts_with("openpgp4fpr:");
            if !ok {
                cx.error(
                    path.key(key).index(i),
                    format!("`{url}` must be an https:// (or dns:, openpgp4fpr:) URI"),
                );
            }
        }
    }
    Some(Disclosure {
        contact,
        expires: raw.expires?.to_string(),
        encryption: raw.encryption.unwrap_or_default(),
        policy: raw.policy,
        acknowledgments: raw.acknowledgments,
        preferred_languages: raw.preferred_languages,
        canonical: raw.canonical.unwrap_or_default(),
        hiring: raw.hiring,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels() {
        assert!(check_log_level("info").is_ok());
        assert!(check_log_level("WARN,portcullis::access=off").is_ok());
        assert!(check_log_level("verbose").is_err());
        assert!(check_log_level("info,").is_err());
        assert!(check_log_level("portcullis=loud").is_err());
    }
}
