//! `[auth]` and `[route.auth]`: who may call each route, and how the verified identity reaches
//! the upstream.
//!
//! Deny by default: once a policy has an `[auth]` table, every route requires a credential
//! unless its `[route.auth]` says `mode = "optional"` or `"none"`.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Uri};

use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::raw::{RawAuth, RawJwks, RawJwt, RawRouteAuth, RawSecret};
use crate::signing::SigningSettings;

/// A kind of credential a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A tenant API key (`X-API-Key`, or `Authorization: Bearer`).
    ApiKey,
    /// A JWT bearer token (`Authorization: Bearer`), verified with `[auth.jwt]`.
    Jwt,
    /// A tenant API key whose request is signed (`[auth.api-keys.signing]`). A route that lists
    /// it without `api-key` refuses unsigned requests; keys that have a signing secret sign on
    /// every route anyway.
    SignedKey,
}

impl Credential {
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::ApiKey => "api-key",
            Credential::Jwt => "jwt",
            Credential::SignedKey => "signed-key",
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
    /// On a WebSocket route: the query parameter that may carry a JWT on the upgrade request
    /// (`?token=...`), since a browser cannot set headers on a WebSocket handshake.
    pub query_token: Option<String>,
}

impl RouteAuth {
    pub fn none() -> Self {
        Self {
            mode: AuthMode::None,
            credentials: Vec::new(),
            scopes: Vec::new(),
            require_registered: false,
            query_token: None,
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
    /// `[auth.api-keys.signing]`: without it, keys cannot sign and a key that has a signing
    /// secret cannot be used.
    pub signing: Option<SigningSettings>,
}

/// A JWT signature algorithm (RFC 7518 names). `none` is not one: an unsigned token is never
/// accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl JwtAlgorithm {
    pub const ALL: [JwtAlgorithm; 12] = [
        Self::Hs256,
        Self::Hs384,
        Self::Hs512,
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
    ];

    /// The name in a token's `alg` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    /// An HMAC over a shared secret (`HS*`), as opposed to a public-key signature.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::Hs256 | Self::Hs384 | Self::Hs512)
    }
}

/// Where a JWT verification key comes from, with the key path that names it (start-up errors
/// about the key point there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtKeySource {
    pub at: KeyPath,
    pub kind: JwtKeyKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKeyKind {
    /// A shared HMAC secret (`HS*`): its bytes, from an environment variable or a file, never
    /// from the policy itself.
    Secret(SecretRef),
    /// A JWKS file of public keys (`RS*`, `PS*`, `ES*`, `EdDSA`).
    Jwks(PathBuf),
    /// A JWKS fetched from a URL (`https`, or `http` outside production), at start-up and then
    /// every `jwks-refresh`.
    JwksUrl(Uri),
}

/// Which claim carries what (`[auth.jwt.claims]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtClaimNames {
    pub subject: String,
    /// Required in every token.
    pub tenant: String,
    pub role: String,
    /// Role claim values that make a registered caller; any other value, or none, is a guest.
    pub registered_roles: Vec<String>,
    /// A space-separated string or an array of strings.
    pub scopes: String,
}

impl Default for JwtClaimNames {
    fn default() -> Self {
        Self {
            subject: "sub".to_owned(),
            tenant: "tenant".to_owned(),
            role: "role".to_owned(),
            registered_roles: vec!["registered".to_owned()],
            scopes: "scope".to_owned(),
        }
    }
}

/// `[auth.jwt]`.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Pinned: a token whose `alg` is not listed is refused. Never HMAC and public-key mixed.
    pub algorithms: Vec<JwtAlgorithm>,
    /// The key every token verifies with. `None` when `tenants` has entries: then each token
    /// verifies only with the key of the tenant it names.
    pub key: Option<JwtKeySource>,
    /// Per-tenant keys, by tenant name (sorted).
    pub tenants: Vec<(String, JwtKeySource)>,
    /// When set, `iss` must be present and equal.
    pub issuer: Option<String>,
    /// When non-empty, `aud` must be present and contain one of them.
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// When set, `iat` is required and `exp - iat` may not exceed it.
    pub max_lifetime: Option<Duration>,
    pub claims: JwtClaimNames,
    /// How often a JWKS fetched from a URL is fetched again (`jwks-refresh`).
    pub jwks_refresh: Duration,
}

impl JwtSettings {
    /// Every key source, the global one and the tenants'.
    pub fn key_sources(&self) -> impl Iterator<Item = &JwtKeySource> {
        self.key.iter().chain(self.tenants.iter().map(|(_, k)| k))
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Whether the policy has an `[auth]` table at all.
    pub configured: bool,
    /// A request header naming a tenant: if present it must name the caller's own tenant.
    pub tenant_header: Option<HeaderName>,
    pub identity_headers: IdentityHeaders,
    pub api_keys: Option<ApiKeySettings>,
    pub jwt: Option<JwtSettings>,
    /// The credentials routes accept unless they say otherwise.
    pub credentials: Vec<Credential>,
}

/// The revocation promise across instances (issue 4): a cache may not outlive it.
const MAX_CACHE_TTL: Duration = Duration::from_secs(5);

const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// More clock skew than this is a clock to fix, not a leeway: it stretches every token's life.
const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(5 * 60);
/// More often than this is a load on the identity provider, multiplied by every instance, for
/// no gain: an unknown `kid` (a rotation) triggers a fetch anyway.
pub const MIN_JWKS_REFRESH: Duration = Duration::from_secs(30);

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
            signing: k
                .signing
                .map(|raw| crate::signing::build(cx, &at.key("signing"), raw)),
        }
    });
    let jwt = raw.jwt.map(|j| build_jwt(cx, &path.key("jwt"), j));
    let configured = Configured::of(api_keys.as_ref(), jwt.is_some());
    let credentials = match raw.credentials {
        None if configured.api_keys || configured.jwt => {
            let mut list = Vec::new();
            if configured.api_keys {
                list.push(Credential::ApiKey);
            }
            if configured.jwt {
                list.push(Credential::Jwt);
            }
            list
        }
        None => {
            cx.error(
                path.clone(),
                "`[auth]` configures no credential: add `[auth.api-keys]` or `[auth.jwt]`",
            );
            Vec::new()
        }
        Some(list) => credential_list(cx, &path.key("credentials"), &list, configured),
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
        jwt,
        credentials,
    }
}

/// Which credential tables `[auth]` has.
#[derive(Debug, Clone, Copy)]
struct Configured {
    api_keys: bool,
    signing: bool,
    jwt: bool,
}

impl Configured {
    fn of(api_keys: Option<&ApiKeySettings>, jwt: bool) -> Self {
        Self {
            api_keys: api_keys.is_some(),
            signing: api_keys.is_some_and(|k| k.signing.is_some()),
            jwt,
        }
    }
}

fn credential_list(
    cx: &mut Cx,
    at: &KeyPath,
    list: &[String],
    configured: Configured,
) -> Vec<Credential> {
    let mut out = Vec::new();
    for (i, name) in list.iter().enumerate() {
        let credential = match name.as_str() {
            "api-key" => Credential::ApiKey,
            "jwt" => Credential::Jwt,
            "signed-key" => Credential::SignedKey,
            other => {
                cx.error(
                    at.index(i),
                    format!(
                        "unknown credential `{other}`: expected \"api-key\", \"signed-key\" or \"jwt\""
                    ),
                );
                continue;
            }
        };
        if credential == Credential::ApiKey && !configured.api_keys {
            cx.error(at.index(i), "`api-key` needs an `[auth.api-keys]` table");
        }
        if credential == Credential::SignedKey && !configured.signing {
            cx.error(
                at.index(i),
                "`signed-key` needs an `[auth.api-keys.signing]` table",
            );
        }
        if credential == Credential::Jwt && !configured.jwt {
            cx.error(at.index(i), "`jwt` needs an `[auth.jwt]` table");
        }
        if !out.contains(&credential) {
            out.push(credential);
        }
    }
    out
}

/// `[auth.jwt]`. Returned even when it has errors (they are recorded), so that `"jwt"` in a
/// credential list is not also reported as unconfigured.
fn build_jwt(cx: &mut Cx, at: &KeyPath, raw: RawJwt) -> JwtSettings {
    let algorithms = jwt_algorithms(cx, &at.key("algorithms"), raw.algorithms);
    // `None` when the list is unusable: the key checks below then say nothing about kinds.
    let hmac = match algorithms.as_slice() {
        [] => None,
        [first, ..] if algorithms.iter().all(|a| a.is_hmac() == first.is_hmac()) => {
            Some(first.is_hmac())
        }
        _ => None,
    };
    let has_global = raw.secret.is_some() || raw.jwks.is_some();
    let key = jwt_key(cx, at, raw.secret, raw.jwks, hmac);
    let raw_tenants = raw.tenants.unwrap_or_default();
    // A tenant table whose key is in error is already reported; "no key" would only add noise.
    let has_tenant_tables = !raw_tenants.is_empty();
    let mut tenants = Vec::new();
    for (name, table) in raw_tenants {
        let tenant_at = at.key("tenants").key(&name);
        if name.is_empty() || name.len() > 128 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            cx.error(
                tenant_at.clone(),
                format!("`{name}` is not a tenant name: 1 to 128 visible ASCII characters"),
            );
        }
        let present = table.secret.is_some() || table.jwks.is_some();
        match jwt_key(cx, &tenant_at, table.secret, table.jwks, hmac) {
            Some(source) => tenants.push((name, source)),
            None if !present => cx.error(
                tenant_at,
                "a tenant needs its key: `secret = { env = \"NAME\" }` (HS*) or `jwks = { file = \"PATH\" }`",
            ),
            None => {}
        }
    }
    if let (Some(source), false) = (&key, tenants.is_empty()) {
        cx.diags.push(
            Diagnostic::error(
                source.at.clone(),
                "never used: with `[auth.jwt.tenants]`, a token verifies only with the key of the tenant it names",
            )
            .with_help("remove it, or move it under the tenant it belongs to"),
        );
    }
    if !has_global && !has_tenant_tables {
        cx.missing(
            at.clone(),
            "no verification key: add `secret = { env = \"JWT_SECRET\" }` (HS*) or `jwks = { file = \"PATH\" }` (RS*, PS*, ES*, EdDSA), or `[auth.jwt.tenants.NAME]` tables",
        );
    }

    let issuer = raw.issuer.filter(|iss| {
        let ok = !iss.trim().is_empty();
        if !ok {
            cx.error(
                at.key("issuer"),
                "an empty issuer: omit `issuer` to not check `iss`",
            );
        }
        ok
    });
    let audience = match raw.audience {
        None => Vec::new(),
        Some(list) if list.is_empty() => {
            cx.error(
                at.key("audience"),
                "an empty list accepts no token: omit `audience` to not check `aud`",
            );
            Vec::new()
        }
        Some(list) => non_empty_strings(cx, &at.key("audience"), list, "an audience"),
    };
    let leeway = match raw.leeway.as_deref() {
        None => DEFAULT_LEEWAY,
        // Not `cx.duration`: a leeway of zero is a legitimate choice.
        Some(v) => cx
            .parse(&at.key("leeway"), v, |v| {
                humantime::parse_duration(v)
                    .map_err(|e| format!("`{v}` is not a duration ({e}); write e.g. \"30s\""))
            })
            .unwrap_or(DEFAULT_LEEWAY),
    };
    if leeway > MAX_LEEWAY {
        cx.error(
            at.key("leeway"),
            "at most 5m: a leeway stretches the life of every token, expired ones included",
        );
    }
    let max_lifetime = raw
        .max_lifetime
        .as_deref()
        .map(|v| cx.duration(at.key("max-lifetime"), Some(v), Duration::from_secs(3600)));
    let refresh_at = at.key("jwks-refresh");
    let jwks_refresh = cx.duration(
        refresh_at.clone(),
        raw.jwks_refresh.as_deref(),
        DEFAULT_JWKS_REFRESH,
    );
    if jwks_refresh < MIN_JWKS_REFRESH {
        cx.error(
            refresh_at.clone(),
            "at least 30s: every instance fetches every JWKS URL this often (a token with an unknown `kid` triggers a fetch anyway)",
        );
    }

    let mut claims = JwtClaimNames::default();
    if let Some(c) = raw.claims {
        let claims_at = at.key("claims");
        for (key, value, slot) in [
            ("subject", c.subject, &mut claims.subject),
            ("tenant", c.tenant, &mut claims.tenant),
            ("role", c.role, &mut claims.role),
            ("scopes", c.scopes, &mut claims.scopes),
        ] {
            match value {
                Some(name) if name.is_empty() => {
                    cx.error(claims_at.key(key), "a claim name cannot be empty");
                }
                Some(name) => *slot = name,
                None => {}
            }
        }
        if let Some(roles) = c.registered_roles {
            claims.registered_roles =
                non_empty_strings(cx, &claims_at.key("registered-roles"), roles, "a role");
        }
    }

    let settings = JwtSettings {
        algorithms,
        key: if tenants.is_empty() { key } else { None },
        tenants,
        issuer,
        audience,
        leeway,
        max_lifetime,
        claims,
        jwks_refresh,
    };
    let fetches = settings
        .key_sources()
        .any(|s| matches!(s.kind, JwtKeyKind::JwksUrl(_)));
    if raw.jwks_refresh.is_some() && !fetches {
        cx.diags.push(Diagnostic::warning(
            refresh_at,
            "has no effect: no `jwks` is fetched from a URL",
        ));
    }
    settings
}

fn jwt_algorithms(cx: &mut Cx, at: &KeyPath, raw: Option<Vec<String>>) -> Vec<JwtAlgorithm> {
    let Some(names) = raw else {
        cx.diags.push(
            Diagnostic::error(at.clone(), "missing key `algorithms`: the accepted algorithms are pinned, never taken from the token")
                .with_help("write e.g. `algorithms = [\"HS256\"]` or `algorithms = [\"RS256\"]`"),
        );
        return Vec::new();
    };
    if names.is_empty() {
        cx.error(at.clone(), "an empty list accepts no token");
    }
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if name.eq_ignore_ascii_case("none") {
            cx.error(
                at.index(i),
                "`none` means an unsigned token, which anyone can write: never accepted",
            );
            continue;
        }
        match JwtAlgorithm::ALL.iter().find(|a| a.as_str() == name) {
            Some(alg) if !out.contains(alg) => out.push(*alg),
            Some(_) => {}
            None => {
                let known: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
                cx.error(
                    at.index(i),
                    format!(
                        "unknown algorithm `{name}`: expected one of {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    let hmac: Vec<&str> = out
        .iter()
        .filter(|a| a.is_hmac())
        .map(|a| a.as_str())
        .collect();
    let public: Vec<&str> = out
        .iter()
        .filter(|a| !a.is_hmac())
        .map(|a| a.as_str())
        .collect();
    if !hmac.is_empty() && !public.is_empty() {
        cx.diags.push(
            Diagnostic::error(
                at.clone(),
                format!(
                    "mixes HMAC ({}) with public-key algorithms ({}): a public key could then be used as an HMAC secret (key confusion)",
                    hmac.join(", "),
                    public.join(", ")
                ),
            )
            .with_help("pin one kind: HS* with `secret`, or RS*/PS*/ES*/EdDSA with `jwks`"),
        );
    }
    out
}

/// `secret` or `jwks` in `[auth.jwt]` or a `[auth.jwt.tenants.NAME]` table at `at`; `hmac` says
/// which one the algorithms need, when they agree.
fn jwt_key(
    cx: &mut Cx,
    at: &KeyPath,
    secret: Option<RawSecret>,
    jwks: Option<RawJwks>,
    hmac: Option<bool>,
) -> Option<JwtKeySource> {
    match (secret, jwks) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            cx.error(
                at.clone(),
                "write `secret` (HS*) or `jwks` (RS*, PS*, ES*, EdDSA), not both",
            );
            None
        }
        (Some(raw), None) => {
            let key_at = at.key("secret");
            if hmac == Some(false) {
                cx.error(
                    key_at.clone(),
                    "public-key algorithms verify with `jwks`, not a shared `secret`",
                );
            }
            match raw {
                RawSecret::Literal(_) => {
                    // Never echo the value: it is a secret, now in a file that reviewers read.
                    cx.diags.push(
                        Diagnostic::error(key_at, "a secret written in the policy file: reference it instead")
                            .with_help("write `secret = { env = \"JWT_SECRET\" }` (or `{ file = \"/run/secrets/jwt\" }`), and rotate the exposed one"),
                    );
                    None
                }
                raw => secret_ref(cx, &key_at, raw).map(|r| JwtKeySource {
                    at: key_at,
                    kind: JwtKeyKind::Secret(r),
                }),
            }
        }
        (None, Some(raw)) => {
            let key_at = at.key("jwks");
            if hmac == Some(true) {
                cx.error(
                    key_at.clone(),
                    "HS* algorithms verify with a shared `secret`, not a JWKS",
                );
            }
            jwks_ref(cx, key_at, raw)
        }
    }
}

/// A `jwks` reference at `at`: exactly one of `file` and `url`.
fn jwks_ref(cx: &mut Cx, at: KeyPath, raw: RawJwks) -> Option<JwtKeySource> {
    let help = "write `jwks = { file = \"/etc/portcullis/jwks.json\" }` or `jwks = { url = \"https://idp.example/.well-known/jwks.json\" }`";
    let refuse = |cx: &mut Cx, at: KeyPath, message: &str| {
        cx.diags
            .push(Diagnostic::error(at, message).with_help(help));
        None
    };
    let reference = match raw {
        RawJwks::Literal(v) if v.starts_with("https://") || v.starts_with("http://") => {
            return refuse(cx, at, "a JWKS URL is written `{ url = \"...\" }`");
        }
        RawJwks::Literal(_) => return refuse(cx, at, "a JWKS is read from a file or a URL"),
        RawJwks::Reference(r) => r,
    };
    let kind = match (reference.env, reference.file, reference.url) {
        (Some(_), None, None) => {
            return refuse(
                cx,
                at,
                "a JWKS is read from a file or a URL, not an environment variable",
            );
        }
        (None, Some(file), None) if !file.is_empty() => JwtKeyKind::Jwks(PathBuf::from(file)),
        (None, None, Some(url)) => JwtKeyKind::JwksUrl(cx.parse(&at, &url, jwks_url)?),
        _ => {
            return refuse(
                cx,
                at,
                "write exactly one of `file = \"PATH\"` or `url = \"URL\"`",
            );
        }
    };
    Some(JwtKeySource { at, kind })
}

/// A JWKS URL: absolute, `https` or `http` (the lint decides where `http` may be used), with a
/// host and no credentials. Messages never repeat the URL: its query may carry a token.
fn jwks_url(value: &str) -> Result<Uri, String> {
    let uri: Uri = value.parse().map_err(|_| {
        "not a URL: write e.g. \"https://idp.example/.well-known/jwks.json\"".to_owned()
    })?;
    match uri.scheme_str() {
        Some("https" | "http") => {}
        _ => return Err("a JWKS URL starts with `https://`".to_owned()),
    }
    let Some(authority) = uri.authority() else {
        return Err("a JWKS URL names a host".to_owned());
    };
    if authority.as_str().contains('@') {
        return Err(
            "credentials in a JWKS URL would be sent in the clear to anything that logs URLs: the set is public, fetch it without them"
                .to_owned(),
        );
    }
    if authority.host().is_empty() {
        return Err("a JWKS URL names a host".to_owned());
    }
    Ok(uri)
}

/// The JWKS URLs fetched over plain `http`: anyone on the path could then hand the gateway
/// their own keys, so an error in production and a warning elsewhere (tests and local
/// identity providers run on loopback `http`). Called by the lints.
pub(crate) fn lint_jwks_urls(auth: &AuthSettings, production: bool) -> Vec<Diagnostic> {
    let Some(jwt) = &auth.jwt else {
        return Vec::new();
    };
    jwt.key_sources()
        .filter(|s| matches!(&s.kind, JwtKeyKind::JwksUrl(u) if u.scheme_str() == Some("http")))
        .map(|s| {
            let message = "a JWKS fetched over plain http: anyone on the path can replace the keys and mint tokens";
            let diag = if production {
                Diagnostic::error(s.at.clone(), message)
            } else {
                Diagnostic::warning(s.at.clone(), message)
            };
            diag.with_help("use an `https://` URL")
        })
        .collect()
}

/// The strings of `list`, reporting empty ones (`what`: "an audience").
fn non_empty_strings(cx: &mut Cx, at: &KeyPath, list: Vec<String>, what: &str) -> Vec<String> {
    list.into_iter()
        .enumerate()
        .filter_map(|(i, v)| {
            if v.trim().is_empty() {
                cx.error(at.index(i), format!("{what} cannot be empty"));
                None
            } else {
                Some(v)
            }
        })
        .collect()
}

pub(crate) fn secret_ref(cx: &mut Cx, at: &KeyPath, raw: RawSecret) -> Option<SecretRef> {
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
    websocket: bool,
) -> RouteAuth {
    let Some(raw) = raw else {
        return if auth.configured {
            RouteAuth {
                mode: AuthMode::Required,
                credentials: auth.credentials.clone(),
                scopes: Vec::new(),
                require_registered: false,
                query_token: None,
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
        Some(list) => credential_list(
            cx,
            &at.key("credentials"),
            &list,
            Configured::of(auth.api_keys.as_ref(), auth.jwt.is_some()),
        ),
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
    let query_token = raw.query_token.filter(|name| {
        query_token_ok(
            cx,
            &at.key("query-token"),
            name,
            websocket,
            &credentials,
            mode,
        )
    });
    RouteAuth {
        mode,
        credentials,
        scopes,
        require_registered: raw.require_registered.unwrap_or(false),
        query_token,
    }
}

/// `query-token`: only on WebSocket routes that read JWTs, and a plain parameter name. Anywhere
/// else a token in the URL would end up in browser history, proxy logs and `Referer` headers
/// for no reason: headers work there.
fn query_token_ok(
    cx: &mut Cx,
    at: &KeyPath,
    name: &str,
    websocket: bool,
    credentials: &[Credential],
    mode: AuthMode,
) -> bool {
    let mut ok = true;
    if !websocket {
        cx.diags.push(
            Diagnostic::error(
                at.clone(),
                "a token in the URL is only accepted on WebSocket routes",
            )
            .with_help(
                "mark the route with `websocket = true`, or send the token in `Authorization`",
            ),
        );
        ok = false;
    }
    if !credentials.contains(&Credential::Jwt) || mode == AuthMode::None {
        cx.error(
            at.clone(),
            "a query token is a JWT: the route's credentials must include \"jwt\"",
        );
        ok = false;
    }
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !name_ok {
        cx.error(
            at.clone(),
            format!("`{name}` is not a query parameter name: 1 to 64 of A-Z a-z 0-9 _ - ."),
        );
        ok = false;
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CompileOptions, load_str};

    fn compile(auth: &str) -> Result<AuthSettings, Vec<(String, String, bool)>> {
        let text = format!("environment = \"production\"\n{auth}");
        match load_str("auth.toml", &text, &CompileOptions::default()) {
            Ok(c) => Ok(c.policy.auth),
            Err(d) => Err(d
                .iter()
                .map(|d| (d.path.to_string(), d.message.clone(), d.line_col.is_some()))
                .collect()),
        }
    }

    #[test]
    fn a_full_jwt_table() {
        let auth = compile(
            r#"
[auth]
credentials = ["api-key", "jwt"]
[auth.api-keys]
[auth.jwt]
algorithms = ["RS256", "ES256", "RS256"]
jwks = { file = "/etc/portcullis/jwks.json" }
issuer = "https://auth.example.com"
audience = ["api"]
leeway = "0s"
max-lifetime = "1h"
[auth.jwt.claims]
tenant = "app_id"
registered-roles = ["member", "owner"]
"#,
        )
        .unwrap();
        assert_eq!(auth.credentials, [Credential::ApiKey, Credential::Jwt]);
        let jwt = auth.jwt.unwrap();
        assert_eq!(jwt.algorithms, [JwtAlgorithm::Rs256, JwtAlgorithm::Es256]);
        assert_eq!(
            jwt.key,
            Some(JwtKeySource {
                at: KeyPath::root().key("auth").key("jwt").key("jwks"),
                kind: JwtKeyKind::Jwks(PathBuf::from("/etc/portcullis/jwks.json")),
            })
        );
        assert_eq!(jwt.issuer.as_deref(), Some("https://auth.example.com"));
        assert_eq!(jwt.audience, ["api"]);
        assert_eq!(jwt.leeway, Duration::ZERO);
        assert_eq!(jwt.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(jwt.claims.tenant, "app_id");
        assert_eq!(jwt.claims.subject, "sub");
        assert_eq!(jwt.claims.registered_roles, ["member", "owner"]);
    }

    #[test]
    fn defaults_and_per_tenant_keys() {
        let auth = compile(
            r#"
[auth.jwt]
algorithms = ["HS256"]
[auth.jwt.tenants.acme]
secret = { env = "JWT_SECRET_ACME" }
[auth.jwt.tenants.globex]
secret = { file = "/run/secrets/globex" }
"#,
        )
        .unwrap();
        assert_eq!(auth.credentials, [Credential::Jwt]);
        let jwt = auth.jwt.unwrap();
        assert_eq!(jwt.key, None);
        assert_eq!(jwt.leeway, Duration::from_secs(30));
        assert_eq!(jwt.max_lifetime, None);
        assert_eq!(jwt.claims, JwtClaimNames::default());
        let tenants: Vec<(&str, String)> = jwt
            .tenants
            .iter()
            .map(|(name, source)| (name.as_str(), source.at.to_string()))
            .collect();
        assert_eq!(
            tenants,
            [
                ("acme", "auth.jwt.tenants.acme.secret".to_owned()),
                ("globex", "auth.jwt.tenants.globex.secret".to_owned()),
            ]
        );
    }

    #[test]
    fn jwt_mistakes_are_errors_with_their_keys() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[auth.jwt]\nalgorithms = [\"HS256\", \"none\"]\nsecret = { env = \"S\" }\n",
                "auth.jwt.algorithms[1]",
                "`none` means an unsigned token",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"hs256\"]\nsecret = { env = \"S\" }\n",
                "auth.jwt.algorithms[0]",
                "unknown algorithm `hs256`",
            ),
            (
                "[auth.jwt]\nsecret = { env = \"S\" }\n",
                "auth.jwt.algorithms",
                "missing key `algorithms`",
            ),
            (
                "[auth.jwt]\nalgorithms = []\nsecret = { env = \"S\" }\n",
                "auth.jwt.algorithms",
                "an empty list accepts no token",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\", \"RS256\"]\nsecret = { env = \"S\" }\n",
                "auth.jwt.algorithms",
                "mixes HMAC (HS256) with public-key algorithms (RS256)",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"hunter2hunter2hunter2hunter2hunter2\"\n",
                "auth.jwt.secret",
                "a secret written in the policy file",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\njwks = { file = \"/k.json\" }\n",
                "auth.jwt.jwks",
                "HS* algorithms verify with a shared `secret`",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\nsecret = { env = \"S\" }\n",
                "auth.jwt.secret",
                "public-key algorithms verify with `jwks`",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = \"https://idp.example/jwks.json\"\n",
                "auth.jwt.jwks",
                "a JWKS URL is written `{ url = \"...\" }`",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = { url = \"ftp://idp.example/jwks.json\" }\n",
                "auth.jwt.jwks",
                "a JWKS URL starts with `https://`",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = { url = \"/jwks.json\" }\n",
                "auth.jwt.jwks",
                "a JWKS URL starts with `https://`",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = { url = \"https://user:pw@idp.example/jwks.json\" }\n",
                "auth.jwt.jwks",
                "credentials in a JWKS URL",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = { url = \"https://idp.example/k\", file = \"/k.json\" }\n",
                "auth.jwt.jwks",
                "write exactly one of `file",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = { url = \"https://idp.example/k\" }\njwks-refresh = \"10s\"\n",
                "auth.jwt.jwks-refresh",
                "at least 30s",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = { url = \"https://idp.example/k\" }\njwks-refresh = \"often\"\n",
                "auth.jwt.jwks-refresh",
                "is not a duration",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = { env = \"JWKS\" }\n",
                "auth.jwt.jwks",
                "a JWKS is read from a file",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = { file = \"/a\" }\nsecret = { env = \"S\" }\n",
                "auth.jwt",
                "not both",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\n",
                "auth.jwt",
                "no verification key",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = { env = \"S\" }\n[auth.jwt.tenants.acme]\nsecret = { env = \"A\" }\n",
                "auth.jwt.secret",
                "never used: with `[auth.jwt.tenants]`",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\n[auth.jwt.tenants.acme]\n",
                "auth.jwt.tenants.acme",
                "a tenant needs its key",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\n[auth.jwt.tenants.\"a b\"]\nsecret = { env = \"A\" }\n",
                "auth.jwt.tenants.\"a b\"",
                "is not a tenant name",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = { env = \"S\" }\nleeway = \"10m\"\n",
                "auth.jwt.leeway",
                "at most 5m",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = { env = \"S\" }\naudience = []\n",
                "auth.jwt.audience",
                "omit `audience` to not check `aud`",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = { env = \"S\" }\nmax-lifetime = \"forever\"\n",
                "auth.jwt.max-lifetime",
                "is not a duration",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = { env = \"S\" }\nmax-liftime = \"1h\"\n",
                "auth.jwt.max-liftime",
                "unknown key",
            ),
            (
                "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = { env = \"S\" }\n[auth.jwt.claims]\ntenant = \"\"\n",
                "auth.jwt.claims.tenant",
                "a claim name cannot be empty",
            ),
            (
                "[auth]\ncredentials = [\"jwt\"]\n[auth.api-keys]\n",
                "auth.credentials[0]",
                "`jwt` needs an `[auth.jwt]` table",
            ),
        ];
        for (auth, key, message) in cases {
            let errors = compile(auth).expect_err(auth);
            assert!(
                errors
                    .iter()
                    .any(|(k, m, located)| k == key && m.contains(message) && *located),
                "no located `{key}: {message}` for:\n{auth}\ngot {errors:#?}"
            );
        }
    }

    #[test]
    fn signing_defaults_and_overrides() {
        let keys = "[auth.api-keys]\nstore = \"sqlite:k.db\"\n";
        let auth = compile(&format!(
            "{keys}[auth.api-keys.signing]\nkey-encryption-key = {{ env = \"KEK\" }}\n"
        ))
        .unwrap();
        let signing = auth.api_keys.unwrap().signing.unwrap();
        assert_eq!(signing.timestamp_header, "x-portcullis-timestamp");
        assert_eq!(signing.signature_header, "x-portcullis-signature");
        assert_eq!(signing.max_skew, Duration::from_secs(300));
        assert_eq!(signing.max_body, 1 << 20);
        assert_eq!(signing.replay, crate::signing::ReplayStore::Memory);
        assert_eq!(signing.key_encryption_key, SecretRef::Env("KEK".to_owned()));
        assert_eq!(auth.credentials, [Credential::ApiKey]);

        let auth = compile(&format!(
            "{keys}[auth.api-keys.signing]\ntimestamp-header = \"x-drift-timestamp\"\n\
             signature-header = \"x-drift-signature\"\nmax-skew = \"2m\"\nmax-body = \"64 KiB\"\n\
             replay = {{ env = \"REDIS_URL\" }}\nkey-encryption-key = {{ file = \"/run/kek\" }}\n\
             [[route]]\nname = \"signed\"\npaths = [\"/v1/*\"]\n\
             [route.auth]\ncredentials = [\"signed-key\"]\n"
        ))
        .unwrap();
        let signing = auth.api_keys.unwrap().signing.unwrap();
        assert_eq!(signing.timestamp_header, "x-drift-timestamp");
        assert_eq!(signing.max_skew, Duration::from_secs(120));
        assert_eq!(signing.max_body, 64 << 10);
        assert_eq!(
            signing.replay,
            crate::signing::ReplayStore::Redis(SecretRef::Env("REDIS_URL".to_owned()))
        );
    }

    #[test]
    fn signing_mistakes_are_errors_with_their_keys() {
        let keys = "[auth.api-keys]\nstore = \"sqlite:k.db\"\n";
        let kek = "key-encryption-key = { env = \"KEK\" }\n";
        let cases: &[(String, &str, &str)] = &[
            (
                format!("{keys}[auth.api-keys.signing]\n"),
                "auth.api-keys.signing.key-encryption-key",
                "missing key `key-encryption-key`",
            ),
            (
                format!("{keys}[auth.api-keys.signing]\nkey-encryption-key = \"00112233\"\n"),
                "auth.api-keys.signing.key-encryption-key",
                "reference it, never write it here",
            ),
            (
                format!("{keys}[auth.api-keys.signing]\n{kek}max-skew = \"1h\"\n"),
                "auth.api-keys.signing.max-skew",
                "at most 15 minutes",
            ),
            (
                format!("{keys}[auth.api-keys.signing]\n{kek}max-body = \"1 MB\"\n"),
                "auth.api-keys.signing.max-body",
                "is not a size",
            ),
            (
                format!("{keys}[auth.api-keys.signing]\n{kek}max-body = \"1 GiB\"\n"),
                "auth.api-keys.signing.max-body",
                "at most 64 MiB",
            ),
            (
                format!(
                    "{keys}[auth.api-keys.signing]\n{kek}replay = \"redis://u:pw@cache:6379\"\n"
                ),
                "auth.api-keys.signing.replay",
                "carries credentials",
            ),
            (
                format!("{keys}[auth.api-keys.signing]\n{kek}replay = \"memcached\"\n"),
                "auth.api-keys.signing.replay",
                "expected \"memory\"",
            ),
            (
                format!(
                    "{keys}[auth.api-keys.signing]\n{kek}timestamp-header = \"x-sig\"\nsignature-header = \"x-sig\"\n"
                ),
                "auth.api-keys.signing.signature-header",
                "two different headers",
            ),
            (
                format!("{keys}[auth.api-keys.signing]\n{kek}replay-store = \"memory\"\n"),
                "auth.api-keys.signing.replay-store",
                "unknown key",
            ),
            (
                format!("{keys}credentials = [\"signed-key\"]\n"),
                "auth.api-keys.credentials",
                "unknown key",
            ),
            (
                format!("[auth]\ncredentials = [\"signed-key\"]\n{keys}"),
                "auth.credentials[0]",
                "`signed-key` needs an `[auth.api-keys.signing]` table",
            ),
        ];
        for (text, path, message) in cases {
            let errors = compile(text).unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|(p, m, located)| p == path && m.contains(message) && *located),
                "{text}\n{errors:?}"
            );
        }
    }

    #[test]
    fn query_tokens_only_on_websocket_routes_that_read_jwts() {
        let jwt = "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = { env = \"S\" }\n";
        let text = format!(
            "environment = \"production\"\n{jwt}[[route]]\nname = \"ws\"\npaths = [\"/ws\"]\n\
             websocket = true\n[route.auth]\nquery-token = \"token\"\n"
        );
        let compiled = load_str("auth.toml", &text, &CompileOptions::default()).unwrap();
        let route = &compiled.policy.routes[0];
        assert!(route.websocket);
        assert_eq!(route.auth.query_token.as_deref(), Some("token"));

        let keys = "[auth.api-keys]\nstore = \"sqlite:k.db\"\n";
        let cases: &[(String, &str)] = &[
            (
                format!(
                    "{jwt}[[route]]\nname = \"x\"\npaths = [\"/x\"]\n[route.auth]\nquery-token = \"token\"\n"
                ),
                "only accepted on WebSocket routes",
            ),
            (
                format!(
                    "{jwt}{keys}[[route]]\nname = \"x\"\npaths = [\"/x\"]\nwebsocket = true\n[route.auth]\ncredentials = [\"api-key\"]\nquery-token = \"token\"\n"
                ),
                "must include \"jwt\"",
            ),
            (
                format!(
                    "{jwt}[[route]]\nname = \"x\"\npaths = [\"/x\"]\nwebsocket = true\n[route.auth]\nquery-token = \"a b\"\n"
                ),
                "is not a query parameter name",
            ),
        ];
        for (text, message) in cases {
            let errors = compile(text).unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|(p, m, located)| p == "route[0].auth.query-token"
                        && m.contains(message)
                        && *located),
                "{text}\n{errors:?}"
            );
        }
    }

    #[test]
    fn a_literal_secret_is_never_echoed() {
        let errors = compile(
            "[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"hunter2hunter2hunter2hunter2hunter2\"\n",
        )
        .unwrap_err();
        assert!(
            errors.iter().all(|(_, m, _)| !m.contains("hunter2")),
            "{errors:?}"
        );
    }

    #[test]
    fn jwks_from_a_url_with_its_refresh() {
        let auth = compile(
            r#"
[auth.jwt]
algorithms = ["RS256"]
jwks-refresh = "2m"
[auth.jwt.tenants.acme]
jwks = { url = "https://idp.example/.well-known/jwks.json?realm=acme" }
[auth.jwt.tenants.globex]
jwks = { file = "/etc/portcullis/globex.json" }
"#,
        )
        .unwrap();
        let jwt = auth.jwt.unwrap();
        assert_eq!(jwt.jwks_refresh, Duration::from_secs(120));
        let (tenant, source) = &jwt.tenants[0];
        assert_eq!(tenant, "acme");
        assert_eq!(source.at.to_string(), "auth.jwt.tenants.acme.jwks");
        let JwtKeyKind::JwksUrl(url) = &source.kind else {
            panic!("{source:?}");
        };
        assert_eq!(url.host(), Some("idp.example"));
        assert_eq!(url.path(), "/.well-known/jwks.json");

        // The default refresh, and the minimum accepted as is.
        let jwt = compile(
            "[auth.jwt]\nalgorithms = [\"ES256\"]\njwks = { url = \"https://idp.example/k\" }\n",
        )
        .unwrap()
        .jwt
        .unwrap();
        assert_eq!(jwt.jwks_refresh, DEFAULT_JWKS_REFRESH);
        let jwt = compile(
            "[auth.jwt]\nalgorithms = [\"ES256\"]\njwks = { url = \"https://idp.example/k\" }\njwks-refresh = \"30s\"\n",
        )
        .unwrap()
        .jwt
        .unwrap();
        assert_eq!(jwt.jwks_refresh, MIN_JWKS_REFRESH);
    }

    #[test]
    fn plain_http_jwks_stops_production_and_warns_elsewhere() {
        let auth = "[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = { url = \"http://127.0.0.1:8080/jwks.json?token=s3cr3t\" }\n";
        let errors = compile(auth).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (path, message, located) = &errors[0];
        assert_eq!(path, "auth.jwt.jwks");
        assert!(message.contains("plain http"), "{message}");
        assert!(located, "the error points at the line");
        assert!(!message.contains("s3cr3t"), "{message}");

        for environment in ["development", "test"] {
            let text = format!("environment = \"{environment}\"\n{auth}");
            let compiled = load_str("auth.toml", &text, &CompileOptions::default()).unwrap();
            let warnings: Vec<_> = compiled.warnings.iter().collect();
            assert_eq!(warnings.len(), 1, "{environment}: {warnings:?}");
            assert_eq!(warnings[0].path.to_string(), "auth.jwt.jwks");
            assert!(compiled.policy.auth.jwt.is_some());
        }
        // The rendered error names the file and line.
        let text = format!("environment = \"production\"\n{auth}");
        let rendered = load_str("gateway.toml", &text, &CompileOptions::default())
            .unwrap_err()
            .render();
        assert!(rendered.contains("gateway.toml:4"), "{rendered}");
        assert!(rendered.contains("auth.jwt.jwks"), "{rendered}");
    }

    #[test]
    fn jwks_refresh_without_a_url_is_a_warning() {
        let text = "environment = \"production\"\n[auth.jwt]\nalgorithms = [\"RS256\"]\njwks = { file = \"/k.json\" }\njwks-refresh = \"1m\"\n";
        let compiled = load_str("auth.toml", text, &CompileOptions::default()).unwrap();
        let warnings: Vec<_> = compiled.warnings.iter().collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].path.to_string(), "auth.jwt.jwks-refresh");
    }
}
