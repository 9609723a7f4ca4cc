//! Periodic upkeep (pgbouncer's `janitor.c`), a few times a second:
//! - each pool's reaping, `min_pool_size` and waiting clients
//!   ([`crate::pool::Pool::maintain`]), and idle auth_query connections;
//! - the client timeouts, checked by looking at every client's last request
//!   and answer times rather than by a timer per client (a client's
//!   request costs no timer): `client_idle_timeout`,
//!   `idle_transaction_timeout`, `query_timeout`;
//! - `SHOW STATS`' averages, once per `stats_period`.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::clients::ClientEntry;
use crate::clock;
use crate::config::Config;
use crate::pool::stats::{Averages, Totals};
use crate::protocol::sqlstate;
use crate::server::Shared;

/// How often the janitor looks (pgbouncer: every third of a second).
const TICK: Duration = Duration::from_millis(250);

pub async fn run(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stats = StatsPeriod::new(shared.totals_by_database());
    loop {
        tick.tick().await;
        let config = shared.config();
        for pool in shared.pools.all() {
            let configured = config.databases.contains_key(&pool.key.database);
            pool.maintain(configured).await;
        }
        shared
            .auth_queries
            .close_idle(config.proxy.server_idle_timeout.0);
        enforce_timeouts(&shared, &config);
        if let Some(averages) = stats.tick(&shared, config.proxy.stats_period.0) {
            shared.set_averages(averages);
        }
    }
}

/// A client timeout that fired: what the client is told (pgbouncer's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    ClientIdle,
    IdleTransaction,
    /// A query running on a server.
    QueryRunning,
    /// A query still waiting for a server.
    QueryWaiting,
}

impl Timeout {
    pub fn message(self) -> &'static str {
        match self {
            Timeout::ClientIdle => "client_idle_timeout",
            Timeout::IdleTransaction => "idle transaction timeout",
            Timeout::QueryRunning => "query timeout",
            Timeout::QueryWaiting => "query_timeout",
        }
    }
}

/// The timeouts in force (zero: off).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub client_idle: Duration,
    pub idle_transaction: Duration,
    pub query: Duration,
}

impl Timeouts {
    fn from(config: &Config) -> Timeouts {
        let p = &config.proxy;
        Timeouts {
            client_idle: p.client_idle_timeout.0,
            idle_transaction: p.idle_transaction_timeout.0,
            query: p.query_timeout.0,
        }
    }

    fn any(&self) -> bool {
        !(self.client_idle.is_zero() && self.idle_transaction.is_zero() && self.query.is_zero())
    }
}

/// Which timeout, if any, a client has passed at `now_us`; `waited` is how
/// long it has been waiting for a server, if it is (the console's clients
/// have no timeouts).
pub fn expired(
    client: &ClientEntry,
    timeouts: &Timeouts,
    now_us: u64,
    waited: Option<Duration>,
) -> Option<Timeout> {
    client.pool.as_ref()?;
    let request = client.last_request_us.load(Relaxed);
    let ready = client.last_ready_us.load(Relaxed);
    let past = |limit: Duration, elapsed: Duration| !limit.is_zero() && elapsed >= limit;
    let since = |us: u64| Duration::from_micros(now_us.saturating_sub(us));
    if let Some(waited) = waited {
        return past(timeouts.query, waited).then_some(Timeout::QueryWaiting);
    }
    if client.holds_server() {
        if request > ready && past(timeouts.query, since(request)) {
            return Some(Timeout::QueryRunning);
        }
        let idle_in_block = ready >= request && client.in_transaction_block();
        if idle_in_block && past(timeouts.idle_transaction, since(ready)) {
            return Some(Timeout::IdleTransaction);
        }
        return None;
    }
    past(timeouts.client_idle, since(ready.max(request))).then_some(Timeout::ClientIdle)
}

fn enforce_timeouts(shared: &Shared, config: &Config) {
    let timeouts = Timeouts::from(config);
    if !timeouts.any() {
        return;
    }
    let mut waiting = HashMap::new();
    for pool in shared.pools.all() {
        pool.inspect(
            |slot, waited| {
                waiting.insert(Arc::as_ptr(slot) as usize, waited);
            },
            |_, _| {},
        );
    }
    let now = clock::now_us();
    for client in shared.clients.all() {
        let waited = waiting
            .get(&(Arc::as_ptr(&client.wait_slot) as usize))
            .copied();
        let Some(timeout) = expired(&client, &timeouts, now, waited) else {
            continue;
        };
        tracing::info!(client = client.id, user = %client.user, database = %client.database, timeout = timeout.message(), "closing client");
        if timeout == Timeout::QueryRunning {
            // Stop the query on the server too; the connection is closed
            // with the client's session.
            if let Some(server) = client.server() {
                tokio::spawn(async move {
                    let _ = crate::backend::send_cancel(&server.target, server.pid, server.secret)
                        .await;
                });
            }
        }
        client.kill(sqlstate::PROTOCOL_VIOLATION, timeout.message());
    }
}

/// The totals at the start of the current stats period.
struct StatsPeriod {
    started: Instant,
    totals: HashMap<String, Totals>,
}

impl StatsPeriod {
    fn new(totals: HashMap<String, Totals>) -> StatsPeriod {
        StatsPeriod {
            started: Instant::now(),
            totals,
        }
    }

    /// At the end of a period, the averages over it (and a new period).
    fn tick(&mut self, shared: &Shared, period: Duration) -> Option<HashMap<String, Averages>> {
        let elapsed = self.started.elapsed();
        if elapsed < period.max(Duration::from_secs(1)) {
            return None;
        }
        let now = shared.totals_by_database();
        let empty = Totals::default();
        let averages = now
            .iter()
            .map(|(database, after)| {
                let before = self.totals.get(database).unwrap_or(&empty);
                let averages = Averages::between(before, after, elapsed.as_secs_f64());
                (database.clone(), averages)
            })
            .collect();
        *self = StatsPeriod::new(now);
        Some(averages)
    }
}
