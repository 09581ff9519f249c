//! The policy's `[auth.jwt]` keys, loaded at start-up into a [`JwtVerifier`].
//!
//! A JWKS from a URL is fetched before the gateway listens (a URL that cannot be fetched, or
//! whose set is unusable, stops the start like an unreadable file) and then kept current in
//! the background (see [`jwks_refresh`]).
//!
//! Secrets are read from the environment variable or file the policy references, held in
//! [`Zeroizing`] buffers while they are checked, and copied into keys that zeroize themselves
//! on drop. Errors and log lines name the key path (`auth.jwt.tenants.acme.secret`) and the
//! variable or file, never a secret's bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::Uri;
use portcullis_layers::jwt::{ClaimNames, JwtConfigError, JwtKey, JwtVerifier, SharedJwks};
use portcullis_policy::Environment;
use portcullis_policy::auth::{JwtKeyKind, JwtKeySource, JwtSettings, SecretRef};
use zeroize::Zeroizing;

// Declared here, not in lib.rs: they serve only this module.
pub mod jwks_fetch;
pub mod jwks_refresh;

use jwks_fetch::{FetchError, JwksClient};
use jwks_refresh::Refresher;

/// The shortest HMAC secret production accepts: 256 bits, the size of HS256's hash (RFC 7518
/// §3.2 requires at least that), and what a brute-force search of the secret must then cover.
pub const MIN_SECRET_LEN: usize = 32;

/// Why the JWT keys could not be loaded. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum JwtKeyError {
    #[error("{at}: environment variable `{name}` is not set (or not UTF-8)")]
    MissingEnv { at: String, name: String },
    #[error("{at}: cannot read {}: {source}", path.display())]
    File {
        at: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: the secret is empty")]
    EmptySecret { at: String },
    #[error(
        "{at}: the secret is {len} bytes; production needs at least {MIN_SECRET_LEN} random bytes (e.g. `openssl rand -base64 48`)"
    )]
    WeakSecret { at: String, len: usize },
    #[error("{at}: {source}")]
    Key {
        at: String,
        #[source]
        source: JwtConfigError,
    },
    #[error("auth.jwt: {0}")]
    Config(#[source] JwtConfigError),
    #[error("{at}: cannot fetch the JWKS from {host}: {source}")]
    Fetch {
        at: String,
        host: String,
        #[source]
        source: FetchError,
    },
    #[error("{at}: the JWKS from {host}: {source}")]
    FetchedKey {
        at: String,
        host: String,
        #[source]
        source: JwtConfigError,
    },
    #[error("{at}: a JWKS over plain http from {host} in production: use https")]
    PlainHttp { at: String, host: String },
    #[error("auth.jwt: cannot set up TLS for the JWKS URLs: {0}")]
    Tls(#[source] std::io::Error),
}

/// Loads every key `settings` references (fetching JWKS URLs) and builds the verifier, then
/// starts refreshing the fetched sets on the current Tokio runtime. In production an HMAC
/// secret shorter than [`MIN_SECRET_LEN`] is an error; elsewhere it is a logged warning, so a
/// development setup can use a short one and still be told.
pub async fn load(
    settings: &JwtSettings,
    environment: Environment,
) -> Result<Arc<JwtVerifier>, JwtKeyError> {
    let urls: Vec<&Uri> = settings
        .key_sources()
        .filter_map(|s| match &s.kind {
            JwtKeyKind::JwksUrl(url) => Some(url),
            _ => None,
        })
        .collect();
    let client = if urls.is_empty() {
        None
    } else {
        let https = urls.iter().any(|u| u.scheme_str() == Some("https"));
        Some(JwksClient::new(https).map_err(JwtKeyError::Tls)?)
    };
    let mut keys = KeyLoader {
        environment,
        algorithms: settings.algorithms.iter().map(|a| a.as_str()).collect(),
        client: client.as_ref(),
        refreshers: Vec::new(),
    };
    let mut builder = JwtVerifier::builder(settings.algorithms.iter().map(|a| a.as_str()))
        .issuer(settings.issuer.clone())
        .audience(settings.audience.clone())
        .leeway(settings.leeway)
        .max_lifetime(settings.max_lifetime)
        .claims(ClaimNames {
            subject: settings.claims.subject.clone(),
            tenant: settings.claims.tenant.clone(),
            role: settings.claims.role.clone(),
            registered_roles: settings.claims.registered_roles.clone(),
            scopes: settings.claims.scopes.clone(),
        });
    if let Some(source) = &settings.key {
        builder = builder.key(keys.load(source).await?);
    }
    for (tenant, source) in &settings.tenants {
        builder = builder.tenant_key(tenant.clone(), keys.load(source).await?);
    }
    let verifier = builder.build().map(Arc::new).map_err(JwtKeyError::Config)?;
    // Only once the verifier is built: a start that fails leaves no task behind.
    if let Some(client) = &client {
        for refresher in keys.refreshers {
            refresher.spawn(client.clone(), settings.jwks_refresh);
        }
    }
    Ok(verifier)
}

/// What loading keys needs besides the source, and the refreshers for fetched sets.
struct KeyLoader<'a> {
    environment: Environment,
    algorithms: Vec<&'static str>,
    client: Option<&'a JwksClient>,
    refreshers: Vec<Refresher>,
}

impl KeyLoader<'_> {
    async fn load(&mut self, source: &JwtKeySource) -> Result<JwtKey, JwtKeyError> {
        if let JwtKeyKind::JwksUrl(url) = &source.kind {
            return self.fetch(source.at.to_string(), url).await;
        }
        load_key(source, self.environment)
    }

    async fn fetch(&mut self, at: String, url: &Uri) -> Result<JwtKey, JwtKeyError> {
        let host = jwks_refresh::host(url);
        // The policy's lint already refuses this in production; checked again where the
        // connection is made.
        if self.environment == Environment::Production && url.scheme_str() != Some("https") {
            return Err(JwtKeyError::PlainHttp { at, host });
        }
        let Some(client) = self.client else {
            // `load` creates the client whenever a source is a URL.
            return Err(JwtKeyError::Fetch {
                at,
                host,
                source: FetchError::Request("no HTTP client".to_owned()),
            });
        };
        let body = match client.fetch(url).await {
            Ok(body) => body,
            Err(source) => return Err(JwtKeyError::Fetch { at, host, source }),
        };
        let set = match SharedJwks::new(&self.algorithms, &body) {
            Ok(set) => set,
            Err(source) => return Err(JwtKeyError::FetchedKey { at, host, source }),
        };
        tracing::info!(
            target: "portcullis::auth",
            key = %at, %host, kids = ?set.kids(),
            "JWKS fetched"
        );
        let key = JwtKey::shared(&set);
        self.refreshers.push(Refresher {
            at,
            url: url.clone(),
            set,
        });
        Ok(key)
    }
}

/// A key from the environment or a file (a URL is fetched by [`KeyLoader`]).
fn load_key(source: &JwtKeySource, environment: Environment) -> Result<JwtKey, JwtKeyError> {
    let at = source.at.to_string();
    match &source.kind {
        JwtKeyKind::Secret(reference) => {
            let secret = read_secret(&at, reference)?;
            if secret.is_empty() {
                return Err(JwtKeyError::EmptySecret { at });
            }
            if secret.len() < MIN_SECRET_LEN {
                if environment == Environment::Production {
                    return Err(JwtKeyError::WeakSecret {
                        at,
                        len: secret.len(),
                    });
                }
                tracing::warn!(
                    key = %at,
                    bytes = secret.len(),
                    minimum = MIN_SECRET_LEN,
                    %environment,
                    "JWT secret is shorter than production accepts"
                );
            }
            JwtKey::secret(&secret).map_err(|source| JwtKeyError::Key { at, source })
        }
        JwtKeyKind::Jwks(path) => {
            let json = read_file(&at, path)?;
            JwtKey::jwks(&json).map_err(|source| JwtKeyError::Key { at, source })
        }
        JwtKeyKind::JwksUrl(_) => Err(JwtKeyError::Key {
            at,
            source: JwtConfigError::NoKey,
        }),
    }
}

/// A secret's bytes: the variable's value as is, or the file's contents without surrounding
/// whitespace (the newline `echo` and editors leave). `at` names the key in errors.
/// `portcullis check` measures secrets with this, so it judges the bytes the gateway would use.
pub fn read_secret(at: &str, reference: &SecretRef) -> Result<Zeroizing<Vec<u8>>, JwtKeyError> {
    match reference {
        SecretRef::Env(name) => std::env::var(name)
            .map(|v| Zeroizing::new(v.into_bytes()))
            .map_err(|_| JwtKeyError::MissingEnv {
                at: at.to_owned(),
                name: name.clone(),
            }),
        SecretRef::File(path) => {
            let raw = read_file(at, path)?;
            Ok(Zeroizing::new(raw.trim_ascii().to_vec()))
        }
        // The policy compiler refuses literal secrets; should one get here, it is refused too.
        SecretRef::Literal(_) => Err(JwtKeyError::Key {
            at: at.to_owned(),
            source: JwtConfigError::NoKey,
        }),
    }
}

fn read_file(at: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>, JwtKeyError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| JwtKeyError::File {
            at: at.to_owned(),
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_policy::{CompileOptions, load_str};

    fn settings(extra: &str) -> JwtSettings {
        let text = format!(
            "environment = \"development\"\n[auth]\ncredentials = [\"jwt\"]\n[auth.jwt]\n{extra}"
        );
        load_str("jwt.toml", &text, &CompileOptions::default())
            .unwrap()
            .policy
            .auth
            .jwt
            .unwrap()
    }

    fn secret_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[tokio::test]
    async fn a_short_secret_stops_production_and_only_warns_elsewhere() {
        let dir = std::env::temp_dir().join(format!("pcl-jwt-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = secret_file(&dir, "short", b"sixteen-bytes-ok\n");
        let s = settings(&format!(
            "algorithms = [\"HS256\"]\nsecret = {{ file = \"{}\" }}\n",
            short.display()
        ));
        let err = load(&s, Environment::Production)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("auth.jwt.secret: the secret is 16 bytes"),
            "{err}"
        );
        assert!(!err.contains("sixteen-bytes-ok"), "{err}");
        assert!(load(&s, Environment::Development).await.is_ok());

        let long = secret_file(&dir, "long", &[b'k'; 32]);
        let s = settings(&format!(
            "algorithms = [\"HS256\"]\nsecret = {{ file = \"{}\" }}\n",
            long.display()
        ));
        assert!(load(&s, Environment::Production).await.is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn errors_name_the_key_path_and_the_source() {
        let s = settings(
            "algorithms = [\"HS256\"]\n[auth.jwt.tenants.acme]\nsecret = { env = \"PORTCULLIS_TEST_UNSET_JWT\" }\n",
        );
        let err = load(&s, Environment::Development)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "auth.jwt.tenants.acme.secret: environment variable `PORTCULLIS_TEST_UNSET_JWT` is not set (or not UTF-8)"
        );

        let s =
            settings("algorithms = [\"RS256\"]\njwks = { file = \"/nonexistent/jwks.json\" }\n");
        let err = load(&s, Environment::Development)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("auth.jwt.jwks: cannot read /nonexistent/jwks.json"),
            "{err}"
        );
    }
}
