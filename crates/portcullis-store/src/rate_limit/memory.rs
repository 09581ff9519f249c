//! Rate-limit state in process memory, for a single gateway instance.
//!
//! Buckets are spread over up to 64 shards, each a mutex around a map from a hash of the bucket
//! id to its TAT (nanoseconds since the Unix epoch, on the injected [`Clock`]). A decision locks
//! only the shards of its buckets, so requests for different keys rarely wait for each other.
//! The table (hashing, shards, bound, purge pacing) is `sharded.rs`'s, shared with the lockout
//! store; what is kept in it and when a bucket may go is this module's.
//!
//! The hash is keyed ([`RandomState`], drawn once per store), so a client cannot choose bucket
//! ids that collide. Two buckets that collide anyway (64 bits: in practice never) share one
//! budget: stricter, never looser. The maps use the hash as it is (an identity hasher) rather
//! than hashing it again.
//!
//! Memory is bounded without giving anyone a way to reset a budget: a bucket whose TAT is not
//! after now is full, and dropping a full bucket changes nothing (an absent bucket is a full
//! one), so those are the only buckets ever evicted. When a new bucket finds its shard at its
//! share of the bound, the shard first drops its full buckets (at most once per 100 ms, so that
//! a client filling the table cannot make every request scan it); if that frees no room, the
//! request is refused with [`StoreError::RateLimiterFull`] (fail closed). Buckets already held
//! are always served.

use std::fmt;
use std::future::ready;
use std::sync::{Arc, MutexGuard};
use std::time::UNIX_EPOCH;

use super::gcra;
use super::{RateCheck, RateDecision, RateStore};
use crate::clock::Clock;
use crate::error::StoreError;
use crate::sharded::{ShardState, Table};
use crate::store::BoxFuture;

/// A [`RateStore`] in process memory, for a single gateway instance.
///
/// Time comes from the injected [`Clock`], so tests step it instead of sleeping. A clock that
/// steps back makes buckets look emptier than they are (longer waits), never fuller.
///
/// At most `max_buckets` buckets that are not full are held; see the module documentation for
/// what happens at the bound. Size it for the number of distinct keys active within the longest
/// refill time (`burst · T`) of your quotas.
///
/// Memory: a bucket is 16 bytes (hash and TAT) and one control byte in a hash table kept at most
/// 7/8 full that grows by doubling, so 18 to 37 bytes per bucket: at most about 36 MB when the
/// default bound of one million is reached. Nothing is allocated up front, and tables keep their
/// largest size.
///
/// Two checks on the same bucket in one call count as two requests, one after the other.
pub struct MemoryRateStore {
    clock: Arc<dyn Clock>,
    /// Keyed hash of the bucket id → TAT in nanoseconds since the Unix epoch.
    table: Table<u64>,
}

impl MemoryRateStore {
    /// How many buckets are held at most unless told otherwise.
    pub const DEFAULT_MAX_BUCKETS: usize = 1_000_000;

    /// A store on `clock` holding at most `max_buckets` buckets (at least one).
    pub fn new(clock: Arc<dyn Clock>, max_buckets: usize) -> Self {
        Self {
            clock,
            table: Table::new(max_buckets),
        }
    }

    /// How many buckets are held (full ones may linger until a shard needs their room).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides a request now, synchronously: what [`RateStore::check`] does, without a future.
    pub fn check_now(&self, checks: &[RateCheck<'_>]) -> Result<RateDecision, StoreError> {
        match checks {
            [] => Ok(RateDecision::default()),
            [check] => self.check_one(check),
            _ => self.check_many(checks),
        }
    }

    /// The common case, one quota: one lock, one probe of the map, no bookkeeping.
    fn check_one(&self, check: &RateCheck<'_>) -> Result<RateDecision, StoreError> {
        let now = self.now();
        let (index, hash) = self.table.locate(check.bucket);
        // Allocated before the lock is taken, not while it is held.
        let mut statuses = Vec::with_capacity(1);
        let mut shard = self.table.lock(index);
        if let Some(tat) = shard.map.get_mut(&hash) {
            let (status, new_tat) = gcra::decide(Some(*tat), now, &check.quota);
            if status.allowed {
                *tat = new_tat;
            }
            statuses.push(status);
            return Ok(RateDecision { statuses });
        }
        let (status, new_tat) = gcra::decide(None, now, &check.quota);
        if status.allowed {
            self.make_room(&mut shard, now, |_| 1)?;
            shard.map.insert(hash, new_tat);
        }
        statuses.push(status);
        Ok(RateDecision { statuses })
    }

    /// Several quotas: lock every shard involved (in ascending order, so two decisions never
    /// wait for each other), decide each check, and write only if all admit.
    fn check_many(&self, checks: &[RateCheck<'_>]) -> Result<RateDecision, StoreError> {
        let now = self.now();
        let mut slots: Vec<Slot> = checks
            .iter()
            .map(|check| {
                let (shard, hash) = self.table.locate(check.bucket);
                Slot {
                    shard,
                    hash,
                    seen: None,
                    new_tat: None,
                }
            })
            .collect();
        let mut guards = self.table.lock_all(slots.iter().map(|slot| slot.shard));

        // Decide in order: a later check on the same bucket sees what an earlier one did.
        let mut statuses = Vec::with_capacity(slots.len());
        let mut admitted = true;
        for (i, check) in checks.iter().enumerate() {
            let (shard, hash) = (slots[i].shard, slots[i].hash);
            let tat = match slots[..i].iter().rev().find(|s| s.is(shard, hash)) {
                Some(earlier) => earlier.new_tat.or(earlier.seen),
                None => state_of(&guards, shard).map.get(&hash).copied(),
            };
            let (status, new_tat) = gcra::decide(tat, now, &check.quota);
            slots[i].seen = tat;
            slots[i].new_tat = status.allowed.then_some(new_tat);
            admitted &= status.allowed;
            statuses.push(status);
        }

        if !admitted {
            // Refused: nothing is written, and the quotas that would have admitted show their
            // buckets as they are.
            for ((status, slot), check) in statuses.iter_mut().zip(&slots).zip(checks) {
                if status.allowed {
                    *status = gcra::unchanged(slot.seen, now, &check.quota);
                }
            }
            return Ok(RateDecision { statuses });
        }

        // Admitted: first make sure every new bucket has room, then write.
        for (shard, guard) in &mut guards {
            let shard = *shard;
            // Counted again after a purge: it may have dropped a full bucket of these.
            let new = |map: &crate::sharded::Map<u64>| {
                slots
                    .iter()
                    .enumerate()
                    .filter(|&(i, slot)| {
                        slot.shard == shard
                            && !map.contains_key(&slot.hash)
                            && !slots[..i].iter().any(|s| s.is(slot.shard, slot.hash))
                    })
                    .count()
            };
            if new(&guard.map) > 0 {
                self.make_room(guard, now, new)?;
            }
        }
        for slot in &slots {
            if let Some(tat) = slot.new_tat {
                let index = guards
                    .iter()
                    .position(|&(shard, _)| shard == slot.shard)
                    .unwrap_or_default();
                guards[index].1.map.insert(slot.hash, tat);
            }
        }
        Ok(RateDecision { statuses })
    }

    /// Makes room for the buckets `needed` counts in `shard`, dropping its full buckets if it
    /// must and may; refuses if there is still none.
    fn make_room(
        &self,
        shard: &mut ShardState<u64>,
        now: u64,
        needed: impl Fn(&crate::sharded::Map<u64>) -> usize,
    ) -> Result<(), StoreError> {
        // A bucket at or before its TAT is full: it reads back the same when absent.
        if self.table.make_room(shard, now, needed, |tat| *tat <= now) {
            Ok(())
        } else {
            Err(StoreError::RateLimiterFull {
                capacity: self.table.max_entries(),
            })
        }
    }

    /// Nanoseconds since the Unix epoch; 0 before it, `u64::MAX` after 2554.
    fn now(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
            })
    }
}

/// One check of a multi-check decision.
struct Slot {
    shard: usize,
    hash: u64,
    /// The TAT the check saw.
    seen: Option<u64>,
    /// The TAT it would write, if it admits.
    new_tat: Option<u64>,
}

impl Slot {
    fn is(&self, shard: usize, hash: u64) -> bool {
        self.shard == shard && self.hash == hash
    }
}

/// The locked state of `shard`, which is among `guards`.
fn state_of<'g>(
    guards: &'g [(usize, MutexGuard<'_, ShardState<u64>>)],
    shard: usize,
) -> &'g ShardState<u64> {
    let index = guards
        .iter()
        .position(|&(locked, _)| locked == shard)
        .unwrap_or_default();
    &guards[index].1
}

impl RateStore for MemoryRateStore {
    fn check<'a>(
        &'a self,
        checks: &'a [RateCheck<'a>],
    ) -> BoxFuture<'a, Result<RateDecision, StoreError>> {
        Box::pin(ready(self.check_now(checks)))
    }
}

impl fmt::Debug for MemoryRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the buckets: up to a million of them would swamp any log line.
        f.debug_struct("MemoryRateStore")
            .field("max_buckets", &self.table.max_entries())
            .field("shards", &self.table.shard_count())
            .field("held", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::super::shared_checks;
    use super::super::{Quota, QuotaStatus};
    use super::*;
    use crate::clock::ManualClock;

    const MS: Duration = Duration::from_millis(1);
    const NS: Duration = Duration::from_nanos(1);

    fn store(max_buckets: usize) -> (MemoryRateStore, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (MemoryRateStore::new(clock.clone(), max_buckets), clock)
    }

    fn quota(limit: u32, period: Duration, burst: u32) -> Quota {
        Quota::new(limit, period, burst).unwrap()
    }

    fn one(store: &MemoryRateStore, bucket: &str, quota: Quota) -> QuotaStatus {
        let checks = [RateCheck {
            bucket: bucket.as_bytes(),
            quota,
        }];
        store.check_now(&checks).unwrap().statuses[0]
    }

    fn full(result: Result<RateDecision, StoreError>) -> bool {
        matches!(result, Err(StoreError::RateLimiterFull { .. }))
    }

    #[tokio::test]
    async fn conformance() {
        let (small, _clock) = store(64);
        shared_checks::all(&small, "").await;
        let (large, _clock) = store(MemoryRateStore::DEFAULT_MAX_BUCKETS);
        shared_checks::all(&large, "").await;
    }

    #[test]
    fn a_bucket_refills_one_unit_every_interval_exactly() {
        let (store, clock) = store(16);
        let q = quota(10, Duration::from_secs(1), 2);
        assert_eq!(
            one(&store, "a", q),
            QuotaStatus {
                allowed: true,
                remaining: 1,
                reset_after: 100 * MS,
                retry_after: Duration::ZERO,
            }
        );
        assert_eq!(
            one(&store, "a", q),
            QuotaStatus {
                allowed: true,
                remaining: 0,
                reset_after: 200 * MS,
                retry_after: Duration::ZERO,
            }
        );
        assert_eq!(
            one(&store, "a", q),
            QuotaStatus {
                allowed: false,
                remaining: 0,
                reset_after: 200 * MS,
                retry_after: 100 * MS,
            }
        );
        clock.advance(100 * MS - NS);
        let refused = one(&store, "a", q);
        assert!(!refused.allowed && refused.retry_after == NS, "{refused:?}");
        clock.advance(NS);
        assert_eq!(
            one(&store, "a", q),
            QuotaStatus {
                allowed: true,
                remaining: 0,
                reset_after: 200 * MS,
                retry_after: Duration::ZERO,
            }
        );
        // Long idle: full again, and no more than full.
        clock.advance(Duration::from_secs(3600));
        assert_eq!(one(&store, "a", q).remaining, 1);
        assert_eq!(one(&store, "a", q).remaining, 0);
        assert!(!one(&store, "a", q).allowed);
    }

    #[test]
    fn a_quota_that_refuses_leaves_the_others_untouched() {
        let (store, clock) = store(16);
        let per_second = quota(1, Duration::from_secs(1), 1);
        let per_minute = quota(10, Duration::from_secs(60), 10);
        let checks = [
            RateCheck {
                bucket: b"minute",
                quota: per_minute,
            },
            RateCheck {
                bucket: b"second",
                quota: per_second,
            },
        ];
        assert!(store.check_now(&checks).unwrap().allowed());
        for _ in 0..100 {
            let refused = store.check_now(&checks).unwrap();
            assert!(!refused.allowed());
            assert_eq!(
                refused.statuses[0],
                QuotaStatus {
                    allowed: true,
                    remaining: 9,
                    reset_after: Duration::from_secs(6),
                    retry_after: Duration::ZERO,
                }
            );
            assert_eq!(refused.retry_after(), Duration::from_secs(1));
        }
        clock.advance(Duration::from_secs(1));
        let admitted = store.check_now(&checks).unwrap();
        assert!(admitted.allowed());
        assert_eq!(admitted.statuses[0].remaining, 8);
        assert_eq!(admitted.statuses[0].reset_after, Duration::from_secs(11));
    }

    #[test]
    fn only_full_buckets_are_evicted() {
        // Under 1 024 buckets: one shard, so the bound is exact.
        let (store, clock) = store(3);
        let q = quota(1, Duration::from_secs(1), 2);
        assert!(one(&store, "a", q).allowed);
        assert!(one(&store, "b", q).allowed);
        clock.advance(500 * MS);
        // c takes its whole burst: its TAT is 2 s ahead.
        assert!(one(&store, "c", q).allowed);
        assert!(one(&store, "c", q).allowed);
        assert!(full(store.check_now(&[RateCheck {
            bucket: b"d",
            quota: q
        }])));
        // a and b are full again; c is not.
        clock.advance(500 * MS);
        assert!(one(&store, "d", q).allowed);
        assert!(one(&store, "e", q).allowed);
        assert!(full(store.check_now(&[RateCheck {
            bucket: b"f",
            quota: q
        }])));
        assert_eq!(store.len(), 3);
        // c kept its state: still empty, so a client cannot reset it by filling the table.
        let c = one(&store, "c", q);
        assert!(!c.allowed, "{c:?}");
        assert_eq!(c.retry_after, 500 * MS);
    }

    #[test]
    fn a_full_table_refuses_new_buckets_and_serves_held_ones() {
        let (store, clock) = store(2);
        let q = quota(1, Duration::from_secs(60), 3);
        assert!(one(&store, "a", q).allowed);
        assert!(one(&store, "b", q).allowed);
        let err = store
            .check_now(&[RateCheck {
                bucket: b"c",
                quota: q,
            }])
            .unwrap_err();
        assert!(
            matches!(err, StoreError::RateLimiterFull { capacity: 2 }),
            "{err}"
        );
        assert!(err.to_string().contains("full"), "{err}");
        // Held buckets go on being served, to the end of their burst.
        assert_eq!(one(&store, "a", q).remaining, 1);
        assert_eq!(one(&store, "a", q).remaining, 0);
        assert!(!one(&store, "a", q).allowed);
        // A refused decision needs no room: it writes nothing.
        let strict = quota(1, Duration::from_secs(60), 1);
        let refused = store
            .check_now(&[
                RateCheck {
                    bucket: b"new",
                    quota: strict,
                },
                RateCheck {
                    bucket: b"a",
                    quota: q,
                },
            ])
            .unwrap();
        assert!(!refused.allowed() && refused.statuses[0].allowed);
        // A multi-check with a new bucket in a full table is refused whole, and takes nothing.
        assert!(full(store.check_now(&[
            RateCheck {
                bucket: b"b",
                quota: q
            },
            RateCheck {
                bucket: b"new",
                quota: strict
            },
        ])));
        assert_eq!(one(&store, "b", q).remaining, 1);
        clock.advance(Duration::from_secs(180));
        assert!(one(&store, "c", q).allowed);
    }

    #[test]
    fn a_full_shard_scans_itself_at_most_every_100_ms() {
        let (store, clock) = store(2);
        let q = quota(1, Duration::from_secs(1), 1);
        assert!(one(&store, "a", q).allowed);
        assert!(one(&store, "b", q).allowed);
        clock.advance(950 * MS);
        // Scans, finds nothing full.
        assert!(full(store.check_now(&[RateCheck {
            bucket: b"c",
            quota: q
        }])));
        clock.advance(50 * MS);
        // a and b are full now, but the last scan was 50 ms ago.
        assert!(full(store.check_now(&[RateCheck {
            bucket: b"c",
            quota: q
        }])));
        clock.advance(50 * MS);
        assert!(one(&store, "c", q).allowed);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_clock_that_steps_back_makes_waits_longer_and_panics_nothing() {
        let (store, clock) = store(16);
        let q = quota(1, Duration::from_secs(1), 1);
        let start = clock.now();
        assert!(one(&store, "a", q).allowed);
        clock.set(start - Duration::from_secs(3600));
        let status = one(&store, "a", q);
        assert!(!status.allowed);
        assert_eq!(status.retry_after, Duration::from_secs(3601));
        clock.set(SystemTime::UNIX_EPOCH - Duration::from_secs(3600));
        assert!(!one(&store, "a", q).allowed);
        assert!(one(&store, "b", q).allowed);
        clock.set(start + Duration::from_secs(1));
        assert!(one(&store, "a", q).allowed);
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
        let (default, _clock) = store(MemoryRateStore::DEFAULT_MAX_BUCKETS);
        assert_eq!(
            (default.table.shard_count(), default.table.shard_capacity()),
            (64, 15_625)
        );
        // Buckets are spread over the shards.
        let q = quota(1, Duration::from_secs(60), 1);
        for n in 0..1000 {
            assert!(one(&default, &format!("k{n}"), q).allowed);
        }
        let used = (0..64)
            .filter(|&index| !default.table.lock(index).map.is_empty())
            .count();
        assert!(used > 48, "{used} of 64 shards used");
        assert_eq!(default.len(), 1000);
    }

    #[test]
    fn concurrent_multi_checks_neither_deadlock_nor_overspend() {
        let (store, _clock) = store(MemoryRateStore::DEFAULT_MAX_BUCKETS);
        let store = Arc::new(store);
        let shared = quota(1, Duration::from_secs(3600), 50);
        let own = quota(1, Duration::from_secs(3600), 1000);
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let mut admitted = 0;
                    for n in 0..500 {
                        let mine = format!("own-{thread}-{}", n % 7);
                        let mut checks = vec![
                            RateCheck {
                                bucket: b"shared",
                                quota: shared,
                            },
                            RateCheck {
                                bucket: mine.as_bytes(),
                                quota: own,
                            },
                        ];
                        if n % 2 == 0 {
                            checks.reverse();
                        }
                        admitted += usize::from(store.check_now(&checks).unwrap().allowed());
                    }
                    admitted
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 50);
    }

    #[test]
    fn a_poisoned_shard_goes_on_serving() {
        let (store, _clock) = store(16);
        let q = quota(1, Duration::from_secs(60), 2);
        assert!(one(&store, "a", q).allowed);
        let poisoned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = store.table.lock(0);
            panic!("poison the shard");
        }));
        assert!(poisoned.is_err() && store.table.is_poisoned(0));
        assert_eq!(one(&store, "a", q).remaining, 0);
        assert!(!one(&store, "a", q).allowed);
    }

    #[test]
    fn debug_shows_no_buckets() {
        let (store, _clock) = store(16);
        assert!(one(&store, "secret-key", quota(1, Duration::from_secs(1), 1)).allowed);
        let shown = format!("{store:?}");
        assert_eq!(
            shown,
            "MemoryRateStore { max_buckets: 16, shards: 1, held: 1, .. }"
        );
        let dynamic: Arc<dyn RateStore> = Arc::new(store);
        assert!(format!("{dynamic:?}").starts_with("MemoryRateStore"));
    }
}
