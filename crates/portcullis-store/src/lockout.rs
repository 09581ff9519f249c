//! Lockout state: how many times a login has failed, and whether it is locked for now.
//!
//! Progressive lockout of login attempts (seed 002: a progressive lockout policy for repeated
//! password failures). The gateway counts failed logins per key, once for the account (a hash of
//! its identifier) and once for the client IP; the store treats keys as opaque bytes. A key that
//! fails [`LockoutPolicy::failures`] times within [`LockoutPolicy::window`] is locked for
//! [`LockoutPolicy::base`]; each further lock of the same key is twice as long as the one before,
//! up to [`LockoutPolicy::max`]. So a guesser gets a few tries at once, then fewer and fewer per
//! hour, while a user who mistyped twice is never locked.
//!
//! Per key the state is `{ failures, window_start, level, locked_until }`; an absent key is all
//! zero. A failure at time `t` ([`LockoutStore::record_failure`]):
//! - if `locked_until > t`, changes nothing: the gateway refuses a request made during a lock
//!   before it can fail, so a failure reported then is one that raced the lock, and it must not
//!   lengthen it (nor may a locked attacker keep the lock growing for the real user);
//! - otherwise, if `failures == 0` or `t − window_start > window`, starts a new window
//!   (`failures = 0`, `window_start = t`); then `failures += 1`; and if `failures ≥ failures of
//!   the policy`, locks: `locked_until = t + min(base · 2^level, max)`, `level += 1`,
//!   `failures = 0`.
//!
//! A window that passes resets the count, not the level: a key that was locked once and comes
//! back an hour later is locked twice as long at its next lock. The level is forgotten only when
//! the whole entry is: every write sets its expiry to `(locked_until − t, if positive) +
//! max(window, max)` from now, so a key left alone for its lock plus the longer of the window and
//! the longest lock starts over at level 0. A success ([`LockoutStore::record_success`]) forgets
//! the key at once: a login that succeeds resets the account.
//!
//! The arithmetic saturates everywhere (a lock never wraps into the past), and a clock that
//! steps back makes locks and windows look longer, never shorter, and panics nothing.
//!
//! Backends:
//! - [`MemoryLockoutStore`]: one gateway instance; sharded, bounded, and full means refusal of
//!   failures for new keys (fail closed), never forgetting a key that still counts.
//! - `RedisLockoutStore` (feature `redis`): many gateway instances sharing one Redis, one script
//!   per call, on Redis's clock.

use std::fmt;
use std::time::Duration;

use crate::error::StoreError;
use crate::store::BoxFuture;

mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use self::memory::MemoryLockoutStore;
#[cfg(feature = "redis")]
pub use self::redis::RedisLockoutStore;

/// When failures lock a key, and for how long.
///
/// ```
/// use std::time::Duration;
/// use portcullis_store::LockoutPolicy;
///
/// // 5 failures within 15 minutes lock for 1 minute, then 2, 4, ... up to an hour.
/// let policy = LockoutPolicy {
///     failures: 5,
///     window: Duration::from_secs(15 * 60),
///     base: Duration::from_secs(60),
///     max: Duration::from_secs(3600),
/// };
/// assert_eq!(policy.lock_length(0), Duration::from_secs(60));
/// assert_eq!(policy.lock_length(2), Duration::from_secs(240));
/// assert_eq!(policy.lock_length(10), Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures within `window` that start a lock (≥ 1; 0 counts as 1).
    pub failures: u32,
    /// How long failures count towards a lock, from the first of them.
    pub window: Duration,
    /// The first lock's length; each further lock doubles it...
    pub base: Duration,
    /// ...up to this.
    pub max: Duration,
}

impl LockoutPolicy {
    /// The length of the lock that a key which has been locked `level` times before gets:
    /// `min(base · 2^level, max)`, saturating.
    pub fn lock_length(&self, level: u32) -> Duration {
        let mut lock = self.base;
        // At most about 94 doublings take any non-zero base past any `max`.
        for _ in 0..level {
            if lock >= self.max || lock.is_zero() {
                break;
            }
            lock = lock.saturating_mul(2);
        }
        lock.min(self.max)
    }

    /// `failures`, with 0 read as 1: a policy cannot lock before the first failure.
    pub(crate) fn threshold(&self) -> u32 {
        self.failures.max(1)
    }
}

/// Where failure counts and locks live.
///
/// Like [`RateStore`](crate::RateStore), dyn-compatible: the gateway holds an
/// `Arc<dyn LockoutStore>` and picks the backend from configuration.
pub trait LockoutStore: Send + Sync + fmt::Debug {
    /// The longest remaining lock among `keys`; `None` when none is locked (or `keys` is empty).
    fn locked<'a>(
        &'a self,
        keys: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<Option<Duration>, StoreError>>;

    /// One failure for each key, atomically for all (also across processes for shared
    /// backends): either every key counts it or, on an error, none does. Returns, per key in
    /// order, the remaining lock after this failure (`Some` when the key is locked now, whether
    /// this failure started the lock or not).
    ///
    /// The same key twice in one call counts as two failures, one after the other.
    fn record_failure<'a>(
        &'a self,
        keys: &'a [&'a [u8]],
        policy: &'a LockoutPolicy,
    ) -> BoxFuture<'a, Result<Vec<Option<Duration>>, StoreError>>;

    /// Forgets `key`: its failures, its level and its lock.
    fn record_success<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), StoreError>>;
}

#[cfg(test)]
pub(crate) mod shared_checks {
    //! The behaviour both backends must have, as functions taking a store: only what does not
    //! depend on whose clock runs (windows and locks of an hour or more, so that real time
    //! passing in the Redis tests changes nothing). Each backend's tests call every one of them.
    //!
    //! `key_prefix` makes the keys unique to one call, for a store shared between tests.

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// 3 failures within a day lock for an hour, then 2 h, up to 4 h.
    pub(crate) fn slow() -> LockoutPolicy {
        LockoutPolicy {
            failures: 3,
            window: 24 * HOUR,
            base: HOUR,
            max: 4 * HOUR,
        }
    }

    fn key(prefix: &str, name: &str) -> Vec<u8> {
        format!("{prefix}{name}").into_bytes()
    }

    async fn fail(
        store: &dyn LockoutStore,
        key: &[u8],
        policy: &LockoutPolicy,
    ) -> Option<Duration> {
        let locks = store.record_failure(&[key], policy).await.unwrap();
        assert_eq!(locks.len(), 1);
        locks[0]
    }

    async fn locked(store: &dyn LockoutStore, key: &[u8]) -> Option<Duration> {
        store.locked(&[key]).await.unwrap()
    }

    /// Within a minute below `to`: the Redis tests' real time, and rounding, may take a little.
    fn about(lock: Option<Duration>, to: Duration) -> bool {
        lock.is_some_and(|lock| lock <= to && lock > to.saturating_sub(Duration::from_secs(60)))
    }

    pub(crate) async fn failures_lock_for_the_base(store: &dyn LockoutStore, key_prefix: &str) {
        let policy = slow();
        let a = key(key_prefix, "base");
        assert_eq!(locked(store, &a).await, None);
        assert_eq!(fail(store, &a, &policy).await, None);
        assert_eq!(fail(store, &a, &policy).await, None);
        assert_eq!(locked(store, &a).await, None);
        let lock = fail(store, &a, &policy).await;
        assert!(about(lock, HOUR), "{lock:?}");
        let lock = locked(store, &a).await;
        assert!(about(lock, HOUR), "{lock:?}");
        // Failures during the lock change nothing: no longer, and no count towards the next.
        for _ in 0..10 {
            let lock = fail(store, &a, &policy).await;
            assert!(about(lock, HOUR), "{lock:?}");
        }
        // Another key has its own count.
        let b = key(key_prefix, "base-other");
        assert_eq!(fail(store, &b, &policy).await, None);
        assert_eq!(locked(store, &b).await, None);
    }

    pub(crate) async fn a_success_forgets_everything(store: &dyn LockoutStore, key_prefix: &str) {
        let policy = slow();
        let a = key(key_prefix, "success");
        for _ in 0..3 {
            fail(store, &a, &policy).await;
        }
        assert!(locked(store, &a).await.is_some());
        store.record_success(&a).await.unwrap();
        assert_eq!(locked(store, &a).await, None);
        // Count and level are gone too: two failures do not lock, the third locks for the base.
        assert_eq!(fail(store, &a, &policy).await, None);
        assert_eq!(fail(store, &a, &policy).await, None);
        let lock = fail(store, &a, &policy).await;
        assert!(about(lock, HOUR), "{lock:?}");
        // Forgetting a key never seen is fine.
        store
            .record_success(&key(key_prefix, "never"))
            .await
            .unwrap();
    }

    pub(crate) async fn several_keys_in_one_call(store: &dyn LockoutStore, key_prefix: &str) {
        let policy = slow();
        let (account, ip) = (key(key_prefix, "account"), key(key_prefix, "ip"));
        // The IP has failed before, for another account.
        assert_eq!(fail(store, &ip, &policy).await, None);
        let both: [&[u8]; 2] = [&account, &ip];
        assert_eq!(
            store.record_failure(&both, &policy).await.unwrap(),
            vec![None, None]
        );
        let locks = store.record_failure(&both, &policy).await.unwrap();
        assert_eq!(locks[0], None, "{locks:?}");
        assert!(about(locks[1], HOUR), "{locks:?}");
        let locks = store.record_failure(&both, &policy).await.unwrap();
        assert!(about(locks[0], HOUR) && about(locks[1], HOUR), "{locks:?}");
        // A success forgets the account, not the IP.
        store.record_success(&account).await.unwrap();
        assert_eq!(locked(store, &account).await, None);
        assert!(about(store.locked(&both).await.unwrap(), HOUR));
    }

    pub(crate) async fn locked_reports_the_longest_lock(
        store: &dyn LockoutStore,
        key_prefix: &str,
    ) {
        let policy = slow();
        let (short, long, free) = (
            key(key_prefix, "short"),
            key(key_prefix, "long"),
            key(key_prefix, "free"),
        );
        let immediate = LockoutPolicy {
            failures: 1,
            ..policy
        };
        let longer = LockoutPolicy {
            base: 2 * HOUR,
            ..immediate
        };
        assert!(about(fail(store, &short, &immediate).await, HOUR));
        assert!(about(fail(store, &long, &longer).await, 2 * HOUR));
        let keys: [&[u8]; 3] = [&free, &long, &short];
        assert!(about(store.locked(&keys).await.unwrap(), 2 * HOUR));
        let keys: [&[u8]; 2] = [&short, &free];
        assert!(about(store.locked(&keys).await.unwrap(), HOUR));
        assert_eq!(store.locked(&[]).await.unwrap(), None);
        assert_eq!(store.locked(&[&free[..]]).await.unwrap(), None);
    }

    pub(crate) async fn the_same_key_twice_counts_twice(
        store: &dyn LockoutStore,
        key_prefix: &str,
    ) {
        let policy = slow();
        let a = key(key_prefix, "twice-in-one");
        let twice: [&[u8]; 2] = [&a, &a];
        assert_eq!(
            store.record_failure(&twice, &policy).await.unwrap(),
            vec![None, None]
        );
        let locks = store.record_failure(&twice, &policy).await.unwrap();
        assert!(locks[0].is_some() && locks[0] == locks[1], "{locks:?}");
        assert!(about(locks[0], HOUR), "{locks:?}");
        assert!(store.record_failure(&[], &policy).await.unwrap().is_empty());
    }

    pub(crate) async fn a_zero_threshold_locks_at_the_first_failure(
        store: &dyn LockoutStore,
        key_prefix: &str,
    ) {
        let policy = LockoutPolicy {
            failures: 0,
            ..slow()
        };
        let lock = fail(store, &key(key_prefix, "zero"), &policy).await;
        assert!(about(lock, HOUR), "{lock:?}");
    }

    /// Every check above, in turn.
    pub(crate) async fn all(store: &dyn LockoutStore, key_prefix: &str) {
        failures_lock_for_the_base(store, key_prefix).await;
        a_success_forgets_everything(store, key_prefix).await;
        several_keys_in_one_call(store, key_prefix).await;
        locked_reports_the_longest_lock(store, key_prefix).await;
        the_same_key_twice_counts_twice(store, key_prefix).await;
        a_zero_threshold_locks_at_the_first_failure(store, key_prefix).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_double_up_to_the_max_and_saturate() {
        let second = Duration::from_secs(1);
        let policy = LockoutPolicy {
            failures: 5,
            window: 60 * second,
            base: 60 * second,
            max: 3600 * second,
        };
        let lengths: Vec<u64> = (0..8).map(|l| policy.lock_length(l).as_secs()).collect();
        assert_eq!(lengths, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(policy.lock_length(u32::MAX), 3600 * second);
        let unbounded = LockoutPolicy {
            max: Duration::MAX,
            ..policy
        };
        assert_eq!(unbounded.lock_length(u32::MAX), Duration::MAX);
        let tiny = LockoutPolicy {
            base: Duration::from_nanos(1),
            ..policy
        };
        // 2^40 ns is about 18 minutes: far past what a 32-bit factor could reach.
        assert_eq!(tiny.lock_length(40), Duration::from_nanos(1 << 40));
        let zero = LockoutPolicy {
            base: Duration::ZERO,
            ..policy
        };
        assert_eq!(zero.lock_length(u32::MAX), Duration::ZERO);
        // A max below the base caps the first lock too.
        let capped = LockoutPolicy {
            max: second,
            ..policy
        };
        assert_eq!(capped.lock_length(0), second);
    }

    #[test]
    fn a_zero_threshold_is_one() {
        let policy = LockoutPolicy {
            failures: 0,
            window: Duration::ZERO,
            base: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(policy.threshold(), 1);
        assert_eq!(
            LockoutPolicy {
                failures: 7,
                ..policy
            }
            .threshold(),
            7
        );
    }
}
