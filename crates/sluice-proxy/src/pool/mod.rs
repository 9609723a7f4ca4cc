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
//!
//! # Layout
//! - this file: [`Pool`] (its settings and bookkeeping) and [`Pools`] (every
//!   pool of the gateway, made on first use);
//! - [`wait`]: the FIFO queue of waiting clients, its timer, [`Acquire`];
//! - [`checkout`]: the [`Checkout`] guard, connect permits, check-in;
//! - [`maintenance`]: idle reaping and `min_pool_size` (the janitor's work);
//! - [`caps`]: `max_db_connections` and `max_user_connections`, shared by pools;
//! - [`stats`]: the per-pool counters;
//! - [`target`]: where a pool's servers are and who logs in to them, with
//!   the auth_file's secret or the one `auth_query` found.

pub mod caps;
mod checkout;
mod maintenance;
pub mod stats;
mod target;
mod wait;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::UserSecret;
use crate::backend::{BackendError, Params, ServerConn, ServerList, ServerTarget};
use crate::config::{Config, PoolMode, PoolSettings};
use crate::net::{Connector, TcpConnector};
use crate::protocol::sqlstate;

pub use caps::{ConnCap, PoolCaps};
pub use checkout::{Checkout, ConnectPermit};
pub use stats::PoolStats;
use target::pool_config;
pub use target::server_target;
use wait::Waiter;
pub use wait::{Acquire, NoConn, WaitSlot};

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
            PoolError::QueryWaitTimeout(_) => sqlstate::QUERY_CANCELED,
            PoolError::Backend(e) => e.sqlstate(),
            PoolError::Unreachable { .. } => sqlstate::CONNECTION_FAILURE,
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

/// A point-in-time view of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSnapshot {
    pub open: u32,
    pub idle: u32,
    pub waiting: u32,
    /// Connections being opened (logging in).
    pub connecting: u32,
    /// How long the longest waiting client has waited.
    pub max_wait: Duration,
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
    /// Zero keeps a connection as long as it works.
    pub server_lifetime: Duration,
    /// Run on a connection idle longer than `server_check_delay` before reuse.
    pub server_check_query: String,
    pub server_check_delay: Duration,
    pub server_reset_query: String,
}

pub(crate) struct State {
    /// Idle connections, least recently used at the front.
    pub(crate) idle: VecDeque<Box<ServerConn>>,
    /// Connections open, in use or being opened.
    pub(crate) open: u32,
    /// Of those, connections being opened.
    pub(crate) connecting: u32,
    /// Waiting clients, longest waiting first.
    pub(crate) waiters: VecDeque<Waiter>,
    /// A task sleeps until the next waiter's reserve or query wait timeout.
    pub(crate) timer_running: bool,
    /// The settings now (a reload may change them).
    pub(crate) limits: Limits,
    pub(crate) target: Arc<ServerTarget>,
    /// The user's secret as `auth_query` found it (users not in the auth_file).
    pub(crate) found: Option<UserSecret>,
}

/// The server connections of one (database, user).
pub struct Pool {
    pub key: PoolKey,
    /// A [`PoolMode`] (a reload may change it; sessions keep the mode they
    /// logged in with).
    mode: AtomicU8,
    pub stats: PoolStats,
    /// Every open server connection, for the console.
    pub servers: Arc<ServerList>,
    /// The database's and user's limits this pool counts against.
    pub caps: PoolCaps,
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
    pub fn new(
        key: PoolKey,
        settings: &PoolSettings,
        config: &Config,
        connector: Arc<dyn Connector>,
        caps: PoolCaps,
    ) -> Pool {
        let (limits, target) = pool_config(&key, settings, config, connector, None);
        Pool {
            mode: AtomicU8::new(settings.pool_mode as u8),
            key,
            stats: PoolStats::default(),
            servers: Arc::default(),
            caps,
            state: Mutex::new(State {
                idle: VecDeque::new(),
                open: 0,
                connecting: 0,
                waiters: VecDeque::new(),
                timer_running: false,
                limits,
                target,
                found: None,
            }),
            defaults: Mutex::new(None),
            interned: Mutex::new(Vec::new()),
        }
    }

    /// No new client reaches this pool any more (a reload removed or moved
    /// its database): its connections close as they are released.
    pub fn retire(self: &Arc<Self>) {
        for server in self.servers.all() {
            server.close_needed.store(true, Ordering::Relaxed);
        }
        self.close_idle();
    }

    /// Closes every idle connection now (`PAUSE`, `RECONNECT`, a retired pool).
    pub fn close_idle(self: &Arc<Self>) {
        let idle: Vec<_> = {
            let mut st = self.lock();
            let idle: Vec<_> = st.idle.drain(..).collect();
            st.open -= idle.len() as u32;
            idle
        };
        for conn in idle {
            self.caps.give_back();
            conn.terminate();
        }
        self.grant_waiters();
    }

    /// A state with this pool's settings and nothing in it (for tests of
    /// the queue's bookkeeping).
    #[cfg(test)]
    pub(crate) fn empty_state(&self) -> State {
        let st = self.lock();
        State {
            idle: VecDeque::new(),
            open: 0,
            connecting: 0,
            waiters: VecDeque::new(),
            timer_running: false,
            limits: st.limits.clone(),
            target: st.target.clone(),
            found: None,
        }
    }

    /// How clients that log in now use this pool's connections.
    pub fn mode(&self) -> PoolMode {
        PoolMode::from_u8(self.mode.load(Ordering::Relaxed))
    }

    /// The settings the pool runs with now.
    pub fn limits(&self) -> Limits {
        self.lock().limits.clone()
    }

    /// Where its servers are and who logs in to them.
    pub fn target(&self) -> Arc<ServerTarget> {
        self.lock().target.clone()
    }

    /// Takes on changed settings (a reload, `SET`): new limits apply at
    /// once (a bigger pool serves its waiting clients now); if the server
    /// or its login changed, the open connections are closed as they are
    /// released and new ones go to the new place.
    pub fn reconfigure(self: &Arc<Self>, settings: &PoolSettings, config: &Config) {
        let (connector, found) = {
            let st = self.lock();
            (st.target.connector.clone(), st.found.clone())
        };
        let (limits, target) = pool_config(&self.key, settings, config, connector, found.as_ref());
        self.mode.store(settings.pool_mode as u8, Ordering::Relaxed);
        let moved = {
            let mut st = self.lock();
            let old = &st.target;
            let moved = old.host != target.host
                || old.port != target.port
                || old.dbname != target.dbname
                || old.password != target.password
                || old.md5 != target.md5;
            st.limits = limits;
            st.target = target;
            moved
        };
        if moved {
            // Idle ones go now; the others when released.
            self.retire();
        } else {
            self.grant_waiters();
        }
    }

    /// A client of a user that is not in the auth_file logged in with
    /// `secret`, which `auth_query` found: new server connections log in
    /// with it (by SCRAM pass-through with the ClientKey the client's proof
    /// revealed, md5 or the password). Connections open already stay: they
    /// are logged in.
    pub fn use_found_secret(&self, secret: &UserSecret) {
        let mut st = self.lock();
        let known = |s: &UserSecret| s.client_key.get().is_some();
        if let Some(found) = &st.found {
            if found.same_as(secret) && (known(found) || !known(secret)) {
                return;
            }
        }
        st.found = Some(secret.clone());
        let mut target = (*st.target).clone();
        target::log_in_with(&mut target, Some(secret));
        st.target = Arc::new(target);
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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
            connecting: st.connecting,
            max_wait: st
                .waiters
                .front()
                .map_or(Duration::ZERO, |w| w.queued_at.elapsed()),
        }
    }

    /// Looks at the queue and the idle list (for the console): each waiting
    /// client's slot with how long it has waited, each idle connection with
    /// when it was last used.
    pub fn inspect(
        &self,
        mut waiting: impl FnMut(&Arc<WaitSlot>, Duration),
        mut idle: impl FnMut(&crate::backend::ServerInfo, std::time::Instant),
    ) {
        let st = self.lock();
        for waiter in &st.waiters {
            waiting(&waiter.slot, waiter.queued_at.elapsed());
        }
        for conn in &st.idle {
            idle(&conn.info, conn.last_used);
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

    pub(crate) fn learn_defaults(&self, conn: &ServerConn) {
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
        Acquire::new(self, slot)
    }

    /// Turns what [`Pool::acquire`] got into a connection, opening one
    /// with a permit.
    /// A connection that sat idle longer than server_check_delay first
    /// runs server_check_query; one that fails it is closed and another
    /// one acquired.
    pub async fn complete(
        self: &Arc<Self>,
        acquired: Result<Checkout, NoConn>,
    ) -> Result<Checkout, PoolError> {
        match acquired {
            Ok(mut checkout) if checkout.needs_check => {
                checkout.needs_check = false;
                let query = self.limits().server_check_query;
                match checkout.run_housekeeping(&query).await {
                    Ok(()) => Ok(checkout),
                    Err(error) => {
                        tracing::info!(pool = ?self.key, %error, "server_check_query failed; closing");
                        checkout.broken = true;
                        drop(checkout);
                        let again = self.acquire(&Arc::default()).await;
                        Box::pin(self.complete(again)).await
                    }
                }
            }
            Ok(checkout) => Ok(checkout),
            Err(NoConn::Permit(permit)) => {
                let checkout = self.connect(permit).await?;
                self.stats
                    .server_assignment_count
                    .fetch_add(1, Ordering::Relaxed);
                Ok(checkout)
            }
            Err(NoConn::TimedOut(waited)) => Err(PoolError::QueryWaitTimeout(waited)),
        }
    }
}

/// Every pool of a gateway, created on first use.
pub struct Pools {
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    /// How every pool opens its server streams.
    connector: Arc<dyn Connector>,
    /// `max_db_connections` per database, `max_user_connections` per user.
    database_caps: Mutex<HashMap<String, Arc<ConnCap>>>,
    user_caps: Mutex<HashMap<String, Arc<ConnCap>>>,
}

impl Default for Pools {
    /// Pools that connect over TCP.
    fn default() -> Pools {
        Pools::new(Arc::new(TcpConnector))
    }
}

impl Pools {
    pub fn new(connector: Arc<dyn Connector>) -> Pools {
        Pools {
            pools: Mutex::default(),
            connector,
            database_caps: Mutex::default(),
            user_caps: Mutex::default(),
        }
    }

    /// The `max_db_connections` limit of `database` (shared by its pools).
    pub fn database_cap(&self, config: &Config, database: &str) -> Arc<ConnCap> {
        let max = config.max_db_connections(database);
        let mut caps = self.database_caps.lock().unwrap_or_else(|e| e.into_inner());
        caps.entry(database.to_string())
            .or_insert_with(|| Arc::new(ConnCap::new(max)))
            .clone()
    }

    /// The `max_user_connections` limit of `user` (shared by its pools).
    pub fn user_cap(&self, config: &Config, user: &str) -> Arc<ConnCap> {
        let max = config.max_user_connections(user);
        let mut caps = self.user_caps.lock().unwrap_or_else(|e| e.into_inner());
        caps.entry(user.to_string())
            .or_insert_with(|| Arc::new(ConnCap::new(max)))
            .clone()
    }

    /// Takes on a changed configuration: limits, sizes, servers (see
    /// [`Pool::reconfigure`]). Pools of a removed database stay for the
    /// clients they serve; no new client reaches them.
    pub fn reconfigure(&self, config: &Config) {
        for (database, cap) in self
            .database_caps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            cap.set_max(config.max_db_connections(database));
        }
        for (user, cap) in self
            .user_caps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            cap.set_max(config.max_user_connections(user));
        }
        for pool in self.all() {
            match pool_settings_of(config, &pool.key) {
                Some(settings) => pool.reconfigure(&settings, config),
                // Its database (or that replica, or its host) is gone.
                None => pool.retire(),
            }
        }
    }

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
        let key = PoolKey {
            database: database.to_string(),
            user: user.to_string(),
            host: host_key(&settings.host, settings.port),
        };
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get(&key) {
            return Some(pool.clone());
        }
        let caps = PoolCaps {
            database: self.database_cap(config, database),
            user: self.user_cap(config, user),
        };
        let pool = Arc::new(Pool::new(
            key.clone(),
            &settings,
            config,
            self.connector.clone(),
            caps,
        ));
        pool.caps.database.join(&pool);
        pool.caps.user.join(&pool);
        pools.insert(key, pool.clone());
        Some(pool)
    }

    /// How the pools open server streams (the auth_query connections too).
    pub fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }

    pub fn all(&self) -> Vec<Arc<Pool>> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.values().cloned().collect()
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn host_key(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The settings `config` gives the pool `key` (whose host is the primary's
/// or one of the database's replicas'), or `None` if the database or that
/// replica is gone from it.
fn pool_settings_of(config: &Config, key: &PoolKey) -> Option<PoolSettings> {
    let mut settings = config.pool_settings(&key.database, &key.user)?;
    if host_key(&settings.host, settings.port) == key.host {
        return Some(settings);
    }
    let db = config.databases.get(&key.database)?;
    let replica = db
        .replicas
        .iter()
        .find(|r| host_key(&r.host, r.port) == key.host)?;
    settings.host = replica.host.clone();
    settings.port = replica.port;
    Some(settings)
}

#[cfg(test)]
mod tests;
