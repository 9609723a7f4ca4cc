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
//! Under load most requests wait here, so a wait is cheap: the client's own
//! [`WaitSlot`] (made once per client) is what the queue holds, and one
//! timer task per pool, running only while clients wait, watches the
//! waiters' deadlines (pgbouncer's janitor checks them the same way), so a
//! wait allocates nothing and arms no timer of its own.
//!
//! [`Checkout`] is the guard a client holds: dropping it returns the
//! connection (after a ROLLBACK or the session reset query when needed) or
//! closes it, so no exit path can leak a server connection.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

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
    /// query_wait_timeout passed.
    TimedOut,
}

/// Where one client waits for a server connection. A client keeps one for
/// its whole session and the pool queues a reference to it, so a wait
/// allocates nothing (a oneshot channel and a timer per wait showed in
/// profiles at `pgbench -c 64`: most requests wait there).
#[derive(Default)]
pub struct WaitSlot {
    inner: Mutex<SlotInner>,
}

#[derive(Default)]
struct SlotInner {
    handoff: Option<Handoff>,
    waker: Option<Waker>,
}

impl WaitSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the waiter what it waited for (called under the pool's lock,
    /// just after taking the waiter out of the queue).
    fn fill(&self, handoff: Handoff) {
        let waker = {
            let mut inner = self.lock();
            inner.handoff = Some(handoff);
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn take(&self) -> Option<Handoff> {
        self.lock().handoff.take()
    }

    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Handoff> {
        let mut inner = self.lock();
        match inner.handoff.take() {
            Some(handoff) => {
                inner.waker = None;
                Poll::Ready(handoff)
            }
            None => {
                match &inner.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => inner.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

struct Waiter {
    slot: Arc<WaitSlot>,
    /// When the reserve pool may open for this waiter (`None`: not, or no more).
    reserve_at: Option<Instant>,
    /// When it gives up (`None`: never).
    deadline: Option<Instant>,
}

#[derive(Default)]
struct State {
    /// Idle connections, least recently used at the front.
    idle: VecDeque<Box<ServerConn>>,
    /// Connections open, in use or being opened.
    open: u32,
    /// Waiting clients, longest waiting first.
    waiters: VecDeque<Waiter>,
    /// A task sleeps until the next waiter's reserve or query wait timeout.
    timer_running: bool,
}

/// What [`Pool::acquire`] got instead of a server connection.
pub enum NoConn {
    /// The right to open one (see [`Pool::connect`]).
    Permit(ConnectPermit),
    /// query_wait_timeout passed after this long.
    TimedOut(Duration),
}

/// A slot counted in the pool's `open` for a connection not opened yet
/// (see [`Pool::connect`]); dropped unused, or when the connection fails,
/// it is given back.
pub struct ConnectPermit {
    /// `None` once a connection holds the slot.
    pool: Option<Arc<Pool>>,
}

impl Drop for ConnectPermit {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release_slot();
        }
    }
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
        let acquired = self.acquire(&Arc::default()).await;
        self.complete(acquired).await
    }

    /// Gets an idle server connection, or the right to open one if the
    /// pool has room; otherwise waits in `slot` for a returned connection
    /// (FIFO), the reserve pool after reserve_pool_timeout, or the error at
    /// query_wait_timeout. It opens no connection, and its future and
    /// output are small: a client awaits it in place, on every request.
    pub fn acquire<'a>(self: &'a Arc<Self>, slot: &'a Arc<WaitSlot>) -> Acquire<'a> {
        Acquire {
            pool: self,
            slot,
            since: None,
            queued: false,
        }
    }

    /// Turns what [`Pool::acquire`] got into a connection, opening one
    /// with a permit.
    pub async fn complete(
        self: &Arc<Self>,
        acquired: Result<Checkout, NoConn>,
    ) -> Result<Checkout, PoolError> {
        match acquired {
            Ok(checkout) => Ok(checkout),
            Err(NoConn::Permit(permit)) => self.connect(permit).await,
            Err(NoConn::TimedOut(waited)) => Err(PoolError::QueryWaitTimeout(waited)),
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

    fn permit(self: &Arc<Self>) -> ConnectPermit {
        ConnectPermit {
            pool: Some(self.clone()),
        }
    }

    /// Puts `slot` at the end of the queue, with deadlines counted from
    /// `now`, and makes sure a timer watches them. `now` is read under the
    /// pool's lock, so it only grows along the queue: the deadlines come in
    /// queue order.
    fn enqueue(self: &Arc<Self>, st: &mut State, slot: Arc<WaitSlot>, now: Instant) {
        let limits = &self.limits;
        let waiter = Waiter {
            slot,
            reserve_at: (limits.reserve_pool_size > 0).then(|| now + limits.reserve_pool_timeout),
            deadline: (!limits.query_wait_timeout.is_zero())
                .then(|| now + limits.query_wait_timeout),
        };
        let timed = waiter.reserve_at.is_some() || waiter.deadline.is_some();
        st.waiters.push_back(waiter);
        if timed && !st.timer_running {
            st.timer_running = true;
            tokio::spawn(self.clone().watch_waiters());
        }
    }

    /// The queue's timer (one task per pool while clients wait, not one
    /// timer per wait): at each waiter's reserve_pool_timeout, a permit
    /// for a reserve connection if there is room; at its
    /// query_wait_timeout, the error.
    async fn watch_waiters(self: Arc<Self>) {
        loop {
            let next = {
                let mut st = self.lock();
                match self.expire_waiters(&mut st, Instant::now()) {
                    Some(next) => next,
                    None => {
                        st.timer_running = false;
                        return;
                    }
                }
            };
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// Serves or fails the waiters whose time has come; returns when the
    /// next one's does (`None`: no waiter has a deadline left).
    ///
    /// Deadlines come in queue order (see [`Pool::enqueue`]), so only the
    /// front of the queue can be due; waiters that had their one try at
    /// the reserve pool are a prefix of it.
    fn expire_waiters(&self, st: &mut State, now: Instant) -> Option<Instant> {
        let limits = &self.limits;
        while st
            .waiters
            .front()
            .is_some_and(|w| w.deadline.is_some_and(|d| now >= d))
        {
            let waiter = st.waiters.pop_front().expect("front exists");
            self.stats.wait_timeouts.fetch_add(1, Relaxed);
            waiter.slot.fill(Handoff::TimedOut);
        }
        let mut untried = st.waiters.partition_point(|w| w.reserve_at.is_none());
        while let Some(waiter) = st.waiters.get_mut(untried) {
            if waiter.reserve_at.is_none_or(|r| now < r) {
                break;
            }
            // One try: with the reserve pool full, the client waits on for
            // a returned connection.
            waiter.reserve_at = None;
            if st.open < limits.pool_size + limits.reserve_pool_size {
                st.open += 1;
                let waiter = st.waiters.remove(untried).expect("index in range");
                self.stats.reserve_used.fetch_add(1, Relaxed);
                waiter.slot.fill(Handoff::Permit);
            } else {
                untried += 1;
            }
        }
        let next_deadline = st.waiters.front().and_then(|w| w.deadline);
        let next_reserve = st.waiters.get(untried).and_then(|w| w.reserve_at);
        match (next_deadline, next_reserve) {
            (Some(d), Some(r)) => Some(d.min(r)),
            (d, r) => d.or(r),
        }
    }

    /// A waiter gave up (its future was dropped): take it out of the queue,
    /// or pass on what it was handed meanwhile.
    fn abandon(&self, slot: &Arc<WaitSlot>) {
        let handoff = {
            let mut st = self.lock();
            match st.waiters.iter().position(|w| Arc::ptr_eq(&w.slot, slot)) {
                Some(position) => {
                    st.waiters.remove(position);
                    None
                }
                None => slot.take(),
            }
        };
        match handoff {
            Some(Handoff::Conn(conn)) => self.checkin(conn),
            Some(Handoff::Permit) => self.release_slot(),
            Some(Handoff::TimedOut) | None => {}
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
    fn release_slot(&self) {
        let mut st = self.lock();
        match st.waiters.pop_front() {
            Some(waiter) => waiter.slot.fill(Handoff::Permit),
            None => st.open = st.open.saturating_sub(1),
        }
    }

    /// A clean connection comes back: to the longest waiter, or to the idle list.
    fn checkin(&self, mut conn: Box<ServerConn>) {
        let mut st = self.lock();
        match st.waiters.pop_front() {
            Some(waiter) => waiter.slot.fill(Handoff::Conn(conn)),
            None => {
                conn.last_used = Instant::now();
                st.idle.push_back(conn);
            }
        }
    }

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

/// The future of [`Pool::acquire`]. Dropped while queued, it leaves the
/// queue (or passes on what it was just handed).
pub struct Acquire<'a> {
    pool: &'a Arc<Pool>,
    slot: &'a Arc<WaitSlot>,
    /// When it first had to wait.
    since: Option<Instant>,
    queued: bool,
}

impl Acquire<'_> {
    fn done(&self, got: Result<Checkout, NoConn>) -> Poll<Result<Checkout, NoConn>> {
        if let Some(since) = self.since {
            let stats = &self.pool.stats;
            stats.waits.fetch_add(1, Relaxed);
            stats
                .wait_time_us
                .fetch_add(since.elapsed().as_micros() as u64, Relaxed);
        }
        Poll::Ready(got)
    }
}

impl Future for Acquire<'_> {
    type Output = Result<Checkout, NoConn>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let pool = self.pool;
        loop {
            if self.queued {
                let handoff = std::task::ready!(self.slot.poll_take(cx));
                self.queued = false;
                match handoff {
                    Handoff::Conn(conn) => match pool.accept_handoff(conn) {
                        Some(checkout) => return self.done(Ok(checkout)),
                        None => continue, // it had died: queue again
                    },
                    Handoff::Permit => return self.done(Err(NoConn::Permit(pool.permit()))),
                    Handoff::TimedOut => {
                        let waited = self.since.map(|s| s.elapsed()).unwrap_or_default();
                        return self.done(Err(NoConn::TimedOut(waited)));
                    }
                }
            }
            let mut st = pool.lock();
            if let Some(conn) = st.idle.pop_back() {
                drop(st);
                match pool.accept_handoff(conn) {
                    Some(checkout) => return self.done(Ok(checkout)),
                    None => continue,
                }
            }
            if st.open < pool.limits.pool_size {
                st.open += 1;
                drop(st);
                return self.done(Err(NoConn::Permit(pool.permit())));
            }
            // (Queued again after being handed a dead connection, a client's
            // deadlines start over; `since` keeps its whole wait.)
            let now = Instant::now();
            self.since.get_or_insert(now);
            pool.enqueue(&mut st, self.slot.clone(), now);
            self.queued = true;
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if self.queued {
            self.pool.abandon(self.slot);
        }
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

    fn pool(settings: &str) -> Arc<Pool> {
        let text = format!(
            "[proxy]\nauth_type = \"trust\"\n{settings}\n\
             [databases.app]\nhost = \"127.0.0.1\"\nport = 1\n"
        );
        let config = Config::parse(std::path::Path::new("gw.toml"), &text).unwrap();
        Pools::default().get(&config, "app", "app").unwrap()
    }

    async fn permit(pool: &Arc<Pool>, slot: &Arc<WaitSlot>) -> ConnectPermit {
        match pool.acquire(slot).await {
            Err(NoConn::Permit(permit)) => permit,
            Err(NoConn::TimedOut(waited)) => panic!("timed out after {waited:?}"),
            Ok(_) => panic!("no server connection exists"),
        }
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_longest_waiter() {
        let pool = pool("default_pool_size = 1\nquery_wait_timeout = 0");
        let held = permit(&pool, &Arc::default()).await;
        let (first, second) = (Arc::default(), Arc::default());
        let first_wait = tokio::spawn({
            let (pool, slot) = (pool.clone(), Arc::clone(&first));
            async move { permit(&pool, &slot).await }
        });
        while pool.snapshot().waiting < 1 {
            tokio::task::yield_now().await;
        }
        let second_wait = tokio::spawn({
            let (pool, slot) = (pool.clone(), Arc::clone(&second));
            async move { permit(&pool, &slot).await }
        });
        while pool.snapshot().waiting < 2 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let got = first_wait.await.unwrap();
        assert_eq!(open_idle_waiting(&pool), (1, 0, 1));
        assert!(!second_wait.is_finished());
        drop(got);
        drop(second_wait.await.unwrap());
        assert_eq!(open_idle_waiting(&pool), (0, 0, 0));
        assert_eq!(pool.stats.waits.load(Relaxed), 2);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_the_queue_or_passes_on_its_slot() {
        let pool = pool("default_pool_size = 1\nquery_wait_timeout = 0");
        let held = permit(&pool, &Arc::default()).await;
        let slot = Arc::default();
        // Gives up while queued.
        let waited = tokio::time::timeout(Duration::from_millis(50), pool.acquire(&slot)).await;
        assert!(waited.is_err());
        assert_eq!(pool.snapshot().waiting, 0);
        // Handed the slot, then dropped before it looked: the slot is freed.
        let mut waiting = Box::pin(pool.acquire(&slot));
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        drop(held);
        drop(waiting);
        assert_eq!(open_idle_waiting(&pool), (0, 0, 0));
    }

    #[tokio::test]
    async fn waiters_get_the_reserve_pool_then_time_out() {
        let pool = pool(
            "default_pool_size = 1\nreserve_pool_size = 1\nreserve_pool_timeout = 0.1\n\
             query_wait_timeout = 0.3",
        );
        let _held = permit(&pool, &Arc::default()).await;
        let started = Instant::now();
        let _reserve = permit(&pool, &Arc::default()).await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(pool.stats.reserve_used.load(Relaxed), 1);
        let started = Instant::now();
        match pool.acquire(&Arc::default()).await {
            Err(NoConn::TimedOut(waited)) => assert!(waited >= Duration::from_millis(300)),
            _ => panic!("expected query_wait_timeout"),
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(pool.stats.wait_timeouts.load(Relaxed), 1);
        assert_eq!(open_idle_waiting(&pool), (2, 0, 0));
    }

    #[test]
    fn due_waiters_are_served_from_the_front_and_the_next_deadline_returned() {
        let pool = pool(
            "default_pool_size = 1\nreserve_pool_size = 1\nreserve_pool_timeout = 1\n\
             query_wait_timeout = 10",
        );
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let waiter = |since: u64, tried: bool| Waiter {
            slot: Arc::default(),
            reserve_at: (!tried).then(|| secs(since + 1)),
            deadline: Some(secs(since + 10)),
        };
        let mut st = State {
            open: 1,
            waiters: [
                waiter(0, true),
                waiter(1, false),
                waiter(2, false),
                waiter(5, false),
            ]
            .into(),
            ..State::default()
        };
        let slots: Vec<_> = st.waiters.iter().map(|w| w.slot.clone()).collect();
        // At 3 s: the first untried waiter gets the one reserve connection,
        // the next has its try and waits on; the last is not due.
        assert_eq!(pool.expire_waiters(&mut st, secs(3)), Some(secs(6)));
        assert!(matches!(slots[1].take(), Some(Handoff::Permit)));
        assert!(slots[2].take().is_none());
        assert_eq!(st.open, 2);
        assert_eq!(st.waiters.len(), 3);
        // At 11 s the first waiter times out; then the reserve try of the
        // last is due (the pool is full); next is the new front's deadline.
        assert_eq!(pool.expire_waiters(&mut st, secs(11)), Some(secs(12)));
        assert!(matches!(slots[0].take(), Some(Handoff::TimedOut)));
        assert!(slots[3].take().is_none());
        assert!(st.waiters.iter().all(|w| w.reserve_at.is_none()));
        assert_eq!(pool.expire_waiters(&mut st, secs(20)), None);
        assert!(st.waiters.is_empty());
        assert_eq!(pool.stats.wait_timeouts.load(Relaxed), 3);
    }

    fn open_idle_waiting(pool: &Pool) -> (u32, u32, u32) {
        let snapshot = pool.snapshot();
        (snapshot.open, snapshot.idle, snapshot.waiting)
    }

    /// Polls `future` once: its output if it was ready.
    async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut future).poll(cx) {
                Poll::Ready(out) => Some(out),
                Poll::Pending => None,
            })
        })
        .await
    }
}
