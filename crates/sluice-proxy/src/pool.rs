//! Server connection pools, one per (database, user, host): the primary's,
//! and with load balancing one per replica as well.
//!
//! A pool's bookkeeping (pgbouncer's `objects.c`) sits behind one short-held
//! `std::sync::Mutex`: idle connections, how many are open, and a FIFO queue
//! of waiting clients. A returned connection is handed straight to the
//! longest waiter; when a connection closes, its slot is handed on as a
//! permit to open a new one. A client that has waited `reserve_pool_timeout`
//! may open one of `reserve_pool_size` extra connections, and one that has
//! waited `query_wait_timeout` gives up with an error.
//!
//! [`Checkout`] is the guard a client holds: dropping it returns the
//! connection (after a ROLLBACK or the session reset query when needed) or
//! closes it, so no exit path can leak a server connection.

use std::collections::{HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::backend::{BackendError, Params, ServerConn, ServerTarget};
use crate::config::{Config, PoolMode, PoolSettings};

/// Why a client got no server connection.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("query_wait_timeout: no server connection became free in {0:?}")]
    QueryWaitTimeout(Duration),
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The primary could not be reached in `tries` attempts (with backoff).
    #[error("primary unreachable after {tries} attempts: {source}")]
    Unreachable { tries: u32, source: BackendError },
}

impl PoolError {
    pub fn sqlstate(&self) -> &str {
        match self {
            PoolError::QueryWaitTimeout(_) => "57014",
            PoolError::Backend(e) => e.sqlstate(),
            PoolError::Unreachable { .. } => "08006",
        }
    }
}

/// A pool's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The database name clients ask for.
    pub database: String,
    pub user: String,
    /// The server, `host:port` (the primary's or one replica's).
    pub host: String,
}

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

/// A point-in-time view of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSnapshot {
    pub open: u32,
    pub idle: u32,
    pub waiting: u32,
}

enum Handoff {
    /// A ready connection.
    Conn(Box<ServerConn>),
    /// A slot: the receiver may open a new connection (already counted in `open`).
    Permit,
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Handoff>,
}

#[derive(Default)]
struct State {
    /// Idle connections, least recently used at the front.
    idle: VecDeque<Box<ServerConn>>,
    /// Connections open, in use or being opened.
    open: u32,
    waiters: VecDeque<Waiter>,
    next_waiter: u64,
}

/// Pool-wide limits taken from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub pool_size: u32,
    pub min_pool_size: u32,
    pub reserve_pool_size: u32,
    pub reserve_pool_timeout: Duration,
    /// Zero waits forever.
    pub query_wait_timeout: Duration,
    /// Zero keeps idle connections forever.
    pub server_idle_timeout: Duration,
    pub server_reset_query: String,
}

/// The server connections of one (database, user).
pub struct Pool {
    pub key: PoolKey,
    pub mode: PoolMode,
    pub limits: Limits,
    pub target: Arc<ServerTarget>,
    pub stats: PoolStats,
    state: Mutex<State>,
    /// The parameters a fresh server connection reports (learned on first connect).
    defaults: Mutex<Option<Params>>,
    /// Distinct client parameter sets, shared so that "same parameters as
    /// this server already has" is a pointer comparison.
    interned: Mutex<Vec<Params>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("key", &self.key).finish()
    }
}

impl Pool {
    pub fn new(key: PoolKey, settings: &PoolSettings, config: &Config) -> Pool {
        let p = &config.proxy;
        let secret = config.auth.get(&key.user);
        let password = secret.and_then(|s| s.password.clone());
        let pass_through = secret.and_then(|s| s.pass_through());
        Pool {
            mode: settings.pool_mode,
            limits: Limits {
                pool_size: settings.pool_size,
                min_pool_size: p.min_pool_size.min(settings.pool_size),
                reserve_pool_size: p.reserve_pool_size,
                reserve_pool_timeout: p.reserve_pool_timeout.0,
                query_wait_timeout: p.query_wait_timeout.0,
                server_idle_timeout: p.server_idle_timeout.0,
                server_reset_query: p.server_reset_query.clone(),
            },
            target: Arc::new(ServerTarget {
                host: settings.host.as_str().into(),
                port: settings.port,
                dbname: settings.dbname.clone(),
                user: key.user.clone(),
                password,
                pass_through,
                connect_timeout: p.server_connect_timeout.0,
            }),
            key,
            stats: PoolStats::default(),
            state: Mutex::new(State::default()),
            defaults: Mutex::new(None),
            interned: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent in a
        // way worse than a lost connection count; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        let st = self.lock();
        PoolSnapshot {
            open: st.open,
            idle: st.idle.len() as u32,
            waiting: st.waiters.len() as u32,
        }
    }

    /// The parameters a fresh server connection starts with, if known yet.
    pub fn defaults(&self) -> Option<Params> {
        self.defaults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Returns a shared copy of `params` (the same `Arc` for equal sets).
    pub fn intern(&self, params: Params) -> Params {
        const MAX_INTERNED: usize = 256;
        let mut interned = self.interned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = interned.iter().find(|p| **p == params) {
            return existing.clone();
        }
        if interned.len() < MAX_INTERNED {
            interned.push(params.clone());
        }
        params
    }

    fn learn_defaults(&self, conn: &ServerConn) {
        let mut defaults = self.defaults.lock().unwrap_or_else(|e| e.into_inner());
        if defaults.is_none() {
            *defaults = Some(conn.params.clone());
        }
    }

    /// Gets a server connection: an idle one, a new one if the pool has room,
    /// or the next one returned (FIFO), with the reserve pool and
    /// query_wait_timeout rules.
    pub async fn checkout(self: &Arc<Self>) -> Result<Checkout, PoolError> {
        let started = Instant::now();
        let mut waited = false;
        let result = self.checkout_inner(started, &mut waited).await;
        if waited {
            self.stats.waits.fetch_add(1, Relaxed);
            self.stats
                .wait_time_us
                .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        }
        result
    }

    async fn checkout_inner(
        self: &Arc<Self>,
        started: Instant,
        waited: &mut bool,
    ) -> Result<Checkout, PoolError> {
        loop {
            enum Next {
                Reuse(Box<ServerConn>),
                Connect,
                Wait(u64, oneshot::Receiver<Handoff>),
            }
            let next = {
                let mut st = self.lock();
                if let Some(conn) = st.idle.pop_back() {
                    Next::Reuse(conn)
                } else if st.open < self.limits.pool_size {
                    st.open += 1;
                    Next::Connect
                } else {
                    let (tx, rx) = oneshot::channel();
                    let id = st.next_waiter;
                    st.next_waiter += 1;
                    st.waiters.push_back(Waiter { id, tx });
                    Next::Wait(id, rx)
                }
            };
            match next {
                Next::Reuse(conn) => {
                    if let Some(checkout) = self.accept_handoff(conn) {
                        return Ok(checkout);
                    }
                }
                Next::Connect => return self.connect_in_slot().await,
                Next::Wait(id, rx) => {
                    *waited = true;
                    match self.wait(id, rx, started).await? {
                        Handoff::Conn(conn) => {
                            if let Some(checkout) = self.accept_handoff(conn) {
                                return Ok(checkout);
                            }
                        }
                        Handoff::Permit => return self.connect_in_slot().await,
                    }
                }
            }
        }
    }

    /// The most recently used idle connection if it has exactly `params`
    /// (no waiting, connecting or `SET`): the first step of
    /// [`Pool::checkout`], without an await.
    pub fn try_checkout_idle(self: &Arc<Self>, params: &Params) -> Option<Checkout> {
        loop {
            let conn = {
                let mut st = self.lock();
                if !st
                    .idle
                    .back()
                    .is_some_and(|c| Arc::ptr_eq(&c.params, params))
                {
                    return None;
                }
                st.idle.pop_back()?
            };
            if let Some(checkout) = self.accept_handoff(conn) {
                return Some(checkout);
            }
        }
    }

    /// Takes a connection from the pool if it is still alive; otherwise closes
    /// it (freeing its slot) and returns `None`.
    fn accept_handoff(self: &Arc<Self>, mut conn: Box<ServerConn>) -> Option<Checkout> {
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

    /// Waits in the FIFO queue; opens a reserve connection after
    /// reserve_pool_timeout if there is room; gives up after query_wait_timeout.
    async fn wait(
        self: &Arc<Self>,
        id: u64,
        mut rx: oneshot::Receiver<Handoff>,
        started: Instant,
    ) -> Result<Handoff, PoolError> {
        let limits = &self.limits;
        let deadline =
            (!limits.query_wait_timeout.is_zero()).then(|| started + limits.query_wait_timeout);
        let mut reserve_at =
            (limits.reserve_pool_size > 0).then(|| started + limits.reserve_pool_timeout);
        loop {
            let wake = match (reserve_at, deadline) {
                (Some(r), Some(d)) => Some(r.min(d)),
                (r, d) => r.or(d),
            };
            let received = match wake {
                None => Some((&mut rx).await),
                Some(at) => tokio::time::timeout_at(at.into(), &mut rx).await.ok(),
            };
            if let Some(received) = received {
                // The sender is only dropped with the pool itself.
                return received.map_err(|_| PoolError::QueryWaitTimeout(started.elapsed()));
            }
            let now = Instant::now();
            let mut st = self.lock();
            let Some(position) = st.waiters.iter().position(|w| w.id == id) else {
                // Handed something just as the timer fired.
                drop(st);
                return rx
                    .try_recv()
                    .map_err(|_| PoolError::QueryWaitTimeout(started.elapsed()));
            };
            if reserve_at.is_some_and(|r| now >= r) {
                reserve_at = None;
                if st.open < limits.pool_size + limits.reserve_pool_size {
                    st.waiters.remove(position);
                    st.open += 1;
                    self.stats.reserve_used.fetch_add(1, Relaxed);
                    return Ok(Handoff::Permit);
                }
            }
            if deadline.is_some_and(|d| now >= d) {
                st.waiters.remove(position);
                self.stats.wait_timeouts.fetch_add(1, Relaxed);
                return Err(PoolError::QueryWaitTimeout(started.elapsed()));
            }
        }
    }

    /// Opens a connection in a slot already counted in `open`.
    async fn connect_in_slot(self: &Arc<Self>) -> Result<Checkout, PoolError> {
        match ServerConn::connect(self.target.clone()).await {
            Ok(conn) => {
                self.stats.server_connects.fetch_add(1, Relaxed);
                self.learn_defaults(&conn);
                tracing::debug!(pool = ?self.key, pid = conn.pid, "server connection opened");
                Ok(Checkout {
                    conn: Some(Box::new(conn)),
                    pool: self.clone(),
                })
            }
            Err(e) => {
                self.stats.server_connect_errors.fetch_add(1, Relaxed);
                tracing::warn!(pool = ?self.key, error = %e, "server connection failed");
                self.release_slot();
                Err(e.into())
            }
        }
    }

    /// A connection closed: pass its slot to the longest waiter, or free it.
    fn release_slot(&self) {
        let mut st = self.lock();
        while let Some(waiter) = st.waiters.pop_front() {
            if waiter.tx.send(Handoff::Permit).is_ok() {
                return;
            }
        }
        st.open = st.open.saturating_sub(1);
    }

    /// A clean connection comes back: to the longest waiter, or to the idle list.
    fn checkin(&self, mut conn: Box<ServerConn>) {
        let mut st = self.lock();
        while let Some(waiter) = st.waiters.pop_front() {
            match waiter.tx.send(Handoff::Conn(conn)) {
                Ok(()) => return,
                Err(Handoff::Conn(back)) => conn = back,
                Err(Handoff::Permit) => unreachable!("sent a connection"),
            }
        }
        conn.last_used = Instant::now();
        st.idle.push_back(conn);
    }

    /// Closes connections idle longer than server_idle_timeout (keeping
    /// min_pool_size open) and says how many new ones min_pool_size wants.
    fn reap(&self, now: Instant) -> (Vec<ServerConn>, u32) {
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
        (closed, missing)
    }

    /// Periodic upkeep (pgbouncer's janitor): reaping and min_pool_size.
    pub async fn maintain(self: &Arc<Self>) {
        let (closed, missing) = self.reap(Instant::now());
        for conn in closed {
            tracing::debug!(pool = ?self.key, pid = conn.pid, "closing idle server connection");
            conn.terminate();
        }
        for opened in 0..missing {
            match self.connect_in_slot().await {
                Ok(checkout) => drop(checkout), // returns it to the idle list
                Err(_) => {
                    // Logged; retried next round. The slots reserved for the
                    // rest are given back, or `open` would count them forever.
                    for _ in opened + 1..missing {
                        self.release_slot();
                    }
                    break;
                }
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

impl Checkout {
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
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
            if conn.status != b'I' {
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

/// Every pool of a gateway, created on first use.
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
}

impl Pools {
    /// The primary's pool for (`database`, `user`), or `None` for an unknown database.
    pub fn get(&self, config: &Config, database: &str, user: &str) -> Option<Arc<Pool>> {
        self.get_on(config, database, user, None)
    }

    /// The pool for (`database`, `user`) on the primary (`replica = None`)
    /// or on the database's replica at that index of its `replicas` list;
    /// `None` for an unknown database or replica.
    pub fn get_on(
        &self,
        config: &Config,
        database: &str,
        user: &str,
        replica: Option<usize>,
    ) -> Option<Arc<Pool>> {
        let mut settings = config.pool_settings(database, user)?;
        if let Some(index) = replica {
            let addr = config.databases.get(database)?.replicas.get(index)?;
            settings.host = addr.host.clone();
            settings.port = addr.port;
        }
        let host = if settings.host.contains(':') {
            format!("[{}]:{}", settings.host, settings.port)
        } else {
            format!("{}:{}", settings.host, settings.port)
        };
        let key = PoolKey {
            database: database.to_string(),
            user: user.to_string(),
            host,
        };
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get(&key) {
            return Some(pool.clone());
        }
        let pool = Arc::new(Pool::new(key.clone(), &settings, config));
        pools.insert(key, pool.clone());
        Some(pool)
    }

    pub fn all(&self) -> Vec<Arc<Pool>> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn min_pool_size_gives_back_the_slots_it_could_not_fill() {
        // A port nothing listens on: every connect is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let text = format!(
            "[proxy]\nauth_type = \"trust\"\nmin_pool_size = 3\ndefault_pool_size = 5\n\
             [databases.app]\nhost = \"127.0.0.1\"\nport = {port}\n"
        );
        let config = Config::parse(std::path::Path::new("gw.toml"), &text).unwrap();
        let pool = Pools::default().get(&config, "app", "app").unwrap();
        pool.maintain().await;
        assert_eq!(pool.stats.server_connect_errors.load(Relaxed), 1);
        assert_eq!(pool.snapshot().open, 0);
    }
}
