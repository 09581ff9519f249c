//! The replay guard in Redis, shared by many gateway instances.
//!
//! One signature is one key, `<prefix><64 hex digits of the id>`, set with a single
//! `SET key 1 NX PX <ttl>`: Redis runs each command atomically, so of any number of concurrent
//! first uses, on any number of instances, exactly one creates the key, and the key expires by
//! itself. Nothing else is stored, and nothing needs cleaning up.
//!
//! TTLs run on Redis's clock, not on an injected [`Clock`](crate::Clock): the tests of this
//! module wait for real (briefly). Redis evicts keys under memory pressure only if its
//! `maxmemory-policy` allows it; for a replay guard it should be `noeviction` (or a `volatile-*`
//! policy in a Redis used for nothing else that has no other volatile keys), so that a full Redis
//! fails requests rather than forgetting signatures.
//!
//! The connection is the one every Redis store here shares (`redis_script::connect`): a
//! [`ConnectionManager`], re-established in the background when it drops, commands timing out
//! after 500 ms, so a stalled Redis fails signed requests quickly (closed) instead of holding
//! them.

use std::fmt;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{RedisError, Value};
use data_encoding::HEXLOWER;

use super::ReplayGuard;
use crate::error::StoreError;
use crate::redis_script;
use crate::store::BoxFuture;

/// A [`ReplayGuard`] in Redis: every gateway instance using the same Redis and key prefix sees
/// every other's signatures.
#[derive(Clone)]
pub struct RedisReplayGuard {
    connection: ConnectionManager,
    key_prefix: String,
}

impl RedisReplayGuard {
    /// The key prefix to use unless there is a reason for another.
    pub const DEFAULT_KEY_PREFIX: &'static str = "portcullis:replay:";

    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`) and waits for
    /// the first connection. Keys are `key_prefix` followed by the id in hex; instances that are
    /// to share their signatures must use the same prefix.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        let connection = redis_script::connect(url).await.map_err(backend)?;
        Ok(Self {
            connection,
            key_prefix: key_prefix.to_owned(),
        })
    }

    /// The prefix of this guard's keys.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }
}

/// The Redis key of `id`: the prefix, then the id in lowercase hex.
fn redis_key(prefix: &str, id: &[u8; 32]) -> String {
    let mut key = String::with_capacity(prefix.len() + 64);
    key.push_str(prefix);
    HEXLOWER.encode_append(id, &mut key);
    key
}

impl ReplayGuard for RedisReplayGuard {
    fn first_use<'a>(
        &'a self,
        id: &'a [u8; 32],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if ttl.is_zero() {
                // Nothing to record (and Redis refuses `PX 0`).
                return Ok(true);
            }
            // A clone is a handle on the same connection; commands need `&mut`.
            let mut connection = self.connection.clone();
            let reply: Value = ::redis::cmd("SET")
                .arg(redis_key(&self.key_prefix, id))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_millis(ttl))
                .query_async(&mut connection)
                .await
                .map_err(backend)?;
            match reply {
                Value::Okay => Ok(true),
                Value::Nil => Ok(false),
                _ => Err(StoreError::Backend(Box::new(RedisFailure::UnexpectedReply))),
            }
        })
    }
}

impl fmt::Debug for RedisReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the connection: its client's settings include the password, if any.
        f.debug_struct("RedisReplayGuard")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// `ttl` in whole milliseconds, rounded up so an entry never lives shorter than asked.
fn ttl_millis(ttl: Duration) -> u64 {
    let millis = ttl.as_millis() + u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(millis).unwrap_or(u64::MAX)
}

fn backend(err: RedisError) -> StoreError {
    StoreError::Backend(Box::new(RedisFailure::Redis(err)))
}

/// What went wrong talking to Redis. The redis crate's errors name the failure (connection
/// refused, timeout, a server error such as `NOAUTH`), never the URL or its password.
#[derive(Debug, thiserror::Error)]
enum RedisFailure {
    #[error("replay guard in Redis: {0}")]
    Redis(#[source] RedisError),
    #[error("replay guard in Redis: unexpected reply to SET NX")]
    UnexpectedReply,
}

#[cfg(test)]
mod tests {
    //! Against the Redis in `REDIS_URL`. Each test uses a fresh random key prefix, so parallel
    //! runs and reruns never see each other's keys; every key expires by itself.

    use std::sync::Arc;

    use super::*;

    fn redis_url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| {
            panic!(
                "REDIS_URL is not set: the Redis replay guard tests need a Redis \
                 (e.g. REDIS_URL=redis://127.0.0.1:6379)"
            )
        })
    }

    fn random_id() -> [u8; 32] {
        let mut id = [0u8; 32];
        getrandom::fill(&mut id).unwrap();
        id
    }

    fn fresh_prefix() -> String {
        let mut run = [0u8; 8];
        getrandom::fill(&mut run).unwrap();
        format!("portcullis-test:{}:", HEXLOWER.encode(&run))
    }

    async fn guard(prefix: &str) -> RedisReplayGuard {
        RedisReplayGuard::connect(&redis_url(), prefix)
            .await
            .unwrap()
    }

    const TTL: Duration = Duration::from_secs(30);

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn the_first_use_passes_and_a_replay_does_not() {
        let guard = guard(&fresh_prefix()).await;
        let (a, b) = (random_id(), random_id());
        assert!(guard.first_use(&a, TTL).await.unwrap());
        assert!(!guard.first_use(&a, TTL).await.unwrap());
        assert!(!guard.first_use(&a, TTL).await.unwrap());
        assert!(guard.first_use(&b, TTL).await.unwrap());
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn an_id_is_new_again_once_its_ttl_has_passed() {
        // Redis keeps the time here, so this one waits, briefly.
        let guard = guard(&fresh_prefix()).await;
        let id = random_id();
        let ttl = Duration::from_millis(200);
        assert!(guard.first_use(&id, ttl).await.unwrap());
        assert!(!guard.first_use(&id, ttl).await.unwrap());
        tokio::time::sleep(ttl + Duration::from_millis(100)).await;
        assert!(guard.first_use(&id, ttl).await.unwrap());
        assert!(!guard.first_use(&id, ttl).await.unwrap());
    }

    #[tokio::test]
    #[ignore = "needs REDIS_URL"]
    async fn a_zero_ttl_records_nothing() {
        let guard = guard(&fresh_prefix()).await;
        let id = random_id();
        assert!(guard.first_use(&id, Duration::ZERO).await.unwrap());
        assert!(guard.first_use(&id, Duration::ZERO).await.unwrap());
        assert!(guard.first_use(&id, TTL).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs REDIS_URL"]
    async fn of_concurrent_uses_on_one_connection_exactly_one_is_first() {
        let guard = Arc::new(guard(&fresh_prefix()).await);
        for round in 0..10 {
            let id = random_id();
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let guard = Arc::clone(&guard);
                    tokio::spawn(async move { guard.first_use(&id, TTL).await.unwrap() })
                })
                .collect();
            let mut firsts = 0;
            for task in tasks {
                firsts += usize::from(task.await.unwrap());
            }
            assert_eq!(firsts, 1, "round {round}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs REDIS_URL"]
    async fn two_guards_sharing_one_redis_let_exactly_one_through() {
        // Two connections, as two gateway instances would have.
        let prefix = fresh_prefix();
        let (a, b) = (guard(&prefix).await, guard(&prefix).await);
        for round in 0..50 {
            let id = random_id();
            let (first, second) = tokio::join!(a.first_use(&id, TTL), b.first_use(&id, TTL));
            let (first, second) = (first.unwrap(), second.unwrap());
            assert!(first ^ second, "round {round}: {first} {second}");
        }
        // Seen through one, refused through the other.
        let id = random_id();
        assert!(a.first_use(&id, TTL).await.unwrap());
        assert!(!b.first_use(&id, TTL).await.unwrap());
        // Another prefix is another guard.
        let other = guard(&fresh_prefix()).await;
        assert!(other.first_use(&id, TTL).await.unwrap());
    }

    #[tokio::test]
    async fn a_bad_url_fails_without_showing_its_password() {
        for url in [
            "http://user:hunter2@127.0.0.1:6379",
            "redis://user:hunter2@/",
            "not a url hunter2",
        ] {
            let err = RedisReplayGuard::connect(url, "p:").await.unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(matches!(err, StoreError::Backend(_)), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn ttls_round_up_to_whole_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_millis(200)), 200);
        assert_eq!(ttl_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 2);
        assert_eq!(ttl_millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn keys_are_the_prefix_and_the_id_in_hex() {
        let id = [0xabu8; 32];
        assert_eq!(redis_key("p:", &id), format!("p:{}", "ab".repeat(32)));
    }
}
