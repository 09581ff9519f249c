//! Lockout state in process memory, for a single gateway instance.
//!
//! Keys are spread over up to 64 shards, each a mutex around a map from a hash of the key to its
//! state (failures, window start, level, locked-until and expiry; instants in nanoseconds since
//! the Unix epoch, on the injected [`Clock`]). A call locks only the shards of its keys, so
//! logins for different accounts rarely wait for each other. The table (hashing, shards, bound,
//! purge pacing) is `sharded.rs`'s, shared with the rate-limit store.
//!
//! The hash is keyed ([`RandomState`], drawn once per store), as in
//! [`MemoryRateStore`](crate::MemoryRateStore), so a client cannot choose keys that collide. Two
//! keys that collide anyway (64 bits: in practice never) share one state. The maps use the hash
//! as it is (an identity hasher) rather than hashing it again.
//!
//! Memory is bounded without giving an attacker a way to reset a count: an entry past its
//! expiry reads as absent, so dropping it changes nothing, and those are the only entries ever
//! evicted. Evicting a live one would hand a guesser a fresh set of tries, or end a lock early.
//! When a failure for a key not held finds its shard at its share of the bound, the shard first
//! drops its expired entries (at most once per 100 ms, so that a client filling the table cannot
//! make every request scan it); if that frees no room, the call is refused with
//! [`StoreError::LockoutFull`] (fail closed) and records nothing. Keys already held are always
//! served, and [`LockoutStore::locked`] and [`LockoutStore::record_success`] never need room.

use std::fmt;
use std::future::ready;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::{LockoutPolicy, LockoutStore};
use crate::clock::Clock;
use crate::error::StoreError;
use crate::sharded::{Map, ShardState, Table};
use crate::store::BoxFuture;

/// A [`LockoutStore`] in process memory, for a single gateway instance.
///
/// Time comes from the injected [`Clock`], so tests step it instead of sleeping. A clock that
/// steps back makes locks and windows look longer, never shorter.
///
/// At most `max_entries` keys whose state still counts are held; see the module documentation
/// for what happens at the bound. Size it for the number of distinct accounts and client IPs
/// that fail a login within `max(window, max)` (plus the lock) of your policies.
///
/// Memory: an entry is 40 bytes (hash, two counters, three instants) and one control byte in a
/// hash table kept at most 7/8 full that grows by doubling, so 47 to 94 bytes per entry: at most
/// about 9 MB when the default bound of 100 000 is reached. Nothing is allocated up front, and
/// tables keep their largest size.
pub struct MemoryLockoutStore {
    clock: Arc<dyn Clock>,
    /// Keyed hash of the key → its state.
    table: Table<Entry>,
}

/// One key's state; instants in nanoseconds since the Unix epoch. The default is an absent key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    failures: u32,
    level: u32,
    window_start: u64,
    locked_until: u64,
    /// From this instant on the entry reads as absent, and may be dropped.
    expires_at: u64,
}

impl MemoryLockoutStore {
    /// How many keys are held at most unless told otherwise.
    pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

    /// A store on `clock` holding at most `max_entries` keys (at least one).
    pub fn new(clock: Arc<dyn Clock>, max_entries: usize) -> Self {
        Self {
            clock,
            table: Table::new(max_entries),
        }
    }

    /// How many keys are held (expired ones may linger until a shard needs their room).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn locked_now(&self, keys: &[&[u8]]) -> Option<Duration> {
        let now = self.now();
        let longest = keys
            .iter()
            .map(|key| {
                let (index, hash) = self.table.locate(key);
                let shard = self.table.lock(index);
                live(&shard.map, hash, now).locked_until.saturating_sub(now)
            })
            .max()
            .unwrap_or(0);
        (longest > 0).then(|| Duration::from_nanos(longest))
    }

    /// Records one failure per key: lock every shard involved (in ascending order, so two calls
    /// never wait for each other), make room for the keys not held, then count.
    fn record_failure_now(
        &self,
        keys: &[&[u8]],
        policy: &LockoutPolicy,
    ) -> Result<Vec<Option<Duration>>, StoreError> {
        let now = self.now();
        let slots: Vec<(usize, u64)> = keys.iter().map(|key| self.table.locate(key)).collect();
        // Allocated before the locks are taken, not while they are held.
        let mut locks = Vec::with_capacity(slots.len());
        let mut guards = self.table.lock_all(slots.iter().map(|&(shard, _)| shard));

        // Room first, for every shard, so that a refusal records nothing anywhere.
        for (shard, guard) in &mut guards {
            self.make_room(guard, *shard, &slots, now)?;
        }

        // In order: a later failure of the same key sees what an earlier one did.
        for &(shard, hash) in &slots {
            let index = guards
                .iter()
                .position(|&(locked, _)| locked == shard)
                .unwrap_or_default();
            let state = &mut guards[index].1;
            let (changed, remaining) = fail(live(&state.map, hash, now), now, policy);
            if let Some(entry) = changed {
                state.map.insert(hash, entry);
            }
            locks.push((remaining > 0).then(|| Duration::from_nanos(remaining)));
        }
        Ok(locks)
    }

    fn record_success_now(&self, key: &[u8]) {
        let (index, hash) = self.table.locate(key);
        self.table.lock(index).map.remove(&hash);
    }

    /// Makes room in `state` (shard `shard`) for the keys of `slots` that it does not hold,
    /// dropping its expired entries if it must and may; refuses if there is still none.
    fn make_room(
        &self,
        state: &mut ShardState<Entry>,
        shard: usize,
        slots: &[(usize, u64)],
        now: u64,
    ) -> Result<(), StoreError> {
        let missing = |map: &Map<Entry>| {
            slots
                .iter()
                .enumerate()
                .filter(|&(i, &(s, hash))| {
                    s == shard && !map.contains_key(&hash) && !slots[..i].contains(&(s, hash))
                })
                .count()
        };
        // An expired entry reads back the same when absent.
        if self
            .table
            .make_room(state, now, missing, |entry| entry.expires_at <= now)
        {
            Ok(())
        } else {
            Err(StoreError::LockoutFull {
                capacity: self.table.max_entries(),
            })
        }
    }

    /// Nanoseconds since the Unix epoch; 0 before it, `u64::MAX` after 2554.
    fn now(&self) -> u64 {
        self.clock.now().duration_since(UNIX_EPOCH).map_or(0, nanos)
    }
}

/// The state of `hash` in `map` at `now`: all zero if absent or expired.
fn live(map: &Map<Entry>, hash: u64, now: u64) -> Entry {
    map.get(&hash)
        .filter(|entry| entry.expires_at > now)
        .copied()
        .unwrap_or_default()
}

/// One failure at `now` of a key in state `entry`, as the module documentation of
/// [`lockout`](super) says: the new state (`None` while locked, when nothing changes) and the
/// remaining lock after it in nanoseconds (0: not locked).
fn fail(entry: Entry, now: u64, policy: &LockoutPolicy) -> (Option<Entry>, u64) {
    if entry.locked_until > now {
        return (None, entry.locked_until - now);
    }
    let mut entry = entry;
    if entry.failures == 0 || now.saturating_sub(entry.window_start) > nanos(policy.window) {
        entry.failures = 0;
        entry.window_start = now;
    }
    entry.failures = entry.failures.saturating_add(1);
    if entry.failures >= policy.threshold() {
        entry.locked_until = now.saturating_add(nanos(policy.lock_length(entry.level)));
        entry.level = entry.level.saturating_add(1);
        entry.failures = 0;
    }
    let remaining = entry.locked_until.saturating_sub(now);
    entry.expires_at = now
        .saturating_add(remaining)
        .saturating_add(nanos(policy.window.max(policy.max)));
    (Some(entry), remaining)
}

/// `duration` in nanoseconds, saturating at `u64::MAX` (584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl LockoutStore for MemoryLockoutStore {
    fn locked<'a>(
        &'a self,
        keys: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<Option<Duration>, StoreError>> {
        Box::pin(ready(Ok(self.locked_now(keys))))
    }

    fn record_failure<'a>(
        &'a self,
        keys: &'a [&'a [u8]],
        policy: &'a LockoutPolicy,
    ) -> BoxFuture<'a, Result<Vec<Option<Duration>>, StoreError>> {
        Box::pin(ready(self.record_failure_now(keys, policy)))
    }

    fn record_success<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), StoreError>> {
        self.record_success_now(key);
        Box::pin(ready(Ok(())))
    }
}

impl fmt::Debug for MemoryLockoutStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the keys: account hashes and client IPs, up to 100 000 of them.
        f.debug_struct("MemoryLockoutStore")
            .field("max_entries", &self.table.max_entries())
            .field("shards", &self.table.shard_count())
            .field("held", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::super::shared_checks;
    use super::*;
    use crate::clock::ManualClock;

    const NS: Duration = Duration::from_nanos(1);
    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);

    fn store(max_entries: usize) -> (MemoryLockoutStore, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (MemoryLockoutStore::new(clock.clone(), max_entries), clock)
    }

    /// 5 failures within 15 minutes lock for a minute, doubling up to 8 minutes.
    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            failures: 5,
            window: 15 * MIN,
            base: MIN,
            max: 8 * MIN,
        }
    }

    fn fail_one(store: &MemoryLockoutStore, key: &str, policy: &LockoutPolicy) -> Option<Duration> {
        let locks = store.record_failure_now(&[key.as_bytes()], policy).unwrap();
        assert_eq!(locks.len(), 1);
        locks[0]
    }

    /// `n` failures: `None` for all but the last, which returns what it returns.
    fn fail_n(
        store: &MemoryLockoutStore,
        key: &str,
        n: u32,
        policy: &LockoutPolicy,
    ) -> Option<Duration> {
        for i in 1..n {
            assert_eq!(fail_one(store, key, policy), None, "failure {i} of {n}");
        }
        fail_one(store, key, policy)
    }

    fn locked(store: &MemoryLockoutStore, key: &str) -> Option<Duration> {
        store.locked_now(&[key.as_bytes()])
    }

    fn full(result: Result<Vec<Option<Duration>>, StoreError>) -> bool {
        matches!(result, Err(StoreError::LockoutFull { .. }))
    }

    #[tokio::test]
    async fn conformance() {
        let (small, _clock) = store(64);
        shared_checks::all(&small, "").await;
        let (large, _clock) = store(MemoryLockoutStore::DEFAULT_MAX_ENTRIES);
        shared_checks::all(&large, "").await;
    }

    #[test]
    fn five_failures_lock_for_the_base_and_each_further_lock_doubles_up_to_the_max() {
        let (store, clock) = store(16);
        let p = policy();
        assert_eq!(fail_n(&store, "a", 5, &p), Some(MIN));
        assert_eq!(locked(&store, "a"), Some(MIN));
        // Failures during the lock change nothing: not its end, not the next lock's count.
        clock.advance(30 * SEC);
        for _ in 0..20 {
            assert_eq!(fail_one(&store, "a", &p), Some(30 * SEC));
        }
        clock.advance(30 * SEC - NS);
        assert_eq!(locked(&store, "a"), Some(NS));
        clock.advance(NS);
        assert_eq!(locked(&store, "a"), None);
        // After the lock: five more, and the lock is twice as long.
        assert_eq!(fail_n(&store, "a", 5, &p), Some(2 * MIN));
        for expected in [4 * MIN, 8 * MIN, 8 * MIN, 8 * MIN] {
            clock.advance(8 * MIN);
            assert_eq!(locked(&store, "a"), None);
            assert_eq!(fail_n(&store, "a", 5, &p), Some(expected));
        }
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_window_that_passes_resets_the_count_but_not_the_level() {
        let (store, clock) = store(16);
        // Entries kept for an hour, so only the window passes here.
        let p = LockoutPolicy {
            max: 60 * MIN,
            ..policy()
        };
        assert_eq!(fail_n(&store, "a", 5, &p), Some(MIN));
        clock.advance(MIN);
        // Four failures, then the window passes: the count starts over.
        assert_eq!(fail_n(&store, "a", 4, &p), None);
        clock.advance(15 * MIN + NS);
        assert_eq!(fail_n(&store, "a", 4, &p), None);
        // Exactly at the window's end it still counts: the fifth locks, at the next level.
        clock.advance(15 * MIN);
        assert_eq!(fail_one(&store, "a", &p), Some(2 * MIN));
    }

    #[test]
    fn a_success_forgets_failures_level_and_lock() {
        let (store, clock) = store(16);
        let p = policy();
        assert_eq!(fail_n(&store, "a", 5, &p), Some(MIN));
        clock.advance(MIN);
        assert_eq!(fail_n(&store, "a", 5, &p), Some(2 * MIN));
        store.record_success_now(b"a");
        assert_eq!(locked(&store, "a"), None);
        assert!(store.is_empty());
        assert_eq!(fail_n(&store, "a", 5, &p), Some(MIN));
        // Four failures, a success, four more: no lock.
        clock.advance(MIN);
        assert_eq!(fail_n(&store, "a", 4, &p), None);
        store.record_success_now(b"a");
        assert_eq!(fail_n(&store, "a", 4, &p), None);
    }

    #[test]
    fn an_entry_left_alone_long_enough_forgets_its_level() {
        let (store, clock) = store(16);
        let p = policy();
        assert_eq!(fail_n(&store, "a", 5, &p), Some(MIN));
        clock.advance(MIN);
        assert_eq!(fail_n(&store, "a", 5, &p), Some(2 * MIN));
        // Kept for the lock plus max(window, max) = 2 + 15 minutes after the last write.
        clock.advance(17 * MIN - NS);
        assert_eq!(fail_n(&store, "a", 5, &p), Some(4 * MIN));
        clock.advance(4 * MIN + 15 * MIN);
        assert_eq!(fail_n(&store, "a", 5, &p), Some(MIN));
        // A failure that does not lock keeps the entry for max(window, max) more.
        let long_max = LockoutPolicy { max: 60 * MIN, ..p };
        clock.advance(MIN);
        assert_eq!(fail_one(&store, "a", &long_max), None);
        clock.advance(60 * MIN - NS);
        assert_eq!(fail_n(&store, "a", 5, &long_max), Some(2 * MIN));
    }

    #[test]
    fn one_call_counts_for_every_key() {
        let (store, clock) = store(16);
        let p = policy();
        let both: [&[u8]; 2] = [b"account", b"ip"];
        assert_eq!(fail_n(&store, "ip", 2, &p), None);
        for _ in 0..2 {
            assert_eq!(store.record_failure_now(&both, &p).unwrap(), [None, None]);
        }
        assert_eq!(
            store.record_failure_now(&both, &p).unwrap(),
            [None, Some(MIN)]
        );
        clock.advance(10 * SEC);
        assert_eq!(
            store.record_failure_now(&both, &p).unwrap(),
            [None, Some(50 * SEC)]
        );
        assert_eq!(
            store.record_failure_now(&both, &p).unwrap(),
            [Some(MIN), Some(50 * SEC)]
        );
        assert_eq!(store.locked_now(&both), Some(MIN));
        assert_eq!(store.locked_now(&[]), None);
        // The same key twice is two failures.
        let twice: [&[u8]; 2] = [b"twice", b"twice"];
        assert_eq!(fail_n(&store, "twice", 3, &p), None);
        assert_eq!(
            store.record_failure_now(&twice, &p).unwrap(),
            [None, Some(MIN)]
        );
    }

    #[test]
    fn only_expired_entries_are_evicted() {
        // Under 1 024 entries: one shard, so the bound is exact.
        let (store, clock) = store(3);
        let p = LockoutPolicy {
            failures: 2,
            window: MIN,
            base: MIN,
            max: 4 * MIN,
        };
        // Kept for max(window, max) = 4 minutes.
        assert_eq!(fail_one(&store, "a", &p), None);
        assert_eq!(fail_one(&store, "b", &p), None);
        clock.advance(30 * SEC);
        // c is locked: kept for its minute plus 4 minutes.
        assert_eq!(fail_n(&store, "c", 2, &p), Some(MIN));
        assert!(full(store.record_failure_now(&[b"d"], &p)));
        // a and b have expired; c has not.
        clock.advance(3 * MIN + 30 * SEC);
        assert_eq!(fail_one(&store, "d", &p), None);
        assert_eq!(fail_one(&store, "e", &p), None);
        assert!(full(store.record_failure_now(&[b"f"], &p)));
        assert_eq!(store.len(), 3);
        // c kept its level: a client cannot reset it by filling the table.
        assert_eq!(fail_n(&store, "c", 2, &p), Some(2 * MIN));
        assert_eq!(locked(&store, "c"), Some(2 * MIN));
    }

    #[test]
    fn a_full_table_refuses_new_keys_and_serves_held_ones() {
        let (store, clock) = store(2);
        let p = policy();
        assert_eq!(fail_one(&store, "a", &p), None);
        assert_eq!(fail_one(&store, "b", &p), None);
        let err = store.record_failure_now(&[b"c"], &p).unwrap_err();
        assert!(
            matches!(err, StoreError::LockoutFull { capacity: 2 }),
            "{err}"
        );
        assert!(err.to_string().contains("full"), "{err}");
        assert!(err.to_string().contains("fail closed"), "{err}");
        // Held keys go on counting, to their lock.
        assert_eq!(fail_n(&store, "a", 4, &p), Some(MIN));
        // Asking and forgetting need no room.
        assert_eq!(locked(&store, "c"), None);
        assert_eq!(store.locked_now(&[b"a", b"c"]), Some(MIN));
        store.record_success_now(b"c");
        // A call with a new key among held ones is refused whole, and counts nothing.
        assert!(full(store.record_failure_now(&[b"b", b"c"], &p)));
        assert_eq!(fail_n(&store, "b", 3, &p), None);
        assert_eq!(fail_one(&store, "b", &p), Some(MIN));
        // A success makes room.
        store.record_success_now(b"b");
        assert_eq!(fail_one(&store, "c", &p), None);
        // So does time, once entries expire.
        clock.advance(16 * MIN);
        assert_eq!(fail_one(&store, "d", &p), None);
        assert_eq!(fail_one(&store, "e", &p), None);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_full_shard_scans_itself_at_most_every_100_ms() {
        let (store, clock) = store(2);
        let p = LockoutPolicy {
            failures: 5,
            window: SEC,
            base: SEC,
            max: SEC,
        };
        assert_eq!(fail_one(&store, "a", &p), None);
        assert_eq!(fail_one(&store, "b", &p), None);
        clock.advance(950 * MS);
        // Scans, finds nothing expired.
        assert!(full(store.record_failure_now(&[b"c"], &p)));
        clock.advance(50 * MS);
        // a and b have expired now, but the last scan was 50 ms ago.
        assert!(full(store.record_failure_now(&[b"c"], &p)));
        clock.advance(50 * MS);
        assert_eq!(fail_one(&store, "c", &p), None);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_purge_that_drops_a_key_of_the_call_counts_it_as_new() {
        let (store, clock) = store(2);
        let p = LockoutPolicy {
            failures: 5,
            window: SEC,
            base: SEC,
            max: SEC,
        };
        assert_eq!(fail_one(&store, "a", &p), None);
        assert_eq!(fail_one(&store, "b", &p), None);
        clock.advance(2 * SEC);
        // a is held but expired, c is new: the purge drops a and b, both then fit.
        assert_eq!(
            store.record_failure_now(&[b"a", b"c"], &p).unwrap(),
            [None, None]
        );
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_clock_that_steps_back_makes_locks_longer_and_panics_nothing() {
        let (store, clock) = store(16);
        let p = policy();
        let start = clock.now();
        assert_eq!(fail_n(&store, "a", 5, &p), Some(MIN));
        clock.set(start - Duration::from_secs(3600));
        assert_eq!(locked(&store, "a"), Some(61 * MIN));
        assert_eq!(fail_one(&store, "a", &p), Some(61 * MIN));
        // Failures before a window's start count in that window.
        assert_eq!(fail_n(&store, "b", 2, &p), None);
        clock.set(start - Duration::from_secs(7200));
        assert_eq!(fail_n(&store, "b", 3, &p), Some(MIN));
        clock.set(SystemTime::UNIX_EPOCH - Duration::from_secs(3600));
        assert!(locked(&store, "a").is_some());
        assert_eq!(fail_n(&store, "c", 5, &p), Some(MIN));
        clock.set(start + MIN);
        assert_eq!(locked(&store, "a"), None);
        assert_eq!(fail_n(&store, "a", 5, &p), Some(2 * MIN));
    }

    #[test]
    fn arithmetic_saturates() {
        let (store, clock) = store(16);
        let forever = LockoutPolicy {
            failures: u32::MAX,
            window: Duration::MAX,
            base: Duration::MAX,
            max: Duration::MAX,
        };
        assert_eq!(fail_one(&store, "a", &forever), None);
        let at_once = LockoutPolicy {
            failures: 1,
            ..forever
        };
        let lock = fail_one(&store, "b", &at_once).unwrap();
        assert!(lock > Duration::from_secs(500 * 365 * 86_400), "{lock:?}");
        clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(20_000_000_000));
        assert_eq!(fail_one(&store, "c", &at_once), None);
        assert_eq!(locked(&store, "b"), None);
        // A zero policy: locks of no length, forgotten at once.
        let zero = LockoutPolicy {
            failures: 0,
            window: Duration::ZERO,
            base: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(fail_one(&store, "d", &zero), None);
        assert_eq!(locked(&store, "d"), None);
    }

    #[test]
    fn large_tables_are_sharded() {
        let (small, _clock) = store(3);
        assert_eq!(
            (small.table.shard_count(), small.table.shard_capacity()),
            (1, 3)
        );
        let (medium, _clock) = store(5000);
        assert_eq!(
            (medium.table.shard_count(), medium.table.shard_capacity()),
            (4, 1250)
        );
        let (default, _clock) = store(MemoryLockoutStore::DEFAULT_MAX_ENTRIES);
        assert_eq!(
            (default.table.shard_count(), default.table.shard_capacity()),
            (64, 1562)
        );
        let p = policy();
        for n in 0..1000 {
            assert_eq!(fail_one(&default, &format!("k{n}"), &p), None);
        }
        let used = (0..64)
            .filter(|&index| !default.table.lock(index).map.is_empty())
            .count();
        assert!(used > 48, "{used} of 64 shards used");
        assert_eq!(default.len(), 1000);
    }

    #[test]
    fn concurrent_failures_count_exactly_and_never_deadlock() {
        let (store, _clock) = store(MemoryLockoutStore::DEFAULT_MAX_ENTRIES);
        let store = Arc::new(store);
        let p = LockoutPolicy {
            failures: 400,
            ..policy()
        };
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let mut locks = 0;
                    for n in 0..50 {
                        let mine = format!("own-{thread}-{}", n % 7);
                        let mut keys: [&[u8]; 2] = [b"shared", mine.as_bytes()];
                        if n % 2 == 0 {
                            keys.reverse();
                        }
                        let started = store.record_failure_now(&keys, &p).unwrap();
                        locks += started.iter().filter(|lock| lock.is_some()).count();
                    }
                    locks
                })
            })
            .collect();
        let locks: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        // 400 failures of the shared key: exactly the last one locks it.
        assert_eq!(locks, 1);
        assert_eq!(store.locked_now(&[b"shared"]), Some(MIN));
    }

    #[test]
    fn a_poisoned_shard_goes_on_serving() {
        let (store, _clock) = store(16);
        let p = policy();
        assert_eq!(fail_n(&store, "a", 4, &p), None);
        let poisoned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = store.table.lock(0);
            panic!("poison the shard");
        }));
        assert!(poisoned.is_err() && store.table.is_poisoned(0));
        assert_eq!(fail_one(&store, "a", &p), Some(MIN));
        assert_eq!(locked(&store, "a"), Some(MIN));
        store.record_success_now(b"a");
        assert!(store.is_empty());
    }

    #[test]
    fn debug_shows_no_keys() {
        let (store, _clock) = store(16);
        assert_eq!(fail_one(&store, "secret-account", &policy()), None);
        let shown = format!("{store:?}");
        assert_eq!(
            shown,
            "MemoryLockoutStore { max_entries: 16, shards: 1, held: 1, .. }"
        );
        let dynamic: Arc<dyn LockoutStore> = Arc::new(store);
        assert!(format!("{dynamic:?}").starts_with("MemoryLockoutStore"));
    }
}
