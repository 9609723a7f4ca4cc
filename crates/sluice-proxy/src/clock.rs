//! The gateway's clock for counters and timeouts: microseconds since the
//! process started, as a plain `u64` that fits an atomic (request times,
//! wait and query times, the janitor's timeouts all compare these).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the gateway's start.
#[inline]
pub fn now_us() -> u64 {
    let start = *START.get_or_init(Instant::now);
    start.elapsed().as_micros() as u64
}

/// `now_us` of an instant (0 before the start).
pub fn us_at(instant: Instant) -> u64 {
    let start = *START.get_or_init(Instant::now);
    instant.saturating_duration_since(start).as_micros() as u64
}

/// How long ago `then_us` was, as a duration.
pub fn since(then_us: u64) -> Duration {
    Duration::from_micros(now_us().saturating_sub(then_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_forward() {
        let before = now_us();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now_us() >= before + 2000);
        assert!(since(before) >= Duration::from_millis(2));
        assert!(us_at(Instant::now()) >= before);
    }
}
