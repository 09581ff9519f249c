//! GCRA's arithmetic, on integer nanoseconds, with no state of its own.
//!
//! The memory store keeps a bucket's TAT and calls [`decide`]; the Redis store runs the same
//! steps in Lua, in microseconds (see `redis.rs`). Keeping the rule a pure function lets the
//! property tests below check the guarantee on the rule itself, without any store around it.
//!
//! With `T` the emission interval and `τ = (burst − 1)·T`, at time `t`:
//! - the request is admitted iff `TAT ≤ t + τ`, an absent TAT counting as `t`;
//! - admitting sets `TAT' = max(TAT, t) + T`;
//! - `remaining` (what would still be admitted right now, with the TAT after the decision) is
//!   `⌊(t + τ − TAT) / T⌋ + 1`, or 0 if `TAT > t + τ`; at most `burst`;
//! - `reset_after` is `TAT − t` (0 if the TAT is past): when the bucket is full again;
//! - `retry_after` is 0 when admitted and `TAT − τ − t` when refused.
//!
//! A TAT in the past is treated as `t`: a bucket does not save up beyond its burst. Everything
//! saturates, so a clock that steps back (a TAT far ahead of `t`) yields a long wait, never an
//! overflow or a panic.

use std::time::Duration;

use super::{Quota, QuotaStatus};

/// Decides one request at `now` on a bucket whose TAT is `tat` (`None`: full). Returns the status
/// and the TAT to store if the request is taken (the unchanged TAT if it is refused).
pub(crate) fn decide(tat: Option<u64>, now: u64, quota: &Quota) -> (QuotaStatus, u64) {
    let tat = effective(tat, now);
    let latest = now.saturating_add(quota.tolerance_ns());
    if tat > latest {
        return (state(tat, now, quota), tat);
    }
    let new_tat = tat.saturating_add(quota.interval_ns());
    let status = QuotaStatus {
        allowed: true,
        remaining: remaining(new_tat, latest, quota),
        reset_after: Duration::from_nanos(new_tat - now),
        retry_after: Duration::ZERO,
    };
    (status, new_tat)
}

/// The status of a bucket left as it is: for a quota that would admit a request that another
/// quota refused. (`allowed` says whether this quota would admit one.)
pub(crate) fn unchanged(tat: Option<u64>, now: u64, quota: &Quota) -> QuotaStatus {
    state(effective(tat, now), now, quota)
}

/// A TAT in the past is as good as `now`.
fn effective(tat: Option<u64>, now: u64) -> u64 {
    tat.map_or(now, |tat| tat.max(now))
}

/// The status of a bucket at `tat ≥ now`, taking nothing.
fn state(tat: u64, now: u64, quota: &Quota) -> QuotaStatus {
    let latest = now.saturating_add(quota.tolerance_ns());
    QuotaStatus {
        allowed: tat <= latest,
        remaining: remaining(tat, latest, quota),
        reset_after: Duration::from_nanos(tat.saturating_sub(now)),
        retry_after: Duration::from_nanos(tat.saturating_sub(latest)),
    }
}

/// How many requests a bucket at `tat` admits before `latest = now + τ` is passed.
fn remaining(tat: u64, latest: u64, quota: &Quota) -> u32 {
    if tat > latest {
        return 0;
    }
    let admitted = (latest - tat) / quota.interval_ns() + 1;
    u32::try_from(admitted).map_or(quota.burst(), |n| n.min(quota.burst()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_700_000_000_000_000_000;
    const SEC: u64 = 1_000_000_000;

    fn quota(limit: u32, period: Duration, burst: u32) -> Quota {
        Quota::new(limit, period, burst).unwrap()
    }

    #[test]
    fn a_full_bucket_admits_its_burst_at_once() {
        let q = quota(10, Duration::from_secs(1), 3);
        let (first, tat) = decide(None, NOW, &q);
        assert_eq!(
            first,
            QuotaStatus {
                allowed: true,
                remaining: 2,
                reset_after: Duration::from_millis(100),
                retry_after: Duration::ZERO,
            }
        );
        let (second, tat) = decide(Some(tat), NOW, &q);
        assert_eq!((second.remaining, second.reset_after.as_millis()), (1, 200));
        let (third, tat) = decide(Some(tat), NOW, &q);
        assert_eq!((third.remaining, third.reset_after.as_millis()), (0, 300));
        let (refused, same) = decide(Some(tat), NOW, &q);
        assert_eq!(same, tat);
        assert_eq!(
            refused,
            QuotaStatus {
                allowed: false,
                remaining: 0,
                reset_after: Duration::from_millis(300),
                retry_after: Duration::from_millis(100),
            }
        );
        assert_eq!(unchanged(Some(tat), NOW, &q), refused);
        assert!(decide(Some(tat), NOW + SEC / 10 - 1, &q).0.retry_after == Duration::from_nanos(1));
        assert!(decide(Some(tat), NOW + SEC / 10, &q).0.allowed);
    }

    #[test]
    fn a_stale_tat_is_a_full_bucket() {
        let q = quota(1, Duration::from_secs(1), 4);
        assert_eq!(decide(Some(NOW - 50 * SEC), NOW, &q), decide(None, NOW, &q));
        assert_eq!(
            unchanged(Some(NOW - SEC), NOW, &q),
            QuotaStatus {
                allowed: true,
                remaining: 4,
                reset_after: Duration::ZERO,
                retry_after: Duration::ZERO,
            }
        );
    }

    #[test]
    fn a_burst_of_one_is_a_plain_rate() {
        let q = quota(2, Duration::from_secs(1), 1);
        let (first, tat) = decide(None, NOW, &q);
        assert!(first.allowed && first.remaining == 0);
        assert!(!decide(Some(tat), NOW + SEC / 2 - 1, &q).0.allowed);
        assert!(decide(Some(tat), NOW + SEC / 2, &q).0.allowed);
    }

    #[test]
    fn extreme_instants_saturate() {
        let q = quota(1, Duration::from_secs(3600), 5);
        // A TAT far ahead (a clock that stepped back a long way) waits; it does not wrap.
        let (status, _) = decide(Some(u64::MAX), 0, &q);
        assert!(!status.allowed);
        assert_eq!(status.reset_after, Duration::from_nanos(u64::MAX));
        let (status, tat) = decide(None, u64::MAX - 1, &q);
        assert!(status.allowed && tat == u64::MAX);
    }

    fn quotas() -> impl Strategy<Value = Quota> {
        // Intervals from 1 µs to 10 s, bursts up to 20.
        (1u32..=1000, 1u64..=10_000, 1u32..=20)
            .prop_map(|(limit, ms, burst)| quota(limit, Duration::from_millis(ms), burst))
    }

    /// Gaps between requests in thousandths of the quota's interval, many of them zero so that
    /// bursts happen.
    fn gaps() -> impl Strategy<Value = Vec<u64>> {
        prop::collection::vec(prop_oneof![Just(0u64), 0u64..=3000], 1..200)
    }

    proptest! {
        /// The guarantee: in any closed interval of length D, at most burst + ⌊D / T⌋ requests
        /// are admitted. (Proof: the n-th admission since the one at t₁ needs a TAT of at least
        /// t₁ + (n − 1)·T to be ≤ tₙ + τ.)
        #[test]
        fn no_interval_admits_more_than_burst_plus_rate(q in quotas(), gaps in gaps()) {
            let t = q.interval_ns();
            let (mut now, mut tat, mut admitted) = (NOW, None, Vec::new());
            for gap in gaps {
                now += t / 1000 * gap;
                let (status, next) = decide(tat, now, &q);
                if status.allowed {
                    tat = Some(next);
                    admitted.push(now);
                }
            }
            for (i, &from) in admitted.iter().enumerate() {
                for (j, &to) in admitted.iter().enumerate().skip(i) {
                    let count = (j - i + 1) as u64;
                    prop_assert!(
                        count <= u64::from(q.burst()) + (to - from) / t,
                        "{count} admitted in {} ns with {q:?}", to - from
                    );
                }
            }
        }

        /// `remaining`, `retry_after` and `reset_after` say exactly what the next decisions do.
        #[test]
        fn the_derived_values_are_exact(q in quotas(), gaps in gaps()) {
            let t = q.interval_ns();
            let (mut now, mut tat) = (NOW, None);
            for gap in gaps {
                now += t / 1000 * gap;
                let (status, next) = decide(tat, now, &q);
                if status.allowed {
                    tat = Some(next);
                    prop_assert_eq!(status.retry_after, Duration::ZERO);
                } else {
                    // Refused until exactly retry_after from now.
                    let wait = u64::try_from(status.retry_after.as_nanos()).unwrap();
                    prop_assert!(wait > 0);
                    prop_assert!(!decide(tat, now + wait - 1, &q).0.allowed);
                    prop_assert!(decide(tat, now + wait, &q).0.allowed);
                }
                // Exactly `remaining` more are admitted right now.
                let mut probe = tat;
                for _ in 0..status.remaining {
                    let (more, next) = decide(probe, now, &q);
                    prop_assert!(more.allowed);
                    probe = Some(next);
                }
                prop_assert!(!decide(probe, now, &q).0.allowed);
                // Full again after reset_after, not before.
                let reset = u64::try_from(status.reset_after.as_nanos()).unwrap();
                prop_assert_eq!(unchanged(tat, now + reset, &q).remaining, q.burst());
                if reset > 0 {
                    prop_assert!(unchanged(tat, now + reset - 1, &q).remaining < q.burst());
                }
            }
        }
    }
}
