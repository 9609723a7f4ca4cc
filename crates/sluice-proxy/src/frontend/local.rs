//! Requests the gateway answers itself, without a server (pgdog's
//! `query_engine`, one answer each):
//! - SQL-level `PREPARE` in transaction pooling: refused with a clear
//!   error (the statement would stay on whichever server ran it);
//! - a request of only named Parse messages and a Sync (libpq's
//!   `PQprepare`): answered at once, the statements prepared on a server at
//!   their first Bind or Describe (a round trip saved, and a client that
//!   prepares synchronously, like `pgbench -M prepared`, never waits for a
//!   server connection its own thread's other clients hold);
//! - `SET`/`RESET`/`SHOW sluice.*` with load balancing (simple query
//!   protocol, on their own; anything else mixing them is refused).
//!
//! Deciding is synchronous ([`Session::intercept`]); the answer is left in
//! the session's scratch buffer for the loop to write.

use std::sync::atomic::Ordering::Relaxed;

use super::{ClientError, ClientStream, Session};
use crate::balance::classify::{
    Classification, Effect, RouteSetting, SluiceCommand, SluiceSetting,
};
use crate::balance::hosts::Hosts;
use crate::balance::request::{self, Classified};
use crate::balance::Lsn;
use crate::config::PoolMode;
use crate::protocol::{self, client_tag, server_tag, sqlstate, Frontend, Messages, TxStatus};

/// What [`Session::intercept`] decided about the pending request.
#[derive(Debug)]
pub(super) enum Intercept {
    /// The gateway answered (the answer is in `scratch`); the first
    /// `consumed` pending bytes are done with.
    Answered { consumed: usize },
    /// It needs a server; with load balancing, the verdict on where it may run.
    Forward(Option<Classification>),
}

impl<S: ClientStream> Session<S> {
    /// Answers the pending request if the gateway itself should, else says
    /// where it may run.
    pub(super) fn intercept(&mut self) -> Result<Intercept, ClientError> {
        if self.mode == PoolMode::Transaction {
            if let Some(consumed) = self.refuse_sql_prepare() {
                return Ok(Intercept::Answered { consumed });
            }
            if let Some(consumed) = self.defer_parse()? {
                return Ok(Intercept::Answered { consumed });
            }
        }
        match (self.balancing.is_some(), self.mode) {
            (false, _) => Ok(Intercept::Forward(None)),
            (true, PoolMode::Transaction) => self.sluice_commands(),
            // Session pooling routes the whole session at once.
            (true, PoolMode::Session) => Ok(Intercept::Forward(Some(Classification::read()))),
        }
    }

    /// SQL-level PREPARE cannot work in transaction pooling (the statement
    /// would stay on whichever server ran it): answer it with a clear error.
    fn refuse_sql_prepare(&mut self) -> Option<usize> {
        if self.conn.buf[0] != client_tag::QUERY {
            return None;
        }
        let query = self.conn.lone_message()?;
        if !is_sql_prepare(query.body()) {
            return None;
        }
        protocol::error_response(
            &mut self.scratch,
            "ERROR",
            sqlstate::FEATURE_NOT_SUPPORTED,
            "SQL PREPARE is not supported in transaction pooling mode: \
             use protocol-level prepared statements (they work transparently) or pool_mode = \"session\"",
        );
        protocol::ready_for_query(&mut self.scratch, TxStatus::Idle);
        Some(query.end())
    }

    /// A request of only named Parse messages and a final Sync is answered
    /// here: the statements are registered, to be prepared on a server at
    /// their first Bind or Describe.
    fn defer_parse(&mut self) -> Result<Option<usize>, ClientError> {
        if !(self.rename_statements && self.conn.has_named && self.conn.request_complete()) {
            return Ok(None);
        }
        let pending = self.conn.pending();
        let mut parses = 0;
        for message in Messages::new(pending) {
            match protocol::decode_frontend(message.bytes)? {
                Frontend::Parse { name, .. } if !name.is_empty() => parses += 1,
                Frontend::Sync if message.end() == pending.len() => {}
                _ => return Ok(None),
            }
        }
        if parses == 0 {
            return Ok(None);
        }
        for message in Messages::new(pending) {
            if let Frontend::Parse {
                name,
                query,
                param_types,
            } = protocol::decode_frontend(message.bytes)?
            {
                let statement = super::new_statement(
                    &self.shared,
                    self.balancing.is_some(),
                    query,
                    param_types,
                );
                self.statements.register(name, statement);
                self.pool.stats.client_parse_count.fetch_add(1, Relaxed);
                protocol::empty_message(&mut self.scratch, server_tag::PARSE_COMPLETE);
            }
        }
        protocol::ready_for_query(&mut self.scratch, TxStatus::Idle);
        Ok(Some(pending.len()))
    }

    /// With load balancing: the verdict of the pending request, or the
    /// gateway's answer to a `SET`/`SHOW sluice.*` string.
    fn sluice_commands(&mut self) -> Result<Intercept, ClientError> {
        let classified = request::classify(
            &self.shared.router.classifier,
            &self.statements,
            self.conn.pending(),
            0,
        )?;
        let consumed = self.conn.request_end;
        match classified {
            Classified::Route(verdict) => return Ok(Intercept::Forward(Some(verdict))),
            Classified::Refuse(message) => {
                protocol::error_response(
                    &mut self.scratch,
                    "ERROR",
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    message,
                );
                protocol::ready_for_query(&mut self.scratch, TxStatus::Idle);
            }
            Classified::Gateway(verdict) => self.answer_sluice(&verdict),
        }
        Ok(Intercept::Answered { consumed })
    }

    /// The gateway's own answer to a string of `SET`/`SHOW sluice.*`.
    fn answer_sluice(&mut self, verdict: &Classification) {
        let out = &mut self.scratch;
        if let Some(message) = verdict.sluice_error() {
            protocol::error_response(out, "ERROR", sqlstate::INVALID_PARAMETER_VALUE, message);
            protocol::ready_for_query(out, TxStatus::Idle);
            return;
        }
        let lb = self.balancing.as_mut().expect("only with load balancing");
        for effect in &verdict.effects {
            let Effect::Sluice(command) = effect else {
                continue;
            };
            let SluiceCommand::Show(setting) = command else {
                lb.apply(command);
                protocol::command_complete(out, "SET");
                continue;
            };
            let value = match setting {
                SluiceSetting::Route => match lb.routing.route {
                    RouteSetting::Auto => "auto".to_string(),
                    RouteSetting::Primary => "primary".to_string(),
                    RouteSetting::Replica => "replica".to_string(),
                },
                SluiceSetting::StickyKey => lb.sticky_key.clone().unwrap_or_default(),
                SluiceSetting::MinLsn => lb
                    .routing
                    .min_lsn
                    .map_or_else(String::new, |lsn| lsn.to_string()),
                SluiceSetting::LastWriteLsn => {
                    lb.last_write.map_or(Lsn(0), |(lsn, _)| lsn).to_string()
                }
                SluiceSetting::Hosts => {
                    protocol::text_result(out, HOSTS_COLUMNS, &hosts_rows(&lb.db.hosts), "SHOW");
                    continue;
                }
            };
            protocol::text_result(out, &[setting.name()], &[vec![Some(value)]], "SHOW");
        }
        protocol::ready_for_query(out, TxStatus::Idle);
    }
}

/// True for a simple query that is SQL-level `PREPARE` (comments and spaces skipped).
pub fn is_sql_prepare(sql: &[u8]) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_ascii_start();
        if rest.starts_with(b"--") {
            rest = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |i| &rest[i + 1..]);
        } else if rest.starts_with(b"/*") {
            rest = rest
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(&[][..], |i| &rest[i + 2..]);
        } else {
            break;
        }
    }
    if !(rest.len() > 7
        && rest[..7].eq_ignore_ascii_case(b"prepare")
        && rest[7].is_ascii_whitespace())
    {
        return false;
    }
    // PREPARE TRANSACTION (two-phase commit) ends a transaction: it is fine.
    let next = rest[8..].trim_ascii_start();
    !(next.len() >= 11 && next[..11].eq_ignore_ascii_case(b"transaction"))
}

/// The columns of `SHOW sluice.hosts`.
pub const HOSTS_COLUMNS: &[&str] = &[
    "role",
    "host",
    "state",
    "in_recovery",
    "wal_lsn",
    "lag_bytes",
    "lag_seconds",
    "in_flight",
    "served",
    "last_error",
];

/// The rows of `SHOW sluice.hosts` for one database.
pub fn hosts_rows(hosts: &Hosts) -> Vec<Vec<Option<String>>> {
    hosts
        .rows()
        .into_iter()
        .map(|row| {
            vec![
                Some(row.role.to_string()),
                Some(row.addr),
                Some(row.state.to_string()),
                row.in_recovery
                    .map(|r| if r { "t" } else { "f" }.to_string()),
                row.wal_lsn.map(|l| l.to_string()),
                row.lag_bytes.map(|b| b.to_string()),
                row.lag_seconds.map(|s| format!("{s:.3}")),
                Some(row.in_flight.to_string()),
                Some(row.served.to_string()),
                row.last_error,
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_sql_prepare() {
        assert!(is_sql_prepare(b"PREPARE q AS SELECT 1"));
        assert!(is_sql_prepare(
            b"  -- hi\n /* x */ prepare\tq(int) AS SELECT $1"
        ));
        assert!(!is_sql_prepare(b"SELECT 'PREPARE x'"));
        assert!(!is_sql_prepare(b"prepared"));
        assert!(!is_sql_prepare(b"PREPARE TRANSACTION 'x'"));
        assert!(!is_sql_prepare(b"/* unterminated"));
    }
}
