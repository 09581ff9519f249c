//! The conformance checks for tenants' rates: every backend replaces, clears, lists and rounds
//! them alike, and refuses unsound input before storing anything.

use std::sync::Arc;
use std::time::Duration;

use super::{DAY, MINUTE};
use crate::cache::CachedKeyStore;
use crate::clock::{Clock, ManualClock, truncate_to_millis};
use crate::error::StoreError;
use crate::store::KeyStore;
use crate::tenant_rate::TenantRate;

fn field_of(result: Result<impl std::fmt::Debug, StoreError>) -> &'static str {
    match result {
        Err(StoreError::InvalidInput { field, .. }) => field,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn rate(clock: &ManualClock, tenant: &str, quota: &str) -> TenantRate {
    TenantRate {
        tenant: tenant.to_owned(),
        quota: quota.to_owned(),
        limit: 10,
        per: Duration::from_secs(1),
        burst: 10,
        updated_at: clock.now(),
    }
}

/// A rate reads back exactly as written, `per` and `updated_at` truncated to milliseconds, at
/// the extremes of its fields too.
pub async fn tenant_rates_round_trip(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    assert_eq!(store.tenant_rates().await.unwrap(), []);
    let extreme = TenantRate {
        tenant: "Tenant.A:b_c-9".to_owned(),
        quota: "per-key_2".to_owned(),
        limit: u32::MAX,
        // u32::MAX per a day and a bit is over 1 µs apart: a sound quota.
        per: DAY + Duration::from_nanos(1_500_001),
        burst: u32::MAX,
        updated_at: clock.now() + Duration::from_nanos(2_999_999),
    };
    store.set_tenant_rate(&extreme).await.unwrap();
    let smallest = TenantRate {
        limit: 1,
        per: Duration::from_millis(1),
        burst: 1,
        ..rate(&clock, "t", "q")
    };
    store.set_tenant_rate(&smallest).await.unwrap();
    let expected = TenantRate {
        per: DAY + Duration::from_millis(1),
        updated_at: truncate_to_millis(extreme.updated_at),
        ..extreme.clone()
    };
    assert_eq!(expected.updated_at, clock.now() + Duration::from_millis(2));
    assert_eq!(store.tenant_rates().await.unwrap(), [expected, smallest]);
}

/// Setting a rate for a `(tenant, quota)` again replaces it; other quotas and tenants keep
/// theirs.
pub async fn setting_a_tenant_rate_again_replaces_it(
    store: Arc<dyn KeyStore>,
    clock: Arc<ManualClock>,
) {
    let first = rate(&clock, "tenant-a", "per-key");
    let other_quota = rate(&clock, "tenant-a", "per-tenant");
    let other_tenant = rate(&clock, "tenant-b", "per-key");
    for r in [&first, &other_quota, &other_tenant] {
        store.set_tenant_rate(r).await.unwrap();
    }
    clock.advance(MINUTE);
    let second = TenantRate {
        limit: 100,
        per: Duration::from_secs(60),
        burst: 20,
        updated_at: clock.now(),
        ..first.clone()
    };
    store.set_tenant_rate(&second).await.unwrap();
    assert_eq!(
        store.tenant_rates().await.unwrap(),
        [second.clone(), other_quota.clone(), other_tenant.clone()]
    );
    // The same again changes nothing.
    store.set_tenant_rate(&second).await.unwrap();
    assert_eq!(
        store.tenant_rates().await.unwrap(),
        [second, other_quota, other_tenant]
    );
}

/// Clearing says whether there was a rate to clear, and clears only that one.
pub async fn clearing_a_tenant_rate_reports_it(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let a = rate(&clock, "tenant-a", "per-key");
    let b = rate(&clock, "tenant-a", "per-tenant");
    let c = rate(&clock, "tenant-b", "per-key");
    for r in [&a, &b, &c] {
        store.set_tenant_rate(r).await.unwrap();
    }
    assert!(
        store
            .clear_tenant_rate("tenant-a", "per-key")
            .await
            .unwrap()
    );
    assert!(
        !store
            .clear_tenant_rate("tenant-a", "per-key")
            .await
            .unwrap()
    );
    assert!(
        !store
            .clear_tenant_rate("tenant-c", "per-key")
            .await
            .unwrap()
    );
    assert!(!store.clear_tenant_rate("tenant-b", "per-ip").await.unwrap());
    assert_eq!(store.tenant_rates().await.unwrap(), [b.clone(), c.clone()]);
    // Cleared, it can be set again.
    store.set_tenant_rate(&a).await.unwrap();
    assert_eq!(store.tenant_rates().await.unwrap(), [a, b, c]);
}

/// Rates are listed by tenant, then quota, in byte order (not the database's collation), however
/// they were written.
pub async fn tenant_rates_are_sorted(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let pairs = [
        ("b", "a"),
        ("ab", "z"),
        ("a_b", "q"),
        ("a.b", "q"),
        ("B", "q"),
        ("a-b", "q"),
        ("a", "z"),
        ("a", "a_b"),
        ("a", "a-b"),
        ("a", "ab"),
        ("a", "a"),
        ("a", "10"),
        ("a", "9"),
    ];
    for (tenant, quota) in pairs {
        store
            .set_tenant_rate(&rate(&clock, tenant, quota))
            .await
            .unwrap();
    }
    let listed: Vec<(String, String)> = store
        .tenant_rates()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.tenant, r.quota))
        .collect();
    let mut expected: Vec<(String, String)> = pairs
        .iter()
        .map(|&(t, q)| (t.to_owned(), q.to_owned()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(listed[0], ("B".to_owned(), "q".to_owned()));
}

/// Unsound input is refused, naming the field, and stores (or clears) nothing.
pub async fn unsound_tenant_rates_name_the_field(
    store: Arc<dyn KeyStore>,
    clock: Arc<ManualClock>,
) {
    let kept = rate(&clock, "tenant-a", "per-key");
    store.set_tenant_rate(&kept).await.unwrap();
    let sound = || rate(&clock, "tenant-b", "per-key");
    let cases = [
        (
            TenantRate {
                tenant: "a b".to_owned(),
                ..sound()
            },
            "tenant",
        ),
        (
            TenantRate {
                tenant: String::new(),
                ..sound()
            },
            "tenant",
        ),
        (
            TenantRate {
                tenant: "t".repeat(129),
                ..sound()
            },
            "tenant",
        ),
        (
            TenantRate {
                quota: String::new(),
                ..sound()
            },
            "quota",
        ),
        (
            TenantRate {
                quota: "Per-Key".to_owned(),
                ..sound()
            },
            "quota",
        ),
        (
            TenantRate {
                quota: "per key".to_owned(),
                ..sound()
            },
            "quota",
        ),
        (
            TenantRate {
                quota: "per.key".to_owned(),
                ..sound()
            },
            "quota",
        ),
        (
            TenantRate {
                quota: "q".repeat(65),
                ..sound()
            },
            "quota",
        ),
        (
            TenantRate {
                limit: 0,
                ..sound()
            },
            "limit",
        ),
        (
            TenantRate {
                burst: 0,
                ..sound()
            },
            "burst",
        ),
        (
            TenantRate {
                per: Duration::ZERO,
                ..sound()
            },
            "per",
        ),
        (
            TenantRate {
                per: Duration::from_micros(999),
                ..sound()
            },
            "per",
        ),
        (
            TenantRate {
                per: Duration::from_secs(u64::MAX),
                ..sound()
            },
            "per",
        ),
    ];
    for (r, field) in &cases {
        assert_eq!(field_of(store.set_tenant_rate(r).await), *field, "{r:?}");
    }
    assert_eq!(
        field_of(store.clear_tenant_rate("a b", "per-key").await),
        "tenant"
    );
    assert_eq!(
        field_of(store.clear_tenant_rate("tenant-a", "Per-Key").await),
        "quota"
    );
    assert_eq!(
        field_of(store.clear_tenant_rate("tenant-a", "").await),
        "quota"
    );
    assert_eq!(store.tenant_rates().await.unwrap(), [kept]);
    // The longest quota name is sound.
    let longest = TenantRate {
        quota: "q".repeat(64),
        ..sound()
    };
    store.set_tenant_rate(&longest).await.unwrap();
    assert!(
        store
            .clear_tenant_rate("tenant-b", &"q".repeat(64))
            .await
            .unwrap()
    );
}

/// Through the cache, rates set or cleared elsewhere show at once: the cache does not keep them
/// (the gateway refreshes its own copy).
pub async fn cache_passes_tenant_rates_through(store: Arc<dyn KeyStore>, clock: Arc<ManualClock>) {
    let cached = CachedKeyStore::new(Arc::clone(&store));
    assert_eq!(cached.tenant_rates().await.unwrap(), []);
    let a = rate(&clock, "tenant-a", "per-key");
    store.set_tenant_rate(&a).await.unwrap();
    assert_eq!(
        cached.tenant_rates().await.unwrap(),
        std::slice::from_ref(&a)
    );

    let b = TenantRate {
        limit: 3,
        ..rate(&clock, "tenant-a", "per-key")
    };
    cached.set_tenant_rate(&b).await.unwrap();
    assert_eq!(store.tenant_rates().await.unwrap(), [b]);
    assert!(
        cached
            .clear_tenant_rate("tenant-a", "per-key")
            .await
            .unwrap()
    );
    assert_eq!(store.tenant_rates().await.unwrap(), []);
    assert_eq!(cached.tenant_rates().await.unwrap(), []);
}
