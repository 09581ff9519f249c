//! Remembering accepted signatures, so that none is accepted twice.
//!
//! The guard is behind [`ReplayCheck`], so this crate needs no store: the `portcullis` crate
//! adapts its replay store (in memory for one instance, Redis for several) to it.
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::time::Duration;
//! use portcullis_layers::signature::ReplayCheck;
//!
//! /// Remembers nothing: every signature is a replay (a guard that fails closed).
//! #[derive(Debug)]
//! struct RefuseAll;
//!
//! impl ReplayCheck for RefuseAll {
//!     fn first_use<'a>(
//!         &'a self,
//!         _id: [u8; 32],
//!         _ttl: Duration,
//!     ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
//!         Box::pin(async { Ok(false) })
//!     }
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The future a [`ReplayCheck`] returns.
pub type ReplayFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;

/// Records accepted signatures and says whether one was seen before.
///
/// The check and the record must be one atomic step (an insert-if-absent), or two copies of a
/// request arriving together could both pass.
pub trait ReplayCheck: Send + Sync + fmt::Debug + 'static {
    /// `Ok(true)`: first use (now recorded for `ttl`); `Ok(false)`: a replay; `Err`: the guard
    /// is unavailable (the request is then refused with a 503, never let through). The error
    /// text is logged: it must not carry credentials.
    fn first_use<'a>(&'a self, id: [u8; 32], ttl: Duration) -> ReplayFuture<'a>;
}

/// The ID a verified signature is remembered by: SHA-256 of the canonical string followed by
/// the 32 bytes of the signature.
///
/// The canonical string alone would not do: two keys sending the same request in the same
/// second (an empty-bodied `GET`) would collide, and the second would be refused. The decoded
/// bytes, not the hex text, so that the same signature in upper case is the same ID. Hashed so
/// the ID has a fixed size and the store never holds the signature itself.
pub(crate) fn replay_id(canonical: &str, tag: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(canonical.as_bytes());
    hash.update(tag);
    hash.finalize().into()
}

#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// In-memory guard for tests: remembers IDs (with the TTL asked for) and can be made to
    /// fail.
    #[derive(Debug, Default)]
    pub(crate) struct MemoryReplay {
        pub(crate) seen: Mutex<HashMap<[u8; 32], Duration>>,
        pub(crate) unavailable: bool,
    }

    impl ReplayCheck for MemoryReplay {
        fn first_use<'a>(&'a self, id: [u8; 32], ttl: Duration) -> ReplayFuture<'a> {
            Box::pin(async move {
                if self.unavailable {
                    return Err("replay store unreachable".to_owned());
                }
                let mut seen = self.seen.lock().map_err(|e| e.to_string())?;
                Ok(seen.insert(id, ttl).is_none())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_the_request_and_the_signature() {
        let a = replay_id("canonical", &[1; 32]);
        assert_eq!(a, replay_id("canonical", &[1; 32]));
        assert_ne!(a, replay_id("canonical", &[2; 32]));
        assert_ne!(a, replay_id("canonicaL", &[1; 32]));
    }
}
