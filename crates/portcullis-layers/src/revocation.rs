//! Revoked tokens and suspended subjects: what the authentication layer asks after a credential
//! verifies.
//!
//! A JWT stays valid by its signature until it expires; seed 002's threat model asks for a way
//! to stop a stolen one sooner, and for suspending a user (its `RequireActive`) without waiting
//! for their tokens to expire. The gateway keeps both lists in memory (refreshed from the key
//! store every second, so every instance honours a change within 5 s) behind this trait, so the
//! check on the request path is a hash lookup, never a database round trip.
//!
//! ```
//! use portcullis_layers::revocation::RevocationList;
//!
//! #[derive(Debug)]
//! struct Nothing;
//! impl RevocationList for Nothing {
//!     fn is_token_revoked(&self, _jti: &str) -> bool { false }
//!     fn is_subject_suspended(&self, _tenant: &str, _subject: &str) -> bool { false }
//! }
//! assert!(!Nothing.is_token_revoked("abc"));
//! ```

use std::fmt;

/// Answers, from memory, whether a verified credential has been withdrawn.
pub trait RevocationList: Send + Sync + fmt::Debug + 'static {
    /// Whether the JWT with this `jti` was revoked.
    fn is_token_revoked(&self, jti: &str) -> bool;
    /// Whether this subject of this tenant is suspended.
    fn is_subject_suspended(&self, tenant: &str, subject: &str) -> bool;
}
