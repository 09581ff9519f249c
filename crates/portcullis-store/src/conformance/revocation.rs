//! The conformance checks for revoked JWTs and suspended subjects: every backend keeps, expires,
//! purges and reports them alike, and refuses unsound input before storing anything.

use std::sync::Arc;
use std::time::Duration;

use super::{MINUTE, MS};
use crate::cache::CachedKeyStore;
use crate::clock::{Clock, ManualClock, truncate_to_millis};
use crate::error::StoreError;
use crate::revocation::{RevocationSnapshot, TokenRevocation};
use crate::store::KeyStore;

fn field_of(result: Result<impl std::fmt::Debug, StoreError>) -> &'static str {
    match result {
        Err(StoreError::InvalidInput { field, .. }) => field,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

/// A revoked `jti` is in the snapshot until its expiry, and not from it on; other tokens never
/// are. The revocation comes back as written, rounded to milliseconds.
pub async fn revoked_tokens_are_in_the_snapshot_until_they_expire(
    store: Arc<dyn KeyStore>,
    clock: Arc<ManualClock>,
) {
    assert_eq!(
        store.revocation_snapshot(clock.now()).await.unwrap(),
        RevocationSnapshot::default()
    );
    let expires_at = clock.now() + 10 * MINUTE + Duration::from_nanos(1_500_000);
    let written = store
        .revoke_jwt("jti-1", Some("tenant-a"), expires_at)
        .await
        .unwrap();
    assert_eq!(
        written,
        TokenRevocation {
            jti: "jti-1".to_owned(),
            tenant: Some("tenant-a".to_owned()),
            expires_at: truncate_to_millis(expires_at),
            revoked_at: clock.now(),
        }
    );
    store
        .revoke_jwt("jti 2/with:odd~chars", None, clock.now() + MINUTE)
        .await
        .unwrap();

    let snapshot = store.revocation_snapshot(clock.now()).await.unwrap();
    assert_eq!(snapshot.tokens.len(), 2, "{snapshot:?}");
    assert!(snapshot.is_token_revoked("jti-1"));
    assert!(snapshot.is_token_revoked("jti 2/with:odd~chars"));
    assert!(!snapshot.is_token_revoked("jti-3"));
    assert!(snapshot.subjects.is_empty());

    // Up to, not at, the expiry instant (as a key's expiry).
    let gone = clock.now() + MINUTE;
    let snapshot = store.revocation_snapshot(gone - MS).await.unwrap();
    assert!(snapshot.is_token_revoked("jti 2/with:odd~chars"));
    let snapshot = store.revocation_snapshot(gone).await.unwrap();
    assert!(!snapshot.is_token_revoked("jti 2/with:odd~chars"));
    assert!(snapshot.is_token_revoked("jti-1"));
}

/// Expired revocations are purged, and only they; purging again finds nothing.
pub async fn expired_revocations_are_purged(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let start = clock.now();
    store
        .revoke_jwt("short", None, start + MINUTE)
        .await
        .unwrap();
    store.revoke_jwt("shorter", None, start + MS).await.unwrap();
    store
        .revoke_jwt("long", None, start + 60 * MINUTE)
        .await
        .unwrap();
    assert_eq!(store.purge_expired_revocations(start).await.unwrap(), 0);

    clock.advance(MINUTE);
    // At the expiry instant the token is refused anyway: it goes.
    assert_eq!(
        store.purge_expired_revocations(clock.now()).await.unwrap(),
        2
    );
    assert_eq!(
        store.purge_expired_revocations(clock.now()).await.unwrap(),
        0
    );
    let snapshot = store.revocation_snapshot(start).await.unwrap();
    assert_eq!(
        snapshot.tokens.into_iter().collect::<Vec<_>>(),
        ["long"],
        "purged rows are gone even for an earlier `now`"
    );
}

/// Revoking a `jti` again never shortens its revocation, and may lengthen it.
pub async fn re_revoking_keeps_the_later_expiry(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let start = clock.now();
    store
        .revoke_jwt("jti", Some("tenant-a"), start + 10 * MINUTE)
        .await
        .unwrap();
    store
        .revoke_jwt("jti", None, start + 5 * MINUTE)
        .await
        .unwrap();
    assert_eq!(
        store
            .purge_expired_revocations(start + 7 * MINUTE)
            .await
            .unwrap(),
        0
    );
    let snapshot = store.revocation_snapshot(start + 7 * MINUTE).await.unwrap();
    assert!(snapshot.is_token_revoked("jti"));

    store
        .revoke_jwt("jti", None, start + 20 * MINUTE)
        .await
        .unwrap();
    let snapshot = store
        .revocation_snapshot(start + 15 * MINUTE)
        .await
        .unwrap();
    assert!(snapshot.is_token_revoked("jti"));
    assert_eq!(snapshot.tokens.len(), 1);
    let snapshot = store
        .revocation_snapshot(start + 20 * MINUTE)
        .await
        .unwrap();
    assert!(!snapshot.is_token_revoked("jti"));
    assert_eq!(
        store
            .purge_expired_revocations(start + 20 * MINUTE)
            .await
            .unwrap(),
        1
    );
}

/// A suspended subject is in the snapshot until the suspension is lifted; both are idempotent,
/// and subjects of other tenants (or other subjects of the tenant) are untouched.
pub async fn subject_suspension(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    store.suspend_subject("tenant-a", "alice").await.unwrap();
    store.suspend_subject("tenant-a", "alice").await.unwrap();
    store
        .suspend_subject("tenant-b", "bob smith")
        .await
        .unwrap();
    let snapshot = store.revocation_snapshot(clock.now()).await.unwrap();
    assert_eq!(snapshot.subjects.len(), 2, "{snapshot:?}");
    assert!(snapshot.is_subject_suspended("tenant-a", "alice"));
    assert!(snapshot.is_subject_suspended("tenant-b", "bob smith"));
    assert!(!snapshot.is_subject_suspended("tenant-b", "alice"));
    assert!(!snapshot.is_subject_suspended("tenant-a", "bob smith"));
    // Suspensions do not expire.
    let much_later = clock.now() + Duration::from_secs(10 * 365 * 86_400);
    assert_eq!(
        store.purge_expired_revocations(much_later).await.unwrap(),
        0
    );
    assert!(
        store
            .revocation_snapshot(much_later)
            .await
            .unwrap()
            .is_subject_suspended("tenant-a", "alice")
    );

    store.unsuspend_subject("tenant-a", "alice").await.unwrap();
    store.unsuspend_subject("tenant-a", "alice").await.unwrap();
    store.unsuspend_subject("tenant-c", "nobody").await.unwrap();
    let snapshot = store.revocation_snapshot(clock.now()).await.unwrap();
    assert_eq!(
        snapshot.subjects.into_iter().collect::<Vec<_>>(),
        [("tenant-b".to_owned(), "bob smith".to_owned())]
    );
    // A tenant suspension and a subject suspension are separate things.
    assert!(!store.is_tenant_suspended("tenant-b").await.unwrap());
}

/// Unsound input is refused, naming the field, and stores nothing.
pub async fn unsound_revocations_name_the_field(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let later = clock.now() + MINUTE;
    let long = "j".repeat(257);
    assert_eq!(field_of(store.revoke_jwt("", None, later).await), "jti");
    assert_eq!(field_of(store.revoke_jwt(&long, None, later).await), "jti");
    assert_eq!(
        field_of(store.revoke_jwt("a\u{7f}", None, later).await),
        "jti"
    );
    assert_eq!(
        field_of(store.revoke_jwt("ok", Some("a b"), later).await),
        "tenant"
    );
    assert_eq!(
        field_of(store.revoke_jwt("ok", None, clock.now()).await),
        "expires_at"
    );
    assert_eq!(
        field_of(store.revoke_jwt("ok", None, clock.now() - MINUTE).await),
        "expires_at"
    );
    assert_eq!(
        field_of(store.suspend_subject("a b", "alice").await),
        "tenant"
    );
    assert_eq!(
        field_of(store.suspend_subject("tenant-a", "").await),
        "subject"
    );
    assert_eq!(
        field_of(store.suspend_subject("tenant-a", " alice").await),
        "subject"
    );
    assert_eq!(
        field_of(store.unsuspend_subject("tenant-a", "a\nb").await),
        "subject"
    );
    assert_eq!(
        store.revocation_snapshot(clock.now()).await.unwrap(),
        RevocationSnapshot::default()
    );
}

/// Through the cache, revocations and suspensions made elsewhere show at once: the cache does
/// not keep them (the gateway refreshes its own snapshot).
pub async fn cache_passes_revocations_through(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let cached = CachedKeyStore::new(Arc::clone(&store));
    assert!(
        cached
            .revocation_snapshot(clock.now())
            .await
            .unwrap()
            .tokens
            .is_empty()
    );
    store
        .revoke_jwt("jti", None, clock.now() + MINUTE)
        .await
        .unwrap();
    store.suspend_subject("tenant-a", "alice").await.unwrap();
    let snapshot = cached.revocation_snapshot(clock.now()).await.unwrap();
    assert!(snapshot.is_token_revoked("jti"));
    assert!(snapshot.is_subject_suspended("tenant-a", "alice"));

    cached.unsuspend_subject("tenant-a", "alice").await.unwrap();
    cached
        .revoke_jwt("other", None, clock.now() + MINUTE)
        .await
        .unwrap();
    let snapshot = store.revocation_snapshot(clock.now()).await.unwrap();
    assert!(snapshot.subjects.is_empty());
    assert!(snapshot.is_token_revoked("other"));
    assert_eq!(
        cached
            .purge_expired_revocations(clock.now() + MINUTE)
            .await
            .unwrap(),
        2
    );
}
