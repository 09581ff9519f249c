//! What the Redis-backed stores share: one way to connect, and Lua scripts run by SHA1.
//!
//! The connection is a [`ConnectionManager`]: one multiplexed connection, re-established in the
//! background when it drops. Commands time out after 500 ms, so a stalled Redis fails requests
//! quickly instead of holding them, and reconnection backs off at most a second, so a Redis that
//! comes back is used again within one.
//!
//! A [`Script`] is loaded once (`SCRIPT LOAD`, which also checks that this Redis runs scripts)
//! and run with EVALSHA; when Redis answers NOSCRIPT (it was restarted or flushed), it is loaded
//! again and the call retried once. (The redis crate's `Script` does the same, but needs its
//! `script` feature and one more crate.)
//!
//! Errors are the redis crate's: each store wraps them in its own words.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Cmd, FromRedisValue, RedisError};

const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Caps the reconnection back-off, so a Redis that comes back is used again within a second.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`) and waits for the
/// first connection.
pub(crate) async fn connect(url: &str) -> Result<ConnectionManager, RedisError> {
    let client = ::redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_max_delay(MAX_RECONNECT_DELAY);
    ConnectionManager::new_with_config(client, config).await
}

/// The Redis key of a store's key: the prefix, then the key as it is (keys are binary-safe).
pub(crate) fn prefixed(prefix: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + key.len());
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(key);
    out
}

/// A Lua script in Redis's script cache.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    source: &'static str,
    /// The SHA1 Redis computed for `source`.
    sha: String,
}

impl Script {
    /// Loads `source` into Redis's script cache.
    pub(crate) async fn load(
        connection: &mut ConnectionManager,
        source: &'static str,
    ) -> Result<Self, RedisError> {
        let sha = load(connection, source).await?;
        Ok(Self { source, sha })
    }

    /// EVALSHA of this script over `keys` (each after `prefix`) and `args`.
    pub(crate) fn call(
        &self,
        prefix: &str,
        keys: impl ExactSizeIterator<Item = impl AsRef<[u8]>>,
        args: impl IntoIterator<Item = u64>,
    ) -> Cmd {
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(&self.sha).arg(keys.len());
        for key in keys {
            cmd.arg(prefixed(prefix, key.as_ref()));
        }
        for arg in args {
            cmd.arg(arg);
        }
        cmd
    }

    /// Runs `call` (made by [`Self::call`]), loading the script again and retrying once if
    /// Redis has lost it.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        connection: &ConnectionManager,
        call: &Cmd,
    ) -> Result<T, RedisError> {
        // A clone is a handle on the same connection; commands need `&mut`.
        let mut connection = connection.clone();
        match call.query_async(&mut connection).await {
            Err(err) if err.code() == Some("NOSCRIPT") => {
                // A restarted or flushed Redis: load the script again (same source, same SHA1).
                load(&mut connection, self.source).await?;
                call.query_async(&mut connection).await
            }
            reply => reply,
        }
    }
}

async fn load(connection: &mut ConnectionManager, source: &str) -> Result<String, RedisError> {
    ::redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(source)
        .query_async(connection)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_prefix_and_the_key() {
        assert_eq!(prefixed("p:", b"k\x00y"), b"p:k\x00y".to_vec());
    }
}
