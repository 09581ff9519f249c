//! The policy's `[lockout]` as the gateway's login lockout: each route's rule, and the store
//! the failures are counted in (memory, or a Redis every instance shares, connected at
//! start-up so a wrong URL stops the start).
//!
//! While Redis cannot be reached, [`FailoverLockoutStore`] applies `on-store-error`:
//! `fail-open` counts failures and locks in this instance's memory, so a brute-force run still
//! meets the rule (per instance) instead of none at all; `fail-closed` refuses login attempts
//! with `503`. The outage is logged when it starts and when it ends, and Redis is tried again a
//! second after each failure (as for rate limits, [`crate::rate_limits`]).

use std::sync::Arc;
use std::time::Duration;

use portcullis_layers::lockout::{LockoutGuard, LockoutRule, StoreFailure};
use portcullis_policy::Policy;
use portcullis_policy::lockout::LockoutRule as PolicyRule;
use portcullis_policy::rate_limit::OnStoreError;
use portcullis_policy::state_store::StateStore;
use portcullis_store::{
    BoxFuture, LockoutPolicy, LockoutStore, MemoryLockoutStore, RedisLockoutStore, StoreError,
    SystemClock,
};

use crate::secret_source::{self, SourceError};
use crate::store_outage::Outage;

/// Why the lockout store could not be opened. Never contains the Redis URL.
#[derive(Debug, thiserror::Error)]
pub enum LockoutError {
    #[error("lockout.store: {0}")]
    Source(#[source] SourceError),
    #[error("lockout.store: cannot reach Redis: {0}")]
    Redis(#[source] StoreError),
}

/// The in-memory store, sized by the policy: what [`crate::PolicyLayer`] uses unless told
/// otherwise.
pub fn memory_store(policy: &Policy) -> Arc<dyn LockoutStore> {
    Arc::new(local_store(policy))
}

fn local_store(policy: &Policy) -> MemoryLockoutStore {
    MemoryLockoutStore::new(Arc::new(SystemClock), policy.lockout.max_entries)
}

/// Opens the store the policy names.
pub async fn open(policy: &Policy) -> Result<Arc<dyn LockoutStore>, LockoutError> {
    match &policy.lockout.store {
        StateStore::Memory => Ok(memory_store(policy)),
        StateStore::Redis(reference) => {
            let url = zeroize::Zeroizing::new(
                secret_source::read(reference).map_err(LockoutError::Source)?,
            );
            let store = RedisLockoutStore::connect(&url, RedisLockoutStore::DEFAULT_KEY_PREFIX)
                .await
                .map_err(LockoutError::Redis)?;
            Ok(Arc::new(FailoverLockoutStore::new(
                Arc::new(store),
                local_store(policy),
                policy.lockout.on_store_error,
            )))
        }
    }
}

/// Every route's rule, counted in `store`; `None` when no route is a login route.
pub fn guard(policy: &Policy, store: Arc<dyn LockoutStore>) -> Option<Arc<LockoutGuard>> {
    let settings = &policy.lockout;
    let per_route: Vec<Option<LockoutRule>> = policy
        .all_routes()
        .map(|route| route.lockout.and_then(|i| settings.rules.get(i)).map(rule))
        .collect();
    if per_route.iter().all(Option::is_none) {
        return None;
    }
    let on_store_error = match settings.on_store_error {
        OnStoreError::FailOpen => StoreFailure::Open,
        OnStoreError::FailClosed => StoreFailure::Closed,
    };
    Some(Arc::new(LockoutGuard::new(
        store,
        per_route,
        on_store_error,
    )))
}

/// A shared lockout store with the policy's answer for when it cannot be reached; see the
/// module docs.
#[derive(Debug)]
pub struct FailoverLockoutStore {
    shared: Arc<dyn LockoutStore>,
    local: MemoryLockoutStore,
    mode: OnStoreError,
    outage: Outage,
}

impl FailoverLockoutStore {
    pub fn new(
        shared: Arc<dyn LockoutStore>,
        local: MemoryLockoutStore,
        mode: OnStoreError,
    ) -> Self {
        Self {
            shared,
            local,
            mode,
            outage: Outage::new(),
        }
    }

    /// `call` on the shared store unless it is down; then, or when it fails now, `call` on the
    /// local store with fail-open, the error with fail-closed.
    async fn attempt<'a, T>(
        &'a self,
        call: impl Fn(&'a dyn LockoutStore) -> BoxFuture<'a, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let error = if self.outage.skipping() {
            StoreError::Backend("the shared lockout store is unavailable".into())
        } else {
            match call(&*self.shared).await {
                Ok(answer) => {
                    if self.outage.answered() {
                        tracing::warn!(
                            target: "portcullis::lockout",
                            "the shared lockout store answers again; counting there"
                        );
                    }
                    return Ok(answer);
                }
                Err(error) => {
                    self.failed(&error);
                    error
                }
            }
        };
        match self.mode {
            OnStoreError::FailOpen => call(&self.local).await,
            OnStoreError::FailClosed => Err(error),
        }
    }

    fn failed(&self, error: &StoreError) {
        // With fail-closed the error reaches the guard, which counts it; with fail-open it is
        // answered here, so it is counted here.
        if self.mode == OnStoreError::FailOpen {
            metrics::counter!("portcullis_lockout_store_errors_total").increment(1);
        }
        if self.outage.failed() {
            let fallback = match self.mode {
                OnStoreError::FailOpen => "counting failures in this instance's memory (fail-open)",
                OnStoreError::FailClosed => "refusing login attempts with 503 (fail-closed)",
            };
            tracing::error!(
                target: "portcullis::lockout",
                %error,
                "the shared lockout store failed; {fallback} until it answers again"
            );
        }
    }
}

impl LockoutStore for FailoverLockoutStore {
    fn locked<'a>(
        &'a self,
        keys: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<Option<Duration>, StoreError>> {
        Box::pin(self.attempt(move |store| store.locked(keys)))
    }

    fn record_failure<'a>(
        &'a self,
        keys: &'a [&'a [u8]],
        policy: &'a LockoutPolicy,
    ) -> BoxFuture<'a, Result<Vec<Option<Duration>>, StoreError>> {
        Box::pin(self.attempt(move |store| store.record_failure(keys, policy)))
    }

    fn record_success<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.attempt(move |store| store.record_success(key)))
    }
}

fn rule(rule: &PolicyRule) -> LockoutRule {
    let policy = LockoutPolicy {
        failures: rule.failures,
        window: rule.window,
        base: rule.lockout,
        max: rule.max_lockout,
    };
    let mut out = LockoutRule::new(rule.name.as_str(), policy)
        .per_ip(rule.per_ip)
        .failure_statuses(rule.failure_statuses.clone())
        .max_body(usize::try_from(rule.max_body).unwrap_or(usize::MAX));
    if let Some(field) = &rule.account_field {
        out = out.account_field(field.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use portcullis_store::{Clock, ManualClock};

    use super::*;
    use crate::store_outage::RETRY_AFTER_FAILURE;

    const HOUR: Duration = Duration::from_secs(3600);

    /// A shared store that fails while `down` is set, and counts the calls that reach it.
    #[derive(Debug)]
    struct Switchable {
        inner: MemoryLockoutStore,
        down: AtomicBool,
        calls: AtomicUsize,
    }

    impl Switchable {
        fn fail<'a, T: Send + 'a>(&self) -> Option<BoxFuture<'a, Result<T, StoreError>>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.down
                .load(Ordering::Relaxed)
                .then(|| -> BoxFuture<'a, _> {
                    Box::pin(async { Err(StoreError::Backend("connection refused".into())) })
                })
        }
    }

    impl LockoutStore for Switchable {
        fn locked<'a>(
            &'a self,
            keys: &'a [&'a [u8]],
        ) -> BoxFuture<'a, Result<Option<Duration>, StoreError>> {
            self.fail().unwrap_or_else(|| self.inner.locked(keys))
        }

        fn record_failure<'a>(
            &'a self,
            keys: &'a [&'a [u8]],
            policy: &'a LockoutPolicy,
        ) -> BoxFuture<'a, Result<Vec<Option<Duration>>, StoreError>> {
            self.fail()
                .unwrap_or_else(|| self.inner.record_failure(keys, policy))
        }

        fn record_success<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), StoreError>> {
            self.fail()
                .unwrap_or_else(|| self.inner.record_success(key))
        }
    }

    fn setup(mode: OnStoreError) -> (Arc<Switchable>, FailoverLockoutStore) {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::default());
        let shared = Arc::new(Switchable {
            inner: MemoryLockoutStore::new(clock.clone(), 1000),
            down: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        });
        let local = MemoryLockoutStore::new(clock, 1000);
        (
            shared.clone(),
            FailoverLockoutStore::new(shared, local, mode),
        )
    }

    fn two_failures() -> LockoutPolicy {
        LockoutPolicy {
            failures: 2,
            window: HOUR,
            base: HOUR,
            max: 4 * HOUR,
        }
    }

    #[tokio::test]
    async fn fail_open_still_locks_out_in_this_instances_memory() {
        let (shared, store) = setup(OnStoreError::FailOpen);
        let policy = two_failures();
        let keys: [&[u8]; 1] = [b"account:alice"];
        shared.down.store(true, Ordering::Relaxed);
        // Not let through unchecked: counted locally, and the second failure locks.
        assert_eq!(
            store.record_failure(&keys, &policy).await.unwrap(),
            vec![None]
        );
        let locked = store.record_failure(&keys, &policy).await.unwrap();
        assert!(locked[0].is_some(), "{locked:?}");
        assert!(store.locked(&keys).await.unwrap().is_some());
        // The first failure was the only call to reach the shared store.
        assert_eq!(shared.calls.load(Ordering::Relaxed), 1);
    }

    // Paused: the pause after a failure passes on Tokio's clock, without waiting.
    #[tokio::test(start_paused = true)]
    async fn fail_closed_refuses_and_the_shared_store_is_used_again_once_it_answers() {
        let (shared, store) = setup(OnStoreError::FailClosed);
        let keys: [&[u8]; 1] = [b"ip:203.0.113.9"];
        shared.down.store(true, Ordering::Relaxed);
        assert!(store.locked(&keys).await.is_err());
        assert!(store.record_success(keys[0]).await.is_err());
        assert_eq!(
            shared.calls.load(Ordering::Relaxed),
            1,
            "skipped while down"
        );
        shared.down.store(false, Ordering::Relaxed);
        tokio::time::sleep(RETRY_AFTER_FAILURE + Duration::from_millis(20)).await;
        assert_eq!(store.locked(&keys).await.unwrap(), None);
        assert_eq!(shared.calls.load(Ordering::Relaxed), 2);
        assert!(!store.outage.is_down());
    }
}
