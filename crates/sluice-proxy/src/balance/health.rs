//! The health checker: every `replica_check_interval` it asks each replica
//! and the primary of a database for their WAL positions over its own
//! dedicated connections (tokio-postgres), and records the result in the
//! host table ([`Hosts`]) that routing reads.
//!
//! # Lag
//! Bytes: the primary's current WAL position minus the replica's replay
//! position. Time: `now() - pg_last_xact_replay_timestamp()` grows without
//! bound while the primary is idle, so it is not used directly. Instead the
//! checker keeps a short history of the primary's position; a replica that
//! has replayed the position the primary had at time `t` is at most
//! `now - t` behind. A replica that replayed everything is 0 behind. Only
//! when the history does not reach back far enough do we fall back to the
//! replay timestamp. If the primary cannot be checked, lag in bytes is
//! unknown and only the time limit applies, so reads keep working on the
//! replicas while the primary is in trouble.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::{HostAddr, LoadBalancing};
use super::hosts::{Health, HostSlot, HostState, Hosts};
use super::lsn::{Lsn, LsnParseError};

/// Why a health check failed (shown in `SHOW sluice.hosts` and the log).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The server refused, or the connection failed (PostgreSQL's message).
    #[error("{0}")]
    Server(String),
    #[error("health check returned no row")]
    NoRow,
    #[error("health check returned an invalid WAL position: {0}")]
    BadPosition(#[from] LsnParseError),
    #[error("health check timed out after {0:?}")]
    TimedOut(Duration),
}

/// How the health checker logs in and how often it checks.
#[derive(Debug, Clone)]
pub struct CheckerConfig {
    /// `replica_check_interval`.
    pub interval: Duration,
    /// A check (connect + query) slower than this counts as failed.
    pub timeout: Duration,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    /// How far back the primary's position history reaches; should cover
    /// `max_replication_lag_time`.
    pub history: Duration,
    /// `server_tls_*`, as the pools connect.
    pub tls: crate::tls::ServerTls,
}

impl CheckerConfig {
    /// Interval and history from `[load_balancing]`, a 2 s timeout.
    pub fn new(
        config: &LoadBalancing,
        user: &str,
        password: Option<&str>,
        dbname: &str,
    ) -> CheckerConfig {
        CheckerConfig {
            interval: config.replica_check_interval,
            timeout: Duration::from_secs(2).max(config.replica_check_interval),
            user: user.to_owned(),
            password: password.map(str::to_owned),
            dbname: dbname.to_owned(),
            history: config.max_replication_lag_time + Duration::from_secs(1),
            tls: crate::tls::ServerTls::default(),
        }
    }
}

/// The running checker; stops when dropped or on [`HealthChecker::stop`].
pub struct HealthChecker {
    tasks: Vec<JoinHandle<()>>,
}

impl HealthChecker {
    /// Stops every check task (the same as dropping the checker).
    pub fn stop(self) {}
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts checking `hosts` every `config.interval`: one task per host, so
/// a host that hangs until the timeout never delays the others' updates.
/// Must run inside a Tokio runtime.
pub fn spawn_health_checker(config: CheckerConfig, hosts: Arc<Hosts>) -> HealthChecker {
    let config = Arc::new(config);
    let history = Arc::new(Mutex::new(PrimaryHistory::new(config.history)));
    let mut tasks = vec![tokio::spawn(check_primary(
        config.clone(),
        hosts.clone(),
        history.clone(),
    ))];
    for index in 0..hosts.replicas().len() {
        tasks.push(tokio::spawn(check_replica(
            config.clone(),
            hosts.clone(),
            index,
            history.clone(),
        )));
    }
    HealthChecker { tasks }
}

fn ticker(config: &CheckerConfig) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// Keeps the primary's health and position history current.
async fn check_primary(
    config: Arc<CheckerConfig>,
    hosts: Arc<Hosts>,
    history: Arc<Mutex<PrimaryHistory>>,
) {
    let mut probe = Probe::default();
    let mut ticker = ticker(&config);
    loop {
        ticker.tick().await;
        let primary = hosts.primary();
        match probe.check(&config, &primary.addr).await {
            Ok(sample) => {
                if let (false, Some(lsn)) = (sample.in_recovery, sample.lsn) {
                    lock(&history).record(Instant::now(), lsn);
                }
                update(primary, sample, None, None);
            }
            Err(error) => primary.mark_down(&error.to_string()),
        }
    }
}

/// Keeps one replica's health and lag current, measured against the
/// primary's latest sample.
async fn check_replica(
    config: Arc<CheckerConfig>,
    hosts: Arc<Hosts>,
    index: usize,
    history: Arc<Mutex<PrimaryHistory>>,
) {
    let slot = &hosts.replicas()[index];
    let mut probe = Probe::default();
    let mut ticker = ticker(&config);
    loop {
        ticker.tick().await;
        let sample = match probe.check(&config, &slot.addr).await {
            Ok(sample) => sample,
            Err(error) => {
                slot.mark_down(&error.to_string());
                continue;
            }
        };
        // The primary's position, if its last check found it up and a primary.
        let primary = hosts.primary().health();
        let primary_lsn = match (primary.state, primary.in_recovery) {
            (HostState::Up, Some(false)) => primary.wal_lsn,
            _ => None,
        };
        let replayed = sample.lsn;
        let lag_bytes = primary_lsn.zip(replayed).map(|(p, r)| p.bytes_after(r));
        let lag = match (primary_lsn, replayed) {
            (Some(p), Some(r)) if r >= p => Some(Duration::ZERO),
            (_, Some(r)) => lock(&history).lag(Instant::now(), r).or(sample.replay_age),
            (_, None) => sample.replay_age,
        };
        if !sample.in_recovery && slot.health().in_recovery != Some(false) {
            tracing::warn!(host = %slot.addr, "replica is not in recovery (promoted?); no reads go to it");
        }
        update(slot, sample, lag_bytes, lag);
    }
}

/// The history is only touched by checker tasks, never on the hot path; a
/// poisoned lock still holds valid samples.
fn lock(history: &Mutex<PrimaryHistory>) -> std::sync::MutexGuard<'_, PrimaryHistory> {
    history.lock().unwrap_or_else(|p| p.into_inner())
}

fn update(slot: &HostSlot, sample: Sample, lag_bytes: Option<u64>, lag: Option<Duration>) {
    slot.mark_up(Health {
        state: HostState::Up,
        in_recovery: Some(sample.in_recovery),
        wal_lsn: sample.lsn,
        lag_bytes,
        lag,
        consecutive_failures: 0,
        last_error: None,
    });
}

/// What one check learned.
struct Sample {
    in_recovery: bool,
    /// Replay position (standby) or current position (primary).
    lsn: Option<Lsn>,
    /// `now() - pg_last_xact_replay_timestamp()` on a standby.
    replay_age: Option<Duration>,
}

/// The checker's own connection to one host, reopened after any failure.
#[derive(Default)]
struct Probe {
    client: Option<tokio_postgres::Client>,
}

/// One query for both roles: a standby reports its replay position, a
/// primary its current position (the CASE keeps `pg_current_wal_lsn()`,
/// which fails during recovery, from running on a standby).
const CHECK_SQL: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, \
     extract(epoch FROM now() - pg_last_xact_replay_timestamp())";

impl Probe {
    async fn check(
        &mut self,
        config: &CheckerConfig,
        addr: &HostAddr,
    ) -> Result<Sample, CheckError> {
        match tokio::time::timeout(config.timeout, self.check_inner(config, addr)).await {
            Ok(Ok(sample)) => Ok(sample),
            Ok(Err(error)) => {
                self.client = None;
                Err(error)
            }
            Err(_) => {
                self.client = None;
                Err(CheckError::TimedOut(config.timeout))
            }
        }
    }

    async fn check_inner(
        &mut self,
        config: &CheckerConfig,
        addr: &HostAddr,
    ) -> Result<Sample, CheckError> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = Some(connect(config, addr).await?);
        }
        let client = self.client.as_ref().expect("connected above");
        let messages = client
            .simple_query(CHECK_SQL)
            .await
            .map_err(|e| describe(&e))?;
        let row = messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .ok_or(CheckError::NoRow)?;
        let in_recovery = row.get(0) == Some("t");
        let lsn = match row.get(1) {
            Some(text) => Some(text.parse::<Lsn>()?),
            None => None,
        };
        let replay_age = row
            .get(2)
            .and_then(|text| text.parse::<f64>().ok())
            .map(|seconds| Duration::from_secs_f64(seconds.max(0.0)));
        Ok(Sample {
            in_recovery,
            lsn,
            replay_age,
        })
    }
}

async fn connect(
    config: &CheckerConfig,
    addr: &HostAddr,
) -> Result<tokio_postgres::Client, CheckError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&addr.host)
        .port(addr.port)
        .user(&config.user)
        .dbname(&config.dbname)
        .application_name("sluice-health-check")
        .connect_timeout(config.timeout);
    if let Some(password) = &config.password {
        pg.password(password);
    }
    let tls = &config.tls;
    let client = match &tls.config {
        Some(rustls) if tls.mode != crate::tls::SslMode::Allow => {
            pg.ssl_mode(if tls.mode.requires_tls() {
                tokio_postgres::config::SslMode::Require
            } else {
                tokio_postgres::config::SslMode::Prefer
            });
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new((**rustls).clone());
            let (client, connection) = pg.connect(connector).await.map_err(|e| describe(&e))?;
            run_in_background(connection);
            client
        }
        _ => {
            let (client, connection) = pg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| describe(&e))?;
            run_in_background(connection);
            client
        }
    };
    Ok(client)
}

/// Drives a checker connection; the task ends when the client is dropped
/// or the server goes away.
fn run_in_background<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _ = connection.await;
    });
}

/// tokio-postgres's Display hides the server's message behind "db error".
fn describe(error: &tokio_postgres::Error) -> CheckError {
    CheckError::Server(match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    })
}

/// Recent positions of the primary, to turn a replay position into a time.
struct PrimaryHistory {
    samples: VecDeque<(Instant, Lsn)>,
    reach: Duration,
}

impl PrimaryHistory {
    fn new(reach: Duration) -> PrimaryHistory {
        PrimaryHistory {
            samples: VecDeque::new(),
            reach,
        }
    }

    fn record(&mut self, now: Instant, lsn: Lsn) {
        // Keep one sample older than `reach`, so the history always covers it.
        while self.samples.len() >= 2 && now.duration_since(self.samples[1].0) > self.reach {
            self.samples.pop_front();
        }
        // An unchanged position only needs its first sample (idle primary).
        if self.samples.back().is_none_or(|&(_, last)| last != lsn) {
            self.samples.push_back((now, lsn));
        }
    }

    /// How long ago the primary was last at or before `replayed`, i.e. the
    /// replica is at most this far behind. `None` if the history does not
    /// reach back to `replayed`.
    fn lag(&self, now: Instant, replayed: Lsn) -> Option<Duration> {
        // The newest sample the replica has fully replayed; the primary
        // moved past it at the time of the following sample.
        let Some(position) = self.samples.iter().rposition(|&(_, lsn)| lsn <= replayed) else {
            // Behind every sample: at least as old as the oldest, which
            // tells something only once the history spans its full reach.
            let &(oldest, _) = self.samples.front()?;
            let age = now.duration_since(oldest);
            return (age >= self.reach).then_some(age);
        };
        match self.samples.get(position + 1) {
            Some(&(moved_at, _)) => Some(now.duration_since(moved_at)),
            None => Some(Duration::ZERO),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_time_from_the_primarys_position_history() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut history = PrimaryHistory::new(Duration::from_secs(60));
        history.record(at(0), Lsn(100));
        history.record(at(1), Lsn(100)); // idle: same position, not stored twice
        history.record(at(10), Lsn(200));
        history.record(at(20), Lsn(300));
        assert_eq!(history.samples.len(), 3);
        // Replayed everything the primary had: no lag.
        assert_eq!(history.lag(at(21), Lsn(300)), Some(Duration::ZERO));
        // Replayed 200: the primary moved past it at 20 s.
        assert_eq!(history.lag(at(25), Lsn(250)), Some(Duration::from_secs(5)));
        assert_eq!(history.lag(at(25), Lsn(200)), Some(Duration::from_secs(5)));
        assert_eq!(history.lag(at(25), Lsn(150)), Some(Duration::from_secs(15)));
        // Behind the whole history, which does not span its reach yet: unknown.
        assert_eq!(history.lag(at(25), Lsn(50)), None);
        // Old samples go, one older than the reach stays.
        history.record(at(100), Lsn(400));
        assert_eq!(history.samples.front().map(|s| s.1), Some(Lsn(300)));
        assert_eq!(history.lag(at(100), Lsn(50)), Some(Duration::from_secs(80)));
        assert_eq!(
            PrimaryHistory::new(Duration::from_secs(1)).lag(at(0), Lsn(1)),
            None
        );
    }
}
