//! Lockout state in Redis, shared by many gateway instances.
//!
//! A key's state is one HASH, `<prefix><key>`, with the fields `failures`, `window_start`,
//! `level` and `locked_until` (instants as whole microseconds since the Unix epoch). A failure
//! is one Lua script (`RECORD`) run by EVALSHA with every key of the call as a Redis key: it
//! reads every state first (so that an entry it cannot read fails the call before anything is
//! written), applies the failures in order, as the [module documentation](super) says, and writes
//! each changed state back with `PEXPIRE` set to its lock plus `max(window, max)`. Redis runs a
//! script atomically, so failures on any number of instances never interleave: 50 failures from
//! anywhere are counted as 50. [`LockoutStore::locked`] is a second script (`LOCKED`) reading
//! every key's `locked_until`, and [`LockoutStore::record_success`] is a `DEL`.
//!
//! The scripts read the time with `TIME`: every instance then counts windows and locks on one
//! clock, Redis's, and instances whose clocks disagree cannot shorten a lock. That is why this
//! store does not use the injected [`Clock`](crate::Clock), and why its tests use long locks or
//! wait for real (briefly). (`TIME` followed by writes is allowed since Redis replicates a
//! script's effects, not the script; that is the only mode from Redis 7 on.)
//!
//! Lua numbers are doubles, exact for integers below 2^53 (in microseconds since the epoch, the
//! year 2255). The policy's durations are rounded up to whole microseconds and capped at 100
//! years (a longer lock is no different in practice), so every value the scripts compute is an
//! exact integer; they write instants with `%.0f`, not `tostring`, which would round them to 14
//! digits.
//!
//! An entry that expires is an entry forgotten, level and all, which is the policy; but Redis
//! also evicts keys under memory pressure if its `maxmemory-policy` allows it, and an evicted
//! entry is a reset count. The policy should be `noeviction` (or a `volatile-*` policy in a Redis
//! holding no other volatile keys). A call's keys must live on one Redis: this is not for Redis
//! Cluster.
//!
//! [`RedisLockoutStore::connect`] loads both scripts; the connection and the scripts' loading
//! and reloading are the ones every Redis store here shares (`redis_script`: commands time out
//! after 500 ms, so a stalled Redis fails logins quickly instead of holding them).

use std::fmt;
use std::time::Duration;

use ::redis::RedisError;
use ::redis::aio::ConnectionManager;

use super::{LockoutPolicy, LockoutStore};
use crate::error::StoreError;
use crate::redis_script::{self, Script};
use crate::store::BoxFuture;
/// The longest window or lock the scripts are given: microseconds since the epoch plus twice
/// this stay below 2^53, where Lua's doubles are exact.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// One failure per key. `KEYS` are the entries; `ARGV` the policy: failures that lock, window,
/// base, max (durations in µs). Returns, per key, the remaining lock in µs (0: not locked).
const RECORD: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local threshold, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local base, max = tonumber(ARGV[3]), tonumber(ARGV[4])
local fields = {'failures', 'window_start', 'level', 'locked_until'}
-- Every state first: an entry that cannot be read fails the call before anything is written.
local states = {}
for _, key in ipairs(KEYS) do
  if states[key] == nil then
    local stored = redis.call('HMGET', key, unpack(fields))
    local state = {}
    for j = 1, 4 do
      if stored[j] then
        state[j] = tonumber(stored[j])
        if state[j] == nil then
          return redis.error_reply('portcullis: a lockout entry holds something else than numbers')
        end
      else
        state[j] = 0
      end
    end
    states[key] = state
  end
end
-- In order: a later failure of the same key sees what an earlier one did.
local changed, out = {}, {}
for i, key in ipairs(KEYS) do
  local s = states[key]
  if s[4] > now then
    out[i] = s[4] - now
  else
    if s[1] == 0 or now - s[2] > window then
      s[1] = 0
      s[2] = now
    end
    s[1] = s[1] + 1
    if s[1] >= threshold then
      local lock = base
      for _ = 1, s[3] do
        if lock >= max or lock == 0 then break end
        lock = lock * 2
      end
      if lock > max then lock = max end
      s[4] = now + lock
      s[3] = s[3] + 1
      s[1] = 0
    end
    changed[key] = true
    out[i] = math.max(0, s[4] - now)
  end
end
local keep = math.max(window, max)
for key in pairs(changed) do
  local s = states[key]
  local args = {}
  for j = 1, 4 do
    args[2 * j - 1] = fields[j]
    args[2 * j] = string.format('%.0f', s[j])
  end
  redis.call('HSET', key, unpack(args))
  local ttl = math.max(0, s[4] - now) + keep
  redis.call('PEXPIRE', key, math.max(1, math.ceil(ttl / 1000)))
end
return out
";

/// The longest remaining lock among `KEYS`, in µs (0: none is locked).
const LOCKED: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local longest = 0
for _, key in ipairs(KEYS) do
  local stored = redis.call('HGET', key, 'locked_until')
  if stored then
    local locked_until = tonumber(stored)
    if locked_until == nil then
      return redis.error_reply('portcullis: a lockout entry holds something else than numbers')
    end
    if locked_until - now > longest then longest = locked_until - now end
  end
end
return longest
";

/// A [`LockoutStore`] in Redis: every gateway instance using the same Redis and key prefix
/// counts the same failures and honours the same locks.
#[derive(Clone)]
pub struct RedisLockoutStore {
    connection: ConnectionManager,
    key_prefix: String,
    /// [`RECORD`], loaded.
    record: Script,
    /// [`LOCKED`], loaded.
    locked: Script,
}

impl RedisLockoutStore {
    /// The key prefix to use unless there is a reason for another.
    pub const DEFAULT_KEY_PREFIX: &'static str = "portcullis:lockout:";

    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`) and waits for
    /// the first connection. Redis keys are `key_prefix` followed by the key; instances that are
    /// to share their counts must use the same prefix.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        let mut connection = redis_script::connect(url).await.map_err(backend)?;
        let record = Script::load(&mut connection, RECORD)
            .await
            .map_err(backend)?;
        let locked = Script::load(&mut connection, LOCKED)
            .await
            .map_err(backend)?;
        Ok(Self {
            connection,
            key_prefix: key_prefix.to_owned(),
            record,
            locked,
        })
    }

    /// The prefix of this store's keys.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// Runs `script` over `keys` and `args`.
    async fn run<T: ::redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&[u8]],
        args: impl IntoIterator<Item = u64>,
    ) -> Result<T, StoreError> {
        let call = script.call(&self.key_prefix, keys.iter(), args);
        script.run(&self.connection, &call).await.map_err(backend)
    }
}

impl LockoutStore for RedisLockoutStore {
    fn locked<'a>(
        &'a self,
        keys: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<Option<Duration>, StoreError>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(None);
            }
            let longest: i64 = self.run(&self.locked, keys, []).await?;
            Ok(lock(longest))
        })
    }

    fn record_failure<'a>(
        &'a self,
        keys: &'a [&'a [u8]],
        policy: &'a LockoutPolicy,
    ) -> BoxFuture<'a, Result<Vec<Option<Duration>>, StoreError>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let args = [
                u64::from(policy.threshold()),
                micros(policy.window),
                micros(policy.base),
                micros(policy.max),
            ];
            let reply: Vec<i64> = self.run(&self.record, keys, args).await?;
            if reply.len() != keys.len() {
                return Err(StoreError::Backend(Box::new(RedisFailure::UnexpectedReply)));
            }
            Ok(reply.into_iter().map(lock).collect())
        })
    }

    fn record_success<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let _deleted: i64 = ::redis::cmd("DEL")
                .arg(redis_script::prefixed(&self.key_prefix, key))
                .query_async(&mut connection)
                .await
                .map_err(backend)?;
            Ok(())
        })
    }
}

impl fmt::Debug for RedisLockoutStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the connection: its client's settings include the password, if any.
        f.debug_struct("RedisLockoutStore")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// `duration` capped at 100 years, in microseconds rounded up: a lock or window is never
/// shorter in Redis than asked for.
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.min(LONGEST).as_nanos().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// A remaining lock in µs from a script; 0 (or less, which a script never answers) is none.
fn lock(micros: i64) -> Option<Duration> {
    u64::try_from(micros)
        .ok()
        .filter(|&micros| micros > 0)
        .map(Duration::from_micros)
}

fn backend(err: RedisError) -> StoreError {
    StoreError::Backend(Box::new(RedisFailure::Redis(err)))
}

/// What went wrong talking to Redis. The redis crate's errors name the failure (connection
/// refused, timeout, a server error such as `NOAUTH`), never the URL or its password.
#[derive(Debug, thiserror::Error)]
enum RedisFailure {
    #[error("lockout in Redis: {0}")]
    Redis(#[source] RedisError),
    #[error("lockout in Redis: unexpected reply to the failure script")]
    UnexpectedReply,
}

#[cfg(test)]
mod tests {
    //! Against the Redis in `REDIS_URL`. Each test uses a fresh random key prefix, so parallel
    //! runs and reruns never see each other's keys; every key expires by itself.

    use std::collections::HashMap;
    use std::sync::Arc;

    use data_encoding::HEXLOWER;

    use super::super::shared_checks;
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn redis_url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| {
            panic!(
                "REDIS_URL is not set: the Redis lockout tests need a Redis \
                 (e.g. REDIS_URL=redis://127.0.0.1:6379)"
            )
        })
    }

    fn fresh_prefix() -> String {
        let mut run = [0u8; 8];
        getrandom::fill(&mut run).unwrap();
        format!("portcullis-test:lockout:{}:", HEXLOWER.encode(&run))
    }

    async fn store(prefix: &str) -> RedisLockoutStore {
        RedisLockoutStore::connect(&redis_url(), prefix)
            .await
            .unwrap()
    }

    async fn raw_connection() -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn exists(redis: &mut ::redis::aio::MultiplexedConnection, key: &str) -> bool {
        let n: i64 = ::redis::cmd("EXISTS")
            .arg(key)
            .query_async(redis)
            .await
            .unwrap();
        n == 1
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn conformance() {
        let store = store(&fresh_prefix()).await;
        shared_checks::all(&store, "").await;
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn entries_are_hashes_with_a_ttl_and_a_success_deletes_them() {
        let prefix = fresh_prefix();
        let store = store(&prefix).await;
        let mut redis = raw_connection().await;
        let policy = LockoutPolicy {
            failures: 3,
            window: Duration::from_secs(600),
            base: HOUR,
            max: 4 * HOUR,
        };
        let key = format!("{prefix}acct");
        assert_eq!(
            store.record_failure(&[b"acct"], &policy).await.unwrap(),
            [None]
        );
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        // max(window, max) = 4 h while not locked.
        assert!(pttl > 0 && pttl <= 4 * 3_600_000, "PTTL {pttl}");
        assert!(pttl > 4 * 3_600_000 - 60_000, "PTTL {pttl}");
        store.record_failure(&[b"acct"], &policy).await.unwrap();
        let lock = store.record_failure(&[b"acct"], &policy).await.unwrap()[0].unwrap();
        assert!(
            lock <= HOUR && lock > HOUR - Duration::from_secs(60),
            "{lock:?}"
        );
        let remaining = store.locked(&[b"acct"]).await.unwrap().unwrap();
        assert!(remaining <= lock, "{remaining:?} {lock:?}");
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        // The lock plus max(window, max) = 5 h.
        assert!(
            pttl > 5 * 3_600_000 - 60_000 && pttl <= 5 * 3_600_000,
            "PTTL {pttl}"
        );
        let fields: HashMap<String, String> = ::redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(fields.len(), 4, "{fields:?}");
        assert_eq!(fields["failures"], "0");
        assert_eq!(fields["level"], "1");
        for field in ["window_start", "locked_until"] {
            assert!(
                fields[field].len() >= 16 && fields[field].bytes().all(|b| b.is_ascii_digit()),
                "{fields:?}"
            );
        }
        store.record_success(b"acct").await.unwrap();
        assert!(!exists(&mut redis, &key).await);
        assert_eq!(store.locked(&[b"acct"]).await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs REDIS_URL"]
    async fn concurrent_failures_from_two_stores_count_exactly() {
        // Two connections, as two gateway instances would have.
        let prefix = fresh_prefix();
        let stores = [
            Arc::new(store(&prefix).await),
            Arc::new(store(&prefix).await),
        ];
        let policy = LockoutPolicy {
            failures: 50,
            window: HOUR,
            base: HOUR,
            max: HOUR,
        };
        let barrier = Arc::new(tokio::sync::Barrier::new(49));
        let tasks: Vec<_> = (0..49)
            .map(|n| {
                let (store, barrier) = (Arc::clone(&stores[n % 2]), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.record_failure(&[b"hot"], &policy).await.unwrap()[0]
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), None);
        }
        assert_eq!(stores[0].locked(&[b"hot"]).await.unwrap(), None);
        let failures: String = ::redis::cmd("HGET")
            .arg(format!("{prefix}hot"))
            .arg("failures")
            .query_async(&mut raw_connection().await)
            .await
            .unwrap();
        assert_eq!(failures, "49");
        let lock = stores[1].record_failure(&[b"hot"], &policy).await.unwrap()[0];
        assert!(lock.is_some_and(|lock| lock <= HOUR), "{lock:?}");
        assert!(stores[0].locked(&[b"hot"]).await.unwrap().is_some());
        // Another prefix is another count.
        let other = store(&fresh_prefix()).await;
        assert_eq!(other.locked(&[b"hot"]).await.unwrap(), None);
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn a_short_lock_ends_and_the_entry_expires_for_real() {
        let prefix = fresh_prefix();
        let store = store(&prefix).await;
        let mut redis = raw_connection().await;
        let policy = LockoutPolicy {
            failures: 1,
            window: Duration::from_millis(100),
            base: Duration::from_millis(300),
            max: Duration::from_millis(300),
        };
        let lock = store.record_failure(&[b"short"], &policy).await.unwrap()[0];
        assert!(
            lock.is_some_and(|lock| lock <= Duration::from_millis(300)),
            "{lock:?}"
        );
        assert!(store.locked(&[b"short"]).await.unwrap().is_some());
        // Redis keeps the time here, so this one waits, briefly.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(store.locked(&[b"short"]).await.unwrap(), None);
        // Kept for the lock plus max(window, max): 600 ms from the failure in all.
        assert!(exists(&mut redis, &format!("{prefix}short")).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!exists(&mut redis, &format!("{prefix}short")).await);
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn an_entry_holding_something_else_fails_the_call_and_writes_nothing() {
        let prefix = fresh_prefix();
        let store = store(&prefix).await;
        let mut redis = raw_connection().await;
        let () = ::redis::cmd("SET")
            .arg(format!("{prefix}string"))
            .arg("not a hash")
            .arg("EX")
            .arg(60)
            .query_async(&mut redis)
            .await
            .unwrap();
        let _: i64 = ::redis::cmd("HSET")
            .arg(format!("{prefix}odd"))
            .arg("locked_until")
            .arg("soon")
            .query_async(&mut redis)
            .await
            .unwrap();
        let policy = shared_checks::slow();
        for odd in [&b"string"[..], b"odd"] {
            let keys: [&[u8]; 2] = [b"fine", odd];
            let err = store.record_failure(&keys, &policy).await.unwrap_err();
            assert!(matches!(err, StoreError::Backend(_)), "{err}");
            assert!(!exists(&mut redis, &format!("{prefix}fine")).await);
        }
        let err = store.locked(&[b"odd"]).await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn a_flushed_script_cache_is_loaded_again() {
        let store = store(&fresh_prefix()).await;
        let policy = shared_checks::slow();
        assert_eq!(
            store.record_failure(&[b"f"], &policy).await.unwrap(),
            [None]
        );
        for _ in 0..2 {
            // As after a restart. (Any other store's next call reloads them the same way.)
            let () = ::redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut raw_connection().await)
                .await
                .unwrap();
            assert_eq!(store.locked(&[b"f"]).await.unwrap(), None);
        }
        let () = ::redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut raw_connection().await)
            .await
            .unwrap();
        assert_eq!(
            store.record_failure(&[b"f"], &policy).await.unwrap(),
            [None]
        );
        assert!(store.record_failure(&[b"f"], &policy).await.unwrap()[0].is_some());
    }

    #[tokio::test]
    async fn a_bad_url_fails_without_showing_its_password() {
        for url in [
            "http://user:hunter2@127.0.0.1:6379",
            "redis://user:hunter2@/",
            "not a url hunter2",
        ] {
            let err = RedisLockoutStore::connect(url, "p:").await.unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(matches!(err, StoreError::Backend(_)), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn durations_round_up_to_whole_microseconds_within_100_years() {
        assert_eq!(micros(Duration::from_nanos(1)), 1);
        assert_eq!(micros(Duration::from_nanos(1000)), 1);
        assert_eq!(micros(Duration::from_nanos(1001)), 2);
        assert_eq!(micros(Duration::ZERO), 0);
        assert_eq!(micros(Duration::MAX), micros(LONGEST));
        // Today plus twice the longest stays below 2^53.
        assert!(2 * micros(LONGEST) + 2_000_000_000_000_000 < 1 << 53);
    }

    #[test]
    fn replies_are_kept_within_what_they_can_mean() {
        assert_eq!(lock(0), None);
        assert_eq!(lock(-5), None);
        assert_eq!(lock(7), Some(Duration::from_micros(7)));
    }
}
