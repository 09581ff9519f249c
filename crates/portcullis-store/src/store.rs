//! The [`KeyStore`] trait: what a backend stores, and the key lifecycle built once on top.
//!
//! The gateway picks its backend from configuration at run time and hands one store to every
//! layer, so the trait must work as `Arc<dyn KeyStore>`. Rust's `async fn` in traits is not
//! dyn-compatible, so methods return a boxed future ([`BoxFuture`]). One allocation per call is
//! noise next to a database round trip and small next to a cache hit's hash and clone; in
//! exchange the layers crate depends on this trait alone, and a backend written elsewhere plugs
//! in without an enum of known backends to extend.
//!
//! A backend implements the storage methods. The lifecycle methods (`create`, `create_signed`,
//! `rotate`, `rotate_with_kek`, `suspend_tenant`, `unsuspend_tenant`, `revoke_jwt`,
//! `suspend_subject`, `unsuspend_subject`, `set_tenant_rate`, `clear_tenant_rate`, `verify`) are
//! provided: key generation, validation, signing secrets, rotation rules and verification are
//! written once, so backends cannot disagree on them. Backends should not override them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::{Clock, truncate_to_millis};
use crate::error::{NotRotatable, StoreError};
use crate::key::{KeyId, KeyMaterial, PlaintextKey, SecretHash};
use crate::record::{ApiKeyRecord, AuditRecord, KeyState, NewKey, validate_tenant};
use crate::revocation::{RevocationSnapshot, TokenRevocation, validate_suspended_subject};
use crate::signing::{Kek, SealedSecret, SigningSecret};
use crate::tenant_rate::{TenantRate, validate_quota_name};
use crate::verify::{VerifiedKey, VerifyError};

/// A future that can cross threads, boxed so that [`KeyStore`] stays dyn-compatible.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// API keys, tenant suspensions, the audit log, revoked JWTs, suspended subjects and tenants'
/// rate-limit plans.
///
/// ```
/// use std::sync::Arc;
/// use portcullis_store::{KeyStore, MemoryStore, NewKey};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<dyn KeyStore> = Arc::new(MemoryStore::new());
/// let (record, key) = store
///     .create(NewKey::new("acme", "tenant-a").with_scopes(["orders:read"]))
///     .await?;
/// // `key.expose_secret()` is shown to the caller once; only its hash is stored.
/// let verified = store.verify(key.expose_secret()).await?;
/// assert_eq!(verified.id, record.id);
/// assert_eq!(verified.tenant, "tenant-a");
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
/// ```
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// The clock that decides expiry and rotation grace.
    fn clock(&self) -> &dyn Clock;

    /// Stores a record as given, unchecked (to make a key, call [`create`](Self::create)).
    /// Fails with [`StoreError::DuplicateId`] if the id exists.
    fn insert(&self, record: ApiKeyRecord) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The key with this id, if any.
    fn get<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>>;

    /// All keys, or one tenant's, oldest first.
    fn list<'a>(
        &'a self,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ApiKeyRecord>, StoreError>>;

    /// Carries out a rotation atomically: reads the old key, asks [`Rotation::plan`] what to
    /// write, stores the successor and shortens the old key's life; all or nothing. Returns the
    /// successor.
    fn commit_rotation(
        &self,
        rotation: Rotation,
    ) -> BoxFuture<'_, Result<ApiKeyRecord, StoreError>>;

    /// Marks a key revoked (again, if it was) and returns it; [`StoreError::NotFound`] if there is
    /// no such key.
    fn revoke<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<ApiKeyRecord, StoreError>>;

    /// Suspends a tenant (every key of it is refused) or lifts the suspension. Idempotent.
    fn set_tenant_suspended<'a>(
        &'a self,
        tenant: &'a str,
        suspended: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Whether a tenant is suspended.
    fn is_tenant_suspended<'a>(
        &'a self,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records that a key was used at `at`. Never moves the time backwards; an unknown id is
    /// ignored. Best effort: callers may batch or skip it.
    fn touch<'a>(&'a self, id: &'a KeyId, at: SystemTime) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Appends an audit record.
    fn record_audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The newest `limit` audit records, newest first.
    fn list_audit(&self, limit: usize) -> BoxFuture<'_, Result<Vec<AuditRecord>, StoreError>>;

    /// Stores a JWT revocation as given, unchecked (to revoke a token, call
    /// [`revoke_jwt`](Self::revoke_jwt)). Idempotent: revoking a `jti` again keeps the later of
    /// the two expiries, and the first revocation's tenant and time.
    fn revoke_token(&self, revocation: TokenRevocation) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Suspends a tenant's subject (every JWT of it is refused, whatever its `jti`) or lifts the
    /// suspension; unchecked (see [`suspend_subject`](Self::suspend_subject)). Idempotent.
    fn set_subject_suspended<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        suspended: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// What a gateway refuses at `now`: the `jti` of every revocation whose `expires_at` is later
    /// than `now`, and every suspended `(tenant, subject)`.
    fn revocation_snapshot(
        &self,
        now: SystemTime,
    ) -> BoxFuture<'_, Result<RevocationSnapshot, StoreError>>;

    /// Deletes the revocations whose `expires_at` is at or before `now` (their tokens have
    /// expired); returns how many.
    fn purge_expired_revocations(&self, now: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Stores a tenant's rate for a quota as given, unchecked (to set one, call
    /// [`set_tenant_rate`](Self::set_tenant_rate)), replacing the one stored for the same
    /// `(tenant, quota)`.
    fn put_tenant_rate(&self, rate: TenantRate) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Deletes a tenant's rate for a quota, unchecked (see
    /// [`clear_tenant_rate`](Self::clear_tenant_rate)); returns whether there was one.
    fn delete_tenant_rate<'a>(
        &'a self,
        tenant: &'a str,
        quota: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Every tenant's rate for every quota, sorted by `(tenant, quota)` (byte order). The gateway
    /// reads them whole, every second, like the [`revocation_snapshot`](Self::revocation_snapshot).
    fn tenant_rates(&self) -> BoxFuture<'_, Result<Vec<TenantRate>, StoreError>>;

    /// Makes a key: validates the request, generates id and secret, stores the record and returns
    /// it with the plaintext key, which exists nowhere else.
    fn create(
        &self,
        new: NewKey,
    ) -> BoxFuture<'_, Result<(ApiKeyRecord, PlaintextKey), StoreError>> {
        let prepared = prepare_key(self.clock(), new, |_| Ok(()));
        Box::pin(async move {
            let (record, plaintext, ()) = insert_prepared(self, prepared).await?;
            Ok((record, plaintext))
        })
    }

    /// Makes a key that signs requests: like [`create`](Self::create), and also generates a
    /// [`SigningSecret`] (with the key's prefix), stored sealed under `kek` for the key's id. The
    /// signing secret is returned in plaintext this once, like the key.
    fn create_signed(
        &self,
        new: NewKey,
        kek: &Kek,
    ) -> BoxFuture<'_, Result<(ApiKeyRecord, PlaintextKey, SigningSecret), StoreError>> {
        // Sealed before the future is made, so the future does not borrow the KEK.
        let prepared = prepare_key(self.clock(), new, |record| {
            let secret = SigningSecret::generate(&record.prefix)?;
            record.signing_secret = Some(kek.seal(&record.id, &secret)?);
            Ok(secret)
        });
        Box::pin(insert_prepared(self, prepared))
    }

    /// Issues a successor to key `id` with the same prefix, tenant, subject, scopes and expiry,
    /// and lets the old key work until `now + grace` (or its own earlier expiry), after which it
    /// stops by itself. A revoked, expired or already rotated key cannot be rotated.
    ///
    /// A key that signs requests cannot be rotated this way: see
    /// [`rotate_with_kek`](Self::rotate_with_kek).
    fn rotate<'a>(
        &'a self,
        id: &'a KeyId,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(ApiKeyRecord, PlaintextKey), StoreError>> {
        Box::pin(async move {
            let (successor, plaintext, _) = self.rotate_with_kek(id, grace, None).await?;
            Ok((successor, plaintext))
        })
    }

    /// Like [`rotate`](Self::rotate), for keys that sign requests too. The successor of a
    /// signing key gets a new signing secret, sealed under `kek` for the successor's id and
    /// returned in plaintext this once; the old key keeps its own until its grace ends. The
    /// successor of a key that does not sign does not sign either (and `kek` is not used).
    ///
    /// Rotating a signing key without a KEK is refused ([`StoreError::InvalidInput`], field
    /// `kek`) and changes nothing. Whether the key signs is decided from the record the
    /// backend's transaction reads, like every other rotation rule.
    #[allow(
        clippy::type_complexity,
        reason = "rotate's tuple plus the secret, spelled out as callers will destructure it"
    )]
    fn rotate_with_kek<'a>(
        &'a self,
        id: &'a KeyId,
        grace: Duration,
        kek: Option<&'a Kek>,
    ) -> BoxFuture<'a, Result<(ApiKeyRecord, PlaintextKey, Option<SigningSecret>), StoreError>>
    {
        Box::pin(async move {
            let material = KeyMaterial::generate()?;
            // With a KEK, a secret for the successor is made whether or not the old key signs:
            // `Rotation::plan` decides, from the transaction's read, whether it is used. Only the
            // prefix that goes into the secret is read here, outside the transaction; a key's
            // prefix never changes.
            let (secret, sealed) = match kek {
                Some(kek) => {
                    let old = self
                        .get(id)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(id.clone()))?;
                    let secret = SigningSecret::generate(&old.prefix)?;
                    let sealed = kek.seal(material.id(), &secret)?;
                    (Some(secret), Some(sealed))
                }
                None => (None, None),
            };
            let rotation = Rotation {
                old: id.clone(),
                successor_id: material.id().clone(),
                successor_hash: material.hash(),
                successor_signing_secret: sealed,
                now: truncate_to_millis(self.clock().now()),
                grace,
            };
            let successor = self.commit_rotation(rotation).await?;
            // Handed out only if the successor got it, that is if the old key signed.
            let secret = secret.filter(|_| successor.signing_secret.is_some());
            let plaintext = material.into_plaintext(&successor.prefix);
            Ok((successor, plaintext, secret))
        })
    }

    /// Suspends a tenant: its keys are refused until [`unsuspend_tenant`](Self::unsuspend_tenant).
    fn suspend_tenant<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            validate_tenant(tenant)?;
            self.set_tenant_suspended(tenant, true).await
        })
    }

    /// Lifts a tenant's suspension.
    fn unsuspend_tenant<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            validate_tenant(tenant)?;
            self.set_tenant_suspended(tenant, false).await
        })
    }

    /// Revokes a JWT by its `jti` until `expires_at`, the token's own expiry (its `exp`): the
    /// revocation can go once the token would be refused anyway. Checks the `jti` (1 to 256
    /// printable ASCII characters), the tenant if given, and that `expires_at` is in the future;
    /// returns the revocation as written (times rounded to milliseconds). Revoking a `jti` again
    /// is harmless and never shortens its revocation.
    fn revoke_jwt<'a>(
        &'a self,
        jti: &'a str,
        tenant: Option<&'a str>,
        expires_at: SystemTime,
    ) -> BoxFuture<'a, Result<TokenRevocation, StoreError>> {
        Box::pin(async move {
            let revocation =
                TokenRevocation::new_checked(jti, tenant, expires_at, self.clock().now())?;
            self.revoke_token(revocation.clone()).await?;
            Ok(revocation)
        })
    }

    /// Suspends one subject of a tenant: the gateway refuses its JWTs until
    /// [`unsuspend_subject`](Self::unsuspend_subject). The tenant and subject follow the rules of
    /// a key's.
    fn suspend_subject<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            validate_suspended_subject(tenant, subject)?;
            self.set_subject_suspended(tenant, subject, true).await
        })
    }

    /// Lifts a subject's suspension.
    fn unsuspend_subject<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            validate_suspended_subject(tenant, subject)?;
            self.set_subject_suspended(tenant, subject, false).await
        })
    }

    /// Sets a tenant's own rate for one quota of the policy, replacing any it had. Checks the
    /// tenant (as a key's), the quota name (1 to 64 of `a-z 0-9 - _`), `limit` and `burst` (at
    /// least 1), `per` (1 ms to 100 years) and that the rate makes a
    /// [`Quota`](crate::Quota); stores `per` and `updated_at` truncated to milliseconds.
    fn set_tenant_rate<'a>(
        &'a self,
        rate: &'a TenantRate,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let rate = rate.checked()?;
            self.put_tenant_rate(rate).await
        })
    }

    /// Removes a tenant's own rate for one quota (the policy's applies again); returns whether
    /// there was one. Checks the tenant and the quota name as
    /// [`set_tenant_rate`](Self::set_tenant_rate) does.
    fn clear_tenant_rate<'a>(
        &'a self,
        tenant: &'a str,
        quota: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            validate_tenant(tenant)?;
            validate_quota_name(quota)?;
            self.delete_tenant_rate(tenant, quota).await
        })
    }

    /// [`get`](Self::get), the record behind an [`Arc`]: a caching store hands out the one it
    /// holds instead of a copy (the default wraps `get`'s).
    fn get_shared<'a>(
        &'a self,
        id: &'a KeyId,
    ) -> BoxFuture<'a, Result<Option<Arc<ApiKeyRecord>>, StoreError>> {
        Box::pin(async move { Ok(self.get(id).await?.map(Arc::new)) })
    }

    /// Checks a presented key: well-formed, known, right secret (compared in constant time),
    /// active, not expired, tenant not suspended. Does not record use: see [`touch`](Self::touch).
    fn verify<'a>(&'a self, presented: &'a str) -> BoxFuture<'a, Result<VerifiedKey, VerifyError>> {
        Box::pin(crate::verify::verify(self, presented))
    }
}

/// A rotation prepared by [`KeyStore::rotate_with_kek`] for a backend to commit.
#[derive(Debug)]
pub struct Rotation {
    old: KeyId,
    successor_id: KeyId,
    successor_hash: SecretHash,
    /// The successor's signing secret, sealed for its id, if a KEK was given.
    successor_signing_secret: Option<SealedSecret>,
    now: SystemTime,
    grace: Duration,
}

/// What a backend writes for a rotation, decided by [`Rotation::plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationPlan {
    /// The record to insert.
    pub successor: ApiKeyRecord,
    /// The old key's new expiry.
    pub old_expires_at: SystemTime,
}

impl Rotation {
    /// The key being rotated.
    pub fn old_id(&self) -> &KeyId {
        &self.old
    }

    /// Decides the rotation from the old key as the backend's transaction read it, and whether
    /// that key has a successor already.
    pub fn plan(
        &self,
        old: &ApiKeyRecord,
        has_successor: bool,
    ) -> Result<RotationPlan, StoreError> {
        let refuse = |reason| StoreError::NotRotatable {
            id: old.id.clone(),
            reason,
        };
        if old.state == KeyState::Revoked {
            return Err(refuse(NotRotatable::Revoked));
        }
        if old.is_expired_at(self.now) {
            return Err(refuse(NotRotatable::Expired));
        }
        if has_successor {
            return Err(refuse(NotRotatable::AlreadyRotated));
        }
        // A signing key's successor signs too, with a secret of its own; a key that does not
        // sign does not start to by rotation.
        let signing_secret = match (&old.signing_secret, &self.successor_signing_secret) {
            (None, _) => None,
            (Some(_), Some(sealed)) => Some(sealed.clone()),
            (Some(_), None) => {
                return Err(StoreError::invalid(
                    "kek",
                    "the key signs requests: rotating it takes the key-encryption key (KEK), to \
                     seal its successor's new signing secret",
                ));
            }
        };
        let grace_end = self
            .now
            .checked_add(self.grace)
            .map(truncate_to_millis)
            .ok_or(StoreError::invalid("grace", "reaches past the end of time"))?;
        let old_expires_at = old
            .expires_at
            .map_or(grace_end, |existing| existing.min(grace_end));
        let successor = ApiKeyRecord {
            id: self.successor_id.clone(),
            prefix: old.prefix.clone(),
            tenant: old.tenant.clone(),
            subject: old.subject.clone(),
            scopes: old.scopes.clone(),
            state: KeyState::Active,
            created_at: self.now,
            // A rotation replaces a secret; it does not extend a temporary key's life.
            expires_at: old.expires_at,
            last_used_at: None,
            rotated_from: Some(old.id.clone()),
            secret_hash: self.successor_hash,
            signing_secret,
        };
        Ok(RotationPlan {
            successor,
            old_expires_at,
        })
    }
}

/// A key made and checked, not yet stored, with whatever else its maker added (`T`).
struct PreparedKey<T> {
    record: ApiKeyRecord,
    material: KeyMaterial,
    extra: T,
}

/// What `create` and `create_signed` share up to the write: validation, id and secret, the
/// record; `extra` adds to the record (a sealed signing secret) and returns what else to hand
/// back.
fn prepare_key<T>(
    clock: &dyn Clock,
    new: NewKey,
    extra: impl FnOnce(&mut ApiKeyRecord) -> Result<T, StoreError>,
) -> Result<PreparedKey<T>, StoreError> {
    let now = truncate_to_millis(clock.now());
    let new = new.validated(now)?;
    let material = KeyMaterial::generate()?;
    let mut record = ApiKeyRecord {
        id: material.id().clone(),
        prefix: new.prefix,
        tenant: new.tenant,
        subject: new.subject,
        scopes: new.scopes,
        state: KeyState::Active,
        created_at: now,
        expires_at: new.expires_at,
        last_used_at: None,
        rotated_from: None,
        secret_hash: material.hash(),
        signing_secret: None,
    };
    let extra = extra(&mut record)?;
    Ok(PreparedKey {
        record,
        material,
        extra,
    })
}

/// Stores a prepared key and returns it with its plaintext, which exists nowhere else.
async fn insert_prepared<S, T>(
    store: &S,
    prepared: Result<PreparedKey<T>, StoreError>,
) -> Result<(ApiKeyRecord, PlaintextKey, T), StoreError>
where
    S: KeyStore + ?Sized,
{
    let PreparedKey {
        record,
        material,
        extra,
    } = prepared?;
    store.insert(record.clone()).await?;
    let plaintext = material.into_plaintext(&record.prefix);
    Ok((record, plaintext, extra))
}
