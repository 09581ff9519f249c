//! Rate-limit state in Redis, shared by many gateway instances.
//!
//! A bucket is one key, `<prefix><bucket id>`, holding its TAT as whole microseconds since the
//! Unix epoch. A decision is one Lua script (`DECIDE`) run by EVALSHA with every bucket of the
//! request as a key: it reads each TAT, decides
//! each check, and writes the new TATs only if every check admits. Redis runs a script
//! atomically, so decisions on any number of instances never interleave, and a refused request
//! takes nothing from any bucket.
//!
//! The script reads the time with `TIME`: every instance then decides on one clock, Redis's,
//! and instances whose clocks disagree cannot hand out more than the quota. That is why this
//! store does not use the injected [`Clock`](crate::Clock), and why its tests use slow quotas or
//! wait for real (briefly). (`TIME` followed by writes is allowed since Redis replicates a
//! script's effects, not the script; that is the only mode from Redis 7 on.)
//!
//! Lua numbers are doubles. Microseconds since the epoch (about 1.8·10^15 today) are exact below
//! 2^53 (about 9·10^15, the year 2255), and a quota never looks more than 100 years ahead
//! ([`Quota::new`] refuses longer), so every value the script computes is an exact integer. It
//! writes TATs with `%.0f`, not `tostring`, which would round them to 14 digits.
//!
//! Each key is written with `PX` set to when its bucket is full again (rounded up to a whole
//! millisecond): a full bucket and an absent one are the same, so keys expire by themselves and
//! nothing needs cleaning up. Redis evicts keys under memory pressure only if its
//! `maxmemory-policy` allows it; an evicted bucket is a reset budget, so the policy should be
//! `noeviction` (or a `volatile-*` policy in a Redis holding no other volatile keys).
//!
//! The emission interval is rounded up to whole microseconds (and the tolerance is that times
//! `burst − 1`), so a quota in Redis is at most 1 µs per request stricter than in memory, with
//! the same burst. A decision's keys must live on one Redis: this is not for Redis Cluster.
//!
//! [`RedisRateStore::connect`] loads the script; the connection and the script's loading and
//! reloading are the ones every Redis store here shares (`redis_script`: commands time out after
//! 500 ms, so a stalled Redis fails requests quickly instead of holding them).

use std::fmt;
use std::time::Duration;

use ::redis::RedisError;
use ::redis::aio::ConnectionManager;

use super::{Quota, QuotaStatus, RateCheck, RateDecision, RateStore};
use crate::error::StoreError;
use crate::redis_script::{self, Script};
use crate::store::BoxFuture;

/// One decision. `KEYS[i]` is bucket `i`; `ARGV[2i − 1]` and `ARGV[2i]` are its emission interval
/// `T` and tolerance `τ` in µs. Returns four integers per bucket: allowed (1 or 0), remaining,
/// reset after (µs), retry after (µs). The same steps as `gcra.rs`, which says why.
const DECIDE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local n = #KEYS
local seen, allowed, writes = {}, {}, {}
local admitted = true
for i = 1, n do
  local key = KEYS[i]
  local t, tau = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  -- An earlier check of this decision on the same bucket counts first.
  local tat = writes[key]
  if tat == nil then
    local stored = redis.call('GET', key)
    if stored then
      tat = tonumber(stored)
      if tat == nil then
        return redis.error_reply('portcullis: a rate-limit bucket holds something else than a TAT')
      end
    else
      tat = now
    end
  end
  if tat < now then tat = now end
  seen[i] = tat
  allowed[i] = tat <= now + tau
  if allowed[i] then
    writes[key] = tat + t
  else
    admitted = false
  end
end
local out = {}
for i = 1, n do
  local t, tau = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local latest = now + tau
  local tat = seen[i]
  if admitted then tat = tat + t end
  local remaining = 0
  if tat <= latest then
    remaining = math.floor((latest - tat) / t)
    -- Division rounds; the floor must not be one too many.
    if remaining * t > latest - tat then remaining = remaining - 1 end
    remaining = remaining + 1
  end
  local retry = 0
  if not allowed[i] then retry = tat - latest end
  out[4 * i - 3] = allowed[i] and 1 or 0
  out[4 * i - 2] = remaining
  out[4 * i - 1] = tat - now
  out[4 * i] = retry
end
if admitted then
  for key, tat in pairs(writes) do
    redis.call('SET', key, string.format('%.0f', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
  end
end
return out
";

/// A [`RateStore`] in Redis: every gateway instance using the same Redis and key prefix counts
/// against the same buckets.
#[derive(Clone)]
pub struct RedisRateStore {
    connection: ConnectionManager,
    key_prefix: String,
    /// [`DECIDE`], loaded.
    decide: Script,
}

impl RedisRateStore {
    /// The key prefix to use unless there is a reason for another.
    pub const DEFAULT_KEY_PREFIX: &'static str = "portcullis:rl:";

    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`) and waits for
    /// the first connection. Keys are `key_prefix` followed by the bucket id; instances that are
    /// to share their budgets must use the same prefix.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        let mut connection = redis_script::connect(url).await.map_err(backend)?;
        let decide = Script::load(&mut connection, DECIDE)
            .await
            .map_err(backend)?;
        Ok(Self {
            connection,
            key_prefix: key_prefix.to_owned(),
            decide,
        })
    }

    /// The prefix of this store's keys.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }
}

impl RateStore for RedisRateStore {
    fn check<'a>(
        &'a self,
        checks: &'a [RateCheck<'a>],
    ) -> BoxFuture<'a, Result<RateDecision, StoreError>> {
        Box::pin(async move {
            if checks.is_empty() {
                return Ok(RateDecision::default());
            }
            let call = self.decide.call(
                &self.key_prefix,
                checks.iter().map(|check| check.bucket),
                checks.iter().flat_map(|check| {
                    let (interval, tolerance) = micros(&check.quota);
                    [interval, tolerance]
                }),
            );
            let reply: Vec<i64> = self
                .decide
                .run(&self.connection, &call)
                .await
                .map_err(backend)?;
            if reply.len() != 4 * checks.len() {
                return Err(StoreError::Backend(Box::new(RedisFailure::UnexpectedReply)));
            }
            let statuses = reply
                .chunks_exact(4)
                .zip(checks)
                .map(|(values, check)| status(values, &check.quota))
                .collect();
            Ok(RateDecision { statuses })
        })
    }
}

impl fmt::Debug for RedisRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the connection: its client's settings include the password, if any.
        f.debug_struct("RedisRateStore")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// The quota's `T` rounded up to whole microseconds, and `τ = (burst − 1)·T` in the same unit.
fn micros(quota: &Quota) -> (u64, u64) {
    let interval = quota.interval_ns().div_ceil(1000);
    let tolerance = interval.saturating_mul(u64::from(quota.burst().saturating_sub(1)));
    (interval, tolerance)
}

/// One check's four integers from the script, kept within what they can mean.
fn status(values: &[i64], quota: &Quota) -> QuotaStatus {
    let micros = |value: i64| Duration::from_micros(u64::try_from(value).unwrap_or(0));
    QuotaStatus {
        allowed: values[0] != 0,
        remaining: u32::try_from(values[1]).unwrap_or(0).min(quota.burst()),
        reset_after: micros(values[2]),
        retry_after: micros(values[3]),
    }
}

fn backend(err: RedisError) -> StoreError {
    StoreError::Backend(Box::new(RedisFailure::Redis(err)))
}

/// What went wrong talking to Redis. The redis crate's errors name the failure (connection
/// refused, timeout, a server error such as `NOAUTH`), never the URL or its password.
#[derive(Debug, thiserror::Error)]
enum RedisFailure {
    #[error("rate limiter in Redis: {0}")]
    Redis(#[source] RedisError),
    #[error("rate limiter in Redis: unexpected reply to the decision script")]
    UnexpectedReply,
}

#[cfg(test)]
mod tests {
    //! Against the Redis in `REDIS_URL`. Each test uses a fresh random key prefix, so parallel
    //! runs and reruns never see each other's keys; every key expires by itself.

    use std::sync::Arc;

    use data_encoding::HEXLOWER;

    use super::super::shared_checks;
    use super::*;

    fn redis_url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| {
            panic!(
                "REDIS_URL is not set: the Redis rate limiter tests need a Redis \
                 (e.g. REDIS_URL=redis://127.0.0.1:6379)"
            )
        })
    }

    fn fresh_prefix() -> String {
        let mut run = [0u8; 8];
        getrandom::fill(&mut run).unwrap();
        format!("portcullis-test:rl:{}:", HEXLOWER.encode(&run))
    }

    async fn store(prefix: &str) -> RedisRateStore {
        RedisRateStore::connect(&redis_url(), prefix).await.unwrap()
    }

    async fn raw_connection() -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn conformance() {
        let store = store(&fresh_prefix()).await;
        shared_checks::all(&store, "").await;
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn keys_expire_once_their_bucket_is_full() {
        let prefix = fresh_prefix();
        let store = store(&prefix).await;
        let mut redis = raw_connection().await;
        let key = format!("{prefix}slow");
        let slow = shared_checks::slow(5);
        let status = store
            .check(&[RateCheck {
                bucket: b"slow",
                quota: slow,
            }])
            .await
            .unwrap()
            .statuses[0];
        assert!(status.allowed && status.remaining == 4, "{status:?}");
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        let reset_ms = i64::try_from(status.reset_after.as_micros().div_ceil(1000)).unwrap();
        assert!(
            pttl > 0 && pttl <= reset_ms,
            "PTTL {pttl}, reset {reset_ms} ms"
        );
        let stored: String = ::redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(stored.bytes().all(|b| b.is_ascii_digit()), "{stored}");

        // Redis keeps the time here, so this one waits, briefly.
        let fast = Quota::new(10, Duration::from_secs(1), 1).unwrap();
        let checks = [RateCheck {
            bucket: b"fast",
            quota: fast,
        }];
        assert!(store.check(&checks).await.unwrap().allowed());
        let refused = store.check(&checks).await.unwrap();
        assert!(!refused.allowed(), "{refused:?}");
        assert!(refused.retry_after() <= Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(150)).await;
        let exists: i64 = ::redis::cmd("EXISTS")
            .arg(format!("{prefix}fast"))
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(exists, 0);
        assert!(store.check(&checks).await.unwrap().allowed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs REDIS_URL"]
    async fn two_stores_sharing_one_redis_admit_exactly_the_burst() {
        // Two connections, as two gateway instances would have.
        let prefix = fresh_prefix();
        let stores = [
            Arc::new(store(&prefix).await),
            Arc::new(store(&prefix).await),
        ];
        let quota = shared_checks::slow(5);
        let barrier = Arc::new(tokio::sync::Barrier::new(200));
        let tasks: Vec<_> = (0..200)
            .map(|n| {
                let (store, barrier) = (Arc::clone(&stores[n % 2]), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    let checks = [RateCheck {
                        bucket: b"hot",
                        quota,
                    }];
                    store.check(&checks).await.unwrap().allowed()
                })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.unwrap());
        }
        assert_eq!(admitted, 5);
        // Another prefix is another budget.
        let other = store(&fresh_prefix()).await;
        let checks = [RateCheck {
            bucket: b"hot",
            quota,
        }];
        assert_eq!(other.check(&checks).await.unwrap().statuses[0].remaining, 4);
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn a_bucket_holding_something_else_fails_the_decision() {
        let prefix = fresh_prefix();
        let store = store(&prefix).await;
        let mut redis = raw_connection().await;
        let () = ::redis::cmd("SET")
            .arg(format!("{prefix}odd"))
            .arg("not a number")
            .arg("EX")
            .arg(60)
            .query_async(&mut redis)
            .await
            .unwrap();
        let err = store
            .check(&[RateCheck {
                bucket: b"odd",
                quota: shared_checks::slow(1),
            }])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn a_flushed_script_cache_is_loaded_again() {
        let store = store(&fresh_prefix()).await;
        let checks = [RateCheck {
            bucket: b"flushed",
            quota: shared_checks::slow(3),
        }];
        assert_eq!(store.check(&checks).await.unwrap().statuses[0].remaining, 2);
        // As after a restart. (Any other store's next decision reloads it the same way.)
        let () = ::redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut raw_connection().await)
            .await
            .unwrap();
        assert_eq!(store.check(&checks).await.unwrap().statuses[0].remaining, 1);
    }

    #[tokio::test]
    async fn a_bad_url_fails_without_showing_its_password() {
        for url in [
            "http://user:hunter2@127.0.0.1:6379",
            "redis://user:hunter2@/",
            "not a url hunter2",
        ] {
            let err = RedisRateStore::connect(url, "p:").await.unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(matches!(err, StoreError::Backend(_)), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn intervals_round_up_to_whole_microseconds() {
        let third = Quota::new(3, Duration::from_secs(1), 4).unwrap();
        assert_eq!(micros(&third), (333_334, 3 * 333_334));
        let exact = Quota::new(1000, Duration::from_secs(1), 1).unwrap();
        assert_eq!(micros(&exact), (1000, 0));
    }

    #[test]
    fn replies_are_kept_within_what_they_can_mean() {
        let quota = shared_checks::slow(3);
        let status = status(&[1, 99, -5, 7], &quota);
        assert_eq!(
            status,
            QuotaStatus {
                allowed: true,
                remaining: 3,
                reset_after: Duration::ZERO,
                retry_after: Duration::from_micros(7),
            }
        );
    }
}
