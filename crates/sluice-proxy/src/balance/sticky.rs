//! Sticky read-your-writes: the newest WAL position each sticky key wrote.
//!
//! After a transaction that wrote commits on the primary, the gateway calls
//! [`StickyStore::record_write`] with the primary's WAL insert position; a
//! later read for the same key asks [`StickyStore::required_lsn`] and may
//! only use a replica whose replay position is at or past it. A key is
//! forgotten `sticky_ttl` after its last write, so reads stop pinning to the
//! primary even if the replicas never catch up.
//!
//! Keys are opaque strings chosen by the gateway: the application's key
//! (`sluice.sticky_key`) in `sticky = "key"` mode, or an id unique to the
//! client connection. Connection keys never need sharing, so they can go to
//! a [`MemoryStore`] even when application keys go to Redis.
//!
//! Two implementations:
//! - [`MemoryStore`]: one process. Sharded maps behind short `std` mutexes
//!   (never held across an await); expired keys are dropped when read and by
//!   an occasional sweep of a shard during writes.
//! - [`RedisStore`]: shared by every gateway using the same Redis. It uses
//!   the `redis` crate (the maintained reference client; 1.8 builds on Rust
//!   1.95) with its `ConnectionManager`, which multiplexes one connection and
//!   reconnects by itself. See [`RedisStore`] for the storage format.
//!
//! A store that cannot answer must not cause a stale read: a Redis error
//! makes `required_lsn` return [`UNKNOWN_POSITION`], which no replica has
//! reached, so the read goes to the primary. Errors are logged, never raised.
//! Time is `tokio::time::Instant`, so tests can pause and advance the clock.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::config::StickyStoreConfig;
use super::lsn::Lsn;

/// The position returned when the store could not be asked: beyond any real
/// replay position, so every replica is excluded and the read goes to the
/// primary.
pub const UNKNOWN_POSITION: Lsn = Lsn(u64::MAX);

/// Remembers the newest write position per key, for `ttl` after the last
/// write.
pub trait StickyStore: Send + Sync {
    /// Records that `key` wrote up to `lsn`. Keeps the maximum of all
    /// recorded positions and restarts the key's time to live.
    fn record_write(&self, key: &str, lsn: Lsn) -> impl Future<Output = ()> + Send;

    /// The position a replica must have replayed before serving `key`;
    /// `None` if the key wrote nothing within the time to live, and
    /// [`UNKNOWN_POSITION`] if the store cannot tell.
    fn required_lsn(&self, key: &str) -> impl Future<Output = Option<Lsn>> + Send;
}

/// A store that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum StickyError {
    #[error("sticky_store {url:?}: {message}")]
    Redis { url: String, message: String },
}

/// Why one Redis call failed (the store then sends the key's reads to the primary).
#[derive(Debug, thiserror::Error)]
enum RedisCallError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("timed out")]
    TimedOut,
    #[error("stored value {0:?} is not a WAL position")]
    NotAPosition(String),
}

/// Shards of the memory store.
const MEMORY_SHARDS: usize = 16;
/// A shard is swept for expired keys once per this many writes to it.
const SWEEP_EVERY: u64 = 1024;

/// Sticky positions in this process only.
pub struct MemoryStore {
    shards: Box<[Mutex<MemoryShard>]>,
    hasher: RandomState,
    ttl: Duration,
}

#[derive(Default)]
struct MemoryShard {
    positions: HashMap<Box<str>, Remembered>,
    writes: u64,
}

#[derive(Clone, Copy)]
struct Remembered {
    lsn: Lsn,
    expires: Instant,
}

impl MemoryStore {
    /// A store that forgets a key `ttl` after its last write.
    pub fn new(ttl: Duration) -> MemoryStore {
        MemoryStore {
            shards: (0..MEMORY_SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            ttl,
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, MemoryShard> {
        let index = self.hasher.hash_one(key) as usize % MEMORY_SHARDS;
        // A poisoned shard still holds valid positions: keep using it.
        self.shards[index].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a write (synchronous form of [`StickyStore::record_write`]).
    pub fn record(&self, key: &str, lsn: Lsn) {
        let now = Instant::now();
        let expires = now + self.ttl;
        let mut shard = self.shard(key);
        shard.writes += 1;
        if shard.writes.is_multiple_of(SWEEP_EVERY) {
            shard.positions.retain(|_, r| r.expires > now);
        }
        match shard.positions.get_mut(key) {
            // An expired entry's position no longer counts.
            Some(r) if r.expires > now => {
                *r = Remembered {
                    lsn: r.lsn.max(lsn),
                    expires,
                }
            }
            Some(r) => *r = Remembered { lsn, expires },
            None => {
                shard
                    .positions
                    .insert(key.into(), Remembered { lsn, expires });
            }
        }
    }

    /// The required position (synchronous form of
    /// [`StickyStore::required_lsn`]).
    pub fn required(&self, key: &str) -> Option<Lsn> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        let remembered = *shard.positions.get(key)?;
        if remembered.expires > now {
            Some(remembered.lsn)
        } else {
            shard.positions.remove(key);
            None
        }
    }

    /// Keys held now, expired or not (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).positions.len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StickyStore for MemoryStore {
    fn record_write(&self, key: &str, lsn: Lsn) -> impl Future<Output = ()> + Send {
        self.record(key, lsn);
        std::future::ready(())
    }

    fn required_lsn(&self, key: &str) -> impl Future<Output = Option<Lsn>> + Send {
        std::future::ready(self.required(key))
    }
}

/// Keeps the larger of the stored and the new position and restarts the
/// time to live, atomically in Redis. Positions are decimal strings without
/// leading zeros, compared by length then text, which is exact for all 64
/// bits (Lua numbers are doubles and would round above 2^53).
const RECORD_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
local new = ARGV[1]
if (not current) or #new > #current or (#new == #current and new > current) then
  redis.call('SET', KEYS[1], new, 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"#;

/// Every Redis call gives up after this long and degrades to the primary.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Sticky positions in Redis, shared by all gateways that use it.
///
/// Each key is stored as `sluice:sticky:<key>` holding the LSN as a decimal
/// number with a millisecond expiry (`SET key value PX ttl`). Writes go
/// through a small Lua script (see `RECORD_SCRIPT`) because Redis has no
/// "set only if greater" for strings (`SET` has no `GT`), and a plain `SET`
/// from a slower gateway could move a key's position backwards and allow a
/// stale read. Every recorded position is also kept in a local
/// [`MemoryStore`], so this gateway honours its own writes even while Redis
/// is unreachable; `required_lsn` returns the larger of both.
pub struct RedisStore {
    url: String,
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
    ttl: Duration,
    local: MemoryStore,
    errors: AtomicU64,
}

impl RedisStore {
    /// Prepares a store for the Redis at `url` (`redis://host:port/db`).
    /// Connects lazily, so a Redis that is down at startup only degrades
    /// reads to the primary until it is back. Must run inside a Tokio
    /// runtime.
    pub fn new(url: &str, ttl: Duration) -> Result<RedisStore, StickyError> {
        let error = |e: redis::RedisError| StickyError::Redis {
            url: url.to_owned(),
            message: e.to_string(),
        };
        let client = redis::Client::open(url).map_err(error)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection =
            redis::aio::ConnectionManager::new_lazy_with_config(client, config).map_err(error)?;
        Ok(RedisStore {
            url: url.to_owned(),
            connection,
            script: redis::Script::new(RECORD_SCRIPT),
            ttl,
            local: MemoryStore::new(ttl),
            errors: AtomicU64::new(0),
        })
    }

    fn redis_key(key: &str) -> String {
        format!("sluice:sticky:{key}")
    }

    /// Redis calls that failed or timed out so far.
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn failed(&self, operation: &str, key: &str, message: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(store = %self.url, key, "sticky {operation} failed: {message}; reads for this key go to the primary");
    }

    async fn record_in_redis(&self, key: &str, lsn: Lsn) -> Result<(), RedisCallError> {
        let ttl_ms = self.ttl.as_millis().max(1) as u64;
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(Self::redis_key(key));
        invocation.arg(lsn.0.to_string()).arg(ttl_ms);
        let call = invocation.invoke_async::<i64>(&mut connection);
        match tokio::time::timeout(REDIS_TIMEOUT * 2, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(RedisCallError::TimedOut),
        }
    }

    async fn read_from_redis(&self, key: &str) -> Result<Option<Lsn>, RedisCallError> {
        let mut connection = self.connection.clone();
        let mut get = redis::cmd("GET");
        get.arg(Self::redis_key(key));
        let call = get.query_async::<Option<String>>(&mut connection);
        match tokio::time::timeout(REDIS_TIMEOUT * 2, call).await {
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(text))) => text
                .parse::<u64>()
                .map(|value| Some(Lsn(value)))
                .map_err(|_| RedisCallError::NotAPosition(text)),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(RedisCallError::TimedOut),
        }
    }
}

impl StickyStore for RedisStore {
    async fn record_write(&self, key: &str, lsn: Lsn) {
        self.local.record(key, lsn);
        if let Err(message) = self.record_in_redis(key, lsn).await {
            self.failed("write", key, &message);
        }
    }

    async fn required_lsn(&self, key: &str) -> Option<Lsn> {
        let local = self.local.required(key);
        match self.read_from_redis(key).await {
            Ok(shared) => shared.max(local),
            Err(message) => {
                self.failed("read", key, &message);
                Some(UNKNOWN_POSITION)
            }
        }
    }
}

/// The store chosen by `sticky_store`, for gateways that pick at runtime.
pub enum AnyStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl AnyStore {
    /// Builds the configured store. Must run inside a Tokio runtime.
    pub fn from_config(store: &StickyStoreConfig, ttl: Duration) -> Result<AnyStore, StickyError> {
        Ok(match store {
            StickyStoreConfig::Memory => AnyStore::Memory(MemoryStore::new(ttl)),
            StickyStoreConfig::Redis(url) => AnyStore::Redis(RedisStore::new(url, ttl)?),
        })
    }
}

impl StickyStore for AnyStore {
    async fn record_write(&self, key: &str, lsn: Lsn) {
        match self {
            AnyStore::Memory(store) => store.record(key, lsn),
            AnyStore::Redis(store) => store.record_write(key, lsn).await,
        }
    }

    async fn required_lsn(&self, key: &str) -> Option<Lsn> {
        match self {
            AnyStore::Memory(store) => store.required(key),
            AnyStore::Redis(store) => store.required_lsn(key).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn keeps_the_maximum_position() {
        let store = MemoryStore::new(TTL);
        assert_eq!(store.required_lsn("user:1").await, None);
        store.record_write("user:1", Lsn(100)).await;
        store.record_write("user:1", Lsn(50)).await;
        assert_eq!(store.required_lsn("user:1").await, Some(Lsn(100)));
        store.record_write("user:1", Lsn(200)).await;
        assert_eq!(store.required_lsn("user:1").await, Some(Lsn(200)));
        assert_eq!(store.required_lsn("user:2").await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn forgets_a_key_ttl_after_its_last_write() {
        let store = MemoryStore::new(TTL);
        store.record_write("k", Lsn(7)).await;
        tokio::time::advance(Duration::from_secs(20)).await;
        // A write, even of an older position, restarts the time to live.
        store.record_write("k", Lsn(3)).await;
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(store.required_lsn("k").await, Some(Lsn(7)));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(store.required_lsn("k").await, None);
        assert!(store.is_empty(), "an expired key is dropped when read");
        // After expiry an older position is accepted afresh.
        store.record_write("k", Lsn(3)).await;
        assert_eq!(store.required_lsn("k").await, Some(Lsn(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn sweeps_expired_keys_nobody_reads() {
        let store = MemoryStore::new(Duration::from_secs(1));
        for i in 0..1000 {
            store.record(&format!("old:{i}"), Lsn(i));
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        for i in 0..(SWEEP_EVERY * MEMORY_SHARDS as u64 * 2) {
            store.record(&format!("new:{}", i % 10), Lsn(i));
        }
        assert!(
            store.len() < 1000,
            "expired keys were not swept: {}",
            store.len()
        );
        assert!(store.len() >= 10);
    }

    #[tokio::test]
    async fn shared_between_tasks() {
        let store = std::sync::Arc::new(MemoryStore::new(TTL));
        let tasks: Vec<_> = (0..8u64)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..500 {
                        store.record_write("shared", Lsn(t * 1000 + i)).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.required_lsn("shared").await, Some(Lsn(7499)));
    }

    #[tokio::test]
    async fn redis_that_is_down_degrades_to_the_primary() {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let store = RedisStore::new("redis://127.0.0.1:1/", TTL).unwrap();
        assert_eq!(store.required_lsn("k").await, Some(UNKNOWN_POSITION));
        store.record_write("k", Lsn(5)).await;
        assert!(store.error_count() >= 2);
        assert_eq!(store.local.required("k"), Some(Lsn(5)), "kept locally");
        assert_eq!(store.required_lsn("k").await, Some(UNKNOWN_POSITION));
    }

    #[tokio::test]
    async fn bad_redis_urls_are_refused_up_front() {
        let error = RedisStore::new("redis://", TTL).err().expect("no host");
        assert!(
            error.to_string().starts_with("sticky_store \"redis://\""),
            "{error}"
        );
        let any = AnyStore::from_config(&StickyStoreConfig::Memory, TTL).unwrap();
        any.record_write("k", Lsn(1)).await;
        assert_eq!(any.required_lsn("k").await, Some(Lsn(1)));
    }
}
