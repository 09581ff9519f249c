//! The policy's `[lockout]` as the gateway's login lockout: each route's rule, and the store
//! the failures are counted in (memory, or a Redis every instance shares, connected at
//! start-up so a wrong URL stops the start).

use std::sync::Arc;

use portcullis_layers::lockout::{LockoutGuard, LockoutRule, StoreFailure};
use portcullis_policy::Policy;
use portcullis_policy::lockout::LockoutRule as PolicyRule;
use portcullis_policy::rate_limit::OnStoreError;
use portcullis_policy::state_store::StateStore;
use portcullis_store::{
    LockoutPolicy, LockoutStore, MemoryLockoutStore, RedisLockoutStore, StoreError, SystemClock,
};

use crate::secret_source::{self, SourceError};

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
    Arc::new(MemoryLockoutStore::new(
        Arc::new(SystemClock),
        policy.lockout.max_entries,
    ))
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
            Ok(Arc::new(store))
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
