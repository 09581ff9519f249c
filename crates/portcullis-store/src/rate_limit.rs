//! Rate-limit state: how many requests a key may still make, shared by everything that counts.
//!
//! A quota is `limit` requests per `period`, at most `burst` at once ([`Quota`]). The gateway
//! names a bucket per (quota, key value), e.g. per API key or per client IP, and asks the
//! [`RateStore`] whether a request fits every quota of its route ([`RateStore::check`]).
//!
//! The algorithm is GCRA, the generic cell rate algorithm (module `gcra` has the arithmetic). With the
//! emission interval `T = period / limit` and the tolerance `τ = (burst − 1)·T`, a bucket's whole
//! state is one instant, its theoretical arrival time (TAT; absent means full). A request at `t`
//! is admitted iff `TAT ≤ t + τ` (an absent TAT counts as `t`), and admitting it sets
//! `TAT' = max(TAT, t) + T`. So in any interval of length `D`, at most `burst + ⌊D / T⌋` requests
//! are admitted: `burst` at once, then one per `T`.
//!
//! Why GCRA rather than a window counter:
//! - one number per bucket: 8 bytes in memory, one small string in Redis;
//! - exact: a fixed window admits up to twice its limit across a window boundary, and the usual
//!   sliding-window counter approximates the previous window's share; GCRA has neither error;
//! - O(1) per decision, with no timestamps list to trim;
//! - `retry_after` comes out directly: the time until the TAT has drained back within `τ`.
//!
//! A request usually meets several quotas (per second and per hour, per key and per tenant), and
//! [`RateStore::check`] decides them together: either each bucket gives one unit or none does, so
//! a request refused by its per-second quota does not also drain its hourly budget.
//!
//! Backends:
//! - [`MemoryRateStore`]: one gateway instance; sharded, bounded, and full means refusal of new
//!   buckets (fail closed), never the reset of a budget in use.
//! - `RedisRateStore` (feature `redis`): many gateway instances sharing one Redis, one script per
//!   decision, on Redis's clock.

use std::fmt;
use std::time::Duration;

use crate::error::StoreError;
use crate::store::BoxFuture;

mod gcra;
mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use self::memory::MemoryRateStore;
#[cfg(feature = "redis")]
pub use self::redis::RedisRateStore;

/// The longest span a quota may need to remember: `burst · T`, the time a bucket takes to refill
/// from empty. 100 years keeps every instant well inside `u64` nanoseconds and, in Redis,
/// microseconds since the epoch plus this span stay below 2^53, where Lua's doubles are exact.
const MAX_SPAN: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `limit` requests per `period`, at most `burst` at once.
///
/// ```
/// use std::time::Duration;
/// use portcullis_store::Quota;
///
/// // 10 per second on average, 20 at once.
/// let quota = Quota::new(10, Duration::from_secs(1), 20)?;
/// assert_eq!(quota.emission_interval(), Duration::from_millis(100));
/// # Ok::<(), portcullis_store::QuotaError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: u32,
    period: Duration,
    burst: u32,
    /// `period / limit` in whole nanoseconds, computed once: a `u128` division per decision is
    /// a measurable part of an in-memory check. Derived from the fields above, so equality and
    /// hashing are unaffected.
    interval_ns: u64,
}

impl Quota {
    /// A quota, or why it cannot be one: `limit`, `burst` and `period` must not be zero, the
    /// emission interval `period / limit` must be at least 1 µs (Redis counts in microseconds),
    /// and a bucket must refill within 100 years (`burst · period / limit`).
    pub fn new(limit: u32, period: Duration, burst: u32) -> Result<Self, QuotaError> {
        if limit == 0 {
            return Err(QuotaError::ZeroLimit);
        }
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        if period.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        let interval = period / limit;
        if interval < Duration::from_micros(1) {
            return Err(QuotaError::IntervalTooShort);
        }
        if interval.as_nanos() * u128::from(burst) > MAX_SPAN.as_nanos() {
            return Err(QuotaError::SpanTooLong);
        }
        let interval_ns =
            u64::try_from(interval.as_nanos()).map_err(|_| QuotaError::SpanTooLong)?;
        Ok(Self {
            limit,
            period,
            burst,
            interval_ns,
        })
    }

    /// Requests per period.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The period the limit is counted over.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Requests admitted at once by a full bucket.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// `T = period / limit`, truncated to whole nanoseconds: one unit refills every `T`.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// `T` in nanoseconds (at least 1 000).
    pub(crate) fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// `τ = (burst − 1)·T` in nanoseconds (at most 100 years: no overflow).
    pub(crate) fn tolerance_ns(&self) -> u64 {
        self.interval_ns
            .saturating_mul(u64::from(self.burst.saturating_sub(1)))
    }
}

/// Why [`Quota::new`] refused its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    /// `limit` is zero (to refuse everything, do not route to a rate limit).
    #[error("a quota's limit must be at least 1 request per period")]
    ZeroLimit,
    /// `burst` is zero.
    #[error("a quota's burst must be at least 1")]
    ZeroBurst,
    /// `period` is zero.
    #[error("a quota's period must not be zero")]
    ZeroPeriod,
    /// `period / limit` is under a microsecond.
    #[error(
        "a quota's period / limit must be at least 1 µs (over a million requests a second per \
         bucket is not a limit)"
    )]
    IntervalTooShort,
    /// `burst · period / limit` is over 100 years.
    #[error("a quota's bucket must refill within 100 years (burst × period / limit)")]
    SpanTooLong,
}

/// One bucket to check a request against.
#[derive(Debug, Clone, Copy)]
pub struct RateCheck<'a> {
    /// An opaque id that the caller makes unique per (quota name, key value); the store never
    /// interprets it. The Redis store appends it to its key prefix, so it should be short.
    pub bucket: &'a [u8],
    /// The quota this bucket counts against.
    pub quota: Quota,
}

/// What one quota says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStatus {
    /// Whether this quota admits the request. The request goes through only if every quota of
    /// the decision admits it ([`RateDecision::allowed`]).
    pub allowed: bool,
    /// How many further requests this quota would admit right now (`0..=burst`).
    pub remaining: u32,
    /// Time until the bucket is full again (its whole burst available).
    pub reset_after: Duration,
    /// Zero if admitted; otherwise the time until this quota would admit the request.
    pub retry_after: Duration,
}

/// The decision on one request: one status per [`RateCheck`], in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateDecision {
    /// One per check, in the order of the checks.
    pub statuses: Vec<QuotaStatus>,
}

impl RateDecision {
    /// Whether every quota admitted the request (true for no checks at all).
    pub fn allowed(&self) -> bool {
        self.statuses.iter().all(|status| status.allowed)
    }

    /// How long to wait before retrying: the longest of the statuses' (zero if allowed).
    pub fn retry_after(&self) -> Duration {
        self.statuses
            .iter()
            .map(|status| status.retry_after)
            .max()
            .unwrap_or_default()
    }
}

/// Where buckets' state lives.
///
/// Like [`KeyStore`](crate::KeyStore), dyn-compatible: the gateway holds an `Arc<dyn RateStore>`
/// and picks the backend from configuration.
pub trait RateStore: Send + Sync + fmt::Debug {
    /// Decides one request against every check, atomically: if every quota admits it, one unit
    /// is taken from each bucket; if any refuses, nothing is taken from any (so a refused request
    /// never drains an hourly budget because a per-second quota refused it). For a refused
    /// decision the statuses of the quotas that would have admitted show their unchanged state.
    /// Atomic across processes for shared backends.
    ///
    /// The same bucket twice in one call counts as two requests made one after the other: the
    /// second check sees the unit the first would take. (Buckets should be unique per quota, so
    /// this is a caller's mistake, but one with a defined outcome.)
    fn check<'a>(
        &'a self,
        checks: &'a [RateCheck<'a>],
    ) -> BoxFuture<'a, Result<RateDecision, StoreError>>;
}

#[cfg(test)]
pub(crate) mod shared_checks {
    //! The behaviour both backends must have, as functions taking a store: only what does not
    //! depend on whose clock runs (slow quotas, so that real time passing in the Redis tests
    //! changes nothing). Each backend's tests call every one of them.
    //!
    //! `bucket_prefix` makes the buckets unique to one call, for a store shared between tests.

    use super::*;

    /// One per hour, `burst` at once: nothing refills while a test runs.
    pub(crate) fn slow(burst: u32) -> Quota {
        Quota::new(1, Duration::from_secs(3600), burst).unwrap()
    }

    fn bucket(prefix: &str, name: &str) -> Vec<u8> {
        format!("{prefix}{name}").into_bytes()
    }

    async fn one(store: &dyn RateStore, bucket: &[u8], quota: Quota) -> QuotaStatus {
        let decision = store.check(&[RateCheck { bucket, quota }]).await.unwrap();
        assert_eq!(decision.statuses.len(), 1);
        decision.statuses[0]
    }

    pub(crate) async fn burst_then_refusal(store: &dyn RateStore, bucket_prefix: &str) {
        let quota = slow(3);
        let a = bucket(bucket_prefix, "burst");
        for remaining in [2, 1, 0] {
            let status = one(store, &a, quota).await;
            assert!(status.allowed, "{status:?}");
            assert_eq!(status.remaining, remaining, "{status:?}");
            assert_eq!(status.retry_after, Duration::ZERO);
            assert!(status.reset_after > Duration::ZERO, "{status:?}");
            assert!(
                status.reset_after <= Duration::from_secs(3 * 3600),
                "{status:?}"
            );
        }
        for _ in 0..3 {
            let status = one(store, &a, quota).await;
            assert!(!status.allowed, "{status:?}");
            assert_eq!(status.remaining, 0);
            // The next unit comes back one emission interval after the first was taken.
            assert!(status.retry_after > Duration::from_secs(3500), "{status:?}");
            assert!(
                status.retry_after <= Duration::from_secs(3600),
                "{status:?}"
            );
            assert!(
                status.reset_after > Duration::from_secs(3 * 3600 - 100),
                "{status:?}"
            );
        }
        // Another bucket has its own budget.
        let status = one(store, &bucket(bucket_prefix, "other"), quota).await;
        assert!(status.allowed && status.remaining == 2, "{status:?}");
    }

    pub(crate) async fn a_refused_multi_check_takes_nothing(
        store: &dyn RateStore,
        bucket_prefix: &str,
    ) {
        let (hourly, strict) = (slow(5), slow(1));
        let (a, b) = (
            bucket(bucket_prefix, "hourly"),
            bucket(bucket_prefix, "strict"),
        );
        let checks = [
            RateCheck {
                bucket: &a,
                quota: hourly,
            },
            RateCheck {
                bucket: &b,
                quota: strict,
            },
        ];
        let first = store.check(&checks).await.unwrap();
        assert!(first.allowed(), "{first:?}");
        assert_eq!(first.retry_after(), Duration::ZERO);
        assert_eq!(
            (first.statuses[0].remaining, first.statuses[1].remaining),
            (4, 0)
        );
        for _ in 0..3 {
            let refused = store.check(&checks).await.unwrap();
            assert!(!refused.allowed(), "{refused:?}");
            // The hourly quota would have admitted: it says so, with its unchanged state.
            assert!(refused.statuses[0].allowed, "{refused:?}");
            assert_eq!(refused.statuses[0].remaining, 4, "{refused:?}");
            assert_eq!(refused.statuses[0].retry_after, Duration::ZERO);
            assert!(!refused.statuses[1].allowed, "{refused:?}");
            assert_eq!(refused.retry_after(), refused.statuses[1].retry_after);
            assert!(
                refused.retry_after() > Duration::from_secs(3500),
                "{refused:?}"
            );
        }
        // Nothing was taken from the hourly bucket by the refusals.
        let status = one(store, &a, hourly).await;
        assert!(status.allowed, "{status:?}");
        assert_eq!(status.remaining, 3, "{status:?}");
        // Order does not matter: the strict quota first refuses just the same.
        let reversed = [checks[1], checks[0]];
        let refused = store.check(&reversed).await.unwrap();
        assert!(!refused.allowed() && refused.statuses[1].remaining == 3);
    }

    pub(crate) async fn remaining_counts_down_to_zero(store: &dyn RateStore, bucket_prefix: &str) {
        let quota = slow(10);
        let a = bucket(bucket_prefix, "countdown");
        for remaining in (0..10).rev() {
            assert_eq!(one(store, &a, quota).await.remaining, remaining);
        }
        let status = one(store, &a, quota).await;
        assert!(!status.allowed && status.remaining == 0, "{status:?}");
    }

    pub(crate) async fn no_checks_admit(store: &dyn RateStore) {
        let decision = store.check(&[]).await.unwrap();
        assert!(decision.allowed());
        assert!(decision.statuses.is_empty());
        assert_eq!(decision.retry_after(), Duration::ZERO);
    }

    pub(crate) async fn the_same_bucket_twice_counts_twice(
        store: &dyn RateStore,
        bucket_prefix: &str,
    ) {
        let quota = slow(3);
        let a = bucket(bucket_prefix, "twice");
        let twice = [
            RateCheck { bucket: &a, quota },
            RateCheck { bucket: &a, quota },
        ];
        let decision = store.check(&twice).await.unwrap();
        assert!(decision.allowed(), "{decision:?}");
        assert_eq!(
            (
                decision.statuses[0].remaining,
                decision.statuses[1].remaining
            ),
            (2, 1)
        );
        // One unit left: the first check would admit, the second refuses, nothing is taken.
        let decision = store.check(&twice).await.unwrap();
        assert!(!decision.allowed(), "{decision:?}");
        assert!(decision.statuses[0].allowed && !decision.statuses[1].allowed);
        assert_eq!(one(store, &a, quota).await.remaining, 0);
    }

    /// Every check above, in turn.
    pub(crate) async fn all(store: &dyn RateStore, bucket_prefix: &str) {
        burst_then_refusal(store, bucket_prefix).await;
        a_refused_multi_check_takes_nothing(store, bucket_prefix).await;
        remaining_counts_down_to_zero(store, bucket_prefix).await;
        no_checks_admit(store).await;
        the_same_bucket_twice_counts_twice(store, bucket_prefix).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_refuse_what_cannot_be_enforced() {
        let second = Duration::from_secs(1);
        assert_eq!(Quota::new(0, second, 1), Err(QuotaError::ZeroLimit));
        assert_eq!(Quota::new(1, second, 0), Err(QuotaError::ZeroBurst));
        assert_eq!(
            Quota::new(1, Duration::ZERO, 1),
            Err(QuotaError::ZeroPeriod)
        );
        assert_eq!(
            Quota::new(1_000_001, second, 1),
            Err(QuotaError::IntervalTooShort)
        );
        assert!(Quota::new(1_000_000, second, 1).is_ok());
        assert_eq!(
            Quota::new(1, Duration::MAX, 1),
            Err(QuotaError::SpanTooLong)
        );
        assert_eq!(
            Quota::new(1, Duration::from_secs(86_400), u32::MAX),
            Err(QuotaError::SpanTooLong)
        );
        assert!(Quota::new(1, MAX_SPAN, 1).is_ok());
        assert!(
            QuotaError::IntervalTooShort
                .to_string()
                .contains("at least 1 µs")
        );
    }

    #[test]
    fn a_quota_has_what_it_was_made_with() {
        let quota = Quota::new(3, Duration::from_secs(1), 7).unwrap();
        assert_eq!(quota.limit(), 3);
        assert_eq!(quota.period(), Duration::from_secs(1));
        assert_eq!(quota.burst(), 7);
        assert_eq!(quota.emission_interval(), Duration::from_nanos(333_333_333));
        assert_eq!(quota.tolerance_ns(), 6 * 333_333_333);
        assert_eq!(quota, Quota::new(3, Duration::from_secs(1), 7).unwrap());
        assert_ne!(quota, Quota::new(3, Duration::from_secs(1), 6).unwrap());
    }

    #[test]
    fn a_decision_is_allowed_only_if_every_quota_admits() {
        let status = |allowed, retry_secs| QuotaStatus {
            allowed,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after: Duration::from_secs(retry_secs),
        };
        assert!(RateDecision::default().allowed());
        let decision = RateDecision {
            statuses: vec![status(true, 0), status(false, 5), status(false, 2)],
        };
        assert!(!decision.allowed());
        assert_eq!(decision.retry_after(), Duration::from_secs(5));
        let decision = RateDecision {
            statuses: vec![status(true, 0), status(true, 0)],
        };
        assert!(decision.allowed());
        assert_eq!(decision.retry_after(), Duration::ZERO);
    }
}
