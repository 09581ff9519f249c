//! A read-through cache in front of any [`KeyStore`], so a hot key costs no database round trip.
//!
//! Key lookups (found and not found) and tenant suspension answers are kept for a short TTL
//! (2 s by default). The issue's promise is that revocation and suspension take effect on every
//! instance within 5 s: an instance that did not make the change sees it once its cached answer
//! ages out, so the promise holds while the TTL stays below 5 s minus the time a lookup takes.
//! The instance that made a change forgets its own cached answer at once.
//!
//! Freshness is measured on the inner store's [`Clock`], so tests step past the TTL instead of
//! sleeping. An answer whose age cannot be computed (the clock went backwards) counts as stale.
//!
//! Each map is bounded (10 000 entries by default). When full, stale entries are dropped, and if
//! none are stale an arbitrary one is: a flood of random ids can push hot keys out, which costs
//! lookups, never correctness. A lookup racing a local write can put back the answer from just
//! before the write; it then ages out like any other, within the TTL.
//!
//! Revoked JWTs, suspended subjects and tenants' rates pass straight through: the gateway reads
//! them whole, once a second, and keeps them itself; a second layer of caching would only delay
//! them.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::error::StoreError;
use crate::key::KeyId;
use crate::record::{ApiKeyRecord, AuditRecord};
use crate::revocation::{RevocationSnapshot, TokenRevocation};
use crate::store::{BoxFuture, KeyStore, Rotation};
use crate::tenant_rate::TenantRate;

/// A [`KeyStore`] that caches `get` and `is_tenant_suspended` of another for a short TTL.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use portcullis_store::{CachedKeyStore, KeyStore, MemoryStore};
///
/// let store: Arc<dyn KeyStore> = Arc::new(
///     CachedKeyStore::new(Arc::new(MemoryStore::new())).with_ttl(Duration::from_secs(1)),
/// );
/// ```
#[derive(Debug)]
pub struct CachedKeyStore {
    inner: Arc<dyn KeyStore>,
    ttl: Duration,
    keys: Mutex<TtlMap<KeyId, Option<Arc<ApiKeyRecord>>>>,
    tenants: Mutex<TtlMap<String, bool>>,
}

impl CachedKeyStore {
    /// How long an answer is trusted unless told otherwise.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(2);
    /// How many keys, and separately how many tenants, are kept unless told otherwise.
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// A cache with the default TTL and capacity in front of `inner`.
    pub fn new(inner: Arc<dyn KeyStore>) -> Self {
        Self {
            inner,
            ttl: Self::DEFAULT_TTL,
            keys: Mutex::new(TtlMap::new(Self::DEFAULT_CAPACITY)),
            tenants: Mutex::new(TtlMap::new(Self::DEFAULT_CAPACITY)),
        }
    }

    /// Sets how long an answer is trusted; zero turns caching off.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets how many keys, and separately how many tenants, are kept (at least one).
    pub fn with_capacity(self, capacity: usize) -> Self {
        Self {
            keys: Mutex::new(TtlMap::new(capacity)),
            tenants: Mutex::new(TtlMap::new(capacity)),
            ..self
        }
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &Arc<dyn KeyStore> {
        &self.inner
    }

    fn forget_key(&self, id: &KeyId) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

impl KeyStore for CachedKeyStore {
    fn clock(&self) -> &dyn Clock {
        self.inner.clock()
    }

    fn insert(&self, record: ApiKeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let id = record.id.clone();
            let result = self.inner.insert(record).await;
            self.forget_key(&id);
            result
        })
    }

    fn get<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
        Box::pin(async move { Ok(self.get_shared(id).await?.map(Arc::unwrap_or_clone)) })
    }

    /// A hit shares the cached record (a reference count, not a copy of its strings), and keeps
    /// sharing it until the record ages out: the same `Arc` means the same answer.
    fn get_shared<'a>(
        &'a self,
        id: &'a KeyId,
    ) -> BoxFuture<'a, Result<Option<Arc<ApiKeyRecord>>, StoreError>> {
        Box::pin(async move {
            let now = self.clock().now();
            if let Some(hit) = lock(&self.keys).get_fresh(id, now, self.ttl) {
                return Ok(hit);
            }
            let found = self.inner.get_shared(id).await?;
            if !self.ttl.is_zero() {
                lock(&self.keys).insert(id.clone(), found.clone(), now, self.ttl);
            }
            Ok(found)
        })
    }

    fn list<'a>(
        &'a self,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ApiKeyRecord>, StoreError>> {
        self.inner.list(tenant)
    }

    fn commit_rotation(
        &self,
        rotation: Rotation,
    ) -> BoxFuture<'_, Result<ApiKeyRecord, StoreError>> {
        Box::pin(async move {
            let old = rotation.old_id().clone();
            let result = self.inner.commit_rotation(rotation).await;
            self.forget_key(&old);
            if let Ok(successor) = &result {
                self.forget_key(&successor.id);
            }
            result
        })
    }

    fn revoke<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<ApiKeyRecord, StoreError>> {
        Box::pin(async move {
            let result = self.inner.revoke(id).await;
            self.forget_key(id);
            result
        })
    }

    fn set_tenant_suspended<'a>(
        &'a self,
        tenant: &'a str,
        suspended: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let result = self.inner.set_tenant_suspended(tenant, suspended).await;
            lock(&self.tenants).remove(tenant);
            result
        })
    }

    fn is_tenant_suspended<'a>(
        &'a self,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let now = self.clock().now();
            if let Some(hit) = lock(&self.tenants).get_fresh(tenant, now, self.ttl) {
                return Ok(hit);
            }
            let suspended = self.inner.is_tenant_suspended(tenant).await?;
            if !self.ttl.is_zero() {
                lock(&self.tenants).insert(tenant.to_owned(), suspended, now, self.ttl);
            }
            Ok(suspended)
        })
    }

    fn touch<'a>(&'a self, id: &'a KeyId, at: SystemTime) -> BoxFuture<'a, Result<(), StoreError>> {
        // Cached records may show an older last-use time; verification does not read it.
        self.inner.touch(id, at)
    }

    fn record_audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.record_audit(record)
    }

    fn list_audit(&self, limit: usize) -> BoxFuture<'_, Result<Vec<AuditRecord>, StoreError>> {
        self.inner.list_audit(limit)
    }

    fn revoke_token(&self, revocation: TokenRevocation) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.revoke_token(revocation)
    }

    fn set_subject_suspended<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        suspended: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.set_subject_suspended(tenant, subject, suspended)
    }

    fn revocation_snapshot(
        &self,
        now: SystemTime,
    ) -> BoxFuture<'_, Result<RevocationSnapshot, StoreError>> {
        self.inner.revocation_snapshot(now)
    }

    fn purge_expired_revocations(&self, now: SystemTime) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.purge_expired_revocations(now)
    }

    fn put_tenant_rate(&self, rate: TenantRate) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.put_tenant_rate(rate)
    }

    fn delete_tenant_rate<'a>(
        &'a self,
        tenant: &'a str,
        quota: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.inner.delete_tenant_rate(tenant, quota)
    }

    fn tenant_rates(&self) -> BoxFuture<'_, Result<Vec<TenantRate>, StoreError>> {
        self.inner.tenant_rates()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A cache map is valid after any panic: the worst case is a missing entry.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A bounded map of answers stamped with when they were fetched.
#[derive(Debug)]
struct TtlMap<K, V> {
    capacity: usize,
    entries: HashMap<K, (V, SystemTime)>,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlMap<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    fn get_fresh<Q>(&self, key: &Q, now: SystemTime, ttl: Duration) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (value, fetched_at) = self.entries.get(key)?;
        is_fresh(*fetched_at, now, ttl).then(|| value.clone())
    }

    fn insert(&mut self, key: K, value: V, now: SystemTime, ttl: Duration) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries
                .retain(|_, (_, fetched_at)| is_fresh(*fetched_at, now, ttl));
            if self.entries.len() >= self.capacity {
                // Any entry will do: there is no recency to keep, and a lookup brings it back.
                if let Some(victim) = self.entries.keys().next().cloned() {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries.insert(key, (value, now));
    }

    fn remove<Q>(&mut self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.remove(key);
    }
}

fn is_fresh(fetched_at: SystemTime, now: SystemTime, ttl: Duration) -> bool {
    now.duration_since(fetched_at).is_ok_and(|age| age < ttl)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::clock::ManualClock;
    use crate::memory::MemoryStore;
    use crate::record::NewKey;

    /// A memory store that counts the reads reaching it.
    #[derive(Debug)]
    struct Counting {
        inner: MemoryStore,
        gets: AtomicUsize,
        suspension_reads: AtomicUsize,
        snapshot_reads: AtomicUsize,
        rate_reads: AtomicUsize,
    }

    impl KeyStore for Counting {
        fn clock(&self) -> &dyn Clock {
            self.inner.clock()
        }
        fn insert(&self, record: ApiKeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
            self.inner.insert(record)
        }
        fn get<'a>(
            &'a self,
            id: &'a KeyId,
        ) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, StoreError>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get(id)
        }
        fn list<'a>(
            &'a self,
            tenant: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Vec<ApiKeyRecord>, StoreError>> {
            self.inner.list(tenant)
        }
        fn commit_rotation(
            &self,
            rotation: Rotation,
        ) -> BoxFuture<'_, Result<ApiKeyRecord, StoreError>> {
            self.inner.commit_rotation(rotation)
        }
        fn revoke<'a>(&'a self, id: &'a KeyId) -> BoxFuture<'a, Result<ApiKeyRecord, StoreError>> {
            self.inner.revoke(id)
        }
        fn set_tenant_suspended<'a>(
            &'a self,
            tenant: &'a str,
            suspended: bool,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            self.inner.set_tenant_suspended(tenant, suspended)
        }
        fn is_tenant_suspended<'a>(
            &'a self,
            tenant: &'a str,
        ) -> BoxFuture<'a, Result<bool, StoreError>> {
            self.suspension_reads.fetch_add(1, Ordering::SeqCst);
            self.inner.is_tenant_suspended(tenant)
        }
        fn touch<'a>(
            &'a self,
            id: &'a KeyId,
            at: SystemTime,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            self.inner.touch(id, at)
        }
        fn record_audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), StoreError>> {
            self.inner.record_audit(record)
        }
        fn list_audit(&self, limit: usize) -> BoxFuture<'_, Result<Vec<AuditRecord>, StoreError>> {
            self.inner.list_audit(limit)
        }
        fn revoke_token(
            &self,
            revocation: TokenRevocation,
        ) -> BoxFuture<'_, Result<(), StoreError>> {
            self.inner.revoke_token(revocation)
        }
        fn set_subject_suspended<'a>(
            &'a self,
            tenant: &'a str,
            subject: &'a str,
            suspended: bool,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            self.inner.set_subject_suspended(tenant, subject, suspended)
        }
        fn revocation_snapshot(
            &self,
            now: SystemTime,
        ) -> BoxFuture<'_, Result<RevocationSnapshot, StoreError>> {
            self.snapshot_reads.fetch_add(1, Ordering::SeqCst);
            self.inner.revocation_snapshot(now)
        }
        fn purge_expired_revocations(
            &self,
            now: SystemTime,
        ) -> BoxFuture<'_, Result<u64, StoreError>> {
            self.inner.purge_expired_revocations(now)
        }
        fn put_tenant_rate(&self, rate: TenantRate) -> BoxFuture<'_, Result<(), StoreError>> {
            self.inner.put_tenant_rate(rate)
        }
        fn delete_tenant_rate<'a>(
            &'a self,
            tenant: &'a str,
            quota: &'a str,
        ) -> BoxFuture<'a, Result<bool, StoreError>> {
            self.inner.delete_tenant_rate(tenant, quota)
        }
        fn tenant_rates(&self) -> BoxFuture<'_, Result<Vec<TenantRate>, StoreError>> {
            self.rate_reads.fetch_add(1, Ordering::SeqCst);
            self.inner.tenant_rates()
        }
    }

    fn counting() -> (Arc<Counting>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        let store = Arc::new(Counting {
            inner: MemoryStore::new().with_clock(clock.clone()),
            gets: AtomicUsize::new(0),
            suspension_reads: AtomicUsize::new(0),
            snapshot_reads: AtomicUsize::new(0),
            rate_reads: AtomicUsize::new(0),
        });
        (store, clock)
    }

    #[tokio::test]
    async fn a_hot_key_reaches_the_store_once_per_ttl() {
        let (inner, clock) = counting();
        let cached = CachedKeyStore::new(inner.clone());
        let (_, key) = cached.create(NewKey::new("acme", "t")).await.unwrap();
        for _ in 0..100 {
            cached.verify(key.expose_secret()).await.unwrap();
        }
        assert_eq!(inner.gets.load(Ordering::SeqCst), 1);
        assert_eq!(inner.suspension_reads.load(Ordering::SeqCst), 1);
        clock.advance(CachedKeyStore::DEFAULT_TTL);
        cached.verify(key.expose_secret()).await.unwrap();
        assert_eq!(inner.gets.load(Ordering::SeqCst), 2);
        assert_eq!(inner.suspension_reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn hits_share_the_cached_record_until_it_ages_out_or_changes() {
        let (inner, clock) = counting();
        let cached = CachedKeyStore::new(inner.clone());
        let (_, key) = cached.create(NewKey::new("acme", "t")).await.unwrap();
        let first = cached.verify(key.expose_secret()).await.unwrap();
        let second = cached.verify(key.expose_secret()).await.unwrap();
        assert!(Arc::ptr_eq(first.record(), second.record()));

        clock.advance(CachedKeyStore::DEFAULT_TTL);
        let refetched = cached.verify(key.expose_secret()).await.unwrap();
        assert!(!Arc::ptr_eq(first.record(), refetched.record()));
        assert_eq!(first, refetched);

        // A change made here is not answered from the old record.
        cached.revoke(key.id()).await.unwrap();
        let after = cached.get_shared(key.id()).await.unwrap().unwrap();
        assert!(!Arc::ptr_eq(refetched.record(), &after));
        assert_eq!(after.state, crate::record::KeyState::Revoked);
    }

    #[tokio::test]
    async fn unknown_ids_are_cached_too() {
        let (inner, _clock) = counting();
        let cached = CachedKeyStore::new(inner.clone());
        let nobody: KeyId = "aaaaaaaaaaaaaaaa".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(cached.get(&nobody).await.unwrap(), None);
        }
        assert_eq!(inner.gets.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_zero_ttl_caches_nothing() {
        let (inner, _clock) = counting();
        let cached = CachedKeyStore::new(inner.clone()).with_ttl(Duration::ZERO);
        let (_, key) = cached.create(NewKey::new("acme", "t")).await.unwrap();
        for _ in 0..3 {
            cached.verify(key.expose_secret()).await.unwrap();
        }
        assert_eq!(inner.gets.load(Ordering::SeqCst), 3);
        assert!(lock(&cached.keys).entries.is_empty());
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity() {
        let (inner, _clock) = counting();
        let cached = CachedKeyStore::new(inner.clone()).with_capacity(8);
        for _ in 0..100 {
            let id = crate::key::KeyMaterial::generate().unwrap().id().clone();
            cached.get(&id).await.unwrap();
            assert!(lock(&cached.keys).entries.len() <= 8);
        }
        assert_eq!(lock(&cached.keys).entries.len(), 8);
    }

    #[tokio::test]
    async fn revocation_snapshots_are_never_cached() {
        let (inner, clock) = counting();
        let cached = CachedKeyStore::new(inner.clone());
        let later = clock.now() + Duration::from_secs(60);
        assert!(
            !cached
                .revocation_snapshot(clock.now())
                .await
                .unwrap()
                .is_token_revoked("j1")
        );
        inner.revoke_jwt("j1", None, later).await.unwrap();
        inner.suspend_subject("acme", "alice").await.unwrap();
        let snapshot = cached.revocation_snapshot(clock.now()).await.unwrap();
        assert!(snapshot.is_token_revoked("j1"));
        assert!(snapshot.is_subject_suspended("acme", "alice"));
        assert_eq!(inner.snapshot_reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn tenant_rates_are_never_cached() {
        let (inner, clock) = counting();
        let cached = CachedKeyStore::new(inner.clone());
        assert_eq!(cached.tenant_rates().await.unwrap(), []);
        let rate = TenantRate {
            tenant: "acme".to_owned(),
            quota: "per-key".to_owned(),
            limit: 5,
            per: Duration::from_secs(1),
            burst: 5,
            updated_at: clock.now(),
        };
        inner.set_tenant_rate(&rate).await.unwrap();
        assert_eq!(cached.tenant_rates().await.unwrap(), [rate]);
        assert!(cached.clear_tenant_rate("acme", "per-key").await.unwrap());
        assert_eq!(inner.tenant_rates().await.unwrap(), []);
        assert_eq!(inner.rate_reads.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn an_answer_from_the_future_is_stale() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert!(is_fresh(now, now, Duration::from_secs(2)));
        assert!(!is_fresh(
            now + Duration::from_secs(1),
            now,
            Duration::from_secs(2)
        ));
        assert!(!is_fresh(
            now - Duration::from_secs(2),
            now,
            Duration::from_secs(2)
        ));
    }

    #[test]
    fn stores_and_their_futures_cross_threads() {
        fn send_sync<T: Send + Sync + ?Sized>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<dyn KeyStore>();
        send_sync::<CachedKeyStore>();
        let store: Arc<dyn KeyStore> = Arc::new(MemoryStore::new());
        send(&store.verify("x"));
    }
}
