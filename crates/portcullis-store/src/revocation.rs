//! Revoked JWTs (by `jti`) and suspended subjects: what a gateway refuses beyond a token's own
//! signature and expiry.
//!
//! JWTs are checked without a store round trip, so a gateway cannot ask the store per request.
//! Each instance instead holds a [`RevocationSnapshot`] in memory and refreshes it every second
//! from [`KeyStore::revocation_snapshot`](crate::KeyStore::revocation_snapshot); a revocation
//! made anywhere is then honoured by every instance within a few seconds.
//!
//! A revocation is kept until the token's own expiry (`expires_at`, its `exp`): after that the
//! token is refused anyway, so the entry can go, and the list stays as small as the set of
//! revoked tokens that are still alive. [`KeyStore::purge_expired_revocations`](crate::KeyStore::purge_expired_revocations) deletes them;
//! the snapshot leaves them out whether or not they were purged. Suspended subjects have no
//! expiry: a suspension lasts until it is lifted.
//!
//! Validation lives here and is applied by the provided methods
//! ([`revoke_jwt`](crate::KeyStore::revoke_jwt),
//! [`suspend_subject`](crate::KeyStore::suspend_subject),
//! [`unsuspend_subject`](crate::KeyStore::unsuspend_subject)); the storage methods take what
//! they are given, like [`KeyStore::insert`](crate::KeyStore::insert).

use std::collections::HashSet;
use std::time::SystemTime;

use crate::clock::truncate_to_millis;
use crate::error::StoreError;
use crate::record::{validate_subject, validate_tenant};

/// One revoked JWT, by its `jti`. Kept until `expires_at` (the token's own expiry: after it the
/// token is refused anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRevocation {
    /// The token's `jti` claim: 1 to 256 printable ASCII characters.
    pub jti: String,
    /// The tenant the token was for, if the revoker said; a record for operators, the gateway
    /// refuses the `jti` whatever the tenant.
    pub tenant: Option<String>,
    /// The token's own expiry; the revocation is dropped after it.
    pub expires_at: SystemTime,
    /// When the token was (first) revoked.
    pub revoked_at: SystemTime,
}

/// What every gateway instance holds in memory and refreshes every second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationSnapshot {
    /// The `jti` of every revoked token that has not expired yet.
    pub tokens: HashSet<String>,
    /// Every suspended `(tenant, subject)`.
    pub subjects: HashSet<(String, String)>,
}

impl RevocationSnapshot {
    /// Whether a token with this `jti` is revoked.
    pub fn is_token_revoked(&self, jti: &str) -> bool {
        self.tokens.contains(jti)
    }

    /// Whether this subject of this tenant is suspended.
    pub fn is_subject_suspended(&self, tenant: &str, subject: &str) -> bool {
        // A tuple of `String`s cannot be looked up by borrowed parts; the set is small and this
        // runs per request only where a subject rule applies, so the two allocations are fine.
        self.subjects
            .contains(&(tenant.to_owned(), subject.to_owned()))
    }
}

/// Checks a `jti`: 1 to 256 printable ASCII characters (space included, as RFC 7519 allows any
/// string; the bound keeps the in-memory list small and the column indexable).
pub fn validate_jti(jti: &str) -> Result<(), StoreError> {
    let ok = (1..=256).contains(&jti.len()) && jti.bytes().all(|b| (0x20..0x7f).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "jti",
            "must be 1 to 256 printable ASCII characters",
        ))
    }
}

/// Checks a subject to suspend: the same rule as a key's subject (it is compared with the JWT's
/// `sub` and with key subjects alike).
pub fn validate_suspended_subject(tenant: &str, subject: &str) -> Result<(), StoreError> {
    validate_tenant(tenant)?;
    validate_subject(subject)
}

impl TokenRevocation {
    /// A revocation of `jti` made at `now`, checked: a sound `jti` and tenant, and an expiry
    /// after `now` (a token already expired needs no revocation, and the entry would be dropped
    /// at once). Times are rounded to what a store keeps.
    pub fn new_checked(
        jti: &str,
        tenant: Option<&str>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<Self, StoreError> {
        validate_jti(jti)?;
        if let Some(tenant) = tenant {
            validate_tenant(tenant)?;
        }
        let now = truncate_to_millis(now);
        let expires_at = truncate_to_millis(expires_at);
        if expires_at <= now {
            return Err(StoreError::invalid("expires_at", "must be in the future"));
        }
        Ok(Self {
            jti: jti.to_owned(),
            tenant: tenant.map(str::to_owned),
            expires_at,
            revoked_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn a_sound_revocation_is_rounded_to_milliseconds() {
        let at = now() + Duration::from_nanos(1_500_000_001);
        let r = TokenRevocation::new_checked("abc-123", Some("acme"), at, now()).unwrap();
        assert_eq!(r.expires_at, now() + Duration::from_millis(1500));
        assert_eq!(r.revoked_at, now());
        assert_eq!(r.tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn unsound_revocations_name_the_field() {
        let later = now() + Duration::from_secs(60);
        let long = "x".repeat(257);
        let cases = [
            ("", None, later, "jti"),
            (long.as_str(), None, later, "jti"),
            ("a\nb", None, later, "jti"),
            ("é", None, later, "jti"),
            ("ok", Some("a b"), later, "tenant"),
            ("ok", Some(""), later, "tenant"),
            ("ok", None, now(), "expires_at"),
            ("ok", None, now() + Duration::from_micros(999), "expires_at"),
        ];
        for (jti, tenant, at, field) in cases {
            let err = TokenRevocation::new_checked(jti, tenant, at, now()).unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidInput { field: f, .. } if *f == field),
                "{jti:?} {tenant:?}: {err}"
            );
        }
        assert!(TokenRevocation::new_checked(&"x".repeat(256), None, later, now()).is_ok());
    }

    #[test]
    fn subjects_are_checked_like_key_subjects() {
        assert!(validate_suspended_subject("acme", "user 1").is_ok());
        for (tenant, subject, field) in [
            ("a b", "u", "tenant"),
            ("acme", "", "subject"),
            ("acme", " u", "subject"),
            ("acme", "a\tb", "subject"),
        ] {
            let err = validate_suspended_subject(tenant, subject).unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidInput { field: f, .. } if *f == field),
                "{tenant:?} {subject:?}: {err}"
            );
        }
    }

    #[test]
    fn the_snapshot_answers_both_questions() {
        let mut snapshot = RevocationSnapshot::default();
        snapshot.tokens.insert("t1".to_owned());
        snapshot
            .subjects
            .insert(("acme".to_owned(), "alice".to_owned()));
        assert!(snapshot.is_token_revoked("t1"));
        assert!(!snapshot.is_token_revoked("t2"));
        assert!(snapshot.is_subject_suspended("acme", "alice"));
        assert!(!snapshot.is_subject_suspended("other", "alice"));
    }
}
