//! Counters kept per pool, in memory: the console's `SHOW STATS` and
//! `SHOW POOLS`, and the metrics endpoint, read them (summed per database
//! where pgbouncer reports per database).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (microseconds) of the wait-time histogram's buckets (the
/// metrics endpoint's `sluice_client_wait_seconds`); a last bucket counts
/// the longer waits.
pub const WAIT_BUCKETS_US: [u64; 14] = [
    100,
    500,
    1_000,
    5_000,
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
];

/// Counters of one pool. Times are in microseconds.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Times a server connection was assigned to a client.
    pub server_assignment_count: AtomicU64,
    /// Transactions: a ReadyForQuery back to idle after a client's request.
    pub xact_count: AtomicU64,
    /// Requests (Query or Sync) forwarded.
    pub query_count: AtomicU64,
    /// Bytes received from clients / sent to clients.
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Time spent in transactions, and in requests (first byte sent to
    /// ReadyForQuery).
    pub xact_time_us: AtomicU64,
    pub query_time_us: AtomicU64,
    /// Total time clients waited for a server connection.
    pub wait_time_us: AtomicU64,
    /// Parse messages from clients; Parse messages sent to servers (the
    /// gateway's re-prepares included); Bind messages.
    pub client_parse_count: AtomicU64,
    pub server_parse_count: AtomicU64,
    pub bind_count: AtomicU64,
    /// Checkouts that had to wait.
    pub waits: AtomicU64,
    /// Those waits by length: one count per [`WAIT_BUCKETS_US`] bucket
    /// (not cumulative), then the waits longer than the last bound.
    pub wait_buckets: [AtomicU64; WAIT_BUCKETS_US.len() + 1],
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

/// The cumulative counters of one or more pools, as plain numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub server_assignment_count: u64,
    pub xact_count: u64,
    pub query_count: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub xact_time_us: u64,
    pub query_time_us: u64,
    pub wait_time_us: u64,
    pub client_parse_count: u64,
    pub server_parse_count: u64,
    pub bind_count: u64,
}

impl PoolStats {
    /// A client waited `waited` for a server connection (only checkouts
    /// that waited come here: those that found one free cost nothing).
    pub fn observe_wait(&self, waited: Duration) {
        let us = waited.as_micros() as u64;
        self.waits.fetch_add(1, Relaxed);
        self.wait_time_us.fetch_add(us, Relaxed);
        let bucket = WAIT_BUCKETS_US.partition_point(|&bound| bound < us);
        self.wait_buckets[bucket].fetch_add(1, Relaxed);
    }

    /// Adds this pool's counters to `totals`.
    pub fn add_to(&self, totals: &mut Totals) {
        totals.server_assignment_count += self.server_assignment_count.load(Relaxed);
        totals.xact_count += self.xact_count.load(Relaxed);
        totals.query_count += self.query_count.load(Relaxed);
        totals.bytes_received += self.bytes_received.load(Relaxed);
        totals.bytes_sent += self.bytes_sent.load(Relaxed);
        totals.xact_time_us += self.xact_time_us.load(Relaxed);
        totals.query_time_us += self.query_time_us.load(Relaxed);
        totals.wait_time_us += self.wait_time_us.load(Relaxed);
        totals.client_parse_count += self.client_parse_count.load(Relaxed);
        totals.server_parse_count += self.server_parse_count.load(Relaxed);
        totals.bind_count += self.bind_count.load(Relaxed);
    }
}

/// Per-second rates and per-event averages over one `stats_period`, as
/// pgbouncer's `avg_*` columns: counts and bytes per second; transaction
/// and query time per transaction and per query; wait time per
/// assignment (microseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Averages {
    pub server_assignment_count: u64,
    pub xact_count: u64,
    pub query_count: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub xact_time_us: u64,
    pub query_time_us: u64,
    pub wait_time_us: u64,
    pub client_parse_count: u64,
    pub server_parse_count: u64,
    pub bind_count: u64,
}

impl Averages {
    /// The averages between two readings `seconds` apart.
    pub fn between(before: &Totals, after: &Totals, seconds: f64) -> Averages {
        let seconds = seconds.max(1e-6);
        let delta = |a: u64, b: u64| b.saturating_sub(a);
        let rate = |a: u64, b: u64| (delta(a, b) as f64 / seconds) as u64;
        let per = |time: u64, count: u64| time.checked_div(count).unwrap_or(0);
        let xacts = delta(before.xact_count, after.xact_count);
        let queries = delta(before.query_count, after.query_count);
        let assignments = delta(
            before.server_assignment_count,
            after.server_assignment_count,
        );
        Averages {
            server_assignment_count: rate(
                before.server_assignment_count,
                after.server_assignment_count,
            ),
            xact_count: rate(before.xact_count, after.xact_count),
            query_count: rate(before.query_count, after.query_count),
            bytes_received: rate(before.bytes_received, after.bytes_received),
            bytes_sent: rate(before.bytes_sent, after.bytes_sent),
            xact_time_us: per(delta(before.xact_time_us, after.xact_time_us), xacts),
            query_time_us: per(delta(before.query_time_us, after.query_time_us), queries),
            wait_time_us: per(delta(before.wait_time_us, after.wait_time_us), assignments),
            client_parse_count: rate(before.client_parse_count, after.client_parse_count),
            server_parse_count: rate(before.server_parse_count, after.server_parse_count),
            bind_count: rate(before.bind_count, after.bind_count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_are_rates_and_per_event_times() {
        let before = Totals {
            xact_count: 100,
            query_count: 200,
            xact_time_us: 1_000,
            server_assignment_count: 10,
            wait_time_us: 50,
            bytes_sent: 0,
            ..Totals::default()
        };
        let after = Totals {
            xact_count: 700,
            query_count: 1_400,
            xact_time_us: 61_000,
            server_assignment_count: 70,
            wait_time_us: 650,
            bytes_sent: 6_000,
            ..Totals::default()
        };
        let averages = Averages::between(&before, &after, 60.0);
        assert_eq!(averages.xact_count, 10, "per second");
        assert_eq!(averages.query_count, 20);
        assert_eq!(averages.bytes_sent, 100);
        assert_eq!(averages.xact_time_us, 100, "per transaction");
        assert_eq!(averages.wait_time_us, 10, "per assignment");
        assert_eq!(averages.query_time_us, 0, "no query time passed");
    }

    #[test]
    fn waits_land_in_the_bucket_of_their_upper_bound() {
        let stats = PoolStats::default();
        for us in [0, 100, 101, 120_000_000, 120_000_001, 3_600_000_000] {
            stats.observe_wait(Duration::from_micros(us));
        }
        let buckets: Vec<u64> = stats.wait_buckets.iter().map(|b| b.load(Relaxed)).collect();
        // 0 and 100 µs: the first bucket (le 100 µs); 101 µs: the second;
        // 120 s: the last bound's; beyond it: the overflow bucket.
        let mut expected = vec![0; WAIT_BUCKETS_US.len() + 1];
        expected[0] = 2;
        expected[1] = 1;
        expected[WAIT_BUCKETS_US.len() - 1] = 1;
        expected[WAIT_BUCKETS_US.len()] = 2;
        assert_eq!(buckets, expected);
        assert_eq!(stats.waits.load(Relaxed), 6);
        assert_eq!(
            stats.wait_time_us.load(Relaxed),
            100 + 101 + 120_000_000 + 120_000_001 + 3_600_000_000
        );
    }
}
