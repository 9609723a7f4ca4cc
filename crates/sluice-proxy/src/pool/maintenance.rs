//! Periodic upkeep of a pool (pgbouncer's janitor): closing connections
//! idle longer than `server_idle_timeout`, older than `server_lifetime` or
//! marked to close, opening what `min_pool_size` wants, and letting
//! waiting clients in where a limit has room again (a safety net for the
//! wake-ups of `caps`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use super::{ConnectPermit, Pool};
use crate::backend::ServerConn;
use crate::clock;

impl Pool {
    /// Takes out the idle connections that must close, and the slots
    /// min_pool_size wants filled (`fill`: the pool is still configured).
    fn reap(self: &Arc<Self>, now: Instant, fill: bool) -> (Vec<ServerConn>, Vec<ConnectPermit>) {
        let mut st = self.lock();
        let limits = st.limits.clone();
        let mut closed = Vec::new();
        let mut index = 0;
        while index < st.idle.len() {
            let conn = &st.idle[index];
            let idle_too_long = !limits.server_idle_timeout.is_zero()
                && now.duration_since(conn.last_used) >= limits.server_idle_timeout
                && st.open > limits.min_pool_size;
            let too_old = !limits.server_lifetime.is_zero()
                && clock::since(conn.info.opened_us) >= limits.server_lifetime;
            if idle_too_long || too_old || conn.info.close_needed.load(Relaxed) {
                closed.push(*st.idle.remove(index).expect("index in range"));
                st.open -= 1;
            } else {
                index += 1;
            }
        }
        let mut permits = Vec::new();
        if fill {
            while st.open < limits.min_pool_size && self.caps.try_take() {
                st.open += 1;
                permits.push(self.permit());
            }
        }
        (closed, permits)
    }

    /// Periodic upkeep (pgbouncer's janitor): reaping and min_pool_size.
    /// `configured`: the pool's database is still in the configuration.
    pub async fn maintain(self: &Arc<Self>, configured: bool) {
        let (closed, permits) = self.reap(Instant::now(), configured);
        for conn in closed {
            tracing::debug!(pool = ?self.key, pid = conn.pid(), "closing idle server connection");
            self.caps.give_back();
            conn.terminate();
        }
        self.grant_waiters();
        for permit in permits {
            match self.connect(permit).await {
                Ok(checkout) => drop(checkout), // returns it to the idle list
                // Logged; retried next round. Dropping the permits left
                // gives their slots back.
                Err(_) => break,
            }
        }
    }
}
