//! Counters kept per pool, in memory.

use std::sync::atomic::AtomicU64;

/// Counters kept per pool, in memory (exposed by later admin commands).
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Transactions (in transaction mode: checkouts) served.
    pub xact_count: AtomicU64,
    /// Requests (Query or Sync) forwarded.
    pub query_count: AtomicU64,
    /// Bytes received from clients / sent to clients.
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Total time clients waited for a server connection, in microseconds.
    pub wait_time_us: AtomicU64,
    /// Checkouts that had to wait.
    pub waits: AtomicU64,
    /// Server connections opened, and attempts that failed.
    pub server_connects: AtomicU64,
    pub server_connect_errors: AtomicU64,
    /// Clients that gave up after query_wait_timeout.
    pub wait_timeouts: AtomicU64,
    /// Connections opened from the reserve pool.
    pub reserve_used: AtomicU64,
    /// Clients currently logged in to this pool.
    pub clients: AtomicU64,
}
