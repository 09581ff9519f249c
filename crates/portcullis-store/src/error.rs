//! The store's one error type (for the key store, the replay guard, the rate limiter and the
//! lockout).
//!
//! Messages name ids, tenants and fields, never a secret or a hash: they end up in logs and in
//! the CLI's output.

use std::error::Error;
use std::fmt;

use crate::key::KeyId;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A field of a request is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field, e.g. `tenant`.
        field: &'static str,
        /// The rule it broke.
        reason: &'static str,
    },
    /// No key has this id.
    #[error("no API key has id {0}")]
    NotFound(KeyId),
    /// The key cannot be rotated.
    #[error("API key {id} cannot be rotated: {reason}")]
    NotRotatable {
        /// The key asked for.
        id: KeyId,
        /// Why not.
        reason: NotRotatable,
    },
    /// A key with this id exists already (80 random bits: in practice, never).
    #[error("an API key with id {0} already exists")]
    DuplicateId(KeyId),
    /// The operating system's random number generator failed; no key was made.
    #[error("the operating system's random number generator failed: {0}")]
    Random(#[from] getrandom::Error),
    /// A stored row does not decode.
    #[error("the key store holds a value it cannot read: {0}")]
    Corrupt(String),
    /// The in-memory replay guard holds as many unexpired signatures as it may. It refuses new
    /// ones rather than forget one that could then be replayed.
    #[error(
        "the replay guard is full: {capacity} signatures are still within their window, and \
         forgetting one would let it be replayed; refusing the request (fail closed)"
    )]
    ReplayGuardFull {
        /// How many entries the guard holds at most.
        capacity: usize,
    },
    /// The in-memory rate limiter holds as many buckets as it may, none of which it can drop
    /// without giving a client back part of its budget. It refuses requests that need a new
    /// bucket rather than forget one in use; buckets it holds are still served.
    #[error(
        "the rate limiter is full: it holds {capacity} buckets that are still refilling, and \
         forgetting one would reset a client's budget; refusing the request (fail closed)"
    )]
    RateLimiterFull {
        /// How many buckets the limiter holds at most.
        capacity: usize,
    },
    /// The in-memory lockout holds as many keys as it may, none of which it can drop without
    /// forgetting failures or a lock that still count. It refuses failures that need a new entry
    /// rather than forget one in use; keys it holds are still served.
    #[error(
        "the lockout is full: it holds {capacity} keys whose failures or lock still count, and \
         forgetting one would reset an attacker's count; refusing the request (fail closed)"
    )]
    LockoutFull {
        /// How many keys the lockout holds at most.
        capacity: usize,
    },
    /// The database (connection, query, migration) or a Redis (the replay guard's, the rate
    /// limiter's, the lockout's) failed.
    #[error("store backend: {0}")]
    Backend(#[source] Box<dyn Error + Send + Sync>),
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, reason: &'static str) -> Self {
        Self::InvalidInput { field, reason }
    }
}

/// Why a key cannot be rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRotatable {
    /// It was revoked.
    Revoked,
    /// It has expired (its own expiry, or an earlier rotation's grace ran out).
    Expired,
    /// It has a successor already: rotate that one instead.
    AlreadyRotated,
}

impl fmt::Display for NotRotatable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Revoked => "it is revoked",
            Self::Expired => "it has expired",
            Self::AlreadyRotated => "it was rotated already; rotate its successor",
        })
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Backend(Box::new(err))
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::Backend(Box::new(err))
    }
}
