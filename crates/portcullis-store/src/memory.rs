//! A store in process memory: tests, demos, and single-instance setups that accept losing every
//! key on restart. Everything lives behind one mutex, held only for a map operation.

use std::collections::{BTreeMap, HashMap};
use std::future::ready;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::clock::{Clock, SystemClock, truncate_to_millis};
use crate::error::StoreError;
use crate::key::KeyId;
use crate::record::{ApiKeyRecord, AuditRecord, KeyState};
use crate::revocation::{RevocationSnapshot, TokenRevocation};
use crate::store::{BoxFuture, KeyStore, Rotation};
use crate::tenant_rate::{TenantRate, truncate_duration_to_millis};

/// Keys, suspensions, revocations, tenants' rates and the audit log in memory. The audit log grows without
/// bound; expired revocations stay until purged.
#[derive(Debug)]
pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    keys: BTreeMap<KeyId, ApiKeyRecord>,
    suspended: HashMap<String, SystemTime>,
    audit: Vec<AuditRecord>,
    revoked_tokens: HashMap<String, TokenRevocation>,
    /// `(tenant, subject)` and when it was suspended.
    suspended_subjects: HashMap<(String, String), SystemTime>,
    /// By `(tenant, quota)`, so listing is in order.
    tenant_rates: BTreeMap<(String, String), TenantRate>,
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            state: Mutex::default(),
        }
    }

    /// The same store on another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update below is complete before it can panic, so a poisoned state is whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyStore for MemoryStore {
    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    fn insert(&self, record: ApiKeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut state = self.state();
        let result = if state.keys.contains_key(&record.id) {
            Err(StoreError::DuplicateId(record.id))
        } else {
            state.keys.insert(record.id.clone(), record);
            Ok(())
        };
        Box::pin(ready(result))
    }

    fn get<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
        Box::pin(ready(Ok(self.state().keys.get(id).cloned())))
    }

    fn list<'a>(
        &'a self,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ApiKeyRecord>, StoreError>> {
        let mut keys: Vec<ApiKeyRecord> = self
            .state()
            .keys
            .values()
            .filter(|record| tenant.is_none_or(|tenant| record.tenant == tenant))
            .cloned()
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Box::pin(ready(Ok(keys)))
    }

    fn commit_rotation(
        &self,
        rotation: Rotation,
    ) -> BoxFuture<'_, Result<ApiKeyRecord, StoreError>> {
        let result = (|| {
            let mut state = self.state();
            let old = state
                .keys
                .get(rotation.old_id())
                .ok_or_else(|| StoreError::NotFound(rotation.old_id().clone()))?;
            let has_successor = state
                .keys
                .values()
                .any(|record| record.rotated_from.as_ref() == Some(&old.id));
            let plan = rotation.plan(old, has_successor)?;
            if state.keys.contains_key(&plan.successor.id) {
                return Err(StoreError::DuplicateId(plan.successor.id));
            }
            if let Some(old) = state.keys.get_mut(rotation.old_id()) {
                old.expires_at = Some(plan.old_expires_at);
            }
            state
                .keys
                .insert(plan.successor.id.clone(), plan.successor.clone());
            Ok(plan.successor)
        })();
        Box::pin(ready(result))
    }

    fn revoke<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<ApiKeyRecord, StoreError>> {
        let result = match self.state().keys.get_mut(id) {
            Some(record) => {
                record.state = KeyState::Revoked;
                Ok(record.clone())
            }
            None => Err(StoreError::NotFound(id.clone())),
        };
        Box::pin(ready(result))
    }

    fn set_tenant_suspended<'a>(
        &'a self,
        tenant: &'a str,
        suspended: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut state = self.state();
        if suspended {
            let now = self.clock.now();
            state.suspended.entry(tenant.to_owned()).or_insert(now);
        } else {
            state.suspended.remove(tenant);
        }
        Box::pin(ready(Ok(())))
    }

    fn is_tenant_suspended<'a>(
        &'a self,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(ready(Ok(self.state().suspended.contains_key(tenant))))
    }

    fn touch<'a>(&'a self, id: &'a KeyId, at: SystemTime) -> BoxFuture<'a, Result<(), StoreError>> {
        if let Some(record) = self.state().keys.get_mut(id) {
            let at = truncate_to_millis(at);
            record.last_used_at = Some(record.last_used_at.map_or(at, |last| last.max(at)));
        }
        Box::pin(ready(Ok(())))
    }

    fn record_audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.state().audit.push(record.normalised());
        Box::pin(ready(Ok(())))
    }

    fn list_audit(&self, limit: usize) -> BoxFuture<'_, Result<Vec<AuditRecord>, StoreError>> {
        let records = self
            .state()
            .audit
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect();
        Box::pin(ready(Ok(records)))
    }

    fn revoke_token(&self, revocation: TokenRevocation) -> BoxFuture<'_, Result<(), StoreError>> {
        // Rounded as the SQL stores round, so every backend reads back the same instants.
        let revocation = TokenRevocation {
            expires_at: truncate_to_millis(revocation.expires_at),
            revoked_at: truncate_to_millis(revocation.revoked_at),
            ..revocation
        };
        let mut state = self.state();
        match state.revoked_tokens.get_mut(&revocation.jti) {
            Some(existing) => existing.expires_at = existing.expires_at.max(revocation.expires_at),
            None => {
                state
                    .revoked_tokens
                    .insert(revocation.jti.clone(), revocation);
            }
        }
        Box::pin(ready(Ok(())))
    }

    fn set_subject_suspended<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        suspended: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut state = self.state();
        let key = (tenant.to_owned(), subject.to_owned());
        if suspended {
            let now = self.clock.now();
            state.suspended_subjects.entry(key).or_insert(now);
        } else {
            state.suspended_subjects.remove(&key);
        }
        Box::pin(ready(Ok(())))
    }

    fn revocation_snapshot(
        &self,
        now: SystemTime,
    ) -> BoxFuture<'_, Result<RevocationSnapshot, StoreError>> {
        let state = self.state();
        let snapshot = RevocationSnapshot {
            tokens: state
                .revoked_tokens
                .values()
                .filter(|r| r.expires_at > now)
                .map(|r| r.jti.clone())
                .collect(),
            subjects: state.suspended_subjects.keys().cloned().collect(),
        };
        Box::pin(ready(Ok(snapshot)))
    }

    fn purge_expired_revocations(&self, now: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        let mut state = self.state();
        let before = state.revoked_tokens.len();
        state.revoked_tokens.retain(|_, r| r.expires_at > now);
        let purged = before - state.revoked_tokens.len();
        Box::pin(ready(Ok(u64::try_from(purged).unwrap_or(u64::MAX))))
    }

    fn put_tenant_rate(&self, rate: TenantRate) -> BoxFuture<'_, Result<(), StoreError>> {
        // Rounded as the SQL stores round, so every backend reads back the same values.
        let rate = TenantRate {
            per: truncate_duration_to_millis(rate.per),
            updated_at: truncate_to_millis(rate.updated_at),
            ..rate
        };
        self.state()
            .tenant_rates
            .insert((rate.tenant.clone(), rate.quota.clone()), rate);
        Box::pin(ready(Ok(())))
    }

    fn delete_tenant_rate<'a>(
        &'a self,
        tenant: &'a str,
        quota: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let removed = self
            .state()
            .tenant_rates
            .remove(&(tenant.to_owned(), quota.to_owned()))
            .is_some();
        Box::pin(ready(Ok(removed)))
    }

    fn tenant_rates(&self) -> BoxFuture<'_, Result<Vec<TenantRate>, StoreError>> {
        let rates = self.state().tenant_rates.values().cloned().collect();
        Box::pin(ready(Ok(rates)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryStore;
    use crate::clock::ManualClock;
    use crate::conformance::{Setup, Teardown};
    use crate::store::KeyStore;

    fn setup(clock: Arc<ManualClock>) -> Setup {
        Box::pin(async move {
            let store: Arc<dyn KeyStore> = Arc::new(MemoryStore::new().with_clock(clock));
            let teardown: Teardown = Box::pin(async {});
            (store, teardown)
        })
    }

    crate::key_store_conformance!(setup);
}
