//! What a pending client request may do, from its messages: the combined
//! verdict of every statement in it (may a replica run it? may it write?),
//! and the one statement of a request that runs exactly one (the position
//! query may ride behind such a request).

use std::sync::Arc;

use super::classify::{Classification, Classifier, Effect, PrimaryReason, Route};
use crate::protocol::{self, Frontend, Messages};
use crate::statements::ClientStatements;

/// What [`Balancing::classify`] found in the pending client messages.
#[derive(Debug)]
pub enum Classified {
    /// Send it to a server that may run this.
    Route(Classification),
    /// One simple query of only `sluice.*` commands: the gateway answers.
    Gateway(Arc<Classification>),
    /// `sluice.*` commands mixed with SQL or in the extended protocol.
    Refuse(&'static str),
}

/// Classifies the client messages in `pending[from..]` and combines
/// their verdicts: the request may use a replica only if every part
/// may; anything the gateway cannot see into goes to the primary.
pub fn classify(
    classifier: &Classifier,
    statements: &ClientStatements,
    pending: &[u8],
    from: usize,
) -> Result<Classified, protocol::ProtocolError> {
    let unknown = || Arc::new(Classification::unknown(PrimaryReason::Unclassified));
    let classify = |sql: &[u8]| match std::str::from_utf8(sql) {
        Ok(sql) => classifier.classify(sql),
        Err(_) => unknown(),
    };
    let is_sluice = |verdict: &Classification| {
        verdict
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Sluice(_)))
    };
    let mut combined = Classification::read();
    let mut unnamed_parsed = false;
    let mut messages = Messages::new(&pending[from..]).peekable();
    let mut first = true;
    while let Some(message) = messages.next() {
        let alone = first && from == 0 && messages.peek().is_none();
        first = false;
        let verdict = match protocol::decode_frontend(message.bytes)? {
            Frontend::Query(sql) => {
                let verdict = classify(sql);
                if is_sluice(&verdict) {
                    return Ok(if verdict.gateway_only && alone {
                        Classified::Gateway(verdict)
                    } else {
                        Classified::Refuse(
                            "sluice.* commands must be sent on their own, outside a transaction",
                        )
                    });
                }
                verdict
            }
            Frontend::Parse { name, query, .. } => {
                unnamed_parsed |= name.is_empty();
                let verdict = classify(query);
                if is_sluice(&verdict) {
                    return Ok(Classified::Refuse(
                        "sluice.* commands work with the simple query protocol only",
                    ));
                }
                verdict
            }
            Frontend::Bind { statement: &[], .. } => {
                if unnamed_parsed {
                    continue;
                }
                unknown()
            }
            Frontend::Bind { statement, .. } => {
                statements.verdict(statement).unwrap_or_else(unknown)
            }
            Frontend::FunctionCall(_) => unknown(),
            _ => continue,
        };
        combined.may_write |= verdict.may_write;
        combined.hinted |= verdict.hinted;
        if combined.route == Route::Replica {
            combined.route = verdict.route;
        }
    }
    Ok(Classified::Route(combined))
}

/// The classification of the statement a request runs, if the request is
/// exactly one simple `Query`, or extended-protocol messages with one Bind
/// and one Execute ending with the request's only Sync.
pub fn lone_request_statement(
    classifier: &Classifier,
    statements: &ClientStatements,
    request: &[u8],
) -> Option<Arc<Classification>> {
    let classify = |sql: &[u8]| {
        std::str::from_utf8(sql)
            .ok()
            .map(|sql| classifier.classify(sql))
    };
    // Statements parsed in this request (not registered until sent).
    let mut parsed: Vec<(&[u8], &[u8])> = Vec::new();
    let mut bound = None;
    let (mut binds, mut executes) = (0, 0);
    for message in Messages::new(request) {
        let first = message.offset == 0;
        let last = message.end() == request.len();
        match protocol::decode_frontend(message.bytes).ok()? {
            Frontend::Query(sql) if first && last => return classify(sql),
            Frontend::Parse { name, query, .. } => parsed.push((name, query)),
            Frontend::Bind { statement, .. } => {
                binds += 1;
                bound = match parsed.iter().rev().find(|(name, _)| *name == statement) {
                    Some((_, query)) => classify(query),
                    None if statement.is_empty() => None,
                    None => statements.get(statement)?.verdict.clone(),
                };
            }
            Frontend::Execute { .. } => executes += 1,
            Frontend::Describe { .. } | Frontend::Close { .. } | Frontend::Flush => {}
            Frontend::Sync if last => {}
            _ => return None,
        }
    }
    if binds == 1 && executes == 1 {
        bound
    } else {
        None
    }
}
