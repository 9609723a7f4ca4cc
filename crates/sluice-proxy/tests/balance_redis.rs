//! The Redis sticky store against a real `redis-server` (Debian's package),
//! started by the test on a free loopback port and stopped at the end.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use sluice_proxy::balance::sticky::{RedisStore, StickyStore, UNKNOWN_POSITION};
use sluice_proxy::balance::Lsn;

/// A throwaway Redis without persistence; killed on drop.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Redis {
        let port = sluice_cluster::free_port().expect("free port");
        let mut redis = Redis { port, child: None };
        redis.start_again();
        redis
    }

    /// Starts (or restarts) the server on the same port and waits until it
    /// accepts connections (bounded: 10 s).
    fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        self.child = Some(child);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

const TTL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn two_gateways_on_one_redis_see_each_others_writes() {
    let redis = Redis::start();
    let a = RedisStore::new(&redis.url(), TTL).unwrap();
    let b = RedisStore::new(&redis.url(), TTL).unwrap();

    assert_eq!(b.required_lsn("user:42").await, None);
    a.record_write("user:42", "0/16B3748".parse().unwrap())
        .await;
    assert_eq!(b.required_lsn("user:42").await, Some(Lsn(0x16B3748)));

    // An older position from the other gateway never moves the key back.
    b.record_write("user:42", Lsn(0x100)).await;
    assert_eq!(a.required_lsn("user:42").await, Some(Lsn(0x16B3748)));
    assert_eq!(b.required_lsn("user:42").await, Some(Lsn(0x16B3748)));
    b.record_write("user:42", Lsn(0x2000000)).await;
    assert_eq!(a.required_lsn("user:42").await, Some(Lsn(0x2000000)));

    // Keys are independent.
    assert_eq!(a.required_lsn("user:43").await, None);
    assert_eq!(a.error_count() + b.error_count(), 0);
}

#[tokio::test]
async fn comparison_is_exact_for_all_64_bits() {
    let redis = Redis::start();
    let store = RedisStore::new(&redis.url(), TTL).unwrap();
    let other = RedisStore::new(&redis.url(), TTL).unwrap();
    // 2^53 + 1 and 2^53 are equal as Lua (double) numbers.
    let big = Lsn((1 << 53) + 1);
    store.record_write("k", big).await;
    other.record_write("k", Lsn(1 << 53)).await;
    assert_eq!(other.required_lsn("k").await, Some(big));
    // Shorter decimal text is a smaller number, whatever its first digit.
    store.record_write("digits", Lsn(99)).await;
    other.record_write("digits", Lsn(100)).await;
    other.record_write("digits", Lsn(99)).await;
    assert_eq!(store.required_lsn("digits").await, Some(Lsn(100)));
    let max = Lsn(u64::MAX - 1);
    store.record_write("max", max).await;
    other.record_write("max", Lsn(u64::MAX - 2)).await;
    assert_eq!(other.required_lsn("max").await, Some(max));
    assert_eq!(store.error_count() + other.error_count(), 0);
}

#[tokio::test]
async fn keys_expire_ttl_after_the_last_write() {
    let redis = Redis::start();
    let ttl = Duration::from_millis(400);
    let a = RedisStore::new(&redis.url(), ttl).unwrap();
    let b = RedisStore::new(&redis.url(), ttl).unwrap();
    a.record_write("short", Lsn(10)).await;
    assert_eq!(b.required_lsn("short").await, Some(Lsn(10)));
    // Expiry is a lower bound: wait well past it, then the key is gone.
    tokio::time::sleep(ttl * 3).await;
    assert_eq!(b.required_lsn("short").await, None);
}

#[tokio::test]
async fn redis_outage_sends_reads_to_the_primary_and_recovers() {
    let mut redis = Redis::start();
    let a = RedisStore::new(&redis.url(), TTL).unwrap();
    let b = RedisStore::new(&redis.url(), TTL).unwrap();
    a.record_write("k", Lsn(500)).await;
    assert_eq!(b.required_lsn("k").await, Some(Lsn(500)));

    redis.stop();
    assert_eq!(b.required_lsn("k").await, Some(UNKNOWN_POSITION));
    assert_eq!(
        b.required_lsn("never-written").await,
        Some(UNKNOWN_POSITION)
    );
    a.record_write("k", Lsn(600)).await; // fails in Redis, kept locally
    assert!(a.error_count() >= 1 && b.error_count() >= 2);

    // Redis comes back empty (no persistence); the stores reconnect.
    redis.start_again();
    let mut recovered = None;
    for _ in 0..50 {
        match b.required_lsn("never-written").await {
            Some(UNKNOWN_POSITION) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => {
                recovered = Some(other);
                break;
            }
        }
    }
    assert_eq!(recovered, Some(None), "store did not reconnect to Redis");
    // The gateway that wrote during the outage still honours its own write.
    assert_eq!(a.required_lsn("k").await, Some(Lsn(600)));
    b.record_write("k", Lsn(700)).await;
    assert_eq!(a.required_lsn("k").await, Some(Lsn(700)));
}
