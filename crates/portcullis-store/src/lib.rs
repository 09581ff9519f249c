//! Portcullis state behind traits, so the layers need not know where it lives.
//!
//! The API-key store ([`KeyStore`]), with tenant suspension, the audit log, the JWT
//! revocation list and subject suspensions ([`revocation`]), and tenants' own rate-limit plans
//! ([`tenant_rate`]) kept in the same place; the
//! request-signing secrets of keys that sign ([`signing`]); the replay guard that accepts each
//! request signature once ([`ReplayGuard`]); and the [`Clock`] that every time-dependent check
//! is given.
//!
//! Key stores:
//! - [`MemoryStore`]: always built; tests and demos.
//! - [`SqliteStore`] (feature `sqlite`): the embedded default, one file created on first run.
//! - [`PostgresStore`] (feature `postgres`): shared by many gateway instances.
//! - [`CachedKeyStore`]: any of them behind a short read-through cache, so a hot key costs no
//!   database round trip and revocation still shows within seconds on every instance.
//!
//! Keys look like `acme_k3x7…_Vq9…` ([`key`] says why); only a SHA-256 of the secret is stored,
//! and no type here prints a secret or its hash in `Debug`. Every backend passes the same
//! conformance suite (`conformance`, compiled for tests or with the `conformance` feature).
//!
//! A key made with [`KeyStore::create_signed`] also has a [`SigningSecret`] (`acme_sig_…`) that
//! its holder signs requests with (HMAC-SHA256, checked elsewhere). The gateway must recover that
//! secret, so it cannot be hashed: it is stored sealed ([`SealedSecret`], ChaCha20-Poly1305) under
//! a key-encryption key ([`Kek`]) that comes from the environment, never from the store, and
//! [`VerifiedKey`] carries it sealed for the gateway to open.
//!
//! Replay guards ([`replay`]):
//! - [`MemoryReplayGuard`]: one gateway instance; bounded, and refuses when full (fail closed).
//! - `RedisReplayGuard` (feature `redis`): many instances sharing one Redis.
//!
//! Rate-limit state ([`rate_limit`]): a [`RateStore`] decides a request against all of its
//! [`Quota`]s at once (GCRA: one instant per bucket, exact, O(1)), taking a unit from every
//! bucket or from none.
//! - [`MemoryRateStore`]: one gateway instance; sharded and bounded, and full means refusal of
//!   new buckets (fail closed), never the reset of a budget in use.
//! - `RedisRateStore` (feature `redis`): many instances sharing one Redis, one script per
//!   decision, on Redis's clock.
//!
//! Lockout state ([`lockout`]): a [`LockoutStore`] counts failed logins per key (an account, a
//! client IP) and locks a key that fails too often within a window, each further lock twice as
//! long up to a maximum ([`LockoutPolicy`]).
//! - [`MemoryLockoutStore`]: one gateway instance; sharded and bounded, and full means refusal of
//!   failures for new keys (fail closed), never forgetting a count or a lock in use.
//! - `RedisLockoutStore` (feature `redis`): many instances sharing one Redis, one script per
//!   call, on Redis's clock.
//!
//! Layers hold an `Arc<dyn KeyStore>`, an `Arc<dyn ReplayGuard>`, an `Arc<dyn RateStore>` and an
//! `Arc<dyn LockoutStore>`; the gateway picks the backends from configuration.

pub mod cache;
pub mod clock;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod error;
pub mod key;
pub mod lockout;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rate_limit;
pub mod record;
#[cfg(feature = "redis")]
mod redis_script;
pub mod replay;
pub mod revocation;
mod sharded;
pub mod signing;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod tenant_rate;
pub mod verify;

pub use cache::CachedKeyStore;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{NotRotatable, StoreError};
pub use key::{KeyId, PlaintextKey, SecretHash};
#[cfg(feature = "redis")]
pub use lockout::RedisLockoutStore;
pub use lockout::{LockoutPolicy, LockoutStore, MemoryLockoutStore};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use rate_limit::RedisRateStore;
pub use rate_limit::{
    MemoryRateStore, Quota, QuotaError, QuotaStatus, RateCheck, RateDecision, RateStore,
};
pub use record::{ApiKeyRecord, AuditRecord, KeyState, NewKey};
#[cfg(feature = "redis")]
pub use replay::RedisReplayGuard;
pub use replay::{MemoryReplayGuard, ReplayGuard};
pub use revocation::{RevocationSnapshot, TokenRevocation};
pub use signing::{Kek, KekError, OpenError, SealedSecret, SigningSecret};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{BoxFuture, KeyStore, Rotation, RotationPlan};
pub use tenant_rate::TenantRate;
pub use verify::{KeyRejection, RejectionKind, VerifiedKey, VerifyError};
