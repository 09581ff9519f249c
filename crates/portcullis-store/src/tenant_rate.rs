//! Per-tenant rate-limit plans: a tenant's own rate for a named quota of the policy
//! (`[rate-limit.quotas.NAME]`), kept in the key store so a plan changes without a restart.
//!
//! The gateway does not ask the store per request. Like the revocation snapshot, each instance
//! holds every [`TenantRate`] in memory and refreshes them every second from
//! [`KeyStore::tenant_rates`](crate::KeyStore::tenant_rates); a change made anywhere is then
//! honoured by every instance within a few seconds.
//!
//! Validation lives here and is applied by the provided methods
//! ([`set_tenant_rate`](crate::KeyStore::set_tenant_rate),
//! [`clear_tenant_rate`](crate::KeyStore::clear_tenant_rate)); the storage methods
//! ([`put_tenant_rate`](crate::KeyStore::put_tenant_rate),
//! [`delete_tenant_rate`](crate::KeyStore::delete_tenant_rate)) take what they are given, like
//! [`KeyStore::insert`](crate::KeyStore::insert).

use std::time::{Duration, SystemTime};

use crate::clock::truncate_to_millis;
use crate::error::StoreError;
use crate::rate_limit::{Quota, QuotaError};
use crate::record::validate_tenant;

/// The longest `per` a store keeps (as the rate limiter's longest refill): it also keeps the
/// stored milliseconds far inside an `i64`.
const MAX_PER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A tenant's own rate for one quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRate {
    /// The tenant, as a key's tenant.
    pub tenant: String,
    /// The quota's name in the policy (`[rate-limit.quotas.NAME]`): 1 to 64 of `a-z 0-9 - _`.
    pub quota: String,
    /// Requests per `per`: at least 1.
    pub limit: u32,
    /// The period `limit` is counted over: 1 ms to 100 years, in whole milliseconds (a store
    /// keeps milliseconds; writing truncates).
    pub per: Duration,
    /// Requests at most at once: at least 1.
    pub burst: u32,
    /// When the rate was last set (a store keeps milliseconds; writing truncates).
    pub updated_at: SystemTime,
}

impl TenantRate {
    /// The rate as a [`Quota`] for the rate limiter.
    pub fn to_quota(&self) -> Result<Quota, QuotaError> {
        Quota::new(self.limit, self.per, self.burst)
    }

    /// The rate checked and as a store keeps it: a sound tenant and quota name, `limit` and
    /// `burst` at least 1, `per` 1 ms to 100 years once truncated to whole milliseconds, a rate
    /// that makes a [`Quota`]; `per` and `updated_at` truncated to milliseconds.
    pub fn checked(&self) -> Result<Self, StoreError> {
        validate_tenant(&self.tenant)?;
        validate_quota_name(&self.quota)?;
        if self.limit == 0 {
            return Err(StoreError::invalid("limit", "must be at least 1"));
        }
        if self.burst == 0 {
            return Err(StoreError::invalid("burst", "must be at least 1"));
        }
        let per = truncate_duration_to_millis(self.per);
        if per.is_zero() || per > MAX_PER {
            return Err(StoreError::invalid("per", "must be 1 ms to 100 years"));
        }
        Quota::new(self.limit, per, self.burst).map_err(|err| match err {
            QuotaError::ZeroLimit => StoreError::invalid("limit", "must be at least 1"),
            QuotaError::ZeroBurst => StoreError::invalid("burst", "must be at least 1"),
            QuotaError::ZeroPeriod => StoreError::invalid("per", "must be 1 ms to 100 years"),
            QuotaError::IntervalTooShort => StoreError::invalid(
                "limit",
                "per / limit must be at least 1 µs (over a million requests a second)",
            ),
            QuotaError::SpanTooLong => StoreError::invalid(
                "burst",
                "the bucket must refill within 100 years (burst × per / limit)",
            ),
        })?;
        Ok(Self {
            tenant: self.tenant.clone(),
            quota: self.quota.clone(),
            limit: self.limit,
            per,
            burst: self.burst,
            updated_at: truncate_to_millis(self.updated_at),
        })
    }
}

/// Checks a quota name: 1 to 64 of `a-z 0-9 - _`.
pub fn validate_quota_name(quota: &str) -> Result<(), StoreError> {
    let ok = (1..=64).contains(&quota.len())
        && quota
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "quota",
            "must be 1 to 64 of a-z 0-9 - _",
        ))
    }
}

/// `d` without its sub-millisecond part: what a store can hold.
pub(crate) fn truncate_duration_to_millis(d: Duration) -> Duration {
    Duration::new(d.as_secs(), d.subsec_millis() * 1_000_000)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn rate() -> TenantRate {
        TenantRate {
            tenant: "acme".to_owned(),
            quota: "per-key".to_owned(),
            limit: 10,
            per: Duration::from_secs(1),
            burst: 10,
            updated_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn a_sound_rate_is_rounded_to_milliseconds() {
        let r = TenantRate {
            per: Duration::from_nanos(1_500_999),
            updated_at: rate().updated_at + Duration::from_nanos(2_000_001),
            ..rate()
        };
        let checked = r.checked().unwrap();
        assert_eq!(checked.per, Duration::from_millis(1));
        assert_eq!(
            checked.updated_at,
            rate().updated_at + Duration::from_millis(2)
        );
        assert_eq!(rate().checked().unwrap(), rate());
        assert!(rate().to_quota().is_ok());
    }

    #[test]
    fn unsound_rates_name_the_field() {
        let cases = [
            (
                TenantRate {
                    tenant: "a b".to_owned(),
                    ..rate()
                },
                "tenant",
            ),
            (
                TenantRate {
                    tenant: String::new(),
                    ..rate()
                },
                "tenant",
            ),
            (
                TenantRate {
                    quota: String::new(),
                    ..rate()
                },
                "quota",
            ),
            (
                TenantRate {
                    quota: "Per-Key".to_owned(),
                    ..rate()
                },
                "quota",
            ),
            (
                TenantRate {
                    quota: "per.key".to_owned(),
                    ..rate()
                },
                "quota",
            ),
            (
                TenantRate {
                    quota: "q".repeat(65),
                    ..rate()
                },
                "quota",
            ),
            (TenantRate { limit: 0, ..rate() }, "limit"),
            (TenantRate { burst: 0, ..rate() }, "burst"),
            (
                TenantRate {
                    per: Duration::ZERO,
                    ..rate()
                },
                "per",
            ),
            (
                TenantRate {
                    per: Duration::from_micros(999),
                    ..rate()
                },
                "per",
            ),
            (
                TenantRate {
                    limit: u32::MAX,
                    per: Duration::from_millis(1),
                    ..rate()
                },
                "limit",
            ),
            (
                TenantRate {
                    per: Duration::from_secs(u64::MAX),
                    ..rate()
                },
                "per",
            ),
            (
                TenantRate {
                    per: MAX_PER + Duration::from_millis(1),
                    ..rate()
                },
                "per",
            ),
            (
                TenantRate {
                    per: MAX_PER,
                    burst: 2,
                    limit: 1,
                    ..rate()
                },
                "burst",
            ),
        ];
        for (r, field) in cases {
            let err = r.checked().unwrap_err();
            assert!(
                matches!(&err, StoreError::InvalidInput { field: f, .. } if *f == field),
                "{r:?}: {err}"
            );
        }
        assert!(
            TenantRate {
                quota: "a_b-9".repeat(12) + "abcd",
                ..rate()
            }
            .checked()
            .is_ok()
        );
    }
}
