//! The policy's `[rate-limit]` as the gateway's rate limiting: each route's quotas for the
//! layers, and the store the counters live in.
//!
//! With `store = { env = "REDIS_URL" }` every decision goes to Redis first; while Redis cannot
//! be reached, [`FailoverRateStore`] applies `on-store-error`: `fail-open` counts in this
//! instance's memory (the same quotas, so limits still hold per instance), `fail-closed`
//! refuses with `503`. Either way the outage is logged once when it starts and once when it
//! ends, and every failed decision is counted in `portcullis_rate_limit_store_errors_total`.
//! After a failure Redis is left alone for a second (so an outage does not add a failed round
//! trip to every request), then tried again: the gateway goes back to shared counts by itself.

use std::sync::Arc;
use std::time::Duration;

use crate::secret_source::{self, SourceError};
use crate::store_outage::Outage;
use portcullis_layers::rate_limit::{KeySource, RouteQuota};
use portcullis_policy::Policy;
use portcullis_policy::rate_limit::{OnStoreError, QuotaRule, Rate, RateKey};
use portcullis_policy::state_store::StateStore;
use portcullis_store::{
    BoxFuture, MemoryRateStore, Quota, RateCheck, RateDecision, RateStore, RedisRateStore,
    StoreError, SystemClock,
};

/// Why the rate-limit store could not be opened. Never contains the Redis URL (it may carry a
/// password).
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate-limit.store: {0}")]
    Source(#[source] SourceError),
    #[error("rate-limit.store: cannot reach Redis: {0}")]
    Redis(#[source] StoreError),
}

/// Each route's quotas, indexed like [`Policy::all_routes`] (the default route last).
pub fn route_quotas(policy: &Policy) -> Vec<Vec<RouteQuota>> {
    let quotas: Vec<RouteQuota> = policy.rate_limit.quotas.iter().map(route_quota).collect();
    policy
        .all_routes()
        .map(|route| {
            route
                .rate_limit
                .iter()
                .filter_map(|&i| quotas.get(i).cloned())
                .collect()
        })
        .collect()
}

fn route_quota(rule: &QuotaRule) -> RouteQuota {
    let key = match &rule.key {
        RateKey::Ip => KeySource::Ip,
        RateKey::ApiKey => KeySource::ApiKey,
        RateKey::Tenant => KeySource::Tenant,
        RateKey::Subject => KeySource::Subject,
        RateKey::Header(name) => KeySource::Header(name.clone()),
    };
    let tenants = rule
        .tenants
        .iter()
        .map(|(tenant, rate)| (tenant.clone(), quota(&rule.name, rate)))
        .collect();
    RouteQuota::new(rule.name.as_str(), key, quota(&rule.name, &rule.rate)).with_tenants(tenants)
}

/// The policy compiler refuses every rate the store refuses; should they ever disagree, the
/// quota becomes one request per period rather than no limit at all.
fn quota(name: &str, rate: &Rate) -> Quota {
    Quota::new(rate.limit, rate.per, rate.burst).unwrap_or_else(|e| {
        tracing::error!(quota = name, error = %e, "quota refused; limiting to 1 request per period");
        Quota::new(1, rate.per.max(Duration::from_secs(1)), 1)
            .unwrap_or_else(|_| one_per_second())
    })
}

// Constant arguments, valid by Quota::new's rules (tested below).
#[allow(clippy::expect_used)]
fn one_per_second() -> Quota {
    Quota::new(1, Duration::from_secs(1), 1).expect("1 per second is a valid quota")
}

/// The in-memory store, sized by the policy. What [`crate::PolicyLayer`] uses unless told
/// otherwise, and the fallback of the shared store.
pub fn memory_store(policy: &Policy) -> Arc<MemoryRateStore> {
    Arc::new(MemoryRateStore::new(
        Arc::new(SystemClock),
        policy.rate_limit.max_buckets,
    ))
}

/// Opens the store the policy names: memory, or Redis (connected now, so a wrong URL stops the
/// start instead of every limited request) behind a [`FailoverRateStore`].
pub async fn open(policy: &Policy) -> Result<Arc<dyn RateStore>, RateLimitError> {
    let limits = &policy.rate_limit;
    match &limits.store {
        StateStore::Memory => Ok(memory_store(policy)),
        StateStore::Redis(reference) => {
            let url = zeroize::Zeroizing::new(
                secret_source::read(reference).map_err(RateLimitError::Source)?,
            );
            let redis = RedisRateStore::connect(&url, RedisRateStore::DEFAULT_KEY_PREFIX)
                .await
                .map_err(RateLimitError::Redis)?;
            Ok(Arc::new(FailoverRateStore::new(
                Arc::new(redis),
                memory_store(policy),
                limits.on_store_error,
            )))
        }
    }
}

/// A shared store with the policy's answer for when it cannot be reached; see the module docs.
#[derive(Debug)]
pub struct FailoverRateStore {
    shared: Arc<dyn RateStore>,
    local: Arc<MemoryRateStore>,
    mode: OnStoreError,
    outage: Outage,
}

impl FailoverRateStore {
    pub fn new(
        shared: Arc<dyn RateStore>,
        local: Arc<MemoryRateStore>,
        mode: OnStoreError,
    ) -> Self {
        Self {
            shared,
            local,
            mode,
            outage: Outage::new(),
        }
    }

    fn failed(&self, error: &StoreError) {
        metrics::counter!("portcullis_rate_limit_store_errors_total").increment(1);
        if self.outage.failed() {
            let fallback = match self.mode {
                OnStoreError::FailOpen => "counting in this instance's memory (fail-open)",
                OnStoreError::FailClosed => "refusing rate-limited requests with 503 (fail-closed)",
            };
            tracing::error!(
                target: "portcullis::rate_limit",
                %error,
                "the shared rate-limit store failed; {fallback} until it answers again"
            );
        }
    }

    fn fallback<'a>(
        &'a self,
        checks: &'a [RateCheck<'a>],
        error: StoreError,
    ) -> Result<RateDecision, StoreError> {
        match self.mode {
            OnStoreError::FailOpen => self.local.check_now(checks),
            OnStoreError::FailClosed => Err(error),
        }
    }
}

impl RateStore for FailoverRateStore {
    fn check<'a>(
        &'a self,
        checks: &'a [RateCheck<'a>],
    ) -> BoxFuture<'a, Result<RateDecision, StoreError>> {
        Box::pin(async move {
            if self.outage.skipping() {
                return self.fallback(
                    checks,
                    StoreError::Backend("the shared rate-limit store is unavailable".into()),
                );
            }
            match self.shared.check(checks).await {
                Ok(decision) => {
                    if self.outage.answered() {
                        tracing::warn!(
                            target: "portcullis::rate_limit",
                            "the shared rate-limit store answers again; counting there"
                        );
                    }
                    Ok(decision)
                }
                Err(error) => {
                    self.failed(&error);
                    self.fallback(checks, error)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use portcullis_store::{Clock, ManualClock};

    use super::*;
    use crate::store_outage::RETRY_AFTER_FAILURE;

    /// A shared store that fails while `down` is set, and counts the calls that reach it.
    #[derive(Debug)]
    struct Switchable {
        inner: MemoryRateStore,
        down: AtomicBool,
        calls: AtomicUsize,
    }

    impl RateStore for Switchable {
        fn check<'a>(
            &'a self,
            checks: &'a [RateCheck<'a>],
        ) -> BoxFuture<'a, Result<RateDecision, StoreError>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                return Box::pin(async { Err(StoreError::Backend("connection refused".into())) });
            }
            self.inner.check(checks)
        }
    }

    fn setup(mode: OnStoreError) -> (Arc<Switchable>, FailoverRateStore) {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::default());
        let shared = Arc::new(Switchable {
            inner: MemoryRateStore::new(clock.clone(), 1000),
            down: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        });
        let local = Arc::new(MemoryRateStore::new(clock, 1000));
        let failover = FailoverRateStore::new(shared.clone(), local, mode);
        (shared, failover)
    }

    async fn decide(store: &FailoverRateStore) -> Result<RateDecision, StoreError> {
        let quota = Quota::new(2, Duration::from_secs(3600), 2).unwrap();
        let checks = [RateCheck {
            bucket: b"b",
            quota,
        }];
        store.check(&checks).await
    }

    #[tokio::test]
    async fn fail_open_counts_locally_and_leaves_the_shared_store_alone_for_a_while() {
        let (shared, store) = setup(OnStoreError::FailOpen);
        assert!(decide(&store).await.unwrap().allowed());
        shared.down.store(true, Ordering::Relaxed);
        // The local count starts afresh: two more, then refused, still limited.
        assert!(decide(&store).await.unwrap().allowed());
        assert!(decide(&store).await.unwrap().allowed());
        assert!(!decide(&store).await.unwrap().allowed());
        // The failure was the only call to reach the shared store: the next ones skipped it.
        assert_eq!(shared.calls.load(Ordering::Relaxed), 2);
    }

    // Paused: the pause after a failure passes on Tokio's clock, without waiting.
    #[tokio::test(start_paused = true)]
    async fn fail_closed_refuses_and_the_shared_store_is_used_again_once_it_answers() {
        let (shared, store) = setup(OnStoreError::FailClosed);
        shared.down.store(true, Ordering::Relaxed);
        assert!(decide(&store).await.is_err());
        assert!(decide(&store).await.is_err());
        assert_eq!(
            shared.calls.load(Ordering::Relaxed),
            1,
            "skipped while down"
        );
        shared.down.store(false, Ordering::Relaxed);
        // Past the pause, the shared store is asked again and answers.
        tokio::time::sleep(RETRY_AFTER_FAILURE + Duration::from_millis(20)).await;
        assert!(decide(&store).await.unwrap().allowed());
        assert_eq!(shared.calls.load(Ordering::Relaxed), 2);
        assert!(!store.outage.is_down());
    }

    #[test]
    fn the_fallback_quota_is_valid() {
        let q = one_per_second();
        assert_eq!((q.limit(), q.burst()), (1, 1));
    }
}
