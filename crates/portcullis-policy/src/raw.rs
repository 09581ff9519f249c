//! The serde mirror of the policy file: exactly what the TOML says, before any validation.
//!
//! Every field is optional here so that a missing key becomes a diagnostic with a position
//! rather than a serde error that stops the load. Unknown keys are not rejected by serde:
//! `serde_ignored` reports each one so that *all* of them can be listed at once. The top-level
//! sections (and each `[[route]]`) are deserialised one by one, so a wrong type in one section
//! does not hide the problems of the others.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

#[derive(Debug, Default)]
pub struct RawPolicy {
    /// Keys already reported (type errors, unreadable sections): not reported again as missing.
    pub failed: Vec<crate::key_path::KeyPath>,
    pub environment: Option<String>,
    pub server: Option<RawServer>,
    pub upstream: Option<RawUpstream>,
    pub correlation_id: Option<RawCorrelationId>,
    pub errors: Option<RawErrors>,
    pub logging: Option<RawLogging>,
    pub headers: Option<RawHeaders>,
    pub default_route: Option<RawRouteBody>,
    pub route: Vec<RawRoute>,
    pub disclosure: Option<RawDisclosure>,
    /// `[cors.NAME]`: named CORS policies routes refer to.
    pub cors: Option<BTreeMap<String, RawCors>>,
    pub csrf: Option<RawCsrf>,
    /// `[cookies.NAME]`, and `[cookies."*"]` for every other cookie.
    pub cookies: Option<BTreeMap<String, RawCookie>>,
    pub auth: Option<RawAuth>,
    /// `[admin]`: the admin HTTP API (its raw type lives with its `build`).
    pub admin: Option<crate::admin::RawAdmin>,
    /// `[ip-filter]`: the global IP allow/deny lists.
    pub ip_filter: Option<crate::ip_filter::RawIpFilter>,
    /// `[rate-limit]`: quotas, overrides and the counters' store.
    pub rate_limit: Option<crate::rate_limit::RawRateLimits>,
    /// `[lockout]`: progressive lockout rules for login routes.
    pub lockout: Option<crate::lockout::RawLockout>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawServer {
    pub listen: Option<String>,
    pub header_read_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub max_header_count: Option<i64>,
    pub ipv6_bucket: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawUpstream {
    pub url: Option<String>,
    pub protocol: Option<String>,
    pub connect_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<i64>,
    pub preserve_host: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawCorrelationId {
    pub header: Option<String>,
    pub accept: Option<Vec<String>>,
    pub max_length: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawErrors {
    pub expose_detail: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawLogging {
    pub format: Option<String>,
    pub access_log: Option<bool>,
    pub level: Option<String>,
}

/// `[headers]` globally, or `[route.headers]` per route.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawHeaders {
    /// Start from the built-in secure set (global only).
    pub defaults: Option<bool>,
    #[serde(default)]
    pub set: BTreeMap<String, RawHeaderValue>,
    /// Header name -> the reason it is deliberately not sent.
    #[serde(default)]
    pub not_set: BTreeMap<String, String>,
    /// Response headers removed from upstream responses (global only).
    pub remove: Option<Vec<String>>,
}

/// A header value: `name = "value"`, or `name = { value = "...", reason = "...", environments = [...] }`.
#[derive(Debug, Default)]
pub struct RawHeaderValue {
    pub value: Option<String>,
    pub reason: Option<String>,
    pub environments: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawHeaderTable {
    value: Option<String>,
    reason: Option<String>,
    environments: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for RawHeaderValue {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueOrTable;

        impl<'de> Visitor<'de> for ValueOrTable {
            type Value = RawHeaderValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a header value string, or a table with `value`, `reason`, `environments`",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawHeaderValue {
                    value: Some(v.to_owned()),
                    ..RawHeaderValue::default()
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let table =
                    RawHeaderTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawHeaderValue {
                    value: table.value,
                    reason: table.reason,
                    environments: table.environments,
                })
            }
        }

        deserializer.deserialize_any(ValueOrTable)
    }
}

/// What a route and the default route share.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawRouteBody {
    pub cache_control: Option<String>,
    pub reason: Option<String>,
    pub headers: Option<RawHeaders>,
    pub cors: Option<String>,
    pub auth: Option<RawRouteAuth>,
    pub ip_filter: Option<crate::ip_filter::RawIpFilter>,
    pub rate_limit: Option<Vec<String>>,
    pub lockout: Option<String>,
    pub html: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawRoute {
    pub name: Option<String>,
    pub paths: Option<Vec<String>>,
    pub cache_control: Option<String>,
    pub reason: Option<String>,
    pub headers: Option<RawHeaders>,
    pub cors: Option<String>,
    pub auth: Option<RawRouteAuth>,
    pub websocket: Option<bool>,
    pub ip_filter: Option<crate::ip_filter::RawIpFilter>,
    pub rate_limit: Option<Vec<String>>,
    pub lockout: Option<String>,
    pub html: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawDisclosure {
    pub contact: Option<Vec<String>>,
    pub expires: Option<toml::value::Datetime>,
    pub encryption: Option<Vec<String>>,
    pub policy: Option<String>,
    pub acknowledgments: Option<String>,
    pub preferred_languages: Option<String>,
    pub canonical: Option<Vec<String>>,
    pub hiring: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawCors {
    pub origins: Option<RawOrigins>,
    pub methods: Option<Vec<String>>,
    pub allow_headers: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    pub max_age: Option<String>,
    pub credentials: Option<bool>,
    pub reason: Option<String>,
}

/// An origin list: the same in every environment (`["https://a"]`), or one list per
/// environment (`{ development = [...], production = [...] }`).
#[derive(Debug)]
pub enum RawOrigins {
    Everywhere(Vec<String>),
    PerEnvironment(RawOriginsByEnvironment),
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawOriginsByEnvironment {
    pub development: Option<Vec<String>>,
    pub test: Option<Vec<String>>,
    pub production: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for RawOrigins {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListOrTable;

        impl<'de> Visitor<'de> for ListOrTable {
            type Value = RawOrigins;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of origins, or a table of lists keyed by environment (`development`, `test`, `production`)")
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(RawOrigins::Everywhere)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawOriginsByEnvironment::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawOrigins::PerEnvironment)
            }
        }

        deserializer.deserialize_any(ListOrTable)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawCsrf {
    pub mode: Option<String>,
    pub trusted_origins: Option<RawOrigins>,
    pub api_key_headers: Option<Vec<String>>,
    pub session_cookies: Option<Vec<String>>,
    pub exempt: Option<Vec<RawCsrfExempt>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawCsrfExempt {
    pub path: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawCookie {
    pub secure: Option<bool>,
    pub http_only: Option<bool>,
    pub same_site: Option<String>,
    pub path: Option<String>,
    pub reason: Option<String>,
}

/// `[auth]`: how callers are identified.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawAuth {
    pub credentials: Option<Vec<String>>,
    pub tenant_header: Option<String>,
    pub identity_headers: Option<RawIdentityHeaders>,
    pub api_keys: Option<RawApiKeys>,
    pub jwt: Option<RawJwt>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawIdentityHeaders {
    pub tenant: Option<String>,
    pub subject: Option<String>,
    pub key_id: Option<String>,
    pub role: Option<String>,
    pub scopes: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawApiKeys {
    pub prefix: Option<String>,
    pub store: Option<RawSecret>,
    pub rotation_grace: Option<String>,
    pub cache_ttl: Option<String>,
    pub signing: Option<RawSigning>,
}

/// `[auth.api-keys.signing]`: keys whose requests are signed.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawSigning {
    pub timestamp_header: Option<String>,
    pub signature_header: Option<String>,
    pub max_skew: Option<String>,
    pub max_body: Option<String>,
    pub replay: Option<RawSecret>,
    pub key_encryption_key: Option<RawSecret>,
}

/// `[auth.jwt]`: bearer tokens signed by an identity provider.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawJwt {
    pub algorithms: Option<Vec<String>>,
    pub secret: Option<RawSecret>,
    pub jwks: Option<RawJwks>,
    pub jwks_refresh: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<Vec<String>>,
    pub leeway: Option<String>,
    pub max_lifetime: Option<String>,
    pub claims: Option<RawJwtClaims>,
    /// `[auth.jwt.tenants.NAME]`: per-tenant verification keys.
    pub tenants: Option<BTreeMap<String, RawJwtTenant>>,
}

/// `[auth.jwt.claims]`: which claim carries what.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawJwtClaims {
    pub subject: Option<String>,
    pub tenant: Option<String>,
    pub role: Option<String>,
    pub registered_roles: Option<Vec<String>>,
    pub scopes: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawJwtTenant {
    pub secret: Option<RawSecret>,
    pub jwks: Option<RawJwks>,
}

/// `jwks`: `{ file = "PATH" }` or `{ url = "https://..." }`. A literal string and `env` are
/// read too, only so that the compiler can refuse them with a message that says what to write.
#[derive(Debug)]
pub enum RawJwks {
    Literal(String),
    Reference(RawJwksReference),
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawJwksReference {
    pub env: Option<String>,
    pub file: Option<String>,
    pub url: Option<String>,
}

impl<'de> Deserialize<'de> for RawJwks {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringOrReference;

        impl<'de> Visitor<'de> for StringOrReference {
            type Value = RawJwks;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`{ file = \"PATH\" }` or `{ url = \"https://...\" }`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawJwks::Literal(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawJwksReference::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawJwks::Reference)
            }
        }

        deserializer.deserialize_any(StringOrReference)
    }
}

/// `[route.auth]` / `[default-route.auth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawRouteAuth {
    pub mode: Option<String>,
    pub credentials: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub require_registered: Option<bool>,
    pub query_token: Option<String>,
}

/// A value that may be secret: a literal string, or `{ env = "NAME" }` / `{ file = "PATH" }`.
#[derive(Debug)]
pub enum RawSecret {
    Literal(String),
    Reference(RawSecretReference),
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawSecretReference {
    pub env: Option<String>,
    pub file: Option<String>,
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringOrReference;

        impl<'de> Visitor<'de> for StringOrReference {
            type Value = RawSecret;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, or `{ env = \"NAME\" }` / `{ file = \"PATH\" }`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawSecret::Literal(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawSecretReference::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSecret::Reference)
            }
        }

        deserializer.deserialize_any(StringOrReference)
    }
}
