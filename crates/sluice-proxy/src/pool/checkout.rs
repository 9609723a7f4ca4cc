//! The [`Checkout`] guard a client holds while it uses a server
//! connection, the permit to open one, and giving connections and slots
//! back (to the longest waiter first).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use super::wait::Handoff;
use super::{Pool, PoolError};
use crate::backend::ServerConn;
use crate::config::PoolMode;
use crate::protocol::TxStatus;

/// A slot counted in the pool's `open` for a connection not opened yet
/// (see [`Pool::connect`]); dropped unused, or when the connection fails,
/// it is given back.
pub struct ConnectPermit {
    /// `None` once a connection holds the slot.
    pub(crate) pool: Option<Arc<Pool>>,
}

impl Drop for ConnectPermit {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release_slot();
        }
    }
}

impl Pool {
    /// Takes a connection from the pool if it is still alive; otherwise closes
    /// it (freeing its slot) and returns `None`.
    pub(crate) fn accept_handoff(self: &Arc<Self>, mut conn: Box<ServerConn>) -> Option<Checkout> {
        if conn.usable() {
            Some(Checkout {
                conn: Some(conn),
                pool: self.clone(),
            })
        } else {
            tracing::debug!(pool = ?self.key, "dropping dead idle server connection");
            drop(conn);
            self.release_slot();
            None
        }
    }

    pub(crate) fn permit(self: &Arc<Self>) -> ConnectPermit {
        ConnectPermit {
            pool: Some(self.clone()),
        }
    }

    /// Opens a connection in the slot `permit` holds; on failure the
    /// permit's drop gives the slot back.
    pub async fn connect(
        self: &Arc<Self>,
        mut permit: ConnectPermit,
    ) -> Result<Checkout, PoolError> {
        match ServerConn::connect(self.target.clone()).await {
            Ok(conn) => {
                self.stats.server_connects.fetch_add(1, Relaxed);
                self.learn_defaults(&conn);
                tracing::debug!(pool = ?self.key, pid = conn.pid, "server connection opened");
                permit.pool = None; // the Checkout holds the slot now
                Ok(Checkout {
                    conn: Some(Box::new(conn)),
                    pool: self.clone(),
                })
            }
            Err(e) => {
                self.stats.server_connect_errors.fetch_add(1, Relaxed);
                tracing::warn!(pool = ?self.key, error = %e, "server connection failed");
                Err(e.into())
            }
        }
    }

    /// A connection closed: pass its slot to the longest waiter, or free it.
    pub(crate) fn release_slot(&self) {
        let mut st = self.lock();
        match st.waiters.pop_front() {
            Some(waiter) => waiter.slot.fill(Handoff::Permit),
            None => st.open = st.open.saturating_sub(1),
        }
    }

    /// A clean connection comes back: to the longest waiter, or to the idle list.
    pub(crate) fn checkin(&self, mut conn: Box<ServerConn>) {
        let mut st = self.lock();
        match st.waiters.pop_front() {
            Some(waiter) => waiter.slot.fill(Handoff::Conn(conn)),
            None => {
                conn.last_used = Instant::now();
                st.idle.push_back(conn);
            }
        }
    }
}

/// A server connection checked out of a pool. Dropping it returns the
/// connection: directly if clean, after ROLLBACK / the reset query (in a
/// background task) if not, or closes it if it cannot be made clean.
pub struct Checkout {
    /// Boxed: server connections are few, client tasks many and small.
    conn: Option<Box<ServerConn>>,
    pool: Arc<Pool>,
}

impl Deref for Checkout {
    type Target = ServerConn;
    fn deref(&self) -> &ServerConn {
        self.conn.as_ref().expect("present until drop")
    }
}

impl DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut ServerConn {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let pool = self.pool.clone();
        let session = pool.mode == PoolMode::Session;
        if conn.clean() && !session {
            pool.checkin(conn);
            return;
        }
        if !(conn.clean() || conn.needs_rollback_only()) {
            drop(conn);
            pool.release_slot();
            return;
        }
        // Needs a ROLLBACK and/or the session reset: do it off the client's path.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            drop(conn);
            pool.release_slot();
            return;
        };
        runtime.spawn(async move {
            let mut ok = true;
            if conn.status != TxStatus::Idle {
                ok = conn.run_housekeeping("ROLLBACK").await.is_ok();
            }
            if ok && session && !pool.limits.server_reset_query.is_empty() {
                ok = conn
                    .run_housekeeping(&pool.limits.server_reset_query)
                    .await
                    .is_ok();
                if ok
                    && pool
                        .limits
                        .server_reset_query
                        .eq_ignore_ascii_case("DISCARD ALL")
                {
                    conn.prepared.clear();
                    if let Some(defaults) = pool.defaults() {
                        conn.params = defaults;
                    }
                }
            }
            if ok && conn.clean() {
                pool.checkin(conn);
            } else {
                drop(conn);
                pool.release_slot();
            }
        });
    }
}
