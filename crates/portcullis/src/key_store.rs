//! The policy's API-key store: opened from `[auth.api-keys] store`, cached, and plugged into the
//! authentication layer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use portcullis_layers::auth::{
    ApiKeyVerifier, AuthFailure, CredentialKind, Identity, Role, VerifiedApiKey, VerifyFuture,
};
use portcullis_layers::identity_headers::PreparedIdentity;
use portcullis_layers::signature::SigningSecret;
use portcullis_policy::auth::{ApiKeySettings, SecretRef};
use tracing::Instrument;

use crate::secret_source::{self, SourceError};
use portcullis_store::{
    ApiKeyRecord, CachedKeyStore, Kek, KeyId, KeyStore, PostgresStore, SqliteStore, VerifiedKey,
    VerifyError,
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
    /// What this instance keeps per key it has verified; one lookup per request serves both.
    keys: Mutex<HashMap<KeyId, KeyUse>>,
}

/// Per key: when its use was last recorded, and its identity, prepared once per record.
#[derive(Debug)]
struct KeyUse {
    touched: SystemTime,
    /// The record `identity` was made from. Held, so that its allocation cannot be reused by
    /// another record that `Arc::ptr_eq` would then mistake for it.
    record: Arc<ApiKeyRecord>,
    identity: PreparedIdentity,
}

/// Past this many keys, the map is cleared rather than grown without limit.
const MAX_KEYS: usize = 100_000;

impl StoreVerifier {
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            kek: None,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Opens signing secrets with `kek` (`[auth.api-keys.signing] key-encryption-key`).
    /// Without it, a key that signs is refused with 503: its requests cannot be checked.
    pub fn with_kek(mut self, kek: Kek) -> Self {
        self.kek = Some(kek);
        self
    }

    /// The identity of a verified key, and whether its use is due to be recorded (at most once
    /// per [`TOUCH_EVERY`] per key). The identity is prepared again only when the store hands
    /// out another record for the key: a cached store shares one record until its entry
    /// expires or the key changes, an uncached store makes a new one per lookup.
    fn note_use(&self, key: &VerifiedKey, now: SystemTime) -> (PreparedIdentity, bool) {
        let Ok(mut keys) = self.keys.lock() else {
            // A panic elsewhere poisoned the map: verify on, without it.
            return (prepare(key), false);
        };
        if let Some(used) = keys.get_mut(&key.id) {
            if !Arc::ptr_eq(&used.record, key.record()) {
                used.record = key.record().clone();
                used.identity = prepare(key);
            }
            let due = now.duration_since(used.touched).unwrap_or_default() >= TOUCH_EVERY;
            if due {
                used.touched = now;
            }
            return (used.identity.clone(), due);
        }
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        let identity = prepare(key);
        keys.insert(
            key.id.clone(),
            KeyUse {
                touched: now,
                record: key.record().clone(),
                identity: identity.clone(),
            },
        );
        (identity, true)
    }

    /// Records a use of `id` at `now` in the background.
    fn touch(&self, id: &KeyId, now: SystemTime) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
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

/// The identity an API key's record stands for.
fn prepare(key: &VerifiedKey) -> PreparedIdentity {
    PreparedIdentity::new(Identity {
        tenant: key.tenant.clone(),
        subject: key.subject.clone(),
        key_id: key.id.as_str().to_owned(),
        // API keys are issued to registered tenants; guests hold guest tokens.
        role: Role::Registered,
        scopes: key.scopes.clone(),
        credential: CredentialKind::ApiKey,
        token_id: None,
    })
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
                    let now = self.store.clock().now();
                    let (identity, due) = self.note_use(&key, now);
                    if due {
                        self.touch(&key.id, now);
                    }
                    let verified = VerifiedApiKey::prepared(identity);
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

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_store::{Clock, ManualClock, MemoryStore, NewKey};

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        ))
    }

    /// A key of tenant `acme`, subject `ci`, scopes `read` and `write`, and its plaintext.
    async fn key(store: &dyn KeyStore, tenant: &str) -> String {
        let (_, plaintext) = store
            .create(NewKey {
                prefix: "pcl".into(),
                tenant: tenant.into(),
                subject: Some("ci".into()),
                scopes: vec!["read".into(), "write".into()],
                expires_at: None,
            })
            .await
            .unwrap();
        plaintext.expose_secret().to_owned()
    }

    async fn verified(verifier: &StoreVerifier, key: &str) -> VerifiedApiKey {
        match verifier.verify(key).await {
            Ok(verified) => verified,
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn a_verified_key_is_its_records_identity() {
        let store = Arc::new(MemoryStore::new().with_clock(clock()));
        let plaintext = key(&*store, "acme").await;
        let verifier = StoreVerifier::new(store);
        let verified = verified(&verifier, &plaintext).await;
        let identity = verified.identity();
        assert_eq!(identity.tenant, "acme");
        assert_eq!(identity.subject.as_deref(), Some("ci"));
        assert_eq!(identity.key_id, plaintext.split('_').nth(1).unwrap());
        assert_eq!(identity.role, Role::Registered);
        assert_eq!(identity.scopes, ["read", "write"]);
        assert_eq!(identity.credential, CredentialKind::ApiKey);
        assert!(verified.signing_secret.is_none());
    }

    #[tokio::test]
    async fn an_identity_is_prepared_once_per_record_the_store_hands_out() {
        let clock = clock();
        let memory = Arc::new(MemoryStore::new().with_clock(clock.clone()));
        let plaintext = key(&*memory, "acme").await;
        let other = key(&*memory, "globex").await;
        let cached = CachedKeyStore::new(memory.clone()).with_ttl(Duration::from_secs(30));
        let verifier = StoreVerifier::new(Arc::new(cached));
        let first = verified(&verifier, &plaintext).await;
        let again = verified(&verifier, &plaintext).await;
        assert!(PreparedIdentity::ptr_eq(
            first.prepared_identity(),
            again.prepared_identity()
        ));
        let globex = verified(&verifier, &other).await;
        assert_eq!(globex.identity().tenant, "globex");
        assert!(!PreparedIdentity::ptr_eq(
            first.prepared_identity(),
            globex.prepared_identity()
        ));
        // The cache's entry expires: a new record, so a new preparation, of the same identity.
        clock.advance(Duration::from_secs(31));
        let later = verified(&verifier, &plaintext).await;
        assert!(!PreparedIdentity::ptr_eq(
            first.prepared_identity(),
            later.prepared_identity()
        ));
        assert_eq!(later.identity(), first.identity());
        // Without a cache every lookup is a new record: nothing stale is ever reused.
        let uncached = StoreVerifier::new(memory);
        let one = verified(&uncached, &plaintext).await;
        let two = verified(&uncached, &plaintext).await;
        assert!(!PreparedIdentity::ptr_eq(
            one.prepared_identity(),
            two.prepared_identity()
        ));
        assert_eq!(one.identity(), two.identity());
    }

    #[tokio::test]
    async fn a_keys_use_is_due_at_most_once_a_minute() {
        let clock = clock();
        let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
        let (a, b) = (key(&*store, "acme").await, key(&*store, "globex").await);
        let (a, b) = (
            store.verify(&a).await.unwrap(),
            store.verify(&b).await.unwrap(),
        );
        let verifier = StoreVerifier::new(store);
        let t0 = clock.now();
        let due = |key: &VerifiedKey, after: u64| {
            verifier.note_use(key, t0 + Duration::from_secs(after)).1
        };
        assert!(due(&a, 0));
        assert!(!due(&a, 30));
        assert!(due(&b, 30), "per key");
        assert!(!due(&a, 59));
        assert!(due(&a, 60));
        assert!(!due(&a, 61));
        // A clock that steps back does not make a use due.
        assert!(!due(&a, 10));
    }

    #[tokio::test]
    async fn a_use_is_recorded_in_the_store() {
        let store = Arc::new(MemoryStore::new().with_clock(clock()));
        let plaintext = key(&*store, "acme").await;
        let id = store.verify(&plaintext).await.unwrap().id.clone();
        let verifier = StoreVerifier::new(store.clone());
        verified(&verifier, &plaintext).await;
        for _ in 0..100 {
            if store
                .get(&id)
                .await
                .unwrap()
                .unwrap()
                .last_used_at
                .is_some()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the key's use was never recorded");
    }
}
