//! `[auth]` and `[route.auth]`: who may call each route, and how the verified identity reaches
//! the upstream.
//!
//! Deny by default: once a policy has an `[auth]` table, every route requires a credential
//! unless its `[route.auth]` says `mode = "optional"` or `"none"`.

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::raw::{RawAuth, RawRouteAuth, RawSecret};

/// A kind of credential a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A tenant API key (`X-API-Key`, or `Authorization: Bearer`).
    ApiKey,
}

impl Credential {
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::ApiKey => "api-key",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No credential is read; identity headers are still stripped.
    None,
    /// A valid credential identifies the caller; none is fine; an invalid one is refused.
    Optional,
    /// A valid credential is required (401 otherwise).
    Required,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Optional => "optional",
            AuthMode::Required => "required",
        }
    }
}

/// What one route asks of its callers.
#[derive(Debug, Clone)]
pub struct RouteAuth {
    pub mode: AuthMode,
    pub credentials: Vec<Credential>,
    /// Every one of these scopes is required (403 otherwise).
    pub scopes: Vec<String>,
    /// Guest identities are refused with 403 (seed 002's write routes).
    pub require_registered: bool,
}

impl RouteAuth {
    pub fn none() -> Self {
        Self {
            mode: AuthMode::None,
            credentials: Vec::new(),
            scopes: Vec::new(),
            require_registered: false,
        }
    }
}

/// Where a secret comes from. Literal values are only accepted where the value is not a
/// secret (a SQLite path); a reference is resolved when the gateway starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Literal(String),
    Env(String),
    File(PathBuf),
}

/// The headers the gateway sets for the upstream with the verified identity. Every incoming
/// copy is removed first, on every route, so the upstream can trust them.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub tenant: HeaderName,
    pub subject: HeaderName,
    pub key_id: HeaderName,
    pub role: HeaderName,
    pub scopes: HeaderName,
}

impl IdentityHeaders {
    pub fn all(&self) -> [&HeaderName; 5] {
        [
            &self.tenant,
            &self.subject,
            &self.key_id,
            &self.role,
            &self.scopes,
        ]
    }
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            tenant: HeaderName::from_static("x-portcullis-tenant"),
            subject: HeaderName::from_static("x-portcullis-subject"),
            key_id: HeaderName::from_static("x-portcullis-key-id"),
            role: HeaderName::from_static("x-portcullis-role"),
            scopes: HeaderName::from_static("x-portcullis-scopes"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiKeySettings {
    /// The first part of every key (`pcl_<id>_<secret>`).
    pub prefix: String,
    /// `sqlite:PATH` or a `postgres://` URL.
    pub store: SecretRef,
    /// How long a rotated key keeps working by default.
    pub rotation_grace: Duration,
    /// How long a key lookup is cached; revocation takes at most this long to be seen.
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Whether the policy has an `[auth]` table at all.
    pub configured: bool,
    /// A request header naming a tenant: if present it must name the caller's own tenant.
    pub tenant_header: Option<HeaderName>,
    pub identity_headers: IdentityHeaders,
    pub api_keys: Option<ApiKeySettings>,
    /// The credentials routes accept unless they say otherwise.
    pub credentials: Vec<Credential>,
}

/// The revocation promise across instances (issue 4): a cache may not outlive it.
const MAX_CACHE_TTL: Duration = Duration::from_secs(5);

pub(crate) fn build(cx: &mut Cx, raw: Option<RawAuth>) -> AuthSettings {
    let path = KeyPath::root().key("auth");
    let Some(raw) = raw else {
        return AuthSettings::default();
    };
    let api_keys = raw.api_keys.map(|k| {
        let at = path.key("api-keys");
        let prefix = k.prefix.unwrap_or_else(|| "pcl".to_owned());
        let prefix_ok = (2..=16).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !prefix_ok {
            cx.error(
                at.key("prefix"),
                format!("`{prefix}` must be 2 to 16 lower-case letters or digits"),
            );
        }
        let store = match k.store {
            None => SecretRef::Literal("sqlite:portcullis-keys.db".to_owned()),
            Some(raw) => secret_ref(cx, &at.key("store"), raw).unwrap_or(SecretRef::Literal(
                "sqlite:portcullis-keys.db".to_owned(),
            )),
        };
        if let SecretRef::Literal(url) = &store {
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                cx.diags.push(
                    Diagnostic::error(
                        at.key("store"),
                        "a PostgreSQL URL carries credentials: reference it instead",
                    )
                    .with_help("write `store = { env = \"DATABASE_URL\" }` (or `{ file = \"/run/secrets/db-url\" }`)"),
                );
            } else if !url.starts_with("sqlite:") {
                cx.error(
                    at.key("store"),
                    format!("`{url}`: the key store is `sqlite:PATH` or a `postgres://` URL"),
                );
            }
        }
        let cache_ttl = cx.duration(
            at.key("cache-ttl"),
            k.cache_ttl.as_deref(),
            Duration::from_secs(2),
        );
        if cache_ttl > MAX_CACHE_TTL {
            cx.error(
                at.key("cache-ttl"),
                format!(
                    "at most {} s: a revoked key must stop working on every instance within 5 s",
                    MAX_CACHE_TTL.as_secs()
                ),
            );
        }
        ApiKeySettings {
            prefix,
            store,
            rotation_grace: cx.duration(
                at.key("rotation-grace"),
                k.rotation_grace.as_deref(),
                Duration::from_secs(24 * 3600),
            ),
            cache_ttl,
        }
    });
    let credentials = match raw.credentials {
        None if api_keys.is_some() => vec![Credential::ApiKey],
        None => {
            cx.error(
                path.clone(),
                "`[auth]` configures no credential: add `[auth.api-keys]`",
            );
            Vec::new()
        }
        Some(list) => credential_list(cx, &path.key("credentials"), &list, api_keys.is_some()),
    };
    let mut identity_headers = IdentityHeaders::default();
    if let Some(h) = raw.identity_headers {
        let at = path.key("identity-headers");
        for (key, value, slot) in [
            ("tenant", h.tenant, &mut identity_headers.tenant),
            ("subject", h.subject, &mut identity_headers.subject),
            ("key-id", h.key_id, &mut identity_headers.key_id),
            ("role", h.role, &mut identity_headers.role),
            ("scopes", h.scopes, &mut identity_headers.scopes),
        ] {
            if let Some(name) = value.and_then(|v| cx.header_name(&at.key(key), &v)) {
                *slot = name;
            }
        }
        let all = identity_headers.all();
        for (i, name) in all.iter().enumerate() {
            if all[..i].contains(name) {
                cx.error(
                    at.clone(),
                    format!("`{name}` is used for two identity headers"),
                );
            }
            if crate::headers::FORBIDDEN_TO_SET.contains(&name.as_str())
                || [
                    http::header::AUTHORIZATION,
                    http::header::COOKIE,
                    HeaderName::from_static("x-api-key"),
                ]
                .contains(name)
            {
                cx.error(at.clone(), format!("`{name}` cannot carry an identity"));
            }
        }
    }
    let tenant_header = raw
        .tenant_header
        .and_then(|h| cx.header_name(&path.key("tenant-header"), &h));
    AuthSettings {
        configured: true,
        tenant_header,
        identity_headers,
        api_keys,
        credentials,
    }
}

fn credential_list(cx: &mut Cx, at: &KeyPath, list: &[String], api_keys: bool) -> Vec<Credential> {
    let mut out = Vec::new();
    for (i, name) in list.iter().enumerate() {
        let credential = match name.as_str() {
            "api-key" => Credential::ApiKey,
            "jwt" | "signed-key" => {
                cx.error(
                    at.index(i),
                    format!("`{name}` credentials are not implemented yet; only \"api-key\" is"),
                );
                continue;
            }
            other => {
                cx.error(
                    at.index(i),
                    format!("unknown credential `{other}`: expected \"api-key\""),
                );
                continue;
            }
        };
        if credential == Credential::ApiKey && !api_keys {
            cx.error(at.index(i), "`api-key` needs an `[auth.api-keys]` table");
        }
        if !out.contains(&credential) {
            out.push(credential);
        }
    }
    out
}

fn secret_ref(cx: &mut Cx, at: &KeyPath, raw: RawSecret) -> Option<SecretRef> {
    match raw {
        RawSecret::Literal(v) => Some(SecretRef::Literal(v)),
        RawSecret::Reference(r) => match (r.env, r.file) {
            (Some(env), None) if !env.is_empty() => Some(SecretRef::Env(env)),
            (None, Some(file)) if !file.is_empty() => Some(SecretRef::File(PathBuf::from(file))),
            _ => {
                cx.error(
                    at.clone(),
                    "write exactly one of `env = \"NAME\"` or `file = \"PATH\"`",
                );
                None
            }
        },
    }
}

/// A route's `[route.auth]`, defaults from `[auth]`.
pub(crate) fn build_route(
    cx: &mut Cx,
    at: &KeyPath,
    raw: Option<RawRouteAuth>,
    auth: &AuthSettings,
) -> RouteAuth {
    let Some(raw) = raw else {
        return if auth.configured {
            RouteAuth {
                mode: AuthMode::Required,
                credentials: auth.credentials.clone(),
                scopes: Vec::new(),
                require_registered: false,
            }
        } else {
            RouteAuth::none()
        };
    };
    if !auth.configured {
        cx.diags.push(
            Diagnostic::error(at.clone(), "route authentication needs an `[auth]` table")
                .with_help("add `[auth.api-keys]` to say where keys are stored"),
        );
        return RouteAuth::none();
    }
    let mode = match raw.mode.as_deref() {
        None | Some("required") => AuthMode::Required,
        Some("optional") => AuthMode::Optional,
        Some("none") => AuthMode::None,
        Some(other) => {
            cx.error(
                at.key("mode"),
                format!("unknown mode `{other}`: expected \"required\", \"optional\" or \"none\""),
            );
            AuthMode::Required
        }
    };
    let credentials = match raw.credentials {
        None => auth.credentials.clone(),
        Some(list) => credential_list(cx, &at.key("credentials"), &list, auth.api_keys.is_some()),
    };
    let scopes: Vec<String> = raw
        .scopes
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter(|(i, s)| {
            let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b',');
            if !ok {
                cx.error(
                    at.key("scopes").index(*i),
                    format!("`{s}` is not a scope: visible ASCII without `,`"),
                );
            }
            ok
        })
        .map(|(_, s)| s)
        .collect();
    if mode == AuthMode::None && (!scopes.is_empty() || raw.require_registered == Some(true)) {
        cx.error(
            at.key("mode"),
            "a route with `mode = \"none\"` cannot require scopes or a registered caller",
        );
    }
    RouteAuth {
        mode,
        credentials,
        scopes,
        require_registered: raw.require_registered.unwrap_or(false),
    }
}
