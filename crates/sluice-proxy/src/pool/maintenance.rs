//! Periodic upkeep of a pool (pgbouncer's janitor): closing connections
//! idle longer than server_idle_timeout, and opening what min_pool_size
//! wants.

use std::sync::Arc;
use std::time::Instant;

use super::{ConnectPermit, Pool};
use crate::backend::ServerConn;

impl Pool {
    /// Closes connections idle longer than server_idle_timeout (keeping
    /// min_pool_size open) and takes the slots min_pool_size wants filled.
    fn reap(self: &Arc<Self>, now: Instant) -> (Vec<ServerConn>, Vec<ConnectPermit>) {
        let mut st = self.lock();
        let mut closed = Vec::new();
        let timeout = self.limits.server_idle_timeout;
        if !timeout.is_zero() {
            while st.open > self.limits.min_pool_size {
                match st.idle.front() {
                    Some(conn) if now.duration_since(conn.last_used) >= timeout => {
                        closed.push(*st.idle.pop_front().expect("front exists"));
                        st.open -= 1;
                    }
                    _ => break,
                }
            }
        }
        let missing = self.limits.min_pool_size.saturating_sub(st.open);
        st.open += missing;
        (closed, (0..missing).map(|_| self.permit()).collect())
    }

    /// Periodic upkeep (pgbouncer's janitor): reaping and min_pool_size.
    pub async fn maintain(self: &Arc<Self>) {
        let (closed, permits) = self.reap(Instant::now());
        for conn in closed {
            tracing::debug!(pool = ?self.key, pid = conn.pid, "closing idle server connection");
            conn.terminate();
        }
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
