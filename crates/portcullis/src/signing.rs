//! The policy's `[auth.api-keys.signing]` as the gateway's signature check: the key-encryption
//! key that opens the stored signing secrets, the replay store, and the layer.

use std::sync::Arc;
use std::time::Duration;

use portcullis_layers::signature::{ReplayCheck, ReplayFuture, SignatureLayer};
use portcullis_policy::signing::{ReplayStore, SigningSettings};
use portcullis_store::{Kek, MemoryReplayGuard, RedisReplayGuard, ReplayGuard, SystemClock};

use crate::secret_source::{self, SourceError};

/// Why signed requests could not be set up. Never contains a secret or a Redis URL (it may
/// carry a password).
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("auth.api-keys.signing.key-encryption-key: {0}")]
    KekSource(#[source] SourceError),
    #[error("auth.api-keys.signing.key-encryption-key: {0}")]
    Kek(#[source] portcullis_store::KekError),
    #[error("auth.api-keys.signing.replay: {0}")]
    ReplaySource(#[source] SourceError),
    #[error("auth.api-keys.signing.replay: cannot reach Redis: {0}")]
    Redis(#[source] portcullis_store::StoreError),
    #[error("auth.api-keys.signing: {0}")]
    Layer(String),
}

/// Reads and checks the key-encryption key (an environment variable or a file).
pub fn load_kek(settings: &SigningSettings) -> Result<Kek, SigningError> {
    let text = zeroize::Zeroizing::new(
        secret_source::read(&settings.key_encryption_key).map_err(SigningError::KekSource)?,
    );
    Kek::from_encoded(&text).map_err(SigningError::Kek)
}

/// Opens the replay store the policy names: in this process, or a Redis shared by every
/// instance (connected now, so a wrong URL stops the start instead of every signed request).
pub async fn open_replay(settings: &SigningSettings) -> Result<Arc<dyn ReplayCheck>, SigningError> {
    let guard: Arc<dyn ReplayGuard> = match &settings.replay {
        ReplayStore::Memory => Arc::new(MemoryReplayGuard::new(
            Arc::new(SystemClock),
            MemoryReplayGuard::DEFAULT_CAPACITY,
        )),
        ReplayStore::Redis(reference) => {
            let url = zeroize::Zeroizing::new(
                secret_source::read(reference).map_err(SigningError::ReplaySource)?,
            );
            Arc::new(
                RedisReplayGuard::connect(&url, RedisReplayGuard::DEFAULT_KEY_PREFIX)
                    .await
                    .map_err(SigningError::Redis)?,
            )
        }
    };
    Ok(Arc::new(StoreReplayCheck(guard)))
}

/// The signature layer for the policy's settings.
pub fn signature_layer(
    settings: &SigningSettings,
    replay: Arc<dyn ReplayCheck>,
) -> Result<SignatureLayer, SigningError> {
    SignatureLayer::builder(replay)
        .timestamp_header(settings.timestamp_header.clone())
        .signature_header(settings.signature_header.clone())
        .max_skew(settings.max_skew)
        .max_body(usize::try_from(settings.max_body).unwrap_or(usize::MAX))
        .build()
        .map_err(|e| SigningError::Layer(e.to_string()))
}

/// The layer of a stack without `[auth.api-keys.signing]`: it only ever sees a request that
/// needs a signature if an [`ApiKeyVerifier`](portcullis_layers::auth::ApiKeyVerifier) handed
/// out a signing secret anyway, and then refuses it (`503`) rather than let it through
/// unchecked.
// The input is constant (the builder's defaults), not a request's or a file's; the test below
// builds it.
#[allow(clippy::expect_used)]
pub(crate) fn not_configured() -> SignatureLayer {
    SignatureLayer::builder(Arc::new(NotConfigured))
        .build()
        .expect("the signature layer's defaults are valid")
}

/// The store crate's replay guard, as the layer's [`ReplayCheck`].
#[derive(Debug)]
struct StoreReplayCheck(Arc<dyn ReplayGuard>);

impl ReplayCheck for StoreReplayCheck {
    fn first_use<'a>(&'a self, id: [u8; 32], ttl: Duration) -> ReplayFuture<'a> {
        Box::pin(async move { self.0.first_use(&id, ttl).await.map_err(|e| e.to_string()) })
    }
}

/// Answers every signed request with "cannot check": see [`not_configured`].
#[derive(Debug)]
struct NotConfigured;

impl ReplayCheck for NotConfigured {
    fn first_use<'a>(&'a self, _id: [u8; 32], _ttl: Duration) -> ReplayFuture<'a> {
        Box::pin(async {
            Err("a key signs, but the policy has no [auth.api-keys.signing]".to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unconfigured_layer_builds() {
        let _ = not_configured();
    }
}
