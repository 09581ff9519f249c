//! The policy's API-key store: opened from `[auth.api-keys] store`, cached, and plugged into the
//! authentication layer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use portcullis_layers::auth::{
    ApiKeyVerifier, AuthFailure, CredentialKind, Identity, Role, VerifiedApiKey, VerifyFuture,
};
use portcullis_layers::signature::SigningSecret;
use portcullis_policy::auth::{ApiKeySettings, SecretRef};
use tracing::Instrument;

use crate::secret_source::{self, SourceError};
use portcullis_store::{
    CachedKeyStore, Kek, KeyId, KeyStore, PostgresStore, SqliteStore, VerifyError,
};

/// Why the key store could not be opened. Never contains the store URL: a PostgreSQL URL
/// carries a password.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("auth.api-keys.store: environment variable `{0}` is not set")]
    MissingEnv(String),
    #[error("auth.api-keys.store: cannot read {path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("auth.api-keys.store: expected `sqlite:PATH` or a `postgres://` URL")]
    Scheme,
    #[error("cannot open the API-key store: {0}")]
    Open(#[source] portcullis_store::StoreError),
}

/// Resolves `[auth.api-keys] store`: the value itself, an environment variable, or a file.
pub fn resolve(reference: &SecretRef) -> Result<String, KeyStoreError> {
    secret_source::read(reference).map_err(|e| match e {
        SourceError::MissingEnv(name) => KeyStoreError::MissingEnv(name),
        SourceError::File { path, source } => KeyStoreError::File { path, source },
    })
}

/// Opens the store the policy names (running its migrations), without a cache.
pub async fn open_store(settings: &ApiKeySettings) -> Result<Arc<dyn KeyStore>, KeyStoreError> {
    let location = resolve(&settings.store)?;
    if let Some(path) = location.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        let store = SqliteStore::open(path).await.map_err(KeyStoreError::Open)?;
        return Ok(Arc::new(store));
    }
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        let store = PostgresStore::connect(&location)
            .await
            .map_err(KeyStoreError::Open)?;
        return Ok(Arc::new(store));
    }
    Err(KeyStoreError::Scheme)
}

/// The store behind the gateway: a read-through cache whose TTL bounds how long a revoked key
/// or a suspended tenant keeps working on this instance.
pub async fn open_cached(settings: &ApiKeySettings) -> Result<Arc<dyn KeyStore>, KeyStoreError> {
    let store = open_store(settings).await?;
    Ok(Arc::new(
        CachedKeyStore::new(store).with_ttl(settings.cache_ttl),
    ))
}

/// How often a key's `last_used_at` is written at most: once a minute per key is enough to
/// tell an unused key from a used one, and keeps writes off the hot path.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// [`ApiKeyVerifier`] over a [`KeyStore`]; with the key-encryption key, it also opens the
/// signing secret of a key that signs, for the signature check.
#[derive(Debug)]
pub struct StoreVerifier {
    store: Arc<dyn KeyStore>,
    kek: Option<Kek>,
    touched: Mutex<HashMap<KeyId, SystemTime>>,
}

impl StoreVerifier {
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            kek: None,
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// Opens signing secrets with `kek` (`[auth.api-keys.signing] key-encryption-key`).
    /// Without it, a key that signs is refused with 503: its requests cannot be checked.
    pub fn with_kek(mut self, kek: Kek) -> Self {
        self.kek = Some(kek);
        self
    }

    /// Records a use in the background, at most once per [`TOUCH_EVERY`] per key.
    fn touch(&self, id: &KeyId) {
        let now = self.store.clock().now();
        let due = match self.touched.lock() {
            Ok(mut touched) => {
                let due = touched.get(id).is_none_or(|last| {
                    now.duration_since(*last).unwrap_or_default() >= TOUCH_EVERY
                });
                if due {
                    // Bounded: forget everything rather than grow without limit.
                    if touched.len() >= 100_000 {
                        touched.clear();
                    }
                    touched.insert(id.clone(), now);
                }
                due
            }
            Err(_) => false,
        };
        if due && let Ok(handle) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let id = id.clone();
            // In the span of the request that used the key, so a failure to record it is
            // logged with that request's correlation ID.
            let span = tracing::Span::current();
            handle.spawn(
                async move {
                    if let Err(e) = store.touch(&id, now).await {
                        tracing::warn!(key_id = %id, error = %e, "could not record a key's last use");
                    }
                }
                .instrument(span),
            );
        }
    }
}

impl ApiKeyVerifier for StoreVerifier {
    fn verify<'a>(&'a self, presented: &'a str) -> VerifyFuture<'a> {
        Box::pin(async move {
            match self.store.verify(presented).await {
                Ok(key) => {
                    // Opened per request rather than cached: the plaintext lives only as long
                    // as the check (one ChaCha20-Poly1305 open of 60 bytes, ~1 µs).
                    let signing_secret = match (&key.signing_secret, &self.kek) {
                        (None, _) => None,
                        (Some(sealed), Some(kek)) => match kek.open(&key.id, sealed) {
                            Ok(secret) => Some(SigningSecret::new(secret.as_bytes().to_vec())),
                            Err(_) => {
                                return Err(AuthFailure::Unavailable(format!(
                                    "the signing secret of key {} does not open with the \
                                     key-encryption key (a different key, or a tampered row)",
                                    key.id
                                )));
                            }
                        },
                        (Some(_), None) => {
                            return Err(AuthFailure::Unavailable(format!(
                                "key {} signs, but the policy has no [auth.api-keys.signing] \
                                 to check its signatures",
                                key.id
                            )));
                        }
                    };
                    self.touch(&key.id);
                    // Copied from the record the cache shares, not moved out of a copy of it.
                    let identity = Identity {
                        tenant: key.tenant.clone(),
                        subject: key.subject.clone(),
                        key_id: key.id.as_str().to_owned(),
                        // API keys are issued to registered tenants; guests hold guest tokens.
                        role: Role::Registered,
                        scopes: key.scopes.clone(),
                        credential: CredentialKind::ApiKey,
                        token_id: None,
                    };
                    let verified = VerifiedApiKey::new(identity);
                    Ok(match signing_secret {
                        Some(secret) => verified.with_signing_secret(secret),
                        None => verified,
                    })
                }
                Err(VerifyError::Rejected(rejection)) => {
                    Err(AuthFailure::Rejected(rejection.to_string()))
                }
                Err(VerifyError::Store(e)) => Err(AuthFailure::Unavailable(e.to_string())),
            }
        })
    }
}
