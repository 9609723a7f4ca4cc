//! One client session's load-balancing state: where its requests go, what
//! it wrote, and how a failed replica is retried. It exists only for
//! databases with replicas while `load_balancing.enabled` (boxed: most
//! sessions have none).
//!
//! The session (`frontend`) asks it, in the order of a request's life:
//! 1. [`request::classify`]: the combined verdict of the pending client
//!    messages (or a `sluice.*` command for the gateway to answer);
//! 2. [`Balancing::choose`] with the sticky requirement
//!    ([`Balancing::sticky_requirement`]): a replica, or the primary;
//! 3. [`Balancing::started`] once a server is checked out;
//! 4. as messages go out, [`Balancing::note_writes`], [`super::retry::Retry::keep`] and
//!    [`Balancing::probe_fits`] (append the WAL position query?);
//! 5. as answers come back, [`Balancing::hold_ready`] and the probe's
//!    answer; then [`Balancing::finish_write`] records the position.
//!
//! A transaction that wrote on the primary goes through [`WritePhase`]:
//! its position is read before the client hears `ReadyForQuery`, by a query
//! appended to the request that ends it when that request can be told
//! apart, else by a separate round trip.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::classify::{Classification, Classifier, Effect, RouteSetting, SluiceCommand};
use super::config::StickyMode;
use super::hosts::{Choice, InFlight, Limits};
use super::lsn::Lsn;
use super::request::{self, Classified};
use super::retry::{Resend, Retry};
use super::route::{self, SessionRouting, Target};
use super::sticky::{AnyStore, StickyStore};
use crate::backend::ServerConn;
use crate::config::PoolMode;
use crate::pool::Pool;
use crate::protocol::{sqlstate, TxStatus};
use crate::router::BalancedDatabase;
use crate::statements::ClientStatements;

/// The gateway's query for the primary's WAL position after a write.
pub const WAL_POSITION_SQL: &str = "SELECT pg_current_wal_insert_lsn()";

/// One session's load-balancing state.
pub struct Balancing {
    pub db: Arc<BalancedDatabase>,
    /// This (database, user)'s pool on each replica, by replica index.
    replica_pools: Box<[Arc<Pool>]>,
    user: String,
    /// Prefix of this session's application sticky keys (the database).
    database: String,
    pub routing: SessionRouting,
    /// `sluice.sticky_key` (used with `sticky = "key"`).
    pub sticky_key: Option<String>,
    /// Session pooling: the session asked to be read-only, so a replica may serve it.
    read_only_session: bool,
    /// This connection's last write: its WAL position and when it was recorded.
    pub last_write: Option<(Lsn, Instant)>,
    /// The current server: `None` for the primary, `Some(i)` for replica `i`.
    pub on_replica: Option<usize>,
    in_flight: Option<InFlight>,
    pub writes: WritePhase,
    /// The pending client bytes up to here were looked at for writes.
    classified: usize,
    pub retry: Retry,
}

/// Where a transaction on the primary stands with respect to recording the
/// position of its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePhase {
    /// Nothing sent on the current server since the last recorded position
    /// may have written.
    Clean,
    /// A request on the primary may have written: the position is recorded
    /// when the transaction ends.
    Wrote,
    /// The position query rides right behind the request that ends the
    /// transaction. `wrote_since`: a request sent after it may have
    /// written too (it belongs to the next transaction).
    Probing { probe: LsnProbe, wrote_since: bool },
    /// The client's final ReadyForQuery is held back while the position is
    /// read on a separate round trip.
    Held,
}

/// The gateway's `SELECT pg_current_wal_insert_lsn()`, sent in the same
/// write right behind a request that ends a writing transaction on the
/// primary, so that reading the position costs no extra round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LsnProbe {
    /// Its batch on the server connection: the client's final
    /// ReadyForQuery ends the batch before it.
    pub batch: u64,
    /// The status of the client's final ReadyForQuery, held back until the
    /// position is recorded.
    pub client_status: Option<TxStatus>,
    /// The position read (`None` until its DataRow, or if it failed).
    pub lsn: Option<Lsn>,
    /// Its own ReadyForQuery arrived: nothing more of it will come.
    pub answered: bool,
}

/// A startup setting that is not valid for the gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadSetting {
    pub code: &'static str,
    pub message: String,
}

impl Balancing {
    /// The state of a new session on `db`, with the gateway settings the
    /// client gave at startup (`sluice.*`, `target_session_attrs`).
    pub fn new(
        db: &Arc<BalancedDatabase>,
        replica_pools: Box<[Arc<Pool>]>,
        database: &str,
        user: &str,
        read_only_session: bool,
        gateway_settings: &[(String, String)],
    ) -> Result<Balancing, BadSetting> {
        let mut balancing = Balancing {
            db: db.clone(),
            replica_pools,
            user: user.to_owned(),
            database: database.to_owned(),
            routing: SessionRouting::default(),
            sticky_key: None,
            read_only_session,
            last_write: None,
            on_replica: None,
            in_flight: None,
            writes: WritePhase::Clean,
            classified: 0,
            retry: Retry::default(),
        };
        for (name, value) in gateway_settings {
            let bad = |what: &str| BadSetting {
                code: sqlstate::INVALID_PARAMETER_VALUE,
                message: format!("invalid value for {name}: {what}"),
            };
            match name.as_str() {
                "target_session_attrs" => {
                    balancing.read_only_session |=
                        matches!(value.as_str(), "read-only" | "standby" | "prefer-standby");
                }
                "sluice.sticky_key" => {
                    balancing.sticky_key = Some(value.clone()).filter(|k| !k.is_empty())
                }
                "sluice.route" => {
                    balancing.routing.route = match value.as_str() {
                        "auto" => RouteSetting::Auto,
                        "primary" => RouteSetting::Primary,
                        "replica" => RouteSetting::Replica,
                        _ => return Err(bad("expected auto, primary or replica")),
                    }
                }
                "sluice.min_lsn" => {
                    balancing.routing.min_lsn = Some(
                        value
                            .parse()
                            .map_err(|_| bad("expected a WAL position like 0/16B3748"))?,
                    )
                }
                other => {
                    return Err(BadSetting {
                        code: sqlstate::UNDEFINED_OBJECT,
                        message: format!("unrecognized configuration parameter \"{other}\""),
                    })
                }
            }
        }
        Ok(balancing)
    }

    /// The pool of replica `index`, or `None` for the primary's.
    pub fn replica_pool(&self, replica: Option<usize>) -> Option<&Arc<Pool>> {
        replica.map(|index| &self.replica_pools[index])
    }

    /// The position this connection's own last write requires, within the TTL.
    fn own_position(&self, ttl: Duration) -> Option<Lsn> {
        self.last_write
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(lsn, _)| lsn)
    }

    /// This session's key in the sticky store (`sticky = "key"`).
    fn store_key(&self) -> Option<String> {
        self.sticky_key
            .as_ref()
            .map(|key| format!("{}/{key}", self.database))
    }

    /// The WAL position a replica must have replayed to serve this
    /// session's reads (`None`: any replica may).
    pub async fn sticky_requirement(&self, store: Option<&AnyStore>) -> Option<Lsn> {
        let config = &self.db.config;
        match config.sticky {
            StickyMode::Off => None,
            StickyMode::Connection => self.own_position(config.sticky_ttl),
            StickyMode::Key => {
                let own = self.own_position(config.sticky_ttl);
                match (self.store_key(), store) {
                    (Some(key), Some(store)) => store.required_lsn(&key).await.max(own),
                    _ => own,
                }
            }
        }
    }

    /// Where a request with this verdict goes: `Some(i)` for replica `i`,
    /// `None` for the primary. `executes`: the request runs something (a
    /// request that only prepares takes no round-robin turn).
    pub fn choose(
        &self,
        mode: PoolMode,
        verdict: &Classification,
        sticky: Option<Lsn>,
        executes: bool,
    ) -> Option<usize> {
        let config = &self.db.config;
        if self.retry.replica_failures > self.replica_pools.len() {
            return None;
        }
        if mode == PoolMode::Session {
            // Session pooling routes the whole session at once.
            if !self.read_only_session || config.is_primary_only(&self.user) {
                return None;
            }
            let choice = self.db.hosts.choose(None, &Limits::from(config));
            self.db.reads.count(choice);
            return match choice {
                Choice::Replica(index) => Some(index),
                Choice::Primary(_) => None,
            };
        }
        let target = route::target(
            config,
            &self.user,
            &self.routing,
            verdict,
            sticky,
            &self.db.hosts,
            executes,
        );
        if executes {
            // (A request that only prepares is routed again when it runs.)
            self.db.reads.count_target(target);
        }
        match target {
            Target::Replica(index) => Some(index),
            Target::Primary(why) => {
                tracing::trace!(%why, "to the primary");
                None
            }
        }
    }

    /// A server was checked out on `replica` (`None`: the primary) for a
    /// request that may write (`writes`); `pending` bytes were classified.
    pub fn started(&mut self, replica: Option<usize>, writes: bool, pending: usize) {
        self.on_replica = replica;
        self.in_flight = Some(match replica {
            Some(index) => self.db.hosts.start_on_replica(index),
            None => self.db.hosts.start_on_primary(),
        });
        self.writes = if replica.is_none() && writes {
            WritePhase::Wrote
        } else {
            WritePhase::Clean
        };
        self.classified = pending;
        self.retry.sent = false;
    }

    /// A replica could not be connected to: out of rotation until a check
    /// finds it healthy.
    pub fn replica_unreachable(&mut self, index: usize, error: &str) {
        self.db.hosts.mark_replica_down(index, error);
        self.retry.replica_failures += 1;
    }

    /// The server went back to the pool: the next request starts afresh.
    pub fn released(&mut self) {
        self.in_flight = None;
        self.retry.done();
    }

    /// The replica failed before answering: it is marked down; the
    /// request to send elsewhere is returned.
    pub fn replica_failed(&mut self, reason: &str) -> Option<Resend> {
        if let Some(index) = self.on_replica.take() {
            self.db.hosts.mark_replica_down(index, reason);
        }
        self.in_flight = None;
        tracing::info!(
            reason,
            "replica failed before answering; sending the request elsewhere"
        );
        self.retry.take_resend()
    }

    /// `len` pending client bytes were consumed.
    pub fn consumed(&mut self, len: usize) {
        self.classified = self.classified.saturating_sub(len);
    }

    /// Notes whether client messages about to go to the primary may write
    /// (so the transaction's position is recorded when it ends).
    pub fn note_writes(
        &mut self,
        classifier: &Classifier,
        statements: &ClientStatements,
        pending: &[u8],
    ) {
        let already = match self.writes {
            WritePhase::Wrote | WritePhase::Held => true,
            WritePhase::Probing { wrote_since, .. } => wrote_since,
            WritePhase::Clean => false,
        };
        if self.on_replica.is_some() || already || self.classified >= pending.len() {
            return;
        }
        let from = self.classified;
        let may_write = crate::frontend::request::runs_something(&pending[from..])
            && match request::classify(classifier, statements, pending, from) {
                Ok(Classified::Route(verdict)) => verdict.may_write,
                _ => true,
            };
        if may_write {
            self.writes = match self.writes {
                WritePhase::Probing { probe, .. } => WritePhase::Probing {
                    probe,
                    wrote_since: true,
                },
                _ => WritePhase::Wrote,
            };
        }
        self.classified = pending.len();
    }

    /// Whether the pending request may carry the gateway's position query
    /// right behind it (so no extra round trip after it). Only when the
    /// request surely ends a transaction that wrote, and its answer is
    /// surely one batch ending in ReadyForQuery:
    /// - the server is idle, with nothing outstanding, sticky reads are on,
    ///   and this session wrote on the primary;
    /// - the request is one simple `Query`, or extended-protocol messages
    ///   with one Bind, one Execute and a final Sync, of one statement
    ///   parsed with certainty that is not `COPY` (data would follow it);
    /// - outside a transaction: the statement does not begin or end one
    ///   (it runs on its own, the server is idle after it); inside one:
    ///   it is `COMMIT`/`END`/`ROLLBACK`/`ABORT` (without `AND CHAIN`).
    ///
    /// Everything else (multi-statement strings, pipelined batches, COPY,
    /// function calls, unclassifiable text, a writing statement inside an
    /// explicit transaction) keeps the separate round trip once the server
    /// reports the transaction over: appending a query there could run it
    /// inside the client's transaction (taking its snapshot before a
    /// `SET TRANSACTION`) or in the middle of a COPY.
    ///
    /// The appended simple `Query` drops the server's unnamed prepared
    /// statement, as the client's own next simple query would. A client
    /// cannot rely on it past the end of its transaction in transaction
    /// pooling anyway: its next request may get another server connection.
    pub fn probe_fits(
        &self,
        classifier: &Classifier,
        statements: &ClientStatements,
        request: &[u8],
        srv: &ServerConn,
    ) -> bool {
        let fits = self.db.config.sticky != StickyMode::Off
            && self.on_replica.is_none()
            && self.writes == WritePhase::Wrote
            && srv.outstanding.idle()
            && !srv.copy_in
            && srv.streaming == 0
            && srv.rbuf.is_empty();
        if !fits {
            return false;
        }
        let Some(statement) = request::lone_request_statement(classifier, statements, request)
        else {
            return false;
        };
        if !statement.lone_statement {
            return false;
        }
        match srv.status {
            TxStatus::Idle => !statement.effects.iter().any(|effect| {
                matches!(
                    effect,
                    Effect::Begin { .. } | Effect::Commit | Effect::Rollback
                )
            }),
            TxStatus::InTransaction | TxStatus::Failed => {
                matches!(statement.effects[..], [Effect::Commit] | [Effect::Rollback])
            }
        }
    }

    /// The position query was appended behind a request as batch `batch`.
    pub fn probe_sent(&mut self, batch: u64) {
        self.writes = WritePhase::Probing {
            probe: LsnProbe {
                batch,
                client_status: None,
                lsn: None,
                answered: false,
            },
            // Writes sent after this request belong to the next transaction.
            wrote_since: false,
        };
        self.db
            .lsn_reads
            .pipelined
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The appended position query, while its answer is awaited.
    pub fn probe(&mut self) -> Option<&mut LsnProbe> {
        match &mut self.writes {
            WritePhase::Probing { probe, .. } => Some(probe),
            _ => None,
        }
    }

    /// At a ReadyForQuery: is this the end of a transaction that wrote on
    /// the primary (idle, nothing else owed, sticky on)? Then the client
    /// must not see it before the write's position is recorded.
    pub fn hold_ready(&mut self, srv: &ServerConn) -> bool {
        let hold = self.db.config.sticky != StickyMode::Off
            && self.writes == WritePhase::Wrote
            && self.on_replica.is_none()
            && srv.status == TxStatus::Idle
            && srv.outstanding.idle();
        if hold {
            self.writes = WritePhase::Held;
        }
        hold
    }

    /// Whether a position is ready to record and the client's ReadyForQuery
    /// waits for it: `Some(true)` when the appended position query has
    /// answered, `Some(false)` when it must be read on a separate round trip.
    pub fn write_to_record(&self) -> Option<bool> {
        match self.writes {
            WritePhase::Probing { probe, .. } if probe.answered => Some(true),
            WritePhase::Held => Some(false),
            _ => None,
        }
    }

    /// The position of a transaction's writes is known (or could not be
    /// read: `UNKNOWN_POSITION`); `status` is the client's final
    /// ReadyForQuery's. Returns the store key to record it under, if any.
    /// A transaction still open ('T', 'E': the request did not end it
    /// after all) records nothing: the commit still to come will.
    pub fn finish_write(&mut self, status: TxStatus, lsn: Lsn) -> Option<String> {
        let wrote_since = matches!(
            self.writes,
            WritePhase::Probing {
                wrote_since: true,
                ..
            }
        );
        if status != TxStatus::Idle {
            // The transaction goes on, and it wrote.
            self.writes = WritePhase::Wrote;
            return None;
        }
        self.writes = if wrote_since {
            WritePhase::Wrote
        } else {
            WritePhase::Clean
        };
        self.last_write = Some((lsn, Instant::now()));
        self.store_key()
    }

    /// Applies `SET`/`RESET sluice.*` commands.
    pub fn apply(&mut self, command: &SluiceCommand) {
        match command {
            SluiceCommand::SetRoute(setting) => self.routing.route = *setting,
            SluiceCommand::SetStickyKey(key) => {
                self.sticky_key = key.clone().filter(|k| !k.is_empty())
            }
            SluiceCommand::SetMinLsn(lsn) => self.routing.min_lsn = *lsn,
            SluiceCommand::Show(_) | SluiceCommand::Invalid(_) => {}
        }
    }
}
