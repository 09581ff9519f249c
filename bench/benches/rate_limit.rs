//! Per-request cost of an in-memory rate-limit decision (`MemoryRateStore::check_now`, GCRA):
//! one quota on one hot bucket, one quota over 100 000 buckets in turn (cache misses, a table
//! of realistic size), two quotas on two buckets (the multi-check path: both shards locked in
//! order, all-or-nothing), and a refusal. All on the system clock, as in the gateway; the
//! quotas are large enough to keep admitting, so the admitted path (a write) is what is timed.
//!
//! Target: under 100 ns for a single-quota decision.
//!
//! `cargo bench -p portcullis-bench --bench rate_limit -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_store::{MemoryRateStore, Quota, RateCheck, SystemClock};

fn store() -> MemoryRateStore {
    MemoryRateStore::new(Arc::new(SystemClock), MemoryRateStore::DEFAULT_MAX_BUCKETS)
}

/// A million a second with a burst of four billion: never refuses within a benchmark.
fn generous() -> Quota {
    Quota::new(1_000_000, Duration::from_secs(1), u32::MAX).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit");

    let hot = store();
    group.bench_function("one_quota/hot_bucket", |b| {
        let checks = [RateCheck {
            bucket: b"api-key:acme_k3x7q9",
            quota: generous(),
        }];
        b.iter(|| {
            let decision = hot.check_now(black_box(&checks)).unwrap();
            black_box(decision.allowed())
        })
    });

    let spread = store();
    let buckets: Vec<Vec<u8>> = (0..100_000)
        .map(|n| format!("api-key:tenant{}_k{n:08}", n % 97).into_bytes())
        .collect();
    for bucket in &buckets {
        spread
            .check_now(&[RateCheck {
                bucket,
                quota: generous(),
            }])
            .unwrap();
    }
    group.bench_function("one_quota/100k_buckets", |b| {
        let mut n = 0;
        b.iter(|| {
            n = (n + 1) % buckets.len();
            let checks = [RateCheck {
                bucket: &buckets[n],
                quota: generous(),
            }];
            black_box(spread.check_now(black_box(&checks)).unwrap().allowed())
        })
    });

    let two = store();
    let per_hour = Quota::new(1_000_000, Duration::from_secs(3600), u32::MAX).unwrap();
    group.bench_function("two_quotas", |b| {
        let checks = [
            RateCheck {
                bucket: b"second:api-key:acme_k3x7q9",
                quota: generous(),
            },
            RateCheck {
                bucket: b"hour:tenant:acme",
                quota: per_hour,
            },
        ];
        b.iter(|| black_box(two.check_now(black_box(&checks)).unwrap().allowed()))
    });

    let refusing = store();
    let one_an_hour = Quota::new(1, Duration::from_secs(3600), 1).unwrap();
    let checks = [RateCheck {
        bucket: b"api-key:acme_k3x7q9",
        quota: one_an_hour,
    }];
    refusing.check_now(&checks).unwrap();
    group.bench_function("one_quota/refused", |b| {
        b.iter(|| black_box(refusing.check_now(black_box(&checks)).unwrap().allowed()))
    });

    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
