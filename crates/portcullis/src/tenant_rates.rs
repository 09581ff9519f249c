//! Tenants' own rate-limit plans from the key store, held in memory for the rate limiter and
//! refreshed every second: `portcullis keys limit` changes a tenant's rate on every instance
//! within seconds, without a restart.
//!
//! A snapshot rather than a lookup per request, for the reasons [`crate::revocations`] gives:
//! plans are few, requests many, and the lookup on the request path is two hash probes. When the
//! store cannot be read, the last snapshot stays in force (logged once per outage, counted in
//! `portcullis_tenant_rate_refresh_failures_total`); a plan changed during the outage applies
//! when the store is back. Rates come before the policy's own `[rate-limit.tenants.*]`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use portcullis_layers::rate_limit::TenantRates;
use portcullis_store::{KeyStore, Quota, StoreError, TenantRate};

/// How often the snapshot is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Tenant → quota name → rate.
type Plans = HashMap<String, HashMap<String, Quota>>;

/// See the module documentation.
#[derive(Debug)]
pub struct StoreTenantRates {
    plans: RwLock<Arc<Plans>>,
}

fn index(rates: Vec<TenantRate>) -> Plans {
    let mut plans: Plans = HashMap::new();
    for rate in rates {
        match rate.to_quota() {
            Ok(quota) => {
                plans
                    .entry(rate.tenant)
                    .or_default()
                    .insert(rate.quota, quota);
            }
            // The store checks rates when they are written; one that still does not make a
            // quota is left out (the policy's rate applies), and said so.
            Err(e) => tracing::warn!(
                target: "portcullis::rate_limit",
                tenant = %rate.tenant,
                quota = %rate.quota,
                error = %e,
                "a tenant's stored rate is not a valid quota; ignoring it"
            ),
        }
    }
    plans
}

impl StoreTenantRates {
    /// Reads the first snapshot (a store that cannot be read stops the start) and refreshes it
    /// in the background for as long as the runtime runs and the gateway holds it.
    pub async fn start(store: Arc<dyn KeyStore>) -> Result<Arc<Self>, StoreError> {
        let first = store.tenant_rates().await?;
        let this = Arc::new(Self {
            plans: RwLock::new(Arc::new(index(first))),
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { break };
                match store.tenant_rates().await {
                    Ok(rates) => {
                        this.replace(index(rates));
                        if failing {
                            tracing::info!(
                                target: "portcullis::rate_limit",
                                "tenants' rates are being refreshed again"
                            );
                            failing = false;
                        }
                    }
                    Err(e) => {
                        metrics::counter!("portcullis_tenant_rate_refresh_failures_total")
                            .increment(1);
                        if !failing {
                            tracing::error!(
                                target: "portcullis::rate_limit",
                                error = %e,
                                "cannot refresh tenants' rates; the last ones stay in force"
                            );
                            failing = true;
                        }
                    }
                }
            }
        });
        Ok(this)
    }

    fn replace(&self, plans: Plans) {
        let plans = Arc::new(plans);
        match self.plans.write() {
            Ok(mut slot) => *slot = plans,
            Err(poisoned) => *poisoned.into_inner() = plans,
        }
    }

    fn current(&self) -> Arc<Plans> {
        match self.plans.read() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl TenantRates for StoreTenantRates {
    fn rate(&self, tenant: &str, quota: &str) -> Option<Quota> {
        self.current().get(tenant)?.get(quota).copied()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use portcullis_store::MemoryStore;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn plans_in_the_store_show_within_a_refresh() {
        let store: Arc<dyn KeyStore> = Arc::new(MemoryStore::new());
        let rates = StoreTenantRates::start(store.clone()).await.unwrap();
        assert_eq!(rates.rate("acme", "per-key"), None);

        let plan = TenantRate {
            tenant: "acme".to_owned(),
            quota: "per-key".to_owned(),
            limit: 100,
            per: Duration::from_secs(1),
            burst: 200,
            updated_at: SystemTime::now(),
        };
        store.set_tenant_rate(&plan).await.unwrap();
        tokio::time::sleep(REFRESH_EVERY + Duration::from_millis(10)).await;
        tokio::task::yield_now().await;
        let quota = rates.rate("acme", "per-key").unwrap();
        assert_eq!((quota.limit(), quota.burst()), (100, 200));
        assert_eq!(rates.rate("acme", "other"), None);
        assert_eq!(rates.rate("beta", "per-key"), None);

        assert!(store.clear_tenant_rate("acme", "per-key").await.unwrap());
        tokio::time::sleep(REFRESH_EVERY).await;
        tokio::task::yield_now().await;
        assert_eq!(rates.rate("acme", "per-key"), None);
    }
}
