//! JWT bearer tokens (RFC 7519) as a credential: verified synchronously with keys held in
//! memory, and mapped to an [`Identity`].
//!
//! A [`JwtVerifier`] is built once (the builder refuses a configuration that could be
//! confused, rather than discovering it per request) and then checks each token in this order;
//! the first failure refuses it with a fixed reason for the log, never the token:
//!
//! 1. shape and header: three base64url parts and a known `alg` (`none` is not one); a `crit`
//!    header is refused, since no extension is understood;
//! 2. the token's `alg` must be one the verifier was built with: the token never chooses the
//!    kind of key (so an `HS256` token cannot make an RSA public key act as an HMAC secret);
//! 3. the key. With per-tenant keys, the tenant claim, read *before* verification, picks the
//!    tenant and only that tenant's key is tried (an unknown tenant is refused; there is no
//!    fallback key). In a JWKS, the token's `kid` picks the key (a token without `kid` only
//!    when the set holds one key), and the key's type, curve and declared `alg` must fit the
//!    token's `alg`. A [`SharedJwks`] (a set its owner replaces, e.g. fetched from a URL) is
//!    read as a snapshot; a `kid` it does not have is refused and asks for a refresh;
//! 4. signature, then `exp` (always required), `nbf`, `iss` and `aud`, with the leeway (done by
//!    `jsonwebtoken`);
//! 5. with a maximum lifetime: `iat` is required and `exp - iat` may not exceed it;
//! 6. the claims mapped to the identity: the tenant (required), subject, role and scopes. A
//!    value that the identity headers could not carry faithfully (a scope with a comma, a
//!    control character) refuses the token rather than reaching the upstream altered.
//!
//! Keys are `jsonwebtoken::DecodingKey`s, which zeroize their bytes on drop; the `Debug` output
//! of everything here shows no key material.
//!
//! ```
//! use jsonwebtoken::{EncodingKey, Header, encode};
//! use portcullis_layers::jwt::{JwtKey, JwtVerifier};
//! use portcullis_layers::auth::{CredentialKind, Role};
//!
//! let secret = b"0123456789abcdef0123456789abcdef";
//! let verifier = JwtVerifier::builder(["HS256"])
//!     .key(JwtKey::secret(secret).unwrap())
//!     .build()
//!     .unwrap();
//!
//! let exp = jsonwebtoken::get_current_timestamp() + 600;
//! let claims = serde_json::json!({ "sub": "u1", "tenant": "acme", "role": "registered", "exp": exp });
//! let token = encode(&Header::default(), &claims, &EncodingKey::from_secret(secret)).unwrap();
//! let identity = verifier.verify(&token).unwrap();
//! assert_eq!(identity.tenant, "acme");
//! assert_eq!(identity.role, Role::Registered);
//! assert_eq!(identity.credential, CredentialKind::Jwt);
//!
//! // Another secret, or no signature at all: refused.
//! let forged = encode(&Header::default(), &claims, &EncodingKey::from_secret(b"guess")).unwrap();
//! assert!(verifier.verify(&forged).is_err());
//! ```

mod shared_jwks;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::auth::{AuthFailure, CredentialKind, Identity, Role};

pub use shared_jwks::{RefreshRequests, SharedJwks, WeakJwks};

/// Longest token read: far above any real one, and a bound on the work a caller can ask for.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// The key ID in the identity when the token names none.
const DEFAULT_KEY_ID: &str = "jwt";

/// Why a verifier could not be built. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    #[error("unknown JWT algorithm `{0}` (`none` is never accepted)")]
    UnknownAlgorithm(String),
    #[error("no JWT algorithm is accepted")]
    NoAlgorithm,
    #[error(
        "HMAC (HS*) and public-key algorithms mixed: a public key could then be used as an HMAC secret"
    )]
    MixedKinds,
    #[error("HS* algorithms verify with a shared secret, not a JWKS")]
    JwksForHmac,
    #[error("public-key algorithms verify with a JWKS, not a shared secret")]
    SecretForPublicKey,
    #[error("an empty HMAC secret")]
    EmptySecret,
    #[error("not a usable JWKS: {0}")]
    Jwks(String),
    #[error("no key in the JWKS can verify the accepted algorithms")]
    NoFittingKey,
    #[error("no verification key")]
    NoKey,
    #[error("a global key and per-tenant keys: the global key would never be used")]
    GlobalAndTenants,
    #[error("a shared JWKS pinned to other algorithms than the verifier's")]
    SharedAlgorithms,
}

/// A verification key: a shared HMAC secret, or a JWKS of public keys.
pub struct JwtKey(Keys);

enum Keys {
    Secret(DecodingKey),
    Set(Vec<SetKey>),
    /// A set replaced while the verifier runs (a JWKS fetched from a URL).
    Shared(SharedJwks),
}

/// One public key of a JWKS, with what it may verify.
struct SetKey {
    kid: Option<String>,
    /// The `alg` the set declares for the key, if any.
    alg: Option<Algorithm>,
    family: AlgorithmFamily,
    /// For EC keys: ES256 needs P-256, ES384 P-384.
    curve: Option<EllipticCurve>,
    key: DecodingKey,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Keys::Secret(_) => f.write_str("JwtKey::Secret([redacted])"),
            Keys::Set(keys) => f
                .debug_struct("JwtKey::Jwks")
                .field(
                    "kids",
                    &keys.iter().map(|k| k.kid.as_deref()).collect::<Vec<_>>(),
                )
                .finish(),
            Keys::Shared(shared) => f.debug_tuple("JwtKey::Shared").field(shared).finish(),
        }
    }
}

impl JwtKey {
    /// A shared HMAC secret, used as the bytes given (copied into a key that zeroizes itself on
    /// drop; the caller zeroizes its own copy).
    pub fn secret(secret: &[u8]) -> Result<Self, JwtConfigError> {
        if secret.is_empty() {
            return Err(JwtConfigError::EmptySecret);
        }
        Ok(Self(Keys::Secret(DecodingKey::from_secret(secret))))
    }

    /// A JWKS document (`{"keys": [...]}`). Keys marked for encryption (`use: enc`, `key_ops`
    /// without `verify`, an encryption `alg`) and key types this crate does not know are
    /// skipped; a symmetric (`oct`) key refuses the whole set: an HMAC secret published next to
    /// public keys is exactly what key-confusion attacks look for. Two keys with one `kid` are
    /// refused too, since `kid` must pick exactly one.
    pub fn jwks(json: &[u8]) -> Result<Self, JwtConfigError> {
        parse_set(json).map(|keys| Self(Keys::Set(keys)))
    }

    /// A JWKS that can be replaced while the verifier runs; see [`SharedJwks`].
    pub fn shared(set: &SharedJwks) -> Self {
        Self(Keys::Shared(set.clone()))
    }
}

/// The signature keys of a JWKS document; see [`JwtKey::jwks`] for what is skipped and what
/// refuses the set.
fn parse_set(json: &[u8]) -> Result<Vec<SetKey>, JwtConfigError> {
    let set: JwkSet =
        serde_json::from_slice(json).map_err(|e| JwtConfigError::Jwks(e.to_string()))?;
    let mut keys: Vec<SetKey> = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let common = &jwk.common;
        if common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        if common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
        {
            continue;
        }
        let alg = match common.key_algorithm {
            None => None,
            Some(declared) => match Algorithm::try_from(declared) {
                Ok(alg) => Some(alg),
                // An encryption algorithm (RSA-OAEP, ...): not a signature key.
                Err(_) => continue,
            },
        };
        let (family, curve) = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
            AlgorithmParameters::EllipticCurve(p) => (AlgorithmFamily::Ec, Some(p.curve.clone())),
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                (AlgorithmFamily::Ed, None)
            }
            AlgorithmParameters::OctetKeyPair(_) => continue,
            AlgorithmParameters::OctetKey(_) => {
                return Err(JwtConfigError::Jwks(format!(
                    "key {i} is a symmetric (`oct`) key; HMAC secrets are never read from a JWKS"
                )));
            }
            _ => continue,
        };
        if alg.is_some_and(|a| a.family() != family) {
            return Err(JwtConfigError::Jwks(format!(
                "key {i} declares an `alg` that does not fit its key type"
            )));
        }
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| JwtConfigError::Jwks(format!("key {i}: {e}")))?;
        let kid = common.key_id.clone();
        if let Some(kid) = &kid
            && keys.iter().any(|k| k.kid.as_ref() == Some(kid))
        {
            return Err(JwtConfigError::Jwks(format!(
                "two keys share the `kid` {kid:?}"
            )));
        }
        keys.push(SetKey {
            kid,
            alg,
            family,
            curve,
            key,
        });
    }
    if keys.is_empty() {
        return Err(JwtConfigError::Jwks(
            "no signature key in the set".to_owned(),
        ));
    }
    Ok(keys)
}

/// The pinned algorithms, parsed: no duplicates, never empty, never HMAC and public-key mixed.
fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, JwtConfigError> {
    let mut algorithms: Vec<Algorithm> = Vec::new();
    for name in names {
        let alg = Algorithm::from_str(name)
            .map_err(|_| JwtConfigError::UnknownAlgorithm(name.clone()))?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    let Some(first) = algorithms.first() else {
        return Err(JwtConfigError::NoAlgorithm);
    };
    let hmac = first.family() == AlgorithmFamily::Hmac;
    if algorithms
        .iter()
        .any(|a| (a.family() == AlgorithmFamily::Hmac) != hmac)
    {
        return Err(JwtConfigError::MixedKinds);
    }
    Ok(algorithms)
}

/// A set must hold a key that one of the pinned algorithms can use: one that cannot would
/// refuse every token, a configuration mistake to report rather than serve.
fn check_fits(set: &[SetKey], algorithms: &[Algorithm]) -> Result<(), JwtConfigError> {
    if set
        .iter()
        .any(|k| algorithms.iter().any(|a| a.family() == k.family))
    {
        Ok(())
    } else {
        Err(JwtConfigError::NoFittingKey)
    }
}

/// Which claim carries what. The defaults: `sub`, `tenant`, `role` (registered when it is
/// `"registered"`), `scope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub subject: String,
    /// Required in every token.
    pub tenant: String,
    pub role: String,
    /// Role claim values that make a registered caller; any other value, or none, is a guest.
    pub registered_roles: Vec<String>,
    /// A space-separated string, or an array of strings.
    pub scopes: String,
}

impl Default for ClaimNames {
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

/// Builds a [`JwtVerifier`]; see [`JwtVerifier::builder`].
#[derive(Debug)]
pub struct JwtVerifierBuilder {
    algorithms: Vec<String>,
    key: Option<JwtKey>,
    tenants: Vec<(String, JwtKey)>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway: Duration,
    max_lifetime: Option<Duration>,
    claims: ClaimNames,
}

impl JwtVerifierBuilder {
    /// The key every token verifies with (without per-tenant keys).
    pub fn key(mut self, key: JwtKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The key of one tenant. With any tenant key, a token verifies only with the key of the
    /// tenant its tenant claim names.
    pub fn tenant_key(mut self, tenant: impl Into<String>, key: JwtKey) -> Self {
        self.tenants.push((tenant.into(), key));
        self
    }

    /// `iss` must be present and equal to this.
    pub fn issuer(mut self, issuer: Option<String>) -> Self {
        self.issuer = issuer;
        self
    }

    /// When non-empty, `aud` must be present and contain one of these. When empty, a token
    /// that carries `aud` is refused (RFC 7519 §4.1.3: a recipient not named in it must).
    pub fn audience(mut self, audience: Vec<String>) -> Self {
        self.audience = audience;
        self
    }

    /// Clock skew allowed on `exp` and `nbf` (default 30 s; whole seconds).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// When set, `iat` is required and `exp - iat` may not exceed it.
    pub fn max_lifetime(mut self, max: Option<Duration>) -> Self {
        self.max_lifetime = max;
        self
    }

    pub fn claims(mut self, claims: ClaimNames) -> Self {
        self.claims = claims;
        self
    }

    pub fn build(self) -> Result<JwtVerifier, JwtConfigError> {
        let algorithms = parse_algorithms(&self.algorithms)?;
        let hmac = algorithms
            .iter()
            .all(|a| a.family() == AlgorithmFamily::Hmac);
        for key in self.key.iter().chain(self.tenants.iter().map(|(_, k)| k)) {
            match &key.0 {
                Keys::Secret(_) if !hmac => return Err(JwtConfigError::SecretForPublicKey),
                Keys::Set(_) | Keys::Shared(_) if hmac => return Err(JwtConfigError::JwksForHmac),
                Keys::Set(set) => check_fits(set, &algorithms)?,
                // Its set was checked against its own algorithms, and so is every later one:
                // they must be these.
                Keys::Shared(shared) if !shared.pinned_to(&algorithms) => {
                    return Err(JwtConfigError::SharedAlgorithms);
                }
                _ => {}
            }
        }
        let keys = match (self.key, self.tenants.is_empty()) {
            (Some(_), false) => return Err(JwtConfigError::GlobalAndTenants),
            (None, true) => return Err(JwtConfigError::NoKey),
            (Some(key), true) => KeySource::Global(key.0),
            (None, false) => KeySource::PerTenant(
                self.tenants
                    .into_iter()
                    .map(|(tenant, key)| (tenant, key.0))
                    .collect(),
            ),
        };
        let validations = algorithms
            .iter()
            .map(|alg| {
                // One algorithm per validation: the key was chosen for exactly this one.
                let mut v = Validation::new(*alg);
                v.leeway = self.leeway.as_secs();
                v.validate_exp = true;
                v.validate_nbf = true;
                v.validate_aud = true;
                let mut required = vec!["exp"];
                if let Some(issuer) = &self.issuer {
                    v.set_issuer(&[issuer]);
                    required.push("iss");
                }
                if !self.audience.is_empty() {
                    v.set_audience(&self.audience);
                    required.push("aud");
                }
                v.set_required_spec_claims(&required);
                (*alg, v)
            })
            .collect();
        Ok(JwtVerifier {
            validations,
            keys,
            max_lifetime: self.max_lifetime.map(|d| d.as_secs()),
            claims: self.claims,
        })
    }
}

enum KeySource {
    Global(Keys),
    PerTenant(HashMap<String, Keys>),
}

/// Verifies JWT bearer tokens; see the module docs. Cheap to share behind an `Arc`.
pub struct JwtVerifier {
    /// One per accepted algorithm.
    validations: Vec<(Algorithm, Validation)>,
    keys: KeySource,
    max_lifetime: Option<u64>,
    claims: ClaimNames,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tenants: Vec<&str> = match &self.keys {
            KeySource::Global(_) => Vec::new(),
            KeySource::PerTenant(map) => map.keys().map(String::as_str).collect(),
        };
        tenants.sort_unstable();
        f.debug_struct("JwtVerifier")
            .field(
                "algorithms",
                &self.validations.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            )
            .field("tenants", &tenants)
            .field("max_lifetime", &self.max_lifetime)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier accepting exactly these algorithms (`"HS256"`, `"RS256"`, `"EdDSA"`, ...).
    pub fn builder<I, S>(algorithms: I) -> JwtVerifierBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        JwtVerifierBuilder {
            algorithms: algorithms
                .into_iter()
                .map(|a| a.as_ref().to_owned())
                .collect(),
            key: None,
            tenants: Vec::new(),
            issuer: None,
            audience: Vec::new(),
            leeway: Duration::from_secs(30),
            max_lifetime: None,
            claims: ClaimNames::default(),
        }
    }

    /// Verifies a token (the part after `Bearer `). The failure's reason is for the log: it
    /// names what was wrong, never the token or a claim's value.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthFailure> {
        self.check(token).map_err(AuthFailure::Rejected)
    }

    fn check(&self, token: &str) -> Result<Identity, String> {
        if token.len() > MAX_TOKEN_LEN {
            return Err("the token is too long".to_owned());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| describe(&e))?;
        if header.crit.is_some() {
            return Err("the token has critical header extensions (`crit`)".to_owned());
        }
        let alg = header.alg;
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == alg) else {
            return Err(format!("the algorithm {alg:?} is not accepted"));
        };
        let (keys, tenant) = match &self.keys {
            KeySource::Global(keys) => (keys, None),
            KeySource::PerTenant(map) => {
                // Unverified on purpose: it only picks the key. The verified claims must then
                // name the same tenant (they are the same bytes; checked below all the same).
                let claims: Map<String, Value> =
                    jsonwebtoken::dangerous::insecure_decode_claims(token)
                        .map_err(|e| describe(&e))?;
                let tenant = match claims.get(&self.claims.tenant) {
                    Some(Value::String(t)) => t.clone(),
                    Some(_) => return Err("the tenant claim is not a string".to_owned()),
                    None => return Err("the token names no tenant".to_owned()),
                };
                let Some(keys) = map.get(&tenant) else {
                    return Err("the token names a tenant that has no key".to_owned());
                };
                (keys, Some(tenant))
            }
        };
        let current = Current::of(keys);
        let key = match select_key(&current, alg, header.kid.as_deref()) {
            Ok(key) => key,
            Err(KeyMiss::Other(reason)) => return Err(reason),
            Err(KeyMiss::UnknownKid) => {
                if let Keys::Shared(shared) = keys {
                    // Only a request: this token is refused now, never held up by a fetch.
                    shared.request_refresh();
                    return Err(
                        "the token's `kid` names no key in the JWKS (a refresh is requested)"
                            .to_owned(),
                    );
                }
                return Err("the token's `kid` names no key in the JWKS".to_owned());
            }
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
            .map_err(|e| describe(&e))?;
        let claims = data.claims;
        if let Some(max) = self.max_lifetime {
            let iat = numeric(claims.get("iat"))
                .ok_or("no numeric `iat` claim, required with a maximum lifetime")?;
            let exp = numeric(claims.get("exp")).ok_or("no numeric `exp` claim")?;
            let lifetime = exp.checked_sub(iat).ok_or("`exp` is before `iat`")?;
            if lifetime > max {
                return Err(format!(
                    "the token lives {lifetime} s, over the maximum of {max} s"
                ));
            }
        }
        let identity = self.identity(&claims, header.kid)?;
        if tenant.is_some_and(|t| t != identity.tenant) {
            return Err("the verified tenant differs from the one that chose the key".to_owned());
        }
        Ok(identity)
    }

    fn identity(
        &self,
        claims: &Map<String, Value>,
        kid: Option<String>,
    ) -> Result<Identity, String> {
        let names = &self.claims;
        let tenant = match claims.get(&names.tenant) {
            Some(Value::String(t)) if is_token_value(t, 128) => t.clone(),
            Some(Value::String(_)) => {
                return Err("the tenant claim is not 1 to 128 visible ASCII characters".to_owned());
            }
            Some(_) => return Err("the tenant claim is not a string".to_owned()),
            None => return Err("the token names no tenant".to_owned()),
        };
        let subject = match claims.get(&names.subject) {
            None => None,
            Some(Value::String(s)) if is_header_text(s, 256) => Some(s.clone()),
            Some(_) => {
                return Err(
                    "the subject claim is not a string of 1 to 256 printable ASCII characters"
                        .to_owned(),
                );
            }
        };
        let role = match claims.get(&names.role) {
            Some(Value::String(r)) if names.registered_roles.contains(r) => Role::Registered,
            _ => Role::Guest,
        };
        let scopes: Vec<String> = match claims.get(&names.scopes) {
            None => Vec::new(),
            Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or("the scopes claim holds something other than strings")?,
            Some(_) => {
                return Err("the scopes claim is neither a string nor an array".to_owned());
            }
        };
        // The scopes header joins them with commas: a scope with one (or a space, or nothing)
        // would reach the upstream as other scopes than the token's.
        if !scopes
            .iter()
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b','))
        {
            return Err("a scope is not visible ASCII without `,`".to_owned());
        }
        let key_id = match kid {
            None => DEFAULT_KEY_ID.to_owned(),
            Some(kid) if is_token_value(&kid, 128) => kid,
            Some(_) => return Err("the `kid` is not 1 to 128 visible ASCII characters".to_owned()),
        };
        let token_id = match claims.get("jti") {
            None => None,
            Some(Value::String(j)) if is_token_value(j, 256) => Some(j.clone()),
            Some(_) => {
                return Err("the `jti` claim is not 1 to 256 visible ASCII characters".to_owned());
            }
        };
        Ok(Identity {
            tenant,
            subject,
            key_id,
            role,
            scopes,
            credential: CredentialKind::Jwt,
            token_id,
        })
    }
}

/// The keys for one verification: a shared set's are a snapshot (a reference count, no copy).
enum Current<'a> {
    Secret(&'a DecodingKey),
    Set(&'a [SetKey]),
    Snapshot(Arc<Vec<SetKey>>),
}

impl<'a> Current<'a> {
    fn of(keys: &'a Keys) -> Self {
        match keys {
            Keys::Secret(key) => Current::Secret(key),
            Keys::Set(set) => Current::Set(set),
            Keys::Shared(shared) => Current::Snapshot(shared.current()),
        }
    }
}

/// The key of `keys` that may verify an `alg` token naming `kid`.
fn select_key<'a>(
    keys: &'a Current<'_>,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<&'a DecodingKey, KeyMiss> {
    let set = match keys {
        // The builder only pairs a secret with HS* algorithms, and `alg` is one of those.
        Current::Secret(key) => return Ok(key),
        Current::Set(set) => set,
        Current::Snapshot(set) => set.as_slice(),
    };
    let key = match (kid, set) {
        (Some(kid), _) => set
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or(KeyMiss::UnknownKid)?,
        (None, [only]) => only,
        (None, _) => {
            return Err(KeyMiss::Other(
                "the token has no `kid` and the JWKS holds several keys".to_owned(),
            ));
        }
    };
    if key.family != alg.family() || key.alg.is_some_and(|a| a != alg) {
        return Err(KeyMiss::Other(format!(
            "the key the token names is not a key for {alg:?}"
        )));
    }
    let curve_fits = matches!(
        (&key.curve, alg),
        (None, _)
            | (Some(EllipticCurve::P256), Algorithm::ES256)
            | (Some(EllipticCurve::P384), Algorithm::ES384)
    );
    if !curve_fits {
        return Err(KeyMiss::Other(format!(
            "the key the token names is on another curve than {alg:?} needs"
        )));
    }
    Ok(&key.key)
}

/// Why no key was chosen. An unknown `kid` is told apart: for a shared set it asks for a
/// refresh (the provider may have rotated its keys).
enum KeyMiss {
    UnknownKid,
    Other(String),
}

/// A log reason for a `jsonwebtoken` error: a fixed text, since some errors carry fragments of
/// the token's JSON.
fn describe(error: &JwtError) -> String {
    match error.kind() {
        ErrorKind::InvalidToken => "not a well-formed JWT".to_owned(),
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "the algorithm does not fit the key".to_owned()
        }
        ErrorKind::ExpiredSignature => "expired (`exp`)".to_owned(),
        ErrorKind::ImmatureSignature => "not valid yet (`nbf`)".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer (`iss`)".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience (`aud`)".to_owned(),
        // The claim names come from the verifier's own list (`exp`, `iss`, `aud`). Absent and
        // of the wrong type look the same to `jsonwebtoken`.
        ErrorKind::MissingRequiredClaim(claim) => format!("no usable `{claim}` claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the `{claim}` claim is malformed"),
        ErrorKind::Base64(_) => "a part is not base64url".to_owned(),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "the header or payload is not valid JSON, or names an unsupported algorithm such as `none`"
                .to_owned()
        }
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => "the key cannot verify this token".to_owned(),
        _ => "invalid token".to_owned(),
    }
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional.
fn numeric(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    })
}

/// 1 to `max` visible ASCII characters: no spaces, nothing a header would alter.
fn is_token_value(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

/// 1 to `max` printable ASCII characters, spaces allowed.
fn is_header_text(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.len()) && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use data_encoding::BASE64URL_NOPAD;
    use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER_SECRET: &[u8] = b"fedcba9876543210fedcba9876543210";

    // Test-only keys, generated with `openssl genpkey`: an EC P-256 key and an Ed25519 key.
    const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7FLeDEDi1OLJdBTP
H7Zqyp/nbRPt2OeONqWEYqpgQ4mhRANCAATHsBaK0RjMD5HzTjEfQpo0dKVpu7Py
xNFS9NMfoOto/0Np2imjvEdB29JRXvCfm/nN+9Vi9sNo/sOyvgx60CQi
-----END PRIVATE KEY-----
";
    const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEx7AWitEYzA+R804xH0KaNHSlabuz
8sTRUvTTH6DraP9Dadopo7xHQdvSUV7wn5v5zfvVYvbDaP7Dsr4MetAkIg==
-----END PUBLIC KEY-----
";
    const EC_X: &str = "x7AWitEYzA-R804xH0KaNHSlabuz8sTRUvTTH6DraP8";
    const EC_Y: &str = "Q2naKaO8R0Hb0lFe8J-b-c371WL2w2j-w7K-DHrQJCI";
    const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEICLmVfAGuIGLkkX8lR5c39Mz53KB9Begq9WHi2jzyv15
-----END PRIVATE KEY-----
";
    const ED_X: &str = "PANNUiG9hRTnFCLvhrMBuYZSTe2834Eb97mY2pvJv3U";

    fn now() -> u64 {
        get_current_timestamp()
    }

    fn claims() -> Value {
        json!({
            "sub": "user-1",
            "tenant": "acme",
            "role": "registered",
            "scope": "read write",
            "iat": now(),
            "exp": now() + 600,
        })
    }

    fn with(mut base: Value, changes: Value) -> Value {
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    }

    fn hs(claims: &Value, secret: &[u8]) -> String {
        encode(
            &Header::default(),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn hs_verifier() -> JwtVerifier {
        JwtVerifier::builder(["HS256"])
            .key(JwtKey::secret(SECRET).unwrap())
            .build()
            .unwrap()
    }

    fn jwks() -> String {
        json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig", "alg": "ES256", "x": EC_X, "y": EC_Y},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": ED_X},
            {"kty": "RSA", "kid": "enc-1", "use": "enc", "n": "AQAB", "e": "AQAB"},
        ]})
        .to_string()
    }

    fn signed(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
            _ => EncodingKey::from_secret(SECRET),
        };
        encode(&header, claims, &key).unwrap()
    }

    fn reason(result: Result<Identity, AuthFailure>) -> String {
        match result {
            Err(AuthFailure::Rejected(reason)) => reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    /// A token with any header, unsigned or with a junk signature.
    fn handmade(header: &Value, claims: &Value, signature: &str) -> String {
        format!(
            "{}.{}.{signature}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn a_valid_token_maps_its_claims() {
        let identity = hs_verifier().verify(&hs(&claims(), SECRET)).unwrap();
        assert_eq!(
            identity,
            Identity {
                tenant: "acme".into(),
                subject: Some("user-1".into()),
                key_id: "jwt".into(),
                role: Role::Registered,
                scopes: vec!["read".into(), "write".into()],
                credential: CredentialKind::Jwt,
                token_id: None,
            }
        );

        // Scopes as an array; no role is a guest, and so is an unknown one.
        let token = hs(
            &with(claims(), json!({"scope": ["a", "b:c"], "role": null})),
            SECRET,
        );
        let identity = hs_verifier().verify(&token).unwrap();
        assert_eq!(identity.scopes, ["a", "b:c"]);
        assert_eq!(identity.role, Role::Guest);
        let token = hs(&with(claims(), json!({"role": "admin"})), SECRET);
        assert_eq!(hs_verifier().verify(&token).unwrap().role, Role::Guest);
    }

    #[test]
    fn claim_names_come_from_the_configuration() {
        let verifier = JwtVerifier::builder(["HS256"])
            .key(JwtKey::secret(SECRET).unwrap())
            .claims(ClaimNames {
                subject: "uid".into(),
                tenant: "app_id".into(),
                role: "kind".into(),
                registered_roles: vec!["member".into(), "owner".into()],
                scopes: "perms".into(),
            })
            .build()
            .unwrap();
        let token = hs(
            &json!({"uid": "u9", "app_id": "drift", "kind": "owner", "perms": "x", "exp": now() + 60}),
            SECRET,
        );
        let identity = verifier.verify(&token).unwrap();
        assert_eq!(
            (
                identity.tenant.as_str(),
                identity.subject.as_deref(),
                identity.role
            ),
            ("drift", Some("u9"), Role::Registered)
        );
        assert_eq!(identity.scopes, ["x"]);
        // The default claim names mean nothing here.
        assert!(reason(verifier.verify(&hs(&claims(), SECRET))).contains("no tenant"));
    }

    #[test]
    fn unsigned_and_confused_tokens_are_refused() {
        let verifier = hs_verifier();
        let none = handmade(&json!({"alg": "none", "typ": "JWT"}), &claims(), "");
        assert!(reason(verifier.verify(&none)).contains("unsupported algorithm such as `none`"));
        let none = handmade(&json!({"alg": "None"}), &claims(), "");
        assert!(verifier.verify(&none).is_err());

        // Another HMAC than the pinned one.
        let hs384 = encode(
            &Header::new(Algorithm::HS384),
            &claims(),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(
            reason(verifier.verify(&hs384)),
            "the algorithm HS384 is not accepted"
        );

        // HS/EC confusion: an HS256 token whose "secret" is the public key the ES256 policy
        // trusts.
        let ec = JwtVerifier::builder(["ES256"])
            .key(JwtKey::jwks(jwks().as_bytes()).unwrap())
            .build()
            .unwrap();
        for public in [EC_PUBLIC.as_bytes(), EC_X.as_bytes()] {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("ec-1".into());
            let confused = encode(&header, &claims(), &EncodingKey::from_secret(public)).unwrap();
            assert_eq!(
                reason(ec.verify(&confused)),
                "the algorithm HS256 is not accepted"
            );
        }
        assert!(
            ec.verify(&signed(Algorithm::ES256, Some("ec-1"), &claims()))
                .is_ok()
        );

        // `crit` names extensions this verifier does not understand.
        let header = Header {
            crit: Some(vec!["exp".into()]),
            ..Header::default()
        };
        let token = encode(&header, &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
        assert!(reason(verifier.verify(&token)).contains("`crit`"));
    }

    #[test]
    fn signatures_must_verify() {
        let verifier = hs_verifier();
        assert_eq!(
            reason(verifier.verify(&hs(&claims(), OTHER_SECRET))),
            "bad signature"
        );
        // A payload swapped under a valid signature.
        let token = hs(&claims(), SECRET);
        let parts: Vec<&str> = token.split('.').collect();
        let other = BASE64URL_NOPAD.encode(
            with(claims(), json!({"tenant": "globex"}))
                .to_string()
                .as_bytes(),
        );
        let tampered = format!("{}.{other}.{}", parts[0], parts[2]);
        assert_eq!(reason(verifier.verify(&tampered)), "bad signature");
        for junk in ["", "abc", "a.b", "a.b.c.d", &"x".repeat(MAX_TOKEN_LEN + 1)] {
            assert!(verifier.verify(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn time_claims_with_leeway() {
        let verifier = hs_verifier();
        let cases = [
            (json!({"exp": null}), Some("no usable `exp` claim")),
            (json!({"exp": "tomorrow"}), Some("no usable `exp` claim")),
            (
                json!({"nbf": "tomorrow"}),
                Some("the `nbf` claim is malformed"),
            ),
            (json!({"exp": now() - 120}), Some("expired (`exp`)")),
            // Within the default 30 s leeway.
            (json!({"exp": now() - 10}), None),
            (json!({"nbf": now() + 120}), Some("not valid yet (`nbf`)")),
            (json!({"nbf": now() + 10}), None),
            (json!({"nbf": now() - 10}), None),
        ];
        for (change, expected) in cases {
            let result = verifier.verify(&hs(&with(claims(), change.clone()), SECRET));
            match expected {
                None => assert!(result.is_ok(), "{change}: {result:?}"),
                Some(expected) => assert_eq!(reason(result), expected, "{change}"),
            }
        }
        let strict = JwtVerifier::builder(["HS256"])
            .key(JwtKey::secret(SECRET).unwrap())
            .leeway(Duration::ZERO)
            .build()
            .unwrap();
        assert!(
            strict
                .verify(&hs(&with(claims(), json!({"exp": now() - 10})), SECRET))
                .is_err()
        );
    }

    #[test]
    fn issuer_and_audience() {
        let verifier = JwtVerifier::builder(["HS256"])
            .key(JwtKey::secret(SECRET).unwrap())
            .issuer(Some("https://auth.example.com".into()))
            .audience(vec!["api".into(), "admin".into()])
            .build()
            .unwrap();
        let good = json!({"iss": "https://auth.example.com", "aud": ["web", "api"]});
        assert!(
            verifier
                .verify(&hs(&with(claims(), good.clone()), SECRET))
                .is_ok()
        );
        let single = json!({"iss": "https://auth.example.com", "aud": "admin"});
        assert!(
            verifier
                .verify(&hs(&with(claims(), single), SECRET))
                .is_ok()
        );
        for (change, expected) in [
            (
                json!({"iss": "https://evil.example"}),
                "wrong issuer (`iss`)",
            ),
            (json!({"iss": null}), "no usable `iss` claim"),
            (json!({"aud": "web"}), "wrong audience (`aud`)"),
            (json!({"aud": null}), "no usable `aud` claim"),
        ] {
            let token = hs(&with(with(claims(), good.clone()), change.clone()), SECRET);
            assert_eq!(reason(verifier.verify(&token)), expected, "{change}");
        }
        // Without an audience in the configuration, a token addressed to someone is refused.
        let token = hs(&with(claims(), json!({"aud": "api"})), SECRET);
        assert_eq!(
            reason(hs_verifier().verify(&token)),
            "wrong audience (`aud`)"
        );
    }

    #[test]
    fn max_lifetime_needs_iat() {
        let verifier = JwtVerifier::builder(["HS256"])
            .key(JwtKey::secret(SECRET).unwrap())
            .max_lifetime(Some(Duration::from_secs(3600)))
            .build()
            .unwrap();
        let t = now();
        assert!(
            verifier
                .verify(&hs(
                    &with(claims(), json!({"iat": t, "exp": t + 3600})),
                    SECRET
                ))
                .is_ok()
        );
        assert_eq!(
            reason(verifier.verify(&hs(
                &with(claims(), json!({"iat": t, "exp": t + 3601})),
                SECRET
            ))),
            "the token lives 3601 s, over the maximum of 3600 s"
        );
        assert!(
            reason(verifier.verify(&hs(&with(claims(), json!({"iat": null})), SECRET)))
                .contains("`iat`")
        );
        assert_eq!(
            reason(verifier.verify(&hs(
                &with(claims(), json!({"iat": t + 900, "exp": t + 600})),
                SECRET
            ))),
            "`exp` is before `iat`"
        );
        // Without a maximum, `iat` is optional.
        assert!(
            hs_verifier()
                .verify(&hs(&with(claims(), json!({"iat": null})), SECRET))
                .is_ok()
        );
    }

    #[test]
    fn claims_the_headers_could_not_carry_are_refused() {
        let verifier = hs_verifier();
        for (change, expected) in [
            (json!({"tenant": null}), "the token names no tenant"),
            (json!({"tenant": 7}), "the tenant claim is not a string"),
            (
                json!({"tenant": ""}),
                "the tenant claim is not 1 to 128 visible ASCII characters",
            ),
            (
                json!({"tenant": "ac me"}),
                "the tenant claim is not 1 to 128 visible ASCII characters",
            ),
            (
                json!({"sub": "a\nb"}),
                "the subject claim is not a string of 1 to 256 printable ASCII characters",
            ),
            (
                json!({"sub": 42}),
                "the subject claim is not a string of 1 to 256 printable ASCII characters",
            ),
            (
                json!({"scope": "read,admin"}),
                "a scope is not visible ASCII without `,`",
            ),
            (
                json!({"scope": ["read", "a b"]}),
                "a scope is not visible ASCII without `,`",
            ),
            (
                json!({"scope": ["read", 1]}),
                "the scopes claim holds something other than strings",
            ),
            (
                json!({"scope": {"read": true}}),
                "the scopes claim is neither a string nor an array",
            ),
        ] {
            let token = hs(&with(claims(), change.clone()), SECRET);
            assert_eq!(reason(verifier.verify(&token)), expected, "{change}");
        }
        let mut header = Header {
            kid: Some("key 1".into()),
            ..Header::default()
        };
        let token = encode(&header, &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
        assert!(reason(verifier.verify(&token)).contains("`kid`"));
        header.kid = Some("2026-01".into());
        let token = encode(&header, &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(verifier.verify(&token).unwrap().key_id, "2026-01");
    }

    #[test]
    fn per_tenant_keys_never_cross() {
        let verifier = JwtVerifier::builder(["HS256"])
            .tenant_key("acme", JwtKey::secret(SECRET).unwrap())
            .tenant_key("globex", JwtKey::secret(OTHER_SECRET).unwrap())
            .build()
            .unwrap();
        let acme = claims();
        let globex = with(claims(), json!({"tenant": "globex"}));
        assert_eq!(verifier.verify(&hs(&acme, SECRET)).unwrap().tenant, "acme");
        assert_eq!(
            verifier.verify(&hs(&globex, OTHER_SECRET)).unwrap().tenant,
            "globex"
        );
        // Globex's key, validly signing a token that claims acme: tried with acme's key only.
        assert_eq!(
            reason(verifier.verify(&hs(&acme, OTHER_SECRET))),
            "bad signature"
        );
        assert_eq!(
            reason(verifier.verify(&hs(&globex, SECRET))),
            "bad signature"
        );
        let unknown = with(claims(), json!({"tenant": "initech"}));
        assert_eq!(
            reason(verifier.verify(&hs(&unknown, SECRET))),
            "the token names a tenant that has no key"
        );
        assert_eq!(
            reason(verifier.verify(&hs(&with(claims(), json!({"tenant": null})), SECRET))),
            "the token names no tenant"
        );
    }

    #[test]
    fn jwks_keys_are_chosen_by_kid_and_must_fit_the_algorithm() {
        let verifier = JwtVerifier::builder(["ES256", "EdDSA"])
            .key(JwtKey::jwks(jwks().as_bytes()).unwrap())
            .build()
            .unwrap();
        let identity = verifier
            .verify(&signed(Algorithm::ES256, Some("ec-1"), &claims()))
            .unwrap();
        assert_eq!(identity.key_id, "ec-1");
        assert!(
            verifier
                .verify(&signed(Algorithm::EdDSA, Some("ed-1"), &claims()))
                .is_ok()
        );
        for (token, expected) in [
            (
                signed(Algorithm::ES256, Some("ec-2"), &claims()),
                "the token's `kid` names no key in the JWKS",
            ),
            (
                signed(Algorithm::ES256, None, &claims()),
                "the token has no `kid` and the JWKS holds several keys",
            ),
            // The Ed25519 key named for an ES256 token.
            (
                signed(Algorithm::ES256, Some("ed-1"), &claims()),
                "the key the token names is not a key for ES256",
            ),
            // The encryption key is not in the set at all.
            (
                signed(Algorithm::ES256, Some("enc-1"), &claims()),
                "the token's `kid` names no key in the JWKS",
            ),
            // Signed by the EC key, presented under the Ed25519 key's name.
            (
                signed(Algorithm::EdDSA, Some("ec-1"), &claims()),
                "the key the token names is not a key for EdDSA",
            ),
        ] {
            assert_eq!(reason(verifier.verify(&token)), expected);
        }
        // One key: a token without `kid` uses it.
        let one =
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y}]}).to_string();
        let verifier = JwtVerifier::builder(["ES256"])
            .key(JwtKey::jwks(one.as_bytes()).unwrap())
            .build()
            .unwrap();
        assert!(
            verifier
                .verify(&signed(Algorithm::ES256, None, &claims()))
                .is_ok()
        );
    }

    #[test]
    fn refused_configurations() {
        let set = || JwtKey::jwks(jwks().as_bytes()).unwrap();
        let secret = || JwtKey::secret(SECRET).unwrap();
        let cases: Vec<(JwtVerifierBuilder, JwtConfigError)> = vec![
            (
                JwtVerifier::builder(["none"]).key(secret()),
                JwtConfigError::UnknownAlgorithm("none".into()),
            ),
            (
                JwtVerifier::builder(Vec::<String>::new()).key(secret()),
                JwtConfigError::NoAlgorithm,
            ),
            (
                JwtVerifier::builder(["HS256", "RS256"]).key(secret()),
                JwtConfigError::MixedKinds,
            ),
            (
                JwtVerifier::builder(["HS256"]).key(set()),
                JwtConfigError::JwksForHmac,
            ),
            (
                JwtVerifier::builder(["RS256"]).key(secret()),
                JwtConfigError::SecretForPublicKey,
            ),
            (
                JwtVerifier::builder(["RS256"]).key(set()),
                JwtConfigError::NoFittingKey,
            ),
            (JwtVerifier::builder(["HS256"]), JwtConfigError::NoKey),
            (
                JwtVerifier::builder(["HS256"])
                    .key(secret())
                    .tenant_key("acme", secret()),
                JwtConfigError::GlobalAndTenants,
            ),
        ];
        for (builder, expected) in cases {
            assert_eq!(builder.build().unwrap_err(), expected);
        }
        assert_eq!(
            JwtKey::secret(b"").unwrap_err(),
            JwtConfigError::EmptySecret
        );
        for bad in [
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            json!({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "a", "x": EC_X, "y": EC_Y},
                {"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": ED_X},
            ]}),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "RS256", "x": EC_X, "y": EC_Y}]}),
            json!({"keys": []}),
            json!({"not": "a set"}),
        ] {
            assert!(
                matches!(
                    JwtKey::jwks(bad.to_string().as_bytes()),
                    Err(JwtConfigError::Jwks(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn nothing_secret_in_reasons_or_debug_output() {
        let verifier = hs_verifier();
        let token = hs(&claims(), OTHER_SECRET);
        let why = reason(verifier.verify(&token));
        for part in token.split('.') {
            assert!(!why.contains(part), "{why}");
        }
        let debug = format!("{verifier:?} {:?}", JwtKey::secret(SECRET).unwrap());
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
        assert!(!debug.contains("48, 49, 50"), "{debug}");
    }

    #[tokio::test]
    async fn a_shared_set_is_replaced_whole_and_asks_for_unknown_kids() {
        let ec_only = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": EC_X, "y": EC_Y},
        ]})
        .to_string();
        let ed_only = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": ED_X}]})
            .to_string();
        let shared = SharedJwks::new(["ES256", "EdDSA"], ec_only.as_bytes()).unwrap();
        let verifier = JwtVerifier::builder(["EdDSA", "ES256"])
            .key(JwtKey::shared(&shared))
            .build()
            .unwrap();
        let ec = signed(Algorithm::ES256, Some("ec-1"), &claims());
        let ed = signed(Algorithm::EdDSA, Some("ed-1"), &claims());
        assert!(verifier.verify(&ec).is_ok());

        // The provider rotated: refused now, and the refresher is woken.
        assert_eq!(
            reason(verifier.verify(&ed)),
            "the token's `kid` names no key in the JWKS (a refresh is requested)"
        );
        tokio::time::timeout(
            Duration::from_secs(1),
            shared.refresh_requests().requested(),
        )
        .await
        .expect("a refresh was requested");

        // A replacement that breaks the rules changes nothing.
        let oct = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).to_string();
        for bad in [oct.as_str(), "{}", "not json"] {
            assert!(shared.replace(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(verifier.verify(&ec).is_ok());
        assert_eq!(shared.kids(), ["ec-1"]);

        assert_eq!(shared.replace(jwks().as_bytes()), Ok(2));
        assert!(verifier.verify(&ed).is_ok());
        assert!(verifier.verify(&ec).is_ok());
        // A key the provider dropped is gone at once.
        assert_eq!(shared.replace(ed_only.as_bytes()), Ok(1));
        assert!(verifier.verify(&ec).is_err());
        assert!(verifier.verify(&ed).is_ok());
        // A static set never asks for a refresh, and says so.
        let fixed = JwtVerifier::builder(["ES256"])
            .key(JwtKey::jwks(ec_only.as_bytes()).unwrap())
            .build()
            .unwrap();
        assert_eq!(
            reason(fixed.verify(&signed(Algorithm::ES256, Some("ec-2"), &claims()))),
            "the token's `kid` names no key in the JWKS"
        );
        assert!(!format!("{shared:?} {verifier:?}").contains(ED_X));
    }

    #[test]
    fn shared_sets_keep_the_start_up_rules() {
        let ec_only =
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y}]}).to_string();
        let ed_only = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ED_X}]}).to_string();
        assert_eq!(
            SharedJwks::new(["HS256"], ec_only.as_bytes()).unwrap_err(),
            JwtConfigError::JwksForHmac
        );
        assert_eq!(
            SharedJwks::new(["ES256"], ed_only.as_bytes()).unwrap_err(),
            JwtConfigError::NoFittingKey
        );
        let shared = SharedJwks::new(["ES256"], ec_only.as_bytes()).unwrap();
        // A refreshed set with no key for the pinned algorithms is refused like the first.
        assert_eq!(
            shared.replace(ed_only.as_bytes()).unwrap_err(),
            JwtConfigError::NoFittingKey
        );
        assert_eq!(
            JwtVerifier::builder(["ES256", "EdDSA"])
                .key(JwtKey::shared(&shared))
                .build()
                .unwrap_err(),
            JwtConfigError::SharedAlgorithms
        );
        // The refresher's handle does not keep the set alive.
        let weak = shared.downgrade();
        assert!(weak.upgrade().is_some());
        drop(shared);
        assert!(weak.upgrade().is_none());
    }
}
