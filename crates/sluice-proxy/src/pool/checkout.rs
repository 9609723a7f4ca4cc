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
    /// `check`: it sat idle longer than server_check_delay, so
    /// server_check_query runs on it before it serves (see [`Pool::complete`]).
    pub(crate) fn accept_handoff(
        self: &Arc<Self>,
        mut conn: Box<ServerConn>,
        check: bool,
    ) -> Option<Checkout> {
        if conn.usable() {
            Some(Checkout {
                conn: Some(conn),
                pool: self.clone(),
                needs_check: check,
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
        let target = {
            let mut st = self.lock();
            st.connecting += 1;
            st.target.clone()
        };
        let connected = ServerConn::connect(target).await;
        self.lock().connecting -= 1;
        match connected {
            Ok(mut conn) => {
                conn.list_on(&self.servers);
                self.stats.server_connects.fetch_add(1, Relaxed);
                self.learn_defaults(&conn);
                tracing::debug!(pool = ?self.key, pid = conn.pid(), "server connection opened");
                permit.pool = None; // the Checkout holds the slot now
                Ok(Checkout {
                    conn: Some(Box::new(conn)),
                    pool: self.clone(),
                    needs_check: false,
                })
            }
            Err(e) => {
                self.stats.server_connect_errors.fetch_add(1, Relaxed);
                tracing::warn!(pool = ?self.key, error = %e, "server connection failed");
                Err(e.into())
            }
        }
    }

    /// A connection closed: pass its slot to the longest waiter, or free it
    /// (and its place under the database's and user's limits, which may
    /// let another pool's waiter in).
    pub(crate) fn release_slot(&self) {
        let freed = {
            let mut st = self.lock();
            match st.waiters.pop_front() {
                Some(waiter) if st.open <= st.limits.pool_size + st.limits.reserve_pool_size => {
                    waiter.slot.fill(Handoff::Permit);
                    false
                }
                waiter => {
                    // A pool made smaller by a reload shrinks as its
                    // connections close.
                    if let Some(waiter) = waiter {
                        st.waiters.push_front(waiter);
                    }
                    st.open = st.open.saturating_sub(1);
                    true
                }
            }
        };
        if freed {
            self.caps.give_back();
            self.wake_siblings();
        }
    }

    /// A clean connection comes back: to the longest waiter, or to the idle
    /// list; or closed if it must go (`RECONNECT`, `server_lifetime`, a
    /// pool made smaller).
    pub(crate) fn checkin(&self, mut conn: Box<ServerConn>) {
        let mut st = self.lock();
        let expired = !st.limits.server_lifetime.is_zero()
            && crate::clock::since(conn.info.opened_us) >= st.limits.server_lifetime;
        let shrunk = st.open > st.limits.pool_size + st.limits.reserve_pool_size;
        if conn.info.close_needed.load(Relaxed) || expired || shrunk {
            drop(st);
            tracing::debug!(pool = ?self.key, pid = conn.pid(), expired, "closing server connection");
            conn.terminate();
            self.release_slot();
            return;
        }
        match st.waiters.pop_front() {
            Some(waiter) => waiter.slot.fill(Handoff::Conn(conn)),
            None => {
                conn.last_used = Instant::now();
                st.idle.push_back(conn);
            }
        }
    }

    /// A connection under this pool's limits closed: the other pools under
    /// them may have clients waiting for just that.
    fn wake_siblings(&self) {
        for cap in [&self.caps.database, &self.caps.user] {
            if cap.max() == 0 {
                continue;
            }
            for pool in cap.pools() {
                if !std::ptr::eq(Arc::as_ptr(&pool), self) {
                    pool.grant_waiters();
                }
            }
        }
    }

    /// The database's or user's limit is full: closes the least recently
    /// used idle connection of another pool under it (pgbouncer's
    /// eviction). Whether one was closed.
    pub(crate) fn evict_for_caps(&self) -> bool {
        let Some(cap) = self.caps.full() else {
            return false;
        };
        let oldest = cap
            .pools()
            .into_iter()
            .filter(|pool| !std::ptr::eq(Arc::as_ptr(pool), self))
            .filter_map(|pool| {
                let used = pool.lock().idle.front().map(|conn| conn.last_used)?;
                Some((used, pool))
            })
            .min_by_key(|(used, _)| *used);
        let Some((_, pool)) = oldest else {
            return false;
        };
        let conn = {
            let mut st = pool.lock();
            let conn = st.idle.pop_front();
            if conn.is_some() {
                st.open -= 1;
            }
            conn
        };
        match conn {
            Some(conn) => {
                tracing::debug!(pool = ?pool.key, pid = conn.pid(), "evicted to make room");
                conn.terminate();
                pool.caps.give_back();
                true
            }
            None => false,
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
    /// It must pass server_check_query before it serves.
    pub(crate) needs_check: bool,
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
        let session = pool.mode() == PoolMode::Session;
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
            let reset = pool.limits().server_reset_query;
            if ok && session && !reset.is_empty() {
                ok = conn.run_housekeeping(&reset).await.is_ok();
                if ok && reset.eq_ignore_ascii_case("DISCARD ALL") {
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
