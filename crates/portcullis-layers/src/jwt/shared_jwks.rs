//! A JWKS that is replaced while the verifier runs: the keys of an identity provider that
//! rotates them, fetched from its URL by whoever owns the network (the gateway's refresher).
//!
//! The request path only reads: a read lock held for the time of an `Arc` clone, so a
//! verification never waits on a fetch and never copies a key. A replacement is parsed and
//! checked in full (the same rules as a JWKS file, against the same pinned algorithms) before
//! it is swapped in, so a bad document from the provider leaves the last good set in force.
//!
//! A token naming a `kid` the set does not have is refused, and asks for a refresh through
//! [`RefreshRequests`]: a wake-up for the refresher, which decides how often to honour it.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, Weak};

use jsonwebtoken::Algorithm;
use tokio::sync::Notify;

use super::{JwtConfigError, SetKey, check_fits, parse_algorithms, parse_set};

/// See the module documentation. Clones share one set.
#[derive(Clone)]
pub struct SharedJwks(Arc<Inner>);

struct Inner {
    algorithms: Vec<Algorithm>,
    keys: RwLock<Arc<Vec<SetKey>>>,
    /// Kept apart from the set: the refresher waits on it without keeping the set alive.
    requests: Arc<Notify>,
}

impl fmt::Debug for SharedJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current();
        f.debug_struct("SharedJwks")
            .field("algorithms", &self.0.algorithms)
            .field(
                "kids",
                &current.iter().map(|k| k.kid.as_deref()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl SharedJwks {
    /// A set for these pinned algorithms (public-key ones only), starting with the JWKS
    /// document `json`, which must hold a key that one of them can use.
    pub fn new<I, S>(algorithms: I, json: &[u8]) -> Result<Self, JwtConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = algorithms
            .into_iter()
            .map(|a| a.as_ref().to_owned())
            .collect();
        let algorithms = parse_algorithms(&names)?;
        if algorithms
            .iter()
            .any(|a| a.family() == jsonwebtoken::AlgorithmFamily::Hmac)
        {
            return Err(JwtConfigError::JwksForHmac);
        }
        let keys = parse_set(json)?;
        check_fits(&keys, &algorithms)?;
        Ok(Self(Arc::new(Inner {
            algorithms,
            keys: RwLock::new(Arc::new(keys)),
            requests: Arc::new(Notify::new()),
        })))
    }

    /// Replaces the set with the JWKS document `json`, checked as [`SharedJwks::new`] checks
    /// the first one; on error the current set stays. Returns the number of keys now in use.
    pub fn replace(&self, json: &[u8]) -> Result<usize, JwtConfigError> {
        let keys = parse_set(json)?;
        check_fits(&keys, &self.0.algorithms)?;
        let count = keys.len();
        let keys = Arc::new(keys);
        // A writer only swaps an `Arc` and cannot panic halfway, so a poisoned lock still
        // holds a whole set.
        *self.0.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(count)
    }

    /// The `kid`s of the current set (keys without one are left out), for logs.
    pub fn kids(&self) -> Vec<String> {
        self.current()
            .iter()
            .filter_map(|k| k.kid.clone())
            .collect()
    }

    /// Where refresh requests arrive (a token named an unknown `kid`).
    pub fn refresh_requests(&self) -> RefreshRequests {
        RefreshRequests(self.0.requests.clone())
    }

    /// A handle that does not keep the set alive: a refresher holding it stops once every
    /// verifier using the set is gone.
    pub fn downgrade(&self) -> WeakJwks {
        WeakJwks(Arc::downgrade(&self.0))
    }

    pub(super) fn current(&self) -> Arc<Vec<SetKey>> {
        self.0
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests coalesce: however many tokens ask before the refresher wakes, it wakes once.
    pub(super) fn request_refresh(&self) {
        self.0.requests.notify_one();
    }

    pub(super) fn pinned_to(&self, algorithms: &[Algorithm]) -> bool {
        self.0.algorithms.len() == algorithms.len()
            && algorithms.iter().all(|a| self.0.algorithms.contains(a))
    }
}

/// See [`SharedJwks::downgrade`].
#[derive(Debug, Clone)]
pub struct WeakJwks(Weak<Inner>);

impl WeakJwks {
    pub fn upgrade(&self) -> Option<SharedJwks> {
        self.0.upgrade().map(SharedJwks)
    }
}

/// See [`SharedJwks::refresh_requests`].
#[derive(Debug, Clone)]
pub struct RefreshRequests(Arc<Notify>);

impl RefreshRequests {
    /// Resolves when a refresh was requested since the last call returned (at once if one
    /// was requested in between).
    pub async fn requested(&self) {
        self.0.notified().await;
    }
}
