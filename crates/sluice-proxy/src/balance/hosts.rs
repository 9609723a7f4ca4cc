//! Host health and replica choice.
//!
//! [`Hosts`] is the shared table the gateway reads on every statement: per
//! host the last health check ([`Health`], swapped in whole through
//! `arc-swap`, so readers never take a lock) and counters of statements in
//! flight and served (atomics). [`choose`] is the pure decision: given each
//! replica's state, the client's required WAL position and the lag limits,
//! use the least busy replica that qualifies (round robin among ties) or
//! say why the primary must serve. The health checker (`super::health`)
//! keeps the table fresh.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::config::{HostAddr, LoadBalancing};
use super::lsn::Lsn;
use super::sticky::UNKNOWN_POSITION;

/// The last known health of one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub state: HostState,
    /// `pg_is_in_recovery()`: true for a hot standby.
    pub in_recovery: Option<bool>,
    /// Replica: `pg_last_wal_replay_lsn()`; primary: `pg_current_wal_lsn()`.
    pub wal_lsn: Option<Lsn>,
    /// Replica only: bytes of WAL behind the primary (unknown if the
    /// primary could not be checked).
    pub lag_bytes: Option<u64>,
    /// Replica only: how long ago the primary was at the replayed position.
    pub lag: Option<Duration>,
    /// Failed checks in a row (0 when up).
    pub consecutive_failures: u32,
    /// Why the last check failed, for `SHOW sluice.hosts` and logs.
    pub last_error: Option<String>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            state: HostState::Unknown,
            in_recovery: None,
            wal_lsn: None,
            lag_bytes: None,
            lag: None,
            consecutive_failures: 0,
            last_error: None,
        }
    }
}

/// Whether a host answered its last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Not checked yet: not used for reads.
    Unknown,
    Up,
    Down,
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostState::Unknown => "unknown",
            HostState::Up => "up",
            HostState::Down => "down",
        })
    }
}

/// The lag limits of `[load_balancing]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_lag_bytes: u64,
    pub max_lag: Duration,
}

impl From<&LoadBalancing> for Limits {
    fn from(config: &LoadBalancing) -> Limits {
        Limits {
            max_lag_bytes: config.max_replication_lag_bytes,
            max_lag: config.max_replication_lag_time,
        }
    }
}

/// One replica as [`choose`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Answered its last check.
    pub up: bool,
    /// Is a standby (a promoted replica is not used for reads).
    pub in_recovery: bool,
    pub replay_lsn: Option<Lsn>,
    pub lag_bytes: Option<u64>,
    pub lag: Option<Duration>,
    /// Statements running on it now.
    pub in_flight: usize,
}

impl Candidate {
    /// A replica never checked: never chosen.
    pub const UNCHECKED: Candidate = Candidate {
        up: false,
        in_recovery: false,
        replay_lsn: None,
        lag_bytes: None,
        lag: None,
        in_flight: 0,
    };

    pub fn new(health: &Health, in_flight: usize) -> Candidate {
        Candidate {
            up: health.state == HostState::Up,
            in_recovery: health.in_recovery == Some(true),
            replay_lsn: health.wal_lsn,
            lag_bytes: health.lag_bytes,
            lag: health.lag,
            in_flight,
        }
    }

    fn usable(&self) -> bool {
        self.up && self.in_recovery && self.replay_lsn.is_some()
    }

    fn within(&self, limits: &Limits) -> bool {
        self.lag_bytes
            .is_none_or(|bytes| bytes <= limits.max_lag_bytes)
            && self.lag.is_none_or(|lag| lag <= limits.max_lag)
    }

    fn caught_up(&self, required: Option<Lsn>) -> bool {
        match (required, self.replay_lsn) {
            (None, _) => true,
            (Some(required), Some(replayed)) => replayed >= required,
            (Some(_), None) => false,
        }
    }
}

/// Where a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The replica at this index.
    Replica(usize),
    /// The primary, because no replica qualifies.
    Primary(NoReplica),
}

/// Why no replica can serve a read, from the first unmet condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReplica {
    /// The database has no replicas.
    NoneConfigured,
    /// The sticky store could not tell the client's position.
    StickyUnknown,
    /// Every replica is down, unchecked or out of recovery.
    NoneHealthy,
    /// Every healthy replica is past the lag limits.
    TooFarBehind,
    /// No healthy replica has replayed the client's last write yet.
    NotCaughtUp,
}

impl fmt::Display for NoReplica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoReplica::NoneConfigured => "no replicas configured",
            NoReplica::StickyUnknown => "sticky position unknown",
            NoReplica::NoneHealthy => "no healthy replica",
            NoReplica::TooFarBehind => "every replica is too far behind",
            NoReplica::NotCaughtUp => "no replica has replayed the last write yet",
        })
    }
}

/// Picks the least busy replica that is up, in recovery, within the lag
/// limits and at or past `required`; among equally busy ones the
/// `turn`-th (the caller passes an ever-increasing counter, which makes
/// ties go round robin).
pub fn choose(
    replicas: &[Candidate],
    required: Option<Lsn>,
    limits: &Limits,
    turn: usize,
) -> Choice {
    if replicas.is_empty() {
        return Choice::Primary(NoReplica::NoneConfigured);
    }
    if required == Some(UNKNOWN_POSITION) {
        return Choice::Primary(NoReplica::StickyUnknown);
    }
    let mut reason = NoReplica::NoneHealthy;
    let mut least_busy = usize::MAX;
    let mut ties = 0;
    for candidate in replicas {
        if !candidate.usable() {
            continue;
        }
        if !candidate.within(limits) {
            reason = reason_max(reason, NoReplica::TooFarBehind);
            continue;
        }
        if !candidate.caught_up(required) {
            reason = NoReplica::NotCaughtUp;
            continue;
        }
        if candidate.in_flight < least_busy {
            least_busy = candidate.in_flight;
            ties = 1;
        } else if candidate.in_flight == least_busy {
            ties += 1;
        }
    }
    if ties == 0 {
        return Choice::Primary(reason);
    }
    let mut pick = turn % ties;
    for (index, candidate) in replicas.iter().enumerate() {
        let qualifies = candidate.usable()
            && candidate.within(limits)
            && candidate.caught_up(required)
            && candidate.in_flight == least_busy;
        if qualifies {
            if pick == 0 {
                return Choice::Replica(index);
            }
            pick -= 1;
        }
    }
    unreachable!("a counted tie was not found again")
}

/// The further-along of two reasons (NotCaughtUp > TooFarBehind > NoneHealthy).
fn reason_max(a: NoReplica, b: NoReplica) -> NoReplica {
    let rank = |r: NoReplica| match r {
        NoReplica::NotCaughtUp => 2,
        NoReplica::TooFarBehind => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// One host in the shared table.
pub struct HostSlot {
    pub addr: HostAddr,
    health: ArcSwap<Health>,
    in_flight: AtomicUsize,
    served: AtomicU64,
}

impl HostSlot {
    fn new(addr: HostAddr) -> HostSlot {
        HostSlot {
            addr,
            health: ArcSwap::from_pointee(Health::default()),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// The last check's result (a cheap, lock-free snapshot).
    pub fn health(&self) -> Arc<Health> {
        self.health.load_full()
    }

    /// Statements running on this host now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Statements sent to this host so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    fn set_health(&self, health: Health) {
        self.health.store(Arc::new(health));
    }

    /// Records a failed check (or connection): the host is out of rotation
    /// until a check succeeds.
    pub fn mark_down(&self, error: &str) {
        let previous = self.health();
        if previous.state != HostState::Down {
            tracing::warn!(host = %self.addr, "host is down: {error}");
        }
        self.set_health(Health {
            state: HostState::Down,
            consecutive_failures: previous.consecutive_failures.saturating_add(1),
            last_error: Some(error.to_owned()),
            ..Health::default()
        });
    }

    /// Records a successful check.
    pub fn mark_up(&self, health: Health) {
        if self.health().state == HostState::Down {
            tracing::info!(host = %self.addr, "host is up again");
        }
        self.set_health(health);
    }
}

/// The primary and replicas of one database, shared by the gateway's
/// sessions and the health checker.
pub struct Hosts {
    primary: HostSlot,
    replicas: Box<[HostSlot]>,
    turn: AtomicUsize,
}

impl Hosts {
    pub fn new(primary: HostAddr, replicas: Vec<HostAddr>) -> Hosts {
        Hosts {
            primary: HostSlot::new(primary),
            replicas: replicas.into_iter().map(HostSlot::new).collect(),
            turn: AtomicUsize::new(0),
        }
    }

    pub fn primary(&self) -> &HostSlot {
        &self.primary
    }

    pub fn replicas(&self) -> &[HostSlot] {
        &self.replicas
    }

    /// Chooses where a read with this sticky requirement goes (see [`choose`]).
    /// Lock-free, and allocation-free for up to 16 replicas.
    pub fn choose(&self, required: Option<Lsn>, limits: &Limits) -> Choice {
        self.choose_turn(required, limits, true)
    }

    /// [`Hosts::choose`], taking the next round-robin turn only if `advance`.
    /// A request that runs nothing (a client's Parse/Describe/Sync before
    /// its Bind/Execute/Sync, as tokio-postgres sends for every query) takes
    /// no turn: it then lands where its execution will, and two requests per
    /// query do not make every execution land on the same one of two replicas.
    pub fn choose_turn(&self, required: Option<Lsn>, limits: &Limits, advance: bool) -> Choice {
        const INLINE: usize = 16;
        let turn = if advance {
            self.turn.fetch_add(1, Ordering::Relaxed)
        } else {
            self.turn.load(Ordering::Relaxed)
        };
        let candidate = |slot: &HostSlot| Candidate::new(&slot.health.load(), slot.in_flight());
        if self.replicas.len() <= INLINE {
            let mut buffer = [Candidate::UNCHECKED; INLINE];
            for (entry, slot) in buffer.iter_mut().zip(self.replicas.iter()) {
                *entry = candidate(slot);
            }
            choose(&buffer[..self.replicas.len()], required, limits, turn)
        } else {
            let candidates: Vec<Candidate> = self.replicas.iter().map(candidate).collect();
            choose(&candidates, required, limits, turn)
        }
    }

    /// One row per host (primary first) for `SHOW sluice.hosts`.
    pub fn rows(&self) -> Vec<HostRow> {
        let row = |role: &'static str, slot: &HostSlot| {
            let health = slot.health();
            HostRow {
                role,
                addr: slot.addr.to_string(),
                state: health.state,
                in_recovery: health.in_recovery,
                wal_lsn: health.wal_lsn,
                lag_bytes: health.lag_bytes,
                lag_seconds: health.lag.map(|lag| lag.as_secs_f64()),
                in_flight: slot.in_flight(),
                served: slot.served(),
                last_error: health.last_error.clone(),
            }
        };
        std::iter::once(row("primary", &self.primary))
            .chain(self.replicas.iter().map(|slot| row("replica", slot)))
            .collect()
    }

    /// Counts a statement on replica `index` until the guard drops. The
    /// guard owns a handle to the table, so it can live in a session.
    pub fn start_on_replica(self: &Arc<Self>, index: usize) -> InFlight {
        InFlight::new(self.clone(), Some(index))
    }

    /// Counts a statement on the primary until the guard drops.
    pub fn start_on_primary(self: &Arc<Self>) -> InFlight {
        InFlight::new(self.clone(), None)
    }

    fn slot(&self, replica: Option<usize>) -> &HostSlot {
        match replica {
            Some(index) => &self.replicas[index],
            None => &self.primary,
        }
    }

    /// Takes replica `index` out of rotation at once, e.g. after the
    /// gateway failed to connect to it; the next successful check brings
    /// it back.
    pub fn mark_replica_down(&self, index: usize, error: &str) {
        self.replicas[index].mark_down(error);
    }
}

/// One host as `SHOW sluice.hosts` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRow {
    /// `"primary"` or `"replica"`.
    pub role: &'static str,
    /// `host:port`.
    pub addr: String,
    pub state: HostState,
    pub in_recovery: Option<bool>,
    /// Replay position (replica) or current position (primary).
    pub wal_lsn: Option<Lsn>,
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<f64>,
    pub in_flight: usize,
    /// Statements served so far.
    pub served: u64,
    pub last_error: Option<String>,
}

/// A statement in flight on a host; decrements the count when dropped.
pub struct InFlight {
    hosts: Arc<Hosts>,
    /// The replica's index, or `None` for the primary.
    replica: Option<usize>,
}

impl InFlight {
    fn new(hosts: Arc<Hosts>, replica: Option<usize>) -> InFlight {
        let slot = hosts.slot(replica);
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        slot.served.fetch_add(1, Ordering::Relaxed);
        InFlight { hosts, replica }
    }

    /// The replica's index, or `None` for the primary.
    pub fn replica(&self) -> Option<usize> {
        self.replica
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.hosts
            .slot(self.replica)
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
