//! The verdict on each parsed statement, and how the verdicts of a
//! string's statements combine (the rules in the parent module's doc).

use pg_query::protobuf::{self, TransactionStmtKind, VariableSetKind};
use pg_query::NodeEnum;

use super::functions::{function_kind, FunctionKind};
use super::*;

/// One statement's verdict before combining.
struct Verdict {
    route: Route,
    may_write: bool,
    effects: Vec<Effect>,
    sluice: bool,
}

impl Verdict {
    fn replica() -> Verdict {
        Verdict {
            route: Route::Replica,
            may_write: false,
            effects: Vec::new(),
            sluice: false,
        }
    }

    fn primary(reason: PrimaryReason) -> Verdict {
        Verdict {
            route: Route::Primary(reason),
            may_write: reason.may_write(),
            effects: Vec::new(),
            sluice: false,
        }
    }

    fn with(mut self, effect: Effect) -> Verdict {
        self.effects.push(effect);
        self
    }

    fn sluice(command: SluiceCommand) -> Verdict {
        Verdict {
            sluice: true,
            ..Verdict::replica().with(Effect::Sluice(command))
        }
    }
}

pub(super) fn classify_statements(parsed: &protobuf::ParseResult) -> Classification {
    // Cursors declared (without HOLD) earlier in this same string: fetching
    // from them reads from the same server within the same transaction.
    let mut cursors: Vec<&str> = Vec::new();
    let verdicts: Vec<Verdict> = parsed
        .stmts
        .iter()
        .map(
            |raw| match raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
                Some(NodeEnum::FetchStmt(fetch))
                    if cursors.contains(&fetch.portalname.as_str()) =>
                {
                    Verdict::replica()
                }
                Some(NodeEnum::ClosePortalStmt(close))
                    if cursors.contains(&close.portalname.as_str()) =>
                {
                    Verdict::replica()
                }
                Some(node) => {
                    let verdict = classify_statement(node);
                    if let NodeEnum::DeclareCursorStmt(declare) = node {
                        if verdict.route == Route::Replica {
                            cursors.push(&declare.portalname);
                        }
                    }
                    verdict
                }
                None => Verdict::primary(PrimaryReason::Unclassified),
            },
        )
        .collect();
    let route = verdicts
        .iter()
        .map(|v| v.route)
        .find(|r| *r != Route::Replica)
        .unwrap_or(Route::Replica);
    let gateway_only = !verdicts.is_empty() && verdicts.iter().all(|v| v.sluice);
    let mixed = !gateway_only && verdicts.iter().any(|v| v.sluice);
    let mut effects: Vec<Effect> = Vec::new();
    if mixed {
        // Forwarding `SET sluice.x` would leave a placeholder setting on a
        // shared server connection; make the client send it alone.
        effects.push(Effect::Sluice(SluiceCommand::Invalid(
            "SET, RESET and SHOW of sluice.* settings must be sent as their own query, \
             not together with other statements"
                .to_owned(),
        )));
    }
    effects.extend(verdicts.iter().flat_map(|v| v.effects.iter().cloned()));
    let lone_statement = match (&parsed.stmts[..], &verdicts[..]) {
        ([raw], [verdict]) => {
            let node = raw.stmt.as_ref().and_then(|s| s.node.as_ref());
            node.is_some_and(|node| !matches!(node, NodeEnum::CopyStmt(_)))
                && verdict.route != Route::Primary(PrimaryReason::Unclassified)
        }
        _ => false,
    };
    Classification {
        route,
        may_write: verdicts.iter().any(|v| v.may_write),
        hinted: false,
        gateway_only,
        effects,
        lone_statement,
    }
}

fn classify_statement(node: &NodeEnum) -> Verdict {
    use PrimaryReason as R;
    match node {
        NodeEnum::SelectStmt(_) => classify_read(node),
        NodeEnum::ExplainStmt(explain) => {
            match explain.query.as_ref().and_then(|q| q.node.as_ref()) {
                // ANALYZE runs the statement, so EXPLAIN routes exactly like
                // what it explains; a plain EXPLAIN of a write goes to the
                // primary too (its plan should see the primary's catalog).
                Some(inner) => {
                    let verdict = classify_statement(inner);
                    if verdict.sluice {
                        Verdict::primary(R::Unclassified)
                    } else {
                        verdict
                    }
                }
                None => Verdict::primary(R::Unclassified),
            }
        }
        NodeEnum::VariableShowStmt(show) => match show.name.strip_prefix("sluice.") {
            Some(name) => Verdict::sluice(match SluiceSetting::from_name(name) {
                Some(setting) => SluiceCommand::Show(setting),
                None => unknown_sluice_setting(&show.name),
            }),
            None => Verdict::replica(),
        },
        NodeEnum::VariableSetStmt(set) => classify_set(set),
        NodeEnum::TransactionStmt(tx) => classify_transaction(tx),
        NodeEnum::CopyStmt(copy) => {
            if copy.is_program || !copy.filename.is_empty() {
                Verdict::primary(R::ServerFile)
            } else if copy.is_from {
                Verdict::primary(R::Write)
            } else {
                match copy.query.as_ref().and_then(|q| q.node.as_ref()) {
                    Some(query) => classify_read(query),
                    None => Verdict::replica(),
                }
            }
        }
        NodeEnum::DeclareCursorStmt(declare) => {
            const CURSOR_OPT_HOLD: i32 = 0x0020;
            if declare.options & CURSOR_OPT_HOLD != 0 {
                Verdict::primary(R::SessionState).with(Effect::SessionState)
            } else {
                match declare.query.as_ref().and_then(|q| q.node.as_ref()) {
                    Some(query) => classify_read(query),
                    None => Verdict::primary(R::Unclassified),
                }
            }
        }
        // Outside a transaction only WITH HOLD cursors exist, and those
        // live on the primary (a cursor declared earlier in the same string
        // is handled in `classify_statements`).
        NodeEnum::FetchStmt(_) | NodeEnum::ClosePortalStmt(_) => Verdict::primary(R::SessionState),
        NodeEnum::InsertStmt(_)
        | NodeEnum::UpdateStmt(_)
        | NodeEnum::DeleteStmt(_)
        | NodeEnum::MergeStmt(_)
        | NodeEnum::TruncateStmt(_) => Verdict::primary(R::Write),
        NodeEnum::LockStmt(_) => Verdict::primary(R::Lock),
        NodeEnum::ListenStmt(_) | NodeEnum::UnlistenStmt(_) => {
            Verdict::primary(R::ListenNotify).with(Effect::SessionState)
        }
        NodeEnum::NotifyStmt(_) => Verdict::primary(R::ListenNotify),
        NodeEnum::PrepareStmt(_)
        | NodeEnum::DeallocateStmt(_)
        | NodeEnum::DiscardStmt(_)
        | NodeEnum::LoadStmt(_) => Verdict::primary(R::SessionState).with(Effect::SessionState),
        // EXECUTE runs a statement PREPAREd on the primary; we cannot see it.
        NodeEnum::ExecuteStmt(_) => Verdict {
            may_write: true,
            ..Verdict::primary(R::SessionState)
        },
        NodeEnum::CallStmt(_) | NodeEnum::DoStmt(_) => Verdict::primary(R::Procedure),
        NodeEnum::VacuumStmt(_)
        | NodeEnum::ClusterStmt(_)
        | NodeEnum::ReindexStmt(_)
        | NodeEnum::CheckPointStmt(_)
        | NodeEnum::RefreshMatViewStmt(_) => Verdict::primary(R::Maintenance),
        // Everything else changes the schema, roles or the server. A
        // temporary object also ties the session to its server.
        other => {
            if walk::scan(other).temporary {
                Verdict::primary(R::Temporary).with(Effect::SessionState)
            } else {
                Verdict::primary(R::Ddl)
            }
        }
    }
}

/// A query that reads unless something inside it says otherwise.
fn classify_read(node: &NodeEnum) -> Verdict {
    use PrimaryReason as R;
    let found = walk::scan(node);
    if found.modifies_data {
        return Verdict::primary(R::Write);
    }
    if found.temporary {
        return Verdict::primary(R::Temporary).with(Effect::SessionState);
    }
    if found.select_into {
        return Verdict::primary(R::SelectInto);
    }
    if found.locks_rows {
        return Verdict::primary(R::Lock);
    }
    let kinds: Vec<FunctionKind> = found.functions.iter().map(|f| function_kind(f)).collect();
    let first = |kind: FunctionKind| kinds.contains(&kind);
    if first(FunctionKind::Sequence) {
        Verdict::primary(R::Sequence)
    } else if first(FunctionKind::AdvisoryLock) {
        Verdict::primary(R::AdvisoryLock)
    } else if first(FunctionKind::Notify) {
        Verdict::primary(R::ListenNotify)
    } else if first(FunctionKind::Writes) {
        Verdict::primary(R::WritingFunction)
    } else if first(FunctionKind::Unknown) {
        Verdict::primary(R::UnknownFunction)
    } else if first(FunctionKind::SessionState) {
        Verdict::primary(R::SessionState).with(Effect::SessionState)
    } else {
        Verdict::replica()
    }
}

fn classify_transaction(tx: &protobuf::TransactionStmt) -> Verdict {
    use TransactionStmtKind as K;
    match K::try_from(tx.kind) {
        Ok(K::TransStmtBegin | K::TransStmtStart) => {
            let read_only =
                tx.options
                    .iter()
                    .fold(false, |read_only, option| match option.node.as_ref() {
                        Some(NodeEnum::DefElem(def)) if def.defname == "transaction_read_only" => {
                            def.arg
                                .as_ref()
                                .and_then(|a| a.node.as_ref())
                                .is_none_or(is_true)
                        }
                        _ => read_only,
                    });
            let begin = Effect::Begin { read_only };
            if read_only {
                Verdict::replica().with(begin)
            } else {
                Verdict::primary(PrimaryReason::Transaction).with(begin)
            }
        }
        Ok(K::TransStmtCommit) => {
            let verdict = Verdict::replica().with(Effect::Commit);
            if tx.chain {
                verdict.with(Effect::Begin { read_only: false })
            } else {
                verdict
            }
        }
        Ok(K::TransStmtRollback) => {
            let verdict = Verdict::replica().with(Effect::Rollback);
            if tx.chain {
                verdict.with(Effect::Begin { read_only: false })
            } else {
                verdict
            }
        }
        Ok(K::TransStmtSavepoint | K::TransStmtRelease | K::TransStmtRollbackTo) => {
            Verdict::replica()
        }
        // PREPARE TRANSACTION ends the session's transaction; COMMIT/ROLLBACK
        // PREPARED finish one on the primary.
        Ok(K::TransStmtPrepare) => {
            Verdict::primary(PrimaryReason::Transaction).with(Effect::Commit)
        }
        Ok(K::TransStmtCommitPrepared | K::TransStmtRollbackPrepared) => Verdict {
            may_write: true,
            ..Verdict::primary(PrimaryReason::Transaction)
        },
        Ok(K::Undefined) | Err(_) => Verdict::primary(PrimaryReason::Unclassified),
    }
}

/// `READ ONLY` is stored as the integer constant 1; be liberal in what we
/// accept so that a future parser writing a boolean still works.
fn is_true(node: &NodeEnum) -> bool {
    use protobuf::a_const::Val;
    match node {
        NodeEnum::AConst(constant) => match &constant.val {
            Some(Val::Ival(i)) => i.ival != 0,
            Some(Val::Boolval(b)) => b.boolval,
            Some(Val::Sval(s)) => matches!(s.sval.as_str(), "on" | "true" | "yes" | "1"),
            _ => false,
        },
        NodeEnum::Integer(i) => i.ival != 0,
        NodeEnum::Boolean(b) => b.boolval,
        _ => false,
    }
}

fn classify_set(set: &protobuf::VariableSetStmt) -> Verdict {
    use VariableSetKind as K;
    let kind = K::try_from(set.kind).unwrap_or(K::Undefined);
    if kind == K::VarResetAll {
        return Verdict::primary(PrimaryReason::SessionState).with(Effect::SessionState);
    }
    if let Some(name) = set.name.strip_prefix("sluice.") {
        return Verdict::sluice(sluice_set(&set.name, name, kind, &set.args));
    }
    // SET LOCAL and SET TRANSACTION end with the transaction they are in.
    if set.is_local || (kind == K::VarSetMulti && set.name == "TRANSACTION") {
        return Verdict::replica();
    }
    Verdict::primary(PrimaryReason::SessionState).with(Effect::SessionState)
}

fn sluice_set(
    full_name: &str,
    name: &str,
    kind: VariableSetKind,
    args: &[pg_query::Node],
) -> SluiceCommand {
    use VariableSetKind as K;
    let Some(setting) = SluiceSetting::from_name(name) else {
        return unknown_sluice_setting(full_name);
    };
    let value: Option<String> = match kind {
        K::VarSetDefault | K::VarReset => None,
        K::VarSetValue => match single_value(args) {
            Some(value) => Some(value),
            None => {
                return SluiceCommand::Invalid(format!("{full_name} takes a single value"));
            }
        },
        _ => return SluiceCommand::Invalid(format!("unsupported form of SET {full_name}")),
    };
    match setting {
        SluiceSetting::Route => match value.as_deref() {
            None | Some("auto") | Some("default") => SluiceCommand::SetRoute(RouteSetting::Auto),
            Some("primary") => SluiceCommand::SetRoute(RouteSetting::Primary),
            Some("replica") => SluiceCommand::SetRoute(RouteSetting::Replica),
            Some(other) => SluiceCommand::Invalid(format!(
                "invalid value for sluice.route: {other:?} (expected 'primary', 'replica' or 'auto')"
            )),
        },
        SluiceSetting::StickyKey => match value {
            Some(key) if key.is_empty() => {
                SluiceCommand::Invalid("sluice.sticky_key must not be empty".to_owned())
            }
            // Keys are stored per gateway and in Redis: keep them small.
            Some(key) if key.len() > MAX_STICKY_KEY => SluiceCommand::Invalid(format!(
                "sluice.sticky_key must be at most {MAX_STICKY_KEY} bytes, got {}",
                key.len()
            )),
            key => SluiceCommand::SetStickyKey(key),
        },
        SluiceSetting::MinLsn => match value.map(|v| v.parse::<Lsn>()) {
            None => SluiceCommand::SetMinLsn(None),
            Some(Ok(lsn)) => SluiceCommand::SetMinLsn(Some(lsn)),
            Some(Err(error)) => SluiceCommand::Invalid(format!("sluice.min_lsn: {error}")),
        },
        SluiceSetting::LastWriteLsn | SluiceSetting::Hosts => {
            SluiceCommand::Invalid(format!("{full_name} is read-only"))
        }
    }
}

/// The longest `sluice.sticky_key` accepted, in bytes.
pub const MAX_STICKY_KEY: usize = 256;

/// The text of a one-value `SET` (`'x'`, `x`, `42`).
fn single_value(args: &[pg_query::Node]) -> Option<String> {
    use protobuf::a_const::Val;
    let [arg] = args else { return None };
    let NodeEnum::AConst(constant) = arg.node.as_ref()? else {
        return None;
    };
    match constant.val.as_ref()? {
        Val::Sval(s) => Some(s.sval.clone()),
        Val::Ival(i) => Some(i.ival.to_string()),
        Val::Fval(f) => Some(f.fval.clone()),
        Val::Boolval(b) => Some(b.boolval.to_string()),
        Val::Bsval(_) => None,
    }
}

fn unknown_sluice_setting(full_name: &str) -> SluiceCommand {
    SluiceCommand::Invalid(format!(
        "unrecognized configuration parameter \"{full_name}\" (Sluice knows sluice.route, \
         sluice.sticky_key, sluice.min_lsn, sluice.last_write_lsn and sluice.hosts)"
    ))
}
