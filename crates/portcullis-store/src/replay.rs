//! The replay guard: a signed request is accepted once, not again within its timestamp window.
//!
//! The gateway accepts a signed request only while its timestamp is within a window of now.
//! Inside that window anyone who saw the request could send it again; the guard remembers each
//! signature (by a 32-byte id the verifier derives from it) for as long as its timestamp could
//! still be accepted, and tells the first use from any later one.
//!
//! - [`MemoryReplayGuard`]: one gateway instance; bounded, and full means refusal (fail closed).
//! - `RedisReplayGuard` (feature `redis`): many gateway instances sharing one Redis.
//!
//! A guard is not a cache: forgetting an entry before its time would let that signature be
//! replayed, so neither guard ever evicts an unexpired entry to make room.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fmt;
use std::future::ready;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::error::StoreError;
use crate::store::BoxFuture;

#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use self::redis::RedisReplayGuard;

/// Remembers which request signatures were used, so each is accepted once.
///
/// Like [`KeyStore`](crate::KeyStore), dyn-compatible: the gateway holds an
/// `Arc<dyn ReplayGuard>` and picks the backend from configuration.
pub trait ReplayGuard: Send + Sync + fmt::Debug {
    /// Records `id` for `ttl` and returns true if it was not seen within its ttl before
    /// (first use); false if it was (a replay). Atomic: of two concurrent calls with the same id,
    /// exactly one gets true, also across processes for shared backends.
    ///
    /// A replay does not extend the first use's ttl. A zero ttl records nothing.
    fn first_use<'a>(
        &'a self,
        id: &'a [u8; 32],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// A replay guard in process memory, for a single gateway instance.
///
/// Entries expire on the injected [`Clock`], so tests step time instead of sleeping. Expired
/// entries are dropped as calls come in, from a queue ordered by expiry: each call pops only
/// what has expired, so the cost is amortised over the entries, never a scan of all of them. (A
/// clock that steps back keeps entries longer, never shorter.)
///
/// At most `capacity` unexpired entries are held. When that many are, a new signature is refused
/// with [`StoreError::ReplayGuardFull`]: evicting a live entry instead would let its signature
/// be replayed. Size the capacity for the peak rate of signed requests times the window.
///
/// Memory: about 80 bytes of data per entry (the 32-byte id in a hash set, and the id with its
/// 16-byte expiry in the queue), and up to twice that with the spare room the hash table and the
/// queue keep for growth: about 120 MB when the default capacity of one million is full. Nothing
/// is allocated up front.
pub struct MemoryReplayGuard {
    clock: Arc<dyn Clock>,
    capacity: usize,
    state: Mutex<State>,
}

/// Every id in `seen` has exactly one entry in `expiries`, and the other way round: an id is
/// recorded only when it is not in `seen`, and leaves both when its entry expires.
#[derive(Default)]
struct State {
    seen: HashSet<[u8; 32]>,
    expiries: BinaryHeap<Reverse<(SystemTime, [u8; 32])>>,
}

impl MemoryReplayGuard {
    /// How many unexpired entries are held unless told otherwise.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// A guard on `clock` holding at most `capacity` unexpired entries (at least one).
    pub fn new(clock: Arc<dyn Clock>, capacity: usize) -> Self {
        Self {
            clock,
            capacity: capacity.max(1),
            state: Mutex::default(),
        }
    }

    /// How many entries are held (expired ones may linger until the next call).
    pub fn len(&self) -> usize {
        self.state().seen.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // An update that panicked half-way can at worst leave an id in `seen` that is never
        // purged: it stays refused, which is the safe side.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, id: &[u8; 32], ttl: Duration) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let expires_at = now
            .checked_add(ttl)
            .ok_or(StoreError::invalid("ttl", "reaches past the end of time"))?;
        let mut state = self.state();
        state.purge(now);
        if state.seen.contains(id) {
            return Ok(false);
        }
        if ttl.is_zero() {
            return Ok(true);
        }
        if state.seen.len() >= self.capacity {
            return Err(StoreError::ReplayGuardFull {
                capacity: self.capacity,
            });
        }
        state.seen.insert(*id);
        state.expiries.push(Reverse((expires_at, *id)));
        Ok(true)
    }
}

impl State {
    /// Drops every entry that has expired at `now` (an entry lives up to, not at, its expiry).
    fn purge(&mut self, now: SystemTime) {
        while self
            .expiries
            .peek()
            .is_some_and(|Reverse((expires_at, _))| *expires_at <= now)
        {
            if let Some(Reverse((_, id))) = self.expiries.pop() {
                self.seen.remove(&id);
            }
        }
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn first_use<'a>(
        &'a self,
        id: &'a [u8; 32],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(ready(self.record(id, ttl)))
    }
}

impl fmt::Debug for MemoryReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the ids: up to a million of them would swamp any log line.
        f.debug_struct("MemoryReplayGuard")
            .field("capacity", &self.capacity)
            .field("held", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const TTL: Duration = Duration::from_secs(300);
    const MS: Duration = Duration::from_millis(1);

    fn guard(capacity: usize) -> (MemoryReplayGuard, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (MemoryReplayGuard::new(clock.clone(), capacity), clock)
    }

    fn id(n: u32) -> [u8; 32] {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id
    }

    #[tokio::test]
    async fn the_first_use_passes_and_a_replay_does_not() {
        let (guard, _clock) = guard(16);
        assert!(guard.first_use(&id(1), TTL).await.unwrap());
        assert!(!guard.first_use(&id(1), TTL).await.unwrap());
        assert!(!guard.first_use(&id(1), TTL).await.unwrap());
        assert!(guard.first_use(&id(2), TTL).await.unwrap());
        assert_eq!(guard.len(), 2);
    }

    #[tokio::test]
    async fn an_id_is_new_again_once_its_ttl_has_passed() {
        let (guard, clock) = guard(16);
        assert!(guard.first_use(&id(1), TTL).await.unwrap());
        clock.advance(TTL - MS);
        // A replay neither passes nor extends the first use's life.
        assert!(!guard.first_use(&id(1), TTL).await.unwrap());
        clock.advance(MS);
        assert!(guard.first_use(&id(1), TTL).await.unwrap());
        assert!(!guard.first_use(&id(1), TTL).await.unwrap());
        assert_eq!(guard.len(), 1);
    }

    #[tokio::test]
    async fn a_full_guard_refuses_rather_than_forgets() {
        let (guard, clock) = guard(3);
        for n in 0..3 {
            assert!(guard.first_use(&id(n), TTL).await.unwrap());
        }
        clock.advance(TTL - MS);
        let err = guard.first_use(&id(9), TTL).await.unwrap_err();
        assert!(
            matches!(err, StoreError::ReplayGuardFull { capacity: 3 }),
            "{err}"
        );
        assert!(err.to_string().contains("full"), "{err}");
        // Nothing was forgotten to make room.
        for n in 0..3 {
            assert!(!guard.first_use(&id(n), TTL).await.unwrap());
        }
        assert_eq!(guard.len(), 3);
    }

    #[tokio::test]
    async fn expired_entries_make_room() {
        let (guard, clock) = guard(3);
        assert!(guard.first_use(&id(0), TTL).await.unwrap());
        clock.advance(Duration::from_secs(10));
        assert!(guard.first_use(&id(1), TTL).await.unwrap());
        assert!(guard.first_use(&id(2), TTL).await.unwrap());
        // Only the first has expired: one place frees up, not more.
        clock.advance(TTL - Duration::from_secs(10));
        assert!(guard.first_use(&id(3), TTL).await.unwrap());
        assert!(matches!(
            guard.first_use(&id(4), TTL).await,
            Err(StoreError::ReplayGuardFull { .. })
        ));
        clock.advance(Duration::from_secs(10));
        assert!(guard.first_use(&id(4), TTL).await.unwrap());
        assert!(guard.first_use(&id(5), TTL).await.unwrap());
        assert_eq!(guard.len(), 3);
    }

    #[tokio::test]
    async fn entries_expire_by_their_own_ttl() {
        let (guard, clock) = guard(16);
        assert!(
            guard
                .first_use(&id(1), Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(
            guard
                .first_use(&id(2), Duration::from_secs(10))
                .await
                .unwrap()
        );
        clock.advance(Duration::from_secs(10));
        assert!(guard.first_use(&id(2), TTL).await.unwrap());
        assert!(!guard.first_use(&id(1), TTL).await.unwrap());
        clock.advance(Duration::from_secs(50));
        assert!(guard.first_use(&id(1), TTL).await.unwrap());
    }

    #[tokio::test]
    async fn a_zero_ttl_records_nothing() {
        let (guard, _clock) = guard(1);
        assert!(guard.first_use(&id(1), Duration::ZERO).await.unwrap());
        assert!(guard.first_use(&id(1), Duration::ZERO).await.unwrap());
        assert!(guard.is_empty());
        assert!(
            guard
                .first_use(&id(1), Duration::MAX)
                .await
                .is_err_and(|err| matches!(err, StoreError::InvalidInput { field: "ttl", .. }))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_concurrent_uses_exactly_one_is_first() {
        let (guard, _clock) = guard(1024);
        let guard = Arc::new(guard);
        for round in 0..20 {
            let barrier = Arc::new(tokio::sync::Barrier::new(16));
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (guard, barrier) = (Arc::clone(&guard), Arc::clone(&barrier));
                    tokio::spawn(async move {
                        barrier.wait().await;
                        guard.first_use(&id(round), TTL).await.unwrap()
                    })
                })
                .collect();
            let mut firsts = 0;
            for task in tasks {
                firsts += usize::from(task.await.unwrap());
            }
            assert_eq!(firsts, 1, "round {round}");
        }
    }

    #[test]
    fn debug_shows_no_ids() {
        let (guard, _clock) = guard(4);
        let shown = format!("{guard:?}");
        assert_eq!(shown, "MemoryReplayGuard { capacity: 4, held: 0, .. }");
        let dynamic: Arc<dyn ReplayGuard> = Arc::new(guard);
        assert!(format!("{dynamic:?}").starts_with("MemoryReplayGuard"));
    }
}
