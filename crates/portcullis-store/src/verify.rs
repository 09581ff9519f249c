//! Checking a presented key, written once for every backend.
//!
//! The order is fixed: form, lookup, secret, state, expiry, tenant. The secret is compared before
//! state and expiry are looked at, so only a holder of the secret learns (in the gateway's logs)
//! that a key is revoked or expired rather than wrong. The HTTP layer answers every rejection
//! with the same 401; the kinds are for logs and metrics.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::error::StoreError;
use crate::key::{KeyId, MalformedKey, PresentedKey};
use crate::record::{ApiKeyRecord, KeyState};
use crate::store::KeyStore;

/// A key that verified: its record, shared with the store's cache rather than copied out of it.
///
/// Derefs to the [`ApiKeyRecord`]: `verified.tenant`, `verified.scopes`, `verified.expires_at`
/// (rotation grace included), and `verified.signing_secret`, still sealed (open it with the
/// KEK and this key's id; `None` if the key does not sign requests). While a
/// [`CachedKeyStore`](crate::CachedKeyStore) serves the record from its cache, every
/// verification of the key shares one allocation ([`record`](Self::record)), so a caller can
/// keep what it derives from a record for as long as it is handed the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey(Arc<ApiKeyRecord>);

impl VerifiedKey {
    /// The verified key's record, as shared by the store.
    pub fn record(&self) -> &Arc<ApiKeyRecord> {
        &self.0
    }
}

impl Deref for VerifiedKey {
    type Target = ApiKeyRecord;

    fn deref(&self) -> &ApiKeyRecord {
        &self.0
    }
}

/// Why a presented key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// Not of the form `<prefix>_<id>_<secret>`.
    Malformed,
    /// Well-formed, but no key has this id (or the key has another prefix).
    UnknownKey,
    /// The id exists; the secret is wrong.
    BadSecret,
    /// The key was revoked.
    Revoked,
    /// The key expired (or its rotation grace ran out).
    Expired,
    /// The key's tenant is suspended.
    TenantSuspended,
}

impl RejectionKind {
    /// A stable code for logs and metrics labels.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::BadSecret => "bad_secret",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::TenantSuspended => "tenant_suspended",
        }
    }
}

/// A refused key: the kind, and the key id when the key was well-formed enough to have one.
///
/// Carries nothing secret, so it can be logged as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRejection {
    kind: RejectionKind,
    key_id: Option<KeyId>,
    malformed: Option<MalformedKey>,
}

impl KeyRejection {
    fn of(kind: RejectionKind, key_id: &KeyId) -> Self {
        Self {
            kind,
            key_id: Some(key_id.clone()),
            malformed: None,
        }
    }

    /// Why the key was refused.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The presented key's id, unless the key was malformed.
    pub fn key_id(&self) -> Option<&KeyId> {
        self.key_id.as_ref()
    }
}

impl From<MalformedKey> for KeyRejection {
    fn from(err: MalformedKey) -> Self {
        Self {
            kind: RejectionKind::Malformed,
            key_id: None,
            malformed: Some(err),
        }
    }
}

impl fmt::Display for KeyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.malformed, &self.key_id) {
            (Some(malformed), _) => write!(f, "API key refused: {malformed}"),
            (None, Some(id)) => write!(f, "API key {id} refused: {}", self.kind.code()),
            (None, None) => write!(f, "API key refused: {}", self.kind.code()),
        }
    }
}

impl std::error::Error for KeyRejection {}

/// Why verification did not produce an identity: the key was refused, or the store failed (the
/// latter is no reason to tell the caller their key is bad; the HTTP layer answers 503).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The key was refused.
    #[error(transparent)]
    Rejected(#[from] KeyRejection),
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VerifyError {
    /// The rejection, if the key was refused.
    pub fn rejection(&self) -> Option<&KeyRejection> {
        match self {
            Self::Rejected(rejection) => Some(rejection),
            Self::Store(_) => None,
        }
    }
}

pub(crate) async fn verify<S: KeyStore + ?Sized>(
    store: &S,
    presented: &str,
) -> Result<VerifiedKey, VerifyError> {
    let key = PresentedKey::parse(presented).map_err(KeyRejection::from)?;
    let id = key.id();
    let Some(record) = store.get_shared(id).await? else {
        return Err(KeyRejection::of(RejectionKind::UnknownKey, id).into());
    };
    // The prefix is part of the key: `other_<id>_<secret>` is not this key.
    if record.prefix != key.prefix() {
        return Err(KeyRejection::of(RejectionKind::UnknownKey, id).into());
    }
    if record.secret_hash != *key.hash() {
        return Err(KeyRejection::of(RejectionKind::BadSecret, id).into());
    }
    if record.state == KeyState::Revoked {
        return Err(KeyRejection::of(RejectionKind::Revoked, id).into());
    }
    if record.is_expired_at(store.clock().now()) {
        return Err(KeyRejection::of(RejectionKind::Expired, id).into());
    }
    if store.is_tenant_suspended(&record.tenant).await? {
        return Err(KeyRejection::of(RejectionKind::TenantSuspended, id).into());
    }
    Ok(VerifiedKey(record))
}
