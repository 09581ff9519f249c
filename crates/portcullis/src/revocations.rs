//! The key store's revoked tokens and suspended subjects, held in memory for the authentication
//! layer and refreshed every second.
//!
//! Why a snapshot rather than a cached lookup per request: revocations are few and requests
//! are many. A per-`jti` cache would still cost a database round trip for every new token; a
//! snapshot of the whole (small) list costs one query per second per instance, and the check
//! on the request path is a hash lookup. Refreshing every second keeps the promise that a
//! revocation or suspension is honoured by every instance within 5 s, with room for a slow
//! query.
//!
//! When the store cannot be read, the last snapshot stays in force and the failure is logged
//! (and counted in `portcullis_revocation_refresh_failures_total`): JWTs verify without the
//! store, and refusing every token because the database blinked would turn a database outage
//! into a full one. A revocation made during the outage takes effect when the store is back.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use portcullis_layers::revocation::RevocationList;
use portcullis_store::{KeyStore, RevocationSnapshot, StoreError};

/// How often the snapshot is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// How often revocations past their token's expiry are deleted from the store.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// The lists, indexed for lookups that allocate nothing.
#[derive(Debug, Default)]
struct Index {
    tokens: HashSet<String>,
    /// Tenant → its suspended subjects.
    subjects: HashMap<String, HashSet<String>>,
}

impl From<RevocationSnapshot> for Index {
    fn from(snapshot: RevocationSnapshot) -> Self {
        let mut subjects: HashMap<String, HashSet<String>> = HashMap::new();
        for (tenant, subject) in snapshot.subjects {
            subjects.entry(tenant).or_default().insert(subject);
        }
        Self {
            tokens: snapshot.tokens,
            subjects,
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct StoreRevocations {
    index: RwLock<Arc<Index>>,
}

impl StoreRevocations {
    /// Reads the first snapshot (a store that cannot be read stops the start, like the key
    /// store itself) and refreshes it in the background, on the current Tokio runtime, for as
    /// long as the runtime runs.
    pub async fn start(store: Arc<dyn KeyStore>) -> Result<Arc<Self>, StoreError> {
        let first = store.revocation_snapshot(store.clock().now()).await?;
        let this = Arc::new(Self {
            index: RwLock::new(Arc::new(first.into())),
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_purge = Instant::now();
            let mut failing = false;
            loop {
                tick.tick().await;
                // The gateway was dropped: stop refreshing for it.
                let Some(this) = weak.upgrade() else { break };
                let now = store.clock().now();
                match store.revocation_snapshot(now).await {
                    Ok(snapshot) => {
                        this.replace(snapshot.into());
                        if failing {
                            tracing::info!(
                                target: "portcullis::auth",
                                "the revocation list is being refreshed again"
                            );
                            failing = false;
                        }
                    }
                    Err(e) => {
                        metrics::counter!("portcullis_revocation_refresh_failures_total")
                            .increment(1);
                        // Logged once per outage, not once a second.
                        if !failing {
                            tracing::error!(
                                target: "portcullis::auth",
                                error = %e,
                                "cannot refresh the revocation list; the last one stays in force"
                            );
                            failing = true;
                        }
                    }
                }
                if last_purge.elapsed() >= PURGE_EVERY {
                    last_purge = Instant::now();
                    if let Err(e) = store.purge_expired_revocations(now).await {
                        tracing::warn!(error = %e, "cannot purge expired token revocations");
                    }
                }
            }
        });
        Ok(this)
    }

    fn replace(&self, index: Index) {
        let index = Arc::new(index);
        match self.index.write() {
            Ok(mut slot) => *slot = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
    }

    fn current(&self) -> Arc<Index> {
        match self.index.read() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl RevocationList for StoreRevocations {
    fn is_token_revoked(&self, jti: &str) -> bool {
        self.current().tokens.contains(jti)
    }

    fn is_subject_suspended(&self, tenant: &str, subject: &str) -> bool {
        self.current()
            .subjects
            .get(tenant)
            .is_some_and(|subjects| subjects.contains(subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_store::{Clock, ManualClock, MemoryStore};
    use std::time::SystemTime;

    #[tokio::test(start_paused = true)]
    async fn changes_in_the_store_show_within_a_refresh() {
        let clock = Arc::new(ManualClock::new(SystemTime::now()));
        let store: Arc<dyn KeyStore> = Arc::new(MemoryStore::new().with_clock(clock.clone()));
        let list = StoreRevocations::start(store.clone()).await.unwrap();
        assert!(!list.is_token_revoked("t-1"));

        let expires = clock.now() + Duration::from_secs(3600);
        store
            .revoke_jwt("t-1", Some("acme"), expires)
            .await
            .unwrap();
        store.suspend_subject("acme", "user-9").await.unwrap();
        // Not yet: the snapshot is a second old at most.
        tokio::time::sleep(REFRESH_EVERY + Duration::from_millis(10)).await;
        tokio::task::yield_now().await;
        assert!(list.is_token_revoked("t-1"));
        assert!(list.is_subject_suspended("acme", "user-9"));
        assert!(!list.is_subject_suspended("other", "user-9"));

        store.unsuspend_subject("acme", "user-9").await.unwrap();
        tokio::time::sleep(REFRESH_EVERY).await;
        tokio::task::yield_now().await;
        assert!(!list.is_subject_suspended("acme", "user-9"));
    }
}
