//! The behaviour every [`KeyStore`] backend must have, as one suite run against each of them.
//!
//! Each check is an async function taking a fresh store and the [`ManualClock`] it runs on.
//! [`key_store_conformance!`](crate::key_store_conformance) turns the whole list into one
//! `#[tokio::test]` per check for a backend's setup function, so a failure names the backend
//! and the behaviour:
//!
//! ```ignore
//! fn setup(clock: Arc<ManualClock>) -> Setup { /* a fresh, empty store on `clock` */ }
//! portcullis_store::key_store_conformance!(setup);
//! ```
//!
//! The cache checks wrap the backend in a [`CachedKeyStore`] and change the backend behind the
//! cache's back, as another gateway instance would. The checks for keys that sign requests
//! (sealed signing secrets, their rotation) are in `signing`; those for revoked JWTs and
//! suspended subjects in `revocation`; those for tenants' rates in `tenant_rate`.
//!
//! Compiled for this crate's tests and, with the `conformance` feature, for backends elsewhere.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test suite: a panic is how a check reports a failure"
)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::CachedKeyStore;
use crate::clock::{Clock, ManualClock, truncate_to_millis};
use crate::error::{NotRotatable, StoreError};
use crate::key::{KeyId, KeyMaterial, PlaintextKey};
use crate::record::{ApiKeyRecord, AuditRecord, KeyState, NewKey};
use crate::store::{BoxFuture, KeyStore};
use crate::verify::{RejectionKind, VerifiedKey, VerifyError};

mod revocation;
mod signing;
mod tenant_rate;

pub use revocation::{
    cache_passes_revocations_through, expired_revocations_are_purged,
    re_revoking_keeps_the_later_expiry, revoked_tokens_are_in_the_snapshot_until_they_expire,
    subject_suspension, unsound_revocations_name_the_field,
};
pub use signing::{
    plain_keys_do_not_sign, signed_key_rotation, signed_keys_round_trip,
    signed_rotation_needs_the_kek, signing_debug_output_has_no_secrets,
};
pub use tenant_rate::{
    cache_passes_tenant_rates_through, clearing_a_tenant_rate_reports_it,
    setting_a_tenant_rate_again_replaces_it, tenant_rates_are_sorted, tenant_rates_round_trip,
    unsound_tenant_rates_name_the_field,
};

/// Work to do after a check: drop a database schema, delete a temporary directory.
pub type Teardown = BoxFuture<'static, ()>;

/// What a backend's setup function returns: a fresh, empty store on the given clock, and its
/// teardown.
pub type Setup = BoxFuture<'static, (Arc<dyn KeyStore>, Teardown)>;

/// Runs one check against a fresh store from `setup`, then the teardown.
pub async fn run<C, F>(setup: fn(Arc<ManualClock>) -> Setup, check: C)
where
    C: FnOnce(Arc<dyn KeyStore>, Arc<ManualClock>) -> F,
    F: Future<Output = ()>,
{
    let clock = Arc::new(ManualClock::default());
    let (store, teardown) = setup(Arc::clone(&clock)).await;
    check(store, clock).await;
    teardown.await;
}

/// One `#[tokio::test]` per conformance check, for a backend's setup function
/// (`fn(Arc<ManualClock>) -> Setup`). Attributes given before the setup function (such as
/// `#[ignore = "…"]`) are put on every test.
#[macro_export]
macro_rules! key_store_conformance {
    ($(#[$attr:meta])* $setup:path) => {
        $crate::key_store_conformance!(@each [$(#[$attr])*] $setup;
            create_and_verify,
            wrong_secret,
            malformed_keys,
            unknown_key,
            invalid_requests_store_nothing,
            expiry,
            rotation_grace,
            rotation_keeps_an_earlier_expiry,
            rotation_refusals,
            revoke,
            tenant_suspension,
            list_by_tenant,
            touch_records_last_use,
            audit_round_trip,
            cache_sees_revocation_after_ttl,
            cache_sees_suspension_after_ttl,
            cache_remembers_unknown_keys_for_ttl,
            debug_output_has_no_secrets,
            signed_keys_round_trip,
            plain_keys_do_not_sign,
            signed_key_rotation,
            signed_rotation_needs_the_kek,
            signing_debug_output_has_no_secrets,
            revoked_tokens_are_in_the_snapshot_until_they_expire,
            expired_revocations_are_purged,
            re_revoking_keeps_the_later_expiry,
            subject_suspension,
            unsound_revocations_name_the_field,
            cache_passes_revocations_through,
            tenant_rates_round_trip,
            setting_a_tenant_rate_again_replaces_it,
            clearing_a_tenant_rate_reports_it,
            tenant_rates_are_sorted,
            unsound_tenant_rates_name_the_field,
            cache_passes_tenant_rates_through,
        );
    };
    // One check at a time: the attributes repeat per test, which a single nested repetition
    // cannot express.
    (@each [$($attr:tt)*] $setup:path; $check:ident $(, $rest:ident)* $(,)?) => {
        #[tokio::test]
        $($attr)*
        async fn $check() {
            $crate::conformance::run($setup, $crate::conformance::$check).await;
        }
        $crate::key_store_conformance!(@each [$($attr)*] $setup; $($rest),*);
    };
    (@each [$($attr:tt)*] $setup:path;) => {};
}

const DAY: Duration = Duration::from_secs(86_400);
const MINUTE: Duration = Duration::from_secs(60);
const MS: Duration = Duration::from_millis(1);

fn rejection(result: Result<VerifiedKey, VerifyError>) -> RejectionKind {
    match result {
        Ok(verified) => panic!("expected a rejection, got {verified:?}"),
        Err(VerifyError::Rejected(rejection)) => rejection.kind(),
        Err(VerifyError::Store(err)) => panic!("expected a rejection, the store failed: {err}"),
    }
}

fn secret_of(key: &PlaintextKey) -> &str {
    let text = key.expose_secret();
    // `<prefix>_<id>_`: the secret is everything after the id.
    let start = text.find('_').unwrap() + 1 + 16 + 1;
    &text[start..]
}

async fn make(store: &dyn KeyStore, tenant: &str) -> (ApiKeyRecord, PlaintextKey) {
    store
        .create(NewKey::new("acme", tenant).with_scopes(["orders:read"]))
        .await
        .unwrap()
}

/// A key is made as asked, reads back exactly, and verifies to its identity.
pub async fn create_and_verify(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let expires_at = clock.now() + DAY;
    let (record, key) = store
        .create(
            NewKey::new("acme", "tenant-a")
                .with_subject("billing service")
                .with_scopes(["orders:read", "orders:write"])
                .with_expiry(expires_at),
        )
        .await
        .unwrap();
    assert_eq!(key.id(), &record.id);
    assert!(
        key.expose_secret()
            .starts_with(&format!("acme_{}_", record.id))
    );
    assert_eq!(key.expose_secret().len(), "acme".len() + 1 + 16 + 1 + 43);
    assert_eq!(record.prefix, "acme");
    assert_eq!(record.tenant, "tenant-a");
    assert_eq!(record.state, KeyState::Active);
    assert_eq!(record.created_at, clock.now());
    assert_eq!(record.expires_at, Some(expires_at));
    assert_eq!(record.last_used_at, None);
    assert_eq!(record.rotated_from, None);
    assert_eq!(store.get(&record.id).await.unwrap(), Some(record.clone()));

    let verified = store.verify(key.expose_secret()).await.unwrap();
    assert_eq!(**verified.record(), record);
    assert_eq!(verified.tenant, "tenant-a");
    assert_eq!(verified.subject.as_deref(), Some("billing service"));
    assert_eq!(verified.scopes, ["orders:read", "orders:write"]);
    assert_eq!(verified.expires_at, Some(expires_at));
    assert_eq!(verified.signing_secret, None);
}

/// Another key's secret under this key's id is a bad secret.
pub async fn wrong_secret(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let (record, _) = make(store.as_ref(), "tenant-a").await;
    let (_, other) = make(store.as_ref(), "tenant-a").await;
    let forged = format!("acme_{}_{}", record.id, secret_of(&other));
    let err = store.verify(&forged).await.unwrap_err();
    let rejection = err.rejection().unwrap();
    assert_eq!(rejection.kind(), RejectionKind::BadSecret);
    assert_eq!(rejection.key_id(), Some(&record.id));
}

/// Anything not of the exact form is malformed, and the rejection names no key.
pub async fn malformed_keys(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let (_, key) = make(store.as_ref(), "tenant-a").await;
    let good = key.expose_secret();
    let bad = [
        String::new(),
        "acme".to_owned(),
        "acme_x_y".to_owned(),
        format!("{good}A"),
        good[..good.len() - 1].to_owned(),
        good.to_uppercase(),
        format!("Bearer {good}"),
        good.replacen('_', "-", 1),
    ];
    for presented in &bad {
        let err = store.verify(presented).await.unwrap_err();
        let rejection = err.rejection().unwrap();
        assert_eq!(rejection.kind(), RejectionKind::Malformed, "{presented:?}");
        assert_eq!(rejection.key_id(), None);
    }
}

/// A well-formed key with an id nobody has, or with another prefix, is unknown.
pub async fn unknown_key(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let (record, key) = make(store.as_ref(), "tenant-a").await;
    let nobody: KeyId = "aaaaaaaaaaaaaaaa".parse().unwrap();
    let presented = format!("acme_{nobody}_{}", secret_of(&key));
    let err = store.verify(&presented).await.unwrap_err();
    assert_eq!(err.rejection().unwrap().kind(), RejectionKind::UnknownKey);
    assert_eq!(err.rejection().unwrap().key_id(), Some(&nobody));

    let other_prefix = format!("other_{}_{}", record.id, secret_of(&key));
    assert_eq!(
        rejection(store.verify(&other_prefix).await),
        RejectionKind::UnknownKey
    );
    assert!(store.verify(key.expose_secret()).await.is_ok());
}

/// A refused request stores nothing.
pub async fn invalid_requests_store_nothing(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let requests = [
        NewKey::new("ACME", "tenant-a"),
        NewKey::new("acme", "tenant a"),
        NewKey::new("acme", "tenant-a").with_scopes(["a b"]),
        NewKey::new("acme", "tenant-a").with_expiry(clock.now()),
    ];
    for new in requests {
        let err = store.create(new.clone()).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput { .. }),
            "{new:?}: {err}"
        );
    }
    assert_eq!(store.list(None).await.unwrap(), []);
}

/// A key works up to its expiry instant and not from it on.
pub async fn expiry(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let (_, key) = store
        .create(NewKey::new("acme", "tenant-a").with_expiry(clock.now() + 60 * MINUTE))
        .await
        .unwrap();
    assert!(store.verify(key.expose_secret()).await.is_ok());
    clock.advance(60 * MINUTE - MS);
    assert!(store.verify(key.expose_secret()).await.is_ok());
    clock.advance(MS);
    assert_eq!(
        rejection(store.verify(key.expose_secret()).await),
        RejectionKind::Expired
    );
}

/// After a rotation both keys work until the grace ends; then only the successor does.
pub async fn rotation_grace(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let (old, old_key) = store
        .create(
            NewKey::new("acme", "tenant-a")
                .with_subject("ci")
                .with_scopes(["deploy", "read"]),
        )
        .await
        .unwrap();
    clock.advance(MINUTE);
    let (new, new_key) = store.rotate(&old.id, 10 * MINUTE).await.unwrap();

    assert_ne!(new.id, old.id);
    assert_eq!(new_key.id(), &new.id);
    assert!(new_key.expose_secret().starts_with("acme_"));
    assert_eq!(new.rotated_from, Some(old.id.clone()));
    assert_eq!(
        (&new.prefix, &new.tenant, &new.subject, &new.scopes),
        (&old.prefix, &old.tenant, &old.subject, &old.scopes)
    );
    assert_eq!(new.state, KeyState::Active);
    assert_eq!(new.created_at, clock.now());
    assert_eq!(new.expires_at, None);
    assert_eq!(store.get(&new.id).await.unwrap(), Some(new.clone()));
    let old_now = store.get(&old.id).await.unwrap().unwrap();
    assert_eq!(old_now.expires_at, Some(clock.now() + 10 * MINUTE));
    assert_eq!(old_now.state, KeyState::Active);

    assert!(store.verify(old_key.expose_secret()).await.is_ok());
    assert!(store.verify(new_key.expose_secret()).await.is_ok());
    clock.advance(10 * MINUTE - MS);
    assert!(store.verify(old_key.expose_secret()).await.is_ok());
    clock.advance(MS);
    assert_eq!(
        rejection(store.verify(old_key.expose_secret()).await),
        RejectionKind::Expired
    );
    assert!(store.verify(new_key.expose_secret()).await.is_ok());
}

/// Rotation never lengthens a key's life: not the old key's, not its successor's.
pub async fn rotation_keeps_an_earlier_expiry(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let expires_at = clock.now() + 5 * MINUTE;
    let (old, _) = store
        .create(NewKey::new("acme", "tenant-a").with_expiry(expires_at))
        .await
        .unwrap();
    let (new, _) = store.rotate(&old.id, 60 * MINUTE).await.unwrap();
    assert_eq!(new.expires_at, Some(expires_at));
    let old = store.get(&old.id).await.unwrap().unwrap();
    assert_eq!(old.expires_at, Some(expires_at));
}

/// Revoked, expired, already rotated and unknown keys cannot be rotated.
pub async fn rotation_refusals(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    fn refused(result: Result<(ApiKeyRecord, PlaintextKey), StoreError>) -> NotRotatable {
        match result {
            Err(StoreError::NotRotatable { reason, .. }) => reason,
            other => panic!("expected a refused rotation, got {other:?}"),
        }
    }

    let (revoked, _) = make(store.as_ref(), "tenant-a").await;
    store.revoke(&revoked.id).await.unwrap();
    assert_eq!(
        refused(store.rotate(&revoked.id, MINUTE).await),
        NotRotatable::Revoked
    );

    let (rotated, _) = make(store.as_ref(), "tenant-a").await;
    let (successor, _) = store.rotate(&rotated.id, MINUTE).await.unwrap();
    assert_eq!(
        refused(store.rotate(&rotated.id, MINUTE).await),
        NotRotatable::AlreadyRotated
    );
    clock.advance(MINUTE);
    assert_eq!(
        refused(store.rotate(&rotated.id, MINUTE).await),
        NotRotatable::Expired
    );
    // The successor is the one to rotate next.
    assert!(store.rotate(&successor.id, MINUTE).await.is_ok());

    let nobody: KeyId = "aaaaaaaaaaaaaaaa".parse().unwrap();
    assert!(matches!(
        store.rotate(&nobody, MINUTE).await,
        Err(StoreError::NotFound(id)) if id == nobody
    ));
    // Refused rotations left nothing behind: 2 made, 2 successors.
    assert_eq!(store.list(None).await.unwrap().len(), 4);
}

/// A revoked key is refused at once and for good; other keys are untouched.
pub async fn revoke(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let (record, key) = make(store.as_ref(), "tenant-a").await;
    let (_, other) = make(store.as_ref(), "tenant-a").await;
    assert!(store.verify(key.expose_secret()).await.is_ok());

    let revoked = store.revoke(&record.id).await.unwrap();
    assert_eq!(revoked.state, KeyState::Revoked);
    assert_eq!(revoked.id, record.id);
    assert_eq!(store.get(&record.id).await.unwrap(), Some(revoked.clone()));
    assert_eq!(
        rejection(store.verify(key.expose_secret()).await),
        RejectionKind::Revoked
    );
    assert!(store.verify(other.expose_secret()).await.is_ok());

    // Again: same answer, no error.
    assert_eq!(store.revoke(&record.id).await.unwrap(), revoked);
    let nobody: KeyId = "aaaaaaaaaaaaaaaa".parse().unwrap();
    assert!(matches!(
        store.revoke(&nobody).await,
        Err(StoreError::NotFound(id)) if id == nobody
    ));
}

/// A suspended tenant's keys are refused until the suspension is lifted; others are not.
pub async fn tenant_suspension(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let (_, a) = make(store.as_ref(), "tenant-a").await;
    let (_, b) = make(store.as_ref(), "tenant-b").await;
    assert!(!store.is_tenant_suspended("tenant-a").await.unwrap());

    store.suspend_tenant("tenant-a").await.unwrap();
    store.suspend_tenant("tenant-a").await.unwrap();
    assert!(store.is_tenant_suspended("tenant-a").await.unwrap());
    assert!(!store.is_tenant_suspended("tenant-b").await.unwrap());
    assert_eq!(
        rejection(store.verify(a.expose_secret()).await),
        RejectionKind::TenantSuspended
    );
    assert!(store.verify(b.expose_secret()).await.is_ok());

    store.unsuspend_tenant("tenant-a").await.unwrap();
    store.unsuspend_tenant("tenant-a").await.unwrap();
    assert!(!store.is_tenant_suspended("tenant-a").await.unwrap());
    assert!(store.verify(a.expose_secret()).await.is_ok());

    // A tenant with no keys can be suspended ahead of its first key.
    store.suspend_tenant("tenant-c").await.unwrap();
    let (_, c) = make(store.as_ref(), "tenant-c").await;
    assert_eq!(
        rejection(store.verify(c.expose_secret()).await),
        RejectionKind::TenantSuspended
    );
    assert!(matches!(
        store.suspend_tenant("no spaces").await,
        Err(StoreError::InvalidInput {
            field: "tenant",
            ..
        })
    ));
}

/// Listing is by tenant or of all, oldest first.
pub async fn list_by_tenant(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let (a1, _) = make(store.as_ref(), "tenant-a").await;
    clock.advance(Duration::from_secs(1));
    let (b1, _) = make(store.as_ref(), "tenant-b").await;
    clock.advance(Duration::from_secs(1));
    let (a2, _) = make(store.as_ref(), "tenant-a").await;

    assert_eq!(
        store.list(Some("tenant-a")).await.unwrap(),
        [a1.clone(), a2.clone()]
    );
    assert_eq!(
        store.list(Some("tenant-b")).await.unwrap(),
        std::slice::from_ref(&b1)
    );
    assert_eq!(store.list(None).await.unwrap(), [a1, b1, a2]);
    assert_eq!(store.list(Some("tenant-z")).await.unwrap(), []);
}

/// Touching records the latest use and never goes back in time.
pub async fn touch_records_last_use(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let (record, _) = make(store.as_ref(), "tenant-a").await;
    let used = clock.now() + MINUTE + Duration::from_nanos(1_500_000);
    store.touch(&record.id, used).await.unwrap();
    let last = |r: Option<ApiKeyRecord>| r.unwrap().last_used_at;
    assert_eq!(
        last(store.get(&record.id).await.unwrap()),
        Some(truncate_to_millis(used))
    );
    store.touch(&record.id, used - MINUTE).await.unwrap();
    assert_eq!(
        last(store.get(&record.id).await.unwrap()),
        Some(truncate_to_millis(used))
    );
    store.touch(&record.id, used + MINUTE).await.unwrap();
    assert_eq!(
        last(store.get(&record.id).await.unwrap()),
        Some(truncate_to_millis(used + MINUTE))
    );
    let nobody: KeyId = "aaaaaaaaaaaaaaaa".parse().unwrap();
    store.touch(&nobody, used).await.unwrap();
}

/// Audit records read back as written (to the millisecond), newest first.
pub async fn audit_round_trip(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    assert_eq!(store.list_audit(10).await.unwrap(), []);
    let records: Vec<AuditRecord> = (0..3u64)
        .map(|i| AuditRecord {
            at: clock.now() + Duration::from_secs(i) + Duration::from_nanos(1_234_567),
            actor: format!("admin-{i}"),
            action: "key.create".to_owned(),
            target: "abcdefgh234567zz".to_owned(),
            correlation_id: (i != 1).then(|| format!("corr-{i}")),
            detail: (i == 2).then(|| "scopes=orders:read".to_owned()),
        })
        .collect();
    for record in &records {
        store.record_audit(record.clone()).await.unwrap();
    }
    let expected: Vec<AuditRecord> = records
        .iter()
        .rev()
        .map(|r| AuditRecord {
            at: truncate_to_millis(r.at),
            ..r.clone()
        })
        .collect();
    assert_eq!(store.list_audit(10).await.unwrap(), expected);
    assert_eq!(store.list_audit(2).await.unwrap(), expected[..2]);
    assert_eq!(store.list_audit(0).await.unwrap(), []);
}

/// Through the cache, a revocation made elsewhere is seen once the TTL has passed, not before;
/// one made through the cache is seen at once.
pub async fn cache_sees_revocation_after_ttl(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let ttl = Duration::from_secs(2);
    let cached = CachedKeyStore::new(Arc::clone(&store)).with_ttl(ttl);
    let (record, key) = make(store.as_ref(), "tenant-a").await;
    assert!(cached.verify(key.expose_secret()).await.is_ok());

    store.revoke(&record.id).await.unwrap();
    assert!(cached.verify(key.expose_secret()).await.is_ok());
    clock.advance(ttl - MS);
    assert!(cached.verify(key.expose_secret()).await.is_ok());
    clock.advance(MS);
    assert_eq!(
        rejection(cached.verify(key.expose_secret()).await),
        RejectionKind::Revoked
    );

    let (local, local_key) = make(store.as_ref(), "tenant-a").await;
    assert!(cached.verify(local_key.expose_secret()).await.is_ok());
    cached.revoke(&local.id).await.unwrap();
    assert_eq!(
        rejection(cached.verify(local_key.expose_secret()).await),
        RejectionKind::Revoked
    );
}

/// Through the cache, a suspension (and its lifting) made elsewhere is seen after the TTL.
pub async fn cache_sees_suspension_after_ttl(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let ttl = Duration::from_secs(2);
    let cached = CachedKeyStore::new(Arc::clone(&store)).with_ttl(ttl);
    let (_, key) = make(store.as_ref(), "tenant-a").await;
    assert!(cached.verify(key.expose_secret()).await.is_ok());

    store.suspend_tenant("tenant-a").await.unwrap();
    clock.advance(ttl - MS);
    assert!(cached.verify(key.expose_secret()).await.is_ok());
    clock.advance(MS);
    assert_eq!(
        rejection(cached.verify(key.expose_secret()).await),
        RejectionKind::TenantSuspended
    );

    store.unsuspend_tenant("tenant-a").await.unwrap();
    assert_eq!(
        rejection(cached.verify(key.expose_secret()).await),
        RejectionKind::TenantSuspended
    );
    clock.advance(ttl);
    assert!(cached.verify(key.expose_secret()).await.is_ok());

    // Through the cache itself: at once.
    cached.suspend_tenant("tenant-a").await.unwrap();
    assert_eq!(
        rejection(cached.verify(key.expose_secret()).await),
        RejectionKind::TenantSuspended
    );
}

/// Through the cache, "no such key" is remembered for the TTL too.
pub async fn cache_remembers_unknown_keys_for_ttl(
    store: Arc<dyn KeyStore>,
    clock: Arc<ManualClock>,
) {
    let ttl = Duration::from_secs(2);
    let cached = CachedKeyStore::new(Arc::clone(&store)).with_ttl(ttl);
    // A key whose id is known before it exists, as if created on another instance.
    let material = KeyMaterial::generate().unwrap();
    let record = ApiKeyRecord {
        id: material.id().clone(),
        prefix: "acme".to_owned(),
        tenant: "tenant-a".to_owned(),
        subject: None,
        scopes: Vec::new(),
        state: KeyState::Active,
        created_at: clock.now(),
        expires_at: None,
        last_used_at: None,
        rotated_from: None,
        secret_hash: material.hash(),
        signing_secret: None,
    };
    let key = material.into_plaintext("acme");
    assert_eq!(
        rejection(cached.verify(key.expose_secret()).await),
        RejectionKind::UnknownKey
    );
    store.insert(record).await.unwrap();
    assert_eq!(
        rejection(cached.verify(key.expose_secret()).await),
        RejectionKind::UnknownKey
    );
    clock.advance(ttl);
    assert!(cached.verify(key.expose_secret()).await.is_ok());
}

/// No secret and no secret hash appears in any `Debug` output.
pub async fn debug_output_has_no_secrets(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let (record, key) = make(store.as_ref(), "tenant-a").await;
    let secret = secret_of(&key).to_owned();
    let hash = record.secret_hash.as_bytes();
    let hash_hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let hash_list = format!("{hash:?}");

    let verified = store.verify(key.expose_secret()).await.unwrap();
    let forged = format!("acme_{}_{}", record.id, "A".repeat(43));
    let bad_secret = store.verify(&forged).await.unwrap_err();
    let broken = store
        .verify(&format!("{}!", key.expose_secret()))
        .await
        .unwrap_err();
    let (rotated, rotated_key) = store.rotate(&record.id, MINUTE).await.unwrap();
    let fetched = store.get(&record.id).await.unwrap();
    let listed = store.list(None).await.unwrap();

    let shown = format!(
        "{record:?} {key:?} {verified:?} {bad_secret:?} {bad_secret} {broken:?} {broken} \
         {rotated:?} {rotated_key:?} {fetched:?} {listed:?} {store:?}"
    );
    assert!(
        shown.contains(record.id.as_str()),
        "the id is public: {shown}"
    );
    for (what, needle) in [
        ("secret", secret.as_str()),
        ("rotated secret", secret_of(&rotated_key)),
        ("full key", key.expose_secret()),
        ("hash (hex)", hash_hex.as_str()),
        ("hash (bytes)", &hash_list[1..hash_list.len() - 1]),
    ] {
        assert!(!shown.contains(needle), "{what} in Debug output: {shown}");
    }
}
