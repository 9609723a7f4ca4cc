//! Prepared statements in transaction pooling (pgbouncer's `prepare.c`).
//!
//! A client names its statements as it likes and expects them to exist on
//! "its" server, but each transaction may run on another server connection.
//! So the gateway keeps each client's named statements ([`ClientStatements`]:
//! name → text, parameter types, gateway-wide id) and gives each one a
//! server-side name of its own, `sluice_<id>`. Every server connection
//! remembers which of those it holds ([`PreparedSet`], least recently used
//! first out, at most `max_prepared_statements`). [`ClientStatements::rewrite`]
//! turns a client's request into the one a given server needs: names mapped,
//! a Parse injected for a statement this server does not have yet, a Close
//! injected for the one evicted to make room. The relay drops the answers
//! to injected messages (see `backend::outstanding`), so the client sees
//! exactly the answers to what it sent.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::{Sent, ServerConn};
use crate::balance::classify::Classification;
use crate::protocol::{self, client_tag, Frontend, Messages, ProtocolError};

/// A statement a client prepared under its own name, as the gateway knows it.
#[derive(Debug)]
pub struct Statement {
    /// Gateway-wide id; the server-side name is `sluice_<id>`.
    pub id: u64,
    pub query: Box<[u8]>,
    pub param_types: Box<[u8]>,
    /// Where the statement may run (with load balancing; classified once, at Parse).
    pub verdict: Option<Arc<Classification>>,
}

/// One client's named prepared statements.
#[derive(Debug, Default)]
pub struct ClientStatements {
    by_name: HashMap<Box<[u8]>, Statement>,
}

impl ClientStatements {
    /// Records `statement` under the client's `name` (replacing an older one:
    /// a client may re-Parse a name after closing it).
    pub fn register(&mut self, name: &[u8], statement: Statement) {
        self.by_name.insert(name.into(), statement);
    }

    pub fn get(&self, name: &[u8]) -> Option<&Statement> {
        self.by_name.get(name)
    }

    /// The classification of the client's statement `name`, if known.
    pub fn verdict(&self, name: &[u8]) -> Option<Arc<Classification>> {
        self.by_name.get(name)?.verdict.clone()
    }

    /// Builds the request for `srv` in its write buffer from the client's
    /// whole messages in `request`: statement names mapped to the gateway's,
    /// Parse injected for statements this server does not have yet, and
    /// Close for ones evicted to stay within `limit` (max_prepared_statements).
    /// `new_statement` makes the gateway's record of a statement a client
    /// Parses (a fresh id, its classification).
    pub fn rewrite(
        &mut self,
        request: &[u8],
        srv: &mut ServerConn,
        limit: usize,
        mut new_statement: impl FnMut(&[u8], &[u8]) -> Statement,
    ) -> Result<Sent, ProtocolError> {
        let mut name = Vec::new();
        let mut sent = Sent::default();
        for message in Messages::new(request) {
            let msg = message.bytes;
            match protocol::decode_frontend(msg)? {
                Frontend::Parse {
                    name: client_name,
                    query,
                    param_types,
                } if !client_name.is_empty() => {
                    sent.client_parses += 1;
                    sent.server_parses += 1;
                    let statement = new_statement(query, param_types);
                    let id = statement.id;
                    self.register(client_name, statement);
                    make_room(srv, limit, &mut name);
                    statement_name(id, &mut name);
                    protocol::parse(&mut srv.wbuf, &name, query, param_types);
                    srv.prepared.touch(id);
                    srv.outstanding.sent_parse(Some(id), false);
                }
                Frontend::Bind {
                    portal,
                    statement,
                    rest,
                } if !statement.is_empty() && self.by_name.contains_key(statement) => {
                    sent.binds += 1;
                    let stmt = &self.by_name[statement];
                    sent.server_parses += u64::from(ensure_prepared(srv, stmt, limit, &mut name));
                    protocol::bind(&mut srv.wbuf, portal, &name, rest);
                    srv.outstanding.sent(client_tag::BIND);
                }
                Frontend::Describe {
                    kind: b'S',
                    name: client_name,
                } if !client_name.is_empty() && self.by_name.contains_key(client_name) => {
                    let stmt = &self.by_name[client_name];
                    sent.server_parses += u64::from(ensure_prepared(srv, stmt, limit, &mut name));
                    protocol::describe_or_close(&mut srv.wbuf, client_tag::DESCRIBE, b'S', &name);
                    srv.outstanding.sent(client_tag::DESCRIBE);
                }
                Frontend::Close {
                    kind: b'S',
                    name: client_name,
                } if !client_name.is_empty() => {
                    match self.by_name.remove(client_name) {
                        Some(stmt) => {
                            statement_name(stmt.id, &mut name);
                            protocol::describe_or_close(
                                &mut srv.wbuf,
                                client_tag::CLOSE,
                                b'S',
                                &name,
                            );
                            srv.prepared.remove(stmt.id);
                        }
                        None => srv.wbuf.extend_from_slice(msg),
                    }
                    srv.outstanding.sent_close(false);
                }
                Frontend::Parse { .. } => {
                    sent.client_parses += 1;
                    sent.server_parses += 1;
                    srv.wbuf.extend_from_slice(msg);
                    srv.outstanding.sent_parse(None, false);
                }
                Frontend::Close { .. } => {
                    srv.wbuf.extend_from_slice(msg);
                    srv.outstanding.sent_close(false);
                }
                _ => {
                    srv.wbuf.extend_from_slice(msg);
                    srv.outstanding.sent(msg[0]);
                    sent.batches +=
                        u64::from(matches!(msg[0], client_tag::QUERY | client_tag::SYNC));
                    sent.binds += u64::from(msg[0] == client_tag::BIND);
                }
            }
        }
        srv.info.prepared_statements.store(
            srv.prepared.len() as u32,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(sent)
    }
}

/// Closes least recently used statements until one more fits.
fn make_room(srv: &mut ServerConn, limit: usize, name: &mut Vec<u8>) {
    while let Some(victim) = srv.prepared.evict_candidate(limit) {
        statement_name(victim, name);
        protocol::describe_or_close(&mut srv.wbuf, client_tag::CLOSE, b'S', name);
        srv.prepared.remove(victim);
        srv.outstanding.sent_close(true);
    }
}

/// Makes sure `srv` has `stmt` prepared (injecting a Parse whose
/// ParseComplete the client will not see); leaves its server name in
/// `name`. Whether a Parse was injected.
fn ensure_prepared(
    srv: &mut ServerConn,
    stmt: &Statement,
    limit: usize,
    name: &mut Vec<u8>,
) -> bool {
    let injected = !srv.prepared.contains(stmt.id);
    if injected {
        make_room(srv, limit, name);
        statement_name(stmt.id, name);
        protocol::parse(&mut srv.wbuf, name, &stmt.query, &stmt.param_types);
        srv.outstanding.sent_parse(Some(stmt.id), true);
    }
    srv.prepared.touch(stmt.id);
    statement_name(stmt.id, name);
    injected
}

/// The server-side name of the gateway's statement `id`.
pub fn statement_name(id: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "sluice_{id}");
}

/// The gateway's prepared statements present on one server connection, with
/// least-recently-used eviction.
#[derive(Debug, Default)]
pub struct PreparedSet {
    used: HashMap<u64, u64>,
    tick: u64,
}

impl PreparedSet {
    pub fn contains(&self, id: u64) -> bool {
        self.used.contains_key(&id)
    }

    /// Marks `id` as used now (inserting it).
    pub fn touch(&mut self, id: u64) {
        self.tick += 1;
        self.used.insert(id, self.tick);
    }

    pub fn remove(&mut self, id: u64) {
        self.used.remove(&id);
    }

    /// The least recently used statement to close if the set holds `limit` or more.
    pub fn evict_candidate(&self, limit: usize) -> Option<u64> {
        if self.used.len() < limit {
            return None;
        }
        self.used
            .iter()
            .min_by_key(|(_, &tick)| tick)
            .map(|(&id, _)| id)
    }

    pub fn clear(&mut self) {
        self.used.clear();
    }

    /// How many it holds.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_set_evicts_least_recently_used() {
        let mut set = PreparedSet::default();
        set.touch(1);
        set.touch(2);
        set.touch(3);
        assert_eq!(set.evict_candidate(4), None);
        set.touch(1);
        assert_eq!(set.evict_candidate(3), Some(2));
    }

    #[test]
    fn statement_names() {
        let mut out = Vec::new();
        statement_name(42, &mut out);
        assert_eq!(out, b"sluice_42");
    }
}
