//! What a store holds: key records, the request for a new key, audit records.
//!
//! Names that end up in HTTP headers sent upstream (tenant, subject, scopes) are validated here,
//! once, when a key is made, so no later layer has to wonder whether a stored value is
//! header-safe.

use std::fmt;
use std::time::SystemTime;

use crate::clock::truncate_to_millis;
use crate::error::StoreError;
use crate::key::{KeyId, SecretHash, is_valid_prefix};
use crate::signing::SealedSecret;

/// Whether a key can still be used (expiry is a separate, time-dependent check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Usable until it expires.
    Active,
    /// Refused from now on; revocation is permanent.
    Revoked,
}

impl KeyState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }

    /// The state spelled `s` (as stored and displayed), if any.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One API key as stored. Holds the secret's hash, never the secret; `Debug` hides the hash too.
/// A key that signs requests also holds its signing secret, sealed under the KEK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public id, the lookup key.
    pub id: KeyId,
    /// The prefix the key is presented with.
    pub prefix: String,
    /// The tenant the key acts for.
    pub tenant: String,
    /// An optional label for whom or what the key is for.
    pub subject: Option<String>,
    /// Granted scopes, in the order given, without duplicates.
    pub scopes: Vec<String>,
    /// Active or revoked.
    pub state: KeyState,
    /// When the key was made.
    pub created_at: SystemTime,
    /// When the key stops working by itself, if ever.
    pub expires_at: Option<SystemTime>,
    /// When the key was last seen in use, as far as anyone recorded it.
    pub last_used_at: Option<SystemTime>,
    /// The key this one replaced by rotation.
    pub rotated_from: Option<KeyId>,
    /// SHA-256 of the secret.
    pub secret_hash: SecretHash,
    /// The request-signing secret, sealed under the KEK for this key's id; `None` for a key that
    /// does not sign requests.
    pub signing_secret: Option<SealedSecret>,
}

impl ApiKeyRecord {
    /// Whether the key has expired at `now` (it works up to, not at, its expiry instant).
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// What to make a key for. The store adds the id, secret, state and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// `[a-z0-9]{2,16}`, usually from the policy.
    pub prefix: String,
    /// 1 to 128 of `A-Z a-z 0-9 . _ : -`.
    pub tenant: String,
    /// An optional label: 1 to 256 printable ASCII characters, no surrounding spaces.
    pub subject: Option<String>,
    /// Scope tokens as in RFC 6749 §3.3: printable ASCII without space, `"` or `\`.
    pub scopes: Vec<String>,
    /// Must be later than now, if given.
    pub expires_at: Option<SystemTime>,
}

impl NewKey {
    /// A key for `tenant` with `prefix`, no subject, no scopes, no expiry.
    pub fn new(prefix: impl Into<String>, tenant: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            tenant: tenant.into(),
            subject: None,
            scopes: Vec::new(),
            expires_at: None,
        }
    }

    /// Sets the subject label.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the scopes.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the expiry instant.
    pub fn with_expiry(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Checks every field, drops duplicate scopes and rounds the expiry to what a store keeps.
    pub(crate) fn validated(mut self, now: SystemTime) -> Result<Self, StoreError> {
        if !is_valid_prefix(&self.prefix) {
            return Err(StoreError::invalid("prefix", "must be 2 to 16 of a-z 0-9"));
        }
        validate_tenant(&self.tenant)?;
        if let Some(subject) = &self.subject {
            validate_subject(subject)?;
        }
        let mut scopes: Vec<String> = Vec::with_capacity(self.scopes.len());
        for scope in self.scopes {
            validate_scope(&scope)?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        self.scopes = scopes;
        if let Some(at) = self.expires_at {
            let at = truncate_to_millis(at);
            if at <= now {
                return Err(StoreError::invalid("expires_at", "must be in the future"));
            }
            self.expires_at = Some(at);
        }
        Ok(self)
    }
}

/// Checks a tenant name: 1 to 128 of `A-Z a-z 0-9 . _ : -` (it travels in an HTTP header).
pub fn validate_tenant(tenant: &str) -> Result<(), StoreError> {
    let ok = (1..=128).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "tenant",
            "must be 1 to 128 of A-Z a-z 0-9 . _ : -",
        ))
    }
}

/// Checks a subject: 1 to 256 printable ASCII characters, no surrounding spaces.
pub(crate) fn validate_subject(subject: &str) -> Result<(), StoreError> {
    let ok = (1..=256).contains(&subject.len())
        && subject.bytes().all(|b| (0x20..0x7f).contains(&b))
        && subject.trim() == subject;
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "subject",
            "must be 1 to 256 printable ASCII characters without surrounding spaces",
        ))
    }
}

fn validate_scope(scope: &str) -> Result<(), StoreError> {
    // RFC 6749's scope-token; having no space also lets stores keep scopes space-separated.
    let ok = (1..=128).contains(&scope.len())
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "scope",
            "must be 1 to 128 printable ASCII characters without space, '\"' or '\\'",
        ))
    }
}

/// One administrative action, kept in the same store as the keys.
///
/// Callers must put no secret in any field: the plaintext key is shown once to whoever created
/// it and never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When it happened.
    pub at: SystemTime,
    /// Who did it (an admin credential's name, `cli:<user>`, …).
    pub actor: String,
    /// What was done, e.g. `key.create`, `key.rotate`, `tenant.suspend`.
    pub action: String,
    /// What it was done to: a key id or a tenant.
    pub target: String,
    /// The request's correlation ID, when it came over HTTP.
    pub correlation_id: Option<String>,
    /// Free-form detail (scopes granted, grace period, …).
    pub detail: Option<String>,
}

impl AuditRecord {
    /// Rounds the time to what a store keeps, so the record reads back equal.
    pub(crate) fn normalised(mut self) -> Self {
        self.at = truncate_to_millis(self.at);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn a_sound_request_passes_with_duplicates_dropped() {
        let new = NewKey::new("acme", "tenant-a")
            .with_subject("billing service")
            .with_scopes(["read", "write", "read", "admin:keys"])
            .with_expiry(now() + Duration::from_nanos(1_500_000_001))
            .validated(now())
            .unwrap();
        assert_eq!(new.scopes, ["read", "write", "admin:keys"]);
        assert_eq!(new.expires_at, Some(now() + Duration::from_millis(1500)));
    }

    #[test]
    fn unsound_requests_name_the_field() {
        let cases = [
            (NewKey::new("A", "t"), "prefix"),
            (NewKey::new("acme", ""), "tenant"),
            (NewKey::new("acme", "a b"), "tenant"),
            (NewKey::new("acme", "x".repeat(129)), "tenant"),
            (NewKey::new("acme", "t").with_subject(""), "subject"),
            (NewKey::new("acme", "t").with_subject(" x"), "subject"),
            (NewKey::new("acme", "t").with_subject("a\nb"), "subject"),
            (NewKey::new("acme", "t").with_scopes(["a b"]), "scope"),
            (NewKey::new("acme", "t").with_scopes([""]), "scope"),
            (NewKey::new("acme", "t").with_scopes(["a\"b"]), "scope"),
            (NewKey::new("acme", "t").with_expiry(now()), "expires_at"),
        ];
        for (new, field) in cases {
            let err = new.clone().validated(now()).unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidInput { field: f, .. } if *f == field),
                "{new:?}: {err}"
            );
        }
    }
}
