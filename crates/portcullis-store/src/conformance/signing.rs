//! The conformance checks for keys that sign requests: their sealed signing secrets are stored,
//! read back, handed out by `verify` and renewed by rotation alike on every backend.

use std::sync::Arc;

use super::{MINUTE, MS, rejection};
use crate::cache::CachedKeyStore;
use crate::clock::{Clock, ManualClock};
use crate::error::StoreError;
use crate::record::NewKey;
use crate::signing::{Kek, OpenError, SigningSecret};
use crate::store::KeyStore;
use crate::verify::RejectionKind;

fn opened(kek: &Kek, id: &crate::key::KeyId, sealed: Option<&crate::SealedSecret>) -> String {
    let sealed = sealed.expect("the key should sign");
    kek.open(id, sealed).unwrap().expose_secret().to_owned()
}

/// A signed key stores its secret sealed for its id; it reads back, lists and verifies with it.
pub async fn signed_keys_round_trip(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let kek = Kek::generate().unwrap();
    let (record, key, secret) = store
        .create_signed(
            NewKey::new("acme", "tenant-a").with_scopes(["orders:write"]),
            &kek,
        )
        .await
        .unwrap();
    let text = secret.expose_secret();
    assert!(text.starts_with("acme_sig_"), "{secret:?}");
    assert_eq!(text.len(), "acme_sig_".len() + 43);
    assert_eq!(secret.as_bytes(), text.as_bytes());
    assert_eq!(key.id(), &record.id);
    assert_eq!(
        opened(&kek, &record.id, record.signing_secret.as_ref()),
        text
    );

    assert_eq!(store.get(&record.id).await.unwrap(), Some(record.clone()));
    assert_eq!(
        store.list(Some("tenant-a")).await.unwrap(),
        std::slice::from_ref(&record)
    );
    let verified = store.verify(key.expose_secret()).await.unwrap();
    assert_eq!(verified.signing_secret, record.signing_secret);
    assert_eq!(
        opened(&kek, &verified.id, verified.signing_secret.as_ref()),
        text
    );
    let cached = CachedKeyStore::new(Arc::clone(&store));
    let through_cache = cached.verify(key.expose_secret()).await.unwrap();
    assert_eq!(through_cache.signing_secret, record.signing_secret);

    // Sealed under this KEK for this key only.
    let sealed = record.signing_secret.as_ref().unwrap();
    assert_eq!(
        Kek::generate()
            .unwrap()
            .open(&record.id, sealed)
            .unwrap_err(),
        OpenError
    );
    let (other, _, other_secret) = store
        .create_signed(NewKey::new("acme", "tenant-a"), &kek)
        .await
        .unwrap();
    assert_ne!(other_secret.expose_secret(), text);
    assert_eq!(kek.open(&other.id, sealed).unwrap_err(), OpenError);

    // A refused request stores nothing.
    let err = store
        .create_signed(NewKey::new("ACME", "tenant-a"), &kek)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidInput {
                field: "prefix",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.list(None).await.unwrap().len(), 2);
}

/// A key made with `create` does not sign, and its successor does not either.
pub async fn plain_keys_do_not_sign(store: Arc<dyn KeyStore>, _clock: Arc<ManualClock>) {
    let kek = Kek::generate().unwrap();
    let (record, key) = store.create(NewKey::new("acme", "tenant-a")).await.unwrap();
    assert_eq!(record.signing_secret, None);
    assert_eq!(
        store.get(&record.id).await.unwrap().unwrap().signing_secret,
        None
    );
    assert_eq!(
        store
            .verify(key.expose_secret())
            .await
            .unwrap()
            .signing_secret,
        None
    );

    let (successor, successor_key, secret) = store
        .rotate_with_kek(&record.id, MINUTE, Some(&kek))
        .await
        .unwrap();
    assert!(secret.is_none(), "{secret:?}");
    assert_eq!(successor.signing_secret, None);
    assert_eq!(
        store.get(&successor.id).await.unwrap(),
        Some(successor.clone())
    );
    assert_eq!(
        store
            .verify(successor_key.expose_secret())
            .await
            .unwrap()
            .signing_secret,
        None
    );
    // No KEK needed for a key that does not sign.
    assert!(store.rotate(&successor.id, MINUTE).await.is_ok());
}

/// A signing key's successor gets a new secret of its own; the old key keeps its secret while
/// its grace lasts.
pub async fn signed_key_rotation(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let kek = Kek::generate().unwrap();
    let (old, old_key, old_secret) = store
        .create_signed(NewKey::new("acme", "tenant-a").with_subject("ci"), &kek)
        .await
        .unwrap();
    clock.advance(MINUTE);
    let (new, new_key, new_secret) = store
        .rotate_with_kek(&old.id, 10 * MINUTE, Some(&kek))
        .await
        .unwrap();
    let new_secret: SigningSecret = new_secret.expect("a signing key's successor signs");

    assert_eq!(new.rotated_from, Some(old.id.clone()));
    assert!(new_secret.expose_secret().starts_with("acme_sig_"));
    assert_ne!(new_secret.expose_secret(), old_secret.expose_secret());
    assert_ne!(new.signing_secret, old.signing_secret);
    assert_eq!(
        opened(&kek, &new.id, new.signing_secret.as_ref()),
        new_secret.expose_secret()
    );
    // Sealed for the successor's id, not the old one's.
    assert!(
        kek.open(&old.id, new.signing_secret.as_ref().unwrap())
            .is_err()
    );
    assert_eq!(store.get(&new.id).await.unwrap(), Some(new.clone()));

    let old_now = store.get(&old.id).await.unwrap().unwrap();
    assert_eq!(old_now.signing_secret, old.signing_secret);
    assert_eq!(old_now.expires_at, Some(clock.now() + 10 * MINUTE));

    let verified_old = store.verify(old_key.expose_secret()).await.unwrap();
    assert_eq!(
        opened(&kek, &verified_old.id, verified_old.signing_secret.as_ref()),
        old_secret.expose_secret()
    );
    let verified_new = store.verify(new_key.expose_secret()).await.unwrap();
    assert_eq!(
        opened(&kek, &verified_new.id, verified_new.signing_secret.as_ref()),
        new_secret.expose_secret()
    );

    clock.advance(10 * MINUTE - MS);
    assert!(store.verify(old_key.expose_secret()).await.is_ok());
    clock.advance(MS);
    assert_eq!(
        rejection(store.verify(old_key.expose_secret()).await),
        RejectionKind::Expired
    );
    assert!(store.verify(new_key.expose_secret()).await.is_ok());
}

/// Rotating a signing key without the KEK is refused, and leaves everything as it was.
pub async fn signed_rotation_needs_the_kek(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    fn refused_for_want_of_a_kek<T: std::fmt::Debug>(result: Result<T, StoreError>) {
        match result {
            Err(StoreError::InvalidInput {
                field: "kek",
                reason,
            }) => {
                assert!(reason.contains("key-encryption key"), "{reason}");
            }
            other => panic!("expected a refusal for want of a KEK, got {other:?}"),
        }
    }

    let kek = Kek::generate().unwrap();
    let (record, key, _) = store
        .create_signed(NewKey::new("acme", "tenant-a"), &kek)
        .await
        .unwrap();
    clock.advance(MINUTE);
    refused_for_want_of_a_kek(store.rotate(&record.id, MINUTE).await);
    refused_for_want_of_a_kek(store.rotate_with_kek(&record.id, MINUTE, None).await);
    let cached = CachedKeyStore::new(Arc::clone(&store));
    refused_for_want_of_a_kek(cached.rotate(&record.id, MINUTE).await);

    assert_eq!(
        store.list(None).await.unwrap(),
        std::slice::from_ref(&record)
    );
    assert_eq!(store.get(&record.id).await.unwrap(), Some(record.clone()));
    clock.advance(60 * MINUTE);
    assert!(store.verify(key.expose_secret()).await.is_ok());
    // With the KEK it goes through: the refusals left no successor behind.
    let (_, _, secret) = store
        .rotate_with_kek(&record.id, MINUTE, Some(&kek))
        .await
        .unwrap();
    assert!(secret.is_some());
}

/// No signing secret, and nothing of the KEK, appears in any `Debug` output.
pub async fn signing_debug_output_has_no_secrets(
    store: Arc<dyn KeyStore>,
    _clock: Arc<ManualClock>,
) {
    let kek = Kek::generate().unwrap();
    let (record, key, secret) = store
        .create_signed(NewKey::new("acme", "tenant-a"), &kek)
        .await
        .unwrap();
    let verified = store.verify(key.expose_secret()).await.unwrap();
    let (rotated, rotated_key, rotated_secret) = store
        .rotate_with_kek(&record.id, MINUTE, Some(&kek))
        .await
        .unwrap();
    let refused = store.rotate(&rotated.id, MINUTE).await.unwrap_err();
    let listed = store.list(None).await.unwrap();
    let shown = format!(
        "{record:?} {key:?} {secret:?} {verified:?} {rotated:?} {rotated_key:?} \
         {rotated_secret:?} {refused:?} {refused} {listed:?} {kek:?} {store:?}"
    );
    let rotated_secret = rotated_secret.unwrap();
    let body = |secret: &SigningSecret| secret.expose_secret()["acme_sig_".len()..].to_owned();
    for (what, needle) in [
        ("signing secret", body(&secret)),
        ("rotated signing secret", body(&rotated_secret)),
        ("KEK", kek.to_hex()[..16].to_owned()),
    ] {
        assert!(!shown.contains(&needle), "{what} in Debug output: {shown}");
    }
}
