//! A bounded table from keys to values in process memory, for the in-memory rate-limit and
//! lockout stores: what both need and nothing of what they keep.
//!
//! Keys are hashed with a key drawn once per table ([`RandomState`]), so a client cannot choose
//! keys that collide; the maps then use that hash as it is (an identity hasher) rather than
//! hashing it again. Entries are spread over up to 64 shards, each a mutex around its map on a
//! cache line of its own, so calls for different keys rarely wait for each other.
//!
//! The bound is split evenly between shards. A shard at its share makes room only by dropping
//! entries its owner says are dead (an entry that reads back the same when absent), at most once
//! per 100 ms so that a client filling the table cannot make every call scan it; evicting a live
//! entry would hand a client a fresh budget, so the owner refuses instead when there is no room.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Shards at most; a power of two.
const MAX_SHARDS: usize = 64;
/// A table is split into shards only as far as each keeps this many entries: the hash spreads
/// keys evenly but not exactly, and a shard that is full refuses new keys while others have
/// room. At 1 024 a shard's share varies by a few percent.
const MIN_SHARD_CAPACITY: usize = 1024;
/// How often a full shard may scan itself for dead entries to drop.
const PURGE_INTERVAL_NANOS: u64 = 100_000_000;

/// The maps of a [`Table`], keyed by the table's hash of a key.
pub(crate) type Map<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

pub(crate) struct Table<V> {
    hasher: RandomState,
    shards: Box<[Shard<V>]>,
    /// `shards.len() - 1`.
    shard_mask: usize,
    shard_capacity: usize,
    max_entries: usize,
}

/// One lock and its map, on a cache line of its own so that shards do not slow each other.
#[repr(align(64))]
struct Shard<V>(Mutex<ShardState<V>>);

pub(crate) struct ShardState<V> {
    pub(crate) map: Map<V>,
    /// When this shard last dropped its dead entries.
    last_purge: Option<u64>,
}

/// The maps' keys are keyed hashes already: use them as they are.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here (`write_u64`); this is for completeness.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl<V> Table<V> {
    /// A table holding at most `max_entries` entries (at least one).
    pub(crate) fn new(max_entries: usize) -> Self {
        let max_entries = max_entries.max(1);
        let shard_count = (max_entries / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        // The largest power of two not above it, so a mask picks the shard.
        let shard_count = 1 << shard_count.ilog2();
        Self {
            hasher: RandomState::new(),
            shards: (0..shard_count)
                .map(|_| {
                    Shard(Mutex::new(ShardState {
                        map: Map::default(),
                        last_purge: None,
                    }))
                })
                .collect(),
            shard_mask: shard_count - 1,
            shard_capacity: max_entries / shard_count,
            max_entries,
        }
    }

    pub(crate) fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    #[cfg(test)]
    pub(crate) fn shard_capacity(&self) -> usize {
        self.shard_capacity
    }

    #[cfg(test)]
    pub(crate) fn is_poisoned(&self, index: usize) -> bool {
        self.shards[index].0.is_poisoned()
    }

    /// How many entries are held (dead ones may linger until a shard needs their room).
    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|index| self.lock(index).map.len())
            .sum()
    }

    /// The table's hash of `key`, and the shard it lives in.
    pub(crate) fn locate(&self, key: &[u8]) -> (usize, u64) {
        let hash = self.hasher.hash_one(key);
        (self.shard_of(hash), hash)
    }

    /// Bits 32 and up of the hash pick the shard: the maps index by the low bits and tag by the
    /// top seven, and neither should be the same for every key of a shard.
    fn shard_of(&self, hash: u64) -> usize {
        (hash >> 32) as usize & self.shard_mask
    }

    /// Shard `index`, locked. A call that panicked half-way may have written some of its
    /// entries and not others; each entry is written whole, and the owners keep the strict
    /// side of any such half (units taken, failures counted).
    pub(crate) fn lock(&self, index: usize) -> MutexGuard<'_, ShardState<V>> {
        self.shards[index]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The distinct shards among `shards`, locked smallest index first, so that two calls never
    /// wait for each other. (A call has a handful of keys: the quadratic search costs less than
    /// sorting into another allocation.)
    pub(crate) fn lock_all(
        &self,
        shards: impl Iterator<Item = usize> + Clone,
    ) -> Vec<(usize, MutexGuard<'_, ShardState<V>>)> {
        let mut guards = Vec::new();
        let mut last = None;
        while let Some(next) = shards
            .clone()
            .filter(|&shard| last.is_none_or(|last| shard > last))
            .min()
        {
            guards.push((next, self.lock(next)));
            last = Some(next);
        }
        guards
    }

    /// Whether `state` has room for `needed(map)` more entries, after dropping the entries for
    /// which `dead` holds if it must and may (at most once per 100 ms of `now`, in nanoseconds).
    /// `needed` is asked again after a purge: it may have dropped an entry of one of its keys.
    pub(crate) fn make_room(
        &self,
        state: &mut ShardState<V>,
        now: u64,
        needed: impl Fn(&Map<V>) -> usize,
        dead: impl Fn(&V) -> bool,
    ) -> bool {
        if state.map.len() + needed(&state.map) <= self.shard_capacity {
            return true;
        }
        let may_purge = state
            .last_purge
            .is_none_or(|last| now.saturating_sub(last) >= PURGE_INTERVAL_NANOS);
        if may_purge {
            state.map.retain(|_, value| !dead(value));
            state.last_purge = Some(now);
        }
        state.map.len() + needed(&state.map) <= self.shard_capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_bound_and_locks_come_in_order() {
        let small: Table<u64> = Table::new(3);
        assert_eq!((small.shard_count(), small.shard_capacity()), (1, 3));
        let medium: Table<u64> = Table::new(5000);
        assert_eq!((medium.shard_count(), medium.shard_capacity()), (4, 1250));
        let default: Table<u64> = Table::new(1_000_000);
        assert_eq!(
            (default.shard_count(), default.shard_capacity()),
            (64, 15_625)
        );

        let guards = default.lock_all([9, 3, 9, 1].into_iter());
        let order: Vec<usize> = guards.iter().map(|(shard, _)| *shard).collect();
        assert_eq!(order, vec![1, 3, 9]);
    }

    #[test]
    fn room_is_made_only_from_dead_entries_and_at_most_every_100_ms() {
        let table: Table<u64> = Table::new(2);
        let mut state = table.lock(0);
        state.map.insert(1, 10); // dead at now >= 10
        state.map.insert(2, 1_000_000_000); // alive
        let one = |_: &Map<u64>| 1;
        let dead_at = |now: u64| move |v: &u64| *v <= now;
        // The purge drops entry 1 and makes room.
        assert!(table.make_room(&mut state, 20, one, dead_at(20)));
        assert_eq!(state.map.len(), 1);
        state.map.insert(3, 30);
        // Full again with a dead entry, but within 100 ms of the last purge: no room.
        assert!(!table.make_room(&mut state, 40, one, dead_at(40)));
        assert_eq!(state.map.len(), 2);
        // Later, the purge may run again.
        assert!(table.make_room(&mut state, 200_000_000, one, dead_at(200_000_000)));
    }
}
