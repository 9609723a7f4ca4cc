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
//! - [`stats`]: the per-pool counters.

mod checkout;
mod maintenance;
pub mod stats;
mod wait;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::{BackendError, Params, ServerConn, ServerTarget};
use crate::config::{Config, PoolMode, PoolSettings};
use crate::net::{Connector, TcpConnector};
use crate::protocol::sqlstate;

pub use checkout::{Checkout, ConnectPermit};
pub use stats::PoolStats;
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

#[derive(Default)]
pub(crate) struct State {
    /// Idle connections, least recently used at the front.
    pub(crate) idle: VecDeque<Box<ServerConn>>,
    /// Connections open, in use or being opened.
    pub(crate) open: u32,
    /// Waiting clients, longest waiting first.
    pub(crate) waiters: VecDeque<Waiter>,
    /// A task sleeps until the next waiter's reserve or query wait timeout.
    pub(crate) timer_running: bool,
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
    pub fn new(
        key: PoolKey,
        settings: &PoolSettings,
        config: &Config,
        connector: Arc<dyn Connector>,
    ) -> Pool {
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
                connector,
            }),
            key,
            stats: PoolStats::default(),
            state: Mutex::new(State::default()),
            defaults: Mutex::new(None),
            interned: Mutex::new(Vec::new()),
        }
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
}

/// Every pool of a gateway, created on first use.
pub struct Pools {
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    /// How every pool opens its server streams.
    connector: Arc<dyn Connector>,
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
        let pool = Arc::new(Pool::new(
            key.clone(),
            &settings,
            config,
            self.connector.clone(),
        ));
        pools.insert(key, pool.clone());
        Some(pool)
    }

    pub fn all(&self) -> Vec<Arc<Pool>> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests;
