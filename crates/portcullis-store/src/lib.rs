//! Portcullis state behind traits, so the layers need not know where it lives.
//!
//! For now: the API-key store ([`KeyStore`]), with tenant suspension and the audit log kept in
//! the same place, and the [`Clock`] that every time-dependent check is given.
//!
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
//! Layers hold an `Arc<dyn KeyStore>`; the gateway picks the backend from configuration.

pub mod cache;
pub mod clock;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod error;
pub mod key;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod record;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod verify;

pub use cache::CachedKeyStore;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{NotRotatable, StoreError};
pub use key::{KeyId, PlaintextKey, SecretHash};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use record::{ApiKeyRecord, AuditRecord, KeyState, NewKey};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{BoxFuture, KeyStore, Rotation, RotationPlan};
pub use verify::{KeyRejection, RejectionKind, VerifiedKey, VerifyError};
