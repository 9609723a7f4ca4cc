//! Read/write classification of SQL text: may a hot standby run it, and does
//! it open or close a transaction or change session state?
//!
//! # Parser
//! Statements are parsed with [`pg_query`], which compiles PostgreSQL's own
//! grammar (libpg_query), so anything PostgreSQL accepts is understood the
//! way PostgreSQL understands it; a regex or a generic SQL parser would guess.
//! Version 18.1 is the newest release and builds on Rust 1.95 (it needs only
//! a C compiler and libclang for bindgen; it parses PostgreSQL 18 syntax, a
//! superset of the PostgreSQL 15 servers we run).
//!
//! # Rules
//! "Anything not classified with certainty goes to the primary":
//! - Replica: `SELECT`/`VALUES`/`TABLE` that only call known read-only
//!   built-in functions, `SHOW` of ordinary settings, `EXPLAIN [ANALYZE]` of
//!   such a read, `COPY ... TO STDOUT` of a table or a read,
//!   `BEGIN READ ONLY` / `START TRANSACTION READ ONLY`, `SET LOCAL` and
//!   `SET TRANSACTION` (they end with the transaction), and `COMMIT`,
//!   `ROLLBACK`, savepoints (they write nothing themselves; inside a
//!   transaction the gateway keeps the transaction's server anyway).
//! - Primary: writes (also inside `WITH`), DDL, maintenance, other
//!   transactions, `SELECT ... FOR UPDATE/SHARE`, `SELECT ... INTO`,
//!   `nextval`/`setval`/`currval`/`lastval` anywhere, advisory locks,
//!   `LISTEN`/`NOTIFY`/`UNLISTEN`, temporary objects, `SET`/`RESET`/`DISCARD`
//!   and SQL `PREPARE`/`EXECUTE` (session state), cursors `WITH HOLD` and
//!   `FETCH`/`CLOSE`, `CALL`/`DO`, server-side `COPY` files, calls to
//!   functions that are not known read-only built-ins (see
//!   `classify/functions.rs`), and anything that does not parse.
//! - A string of several statements goes to a replica only if every one
//!   would; otherwise to the primary, with the first statement's reason.
//! - Hints win: a `/* sluice:primary */` or `/* sluice:replica */` comment (a
//!   `--` comment works too) anywhere in the text routes the whole string.
//!   A write hinted to a replica fails there with PostgreSQL's own "read-only
//!   transaction" error: loud, never silent.
//! - `SET sluice.route / sluice.sticky_key / sluice.min_lsn`, their `RESET`,
//!   and `SHOW sluice.*` are commands for the gateway, returned as
//!   [`Effect::Sluice`]; a string made only of them is [`Classification::gateway_only`].
//!
//! # Cache
//! Parsing costs tens of microseconds; [`Classifier`] caches verdicts by
//! statement text (so a prepared statement or a repeated query is parsed
//! once) in a bounded, sharded map.

mod cache;
mod functions;
mod walk;

use std::fmt;

use pg_query::protobuf::{self, TransactionStmtKind, VariableSetKind};
use pg_query::NodeEnum;

use self::functions::{function_kind, FunctionKind};
use super::lsn::Lsn;

pub use self::cache::Classifier;

/// Where a statement string may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Any healthy replica (that has replayed the client's sticky position).
    Replica,
    /// The primary, for the given reason.
    Primary(PrimaryReason),
}

/// Why a statement string must run on the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrimaryReason {
    /// `INSERT`/`UPDATE`/`DELETE`/`MERGE`/`COPY FROM`, also inside `WITH`.
    Write,
    /// `CREATE`/`ALTER`/`DROP`/`GRANT`/... and other schema changes.
    Ddl,
    /// `VACUUM`, `ANALYZE`, `CLUSTER`, `REINDEX`, `CHECKPOINT`, `REFRESH`.
    Maintenance,
    /// A transaction that may write (`BEGIN` without `READ ONLY`), 2PC.
    Transaction,
    /// `SELECT ... FOR UPDATE/SHARE`, `LOCK TABLE`.
    Lock,
    /// `SELECT ... INTO` creates a table.
    SelectInto,
    /// `nextval`, `setval`, `currval`, `lastval`.
    Sequence,
    /// `pg_advisory_*`, `pg_try_advisory_*`.
    AdvisoryLock,
    /// `LISTEN`, `NOTIFY`, `UNLISTEN`, `pg_notify`.
    ListenNotify,
    /// `CREATE TEMP ...`, `SELECT ... INTO TEMP`.
    Temporary,
    /// `SET`, `RESET`, `DISCARD`, SQL `PREPARE`/`EXECUTE`/`DEALLOCATE`,
    /// cursors that outlive a transaction, `set_config()`, `LOAD`.
    SessionState,
    /// A built-in function that writes or only works on a primary.
    WritingFunction,
    /// A function that is not a known read-only built-in.
    UnknownFunction,
    /// `CALL` or `DO`: procedural code can do anything.
    Procedure,
    /// `COPY` to or from a server file or program.
    ServerFile,
    /// The text did not parse (PostgreSQL will report the error).
    Unparsable,
    /// A `/* sluice:primary */` comment.
    Hint,
    /// A statement kind with no rule of its own.
    Unclassified,
}

impl PrimaryReason {
    /// Whether a statement with this reason may change data, so that a
    /// transaction containing it should record a sticky WAL position when
    /// it commits. Conservative: only reasons known not to write say no.
    pub fn may_write(self) -> bool {
        !matches!(
            self,
            PrimaryReason::Transaction
                | PrimaryReason::Lock
                | PrimaryReason::AdvisoryLock
                | PrimaryReason::ListenNotify
                | PrimaryReason::SessionState
                | PrimaryReason::Hint
        )
    }

    /// A short phrase for logs and `SHOW sluice.*` output.
    pub fn describe(self) -> &'static str {
        match self {
            PrimaryReason::Write => "writes data",
            PrimaryReason::Ddl => "changes the schema",
            PrimaryReason::Maintenance => "maintenance command",
            PrimaryReason::Transaction => "read-write transaction",
            PrimaryReason::Lock => "takes locks",
            PrimaryReason::SelectInto => "SELECT INTO creates a table",
            PrimaryReason::Sequence => "uses a sequence",
            PrimaryReason::AdvisoryLock => "advisory lock",
            PrimaryReason::ListenNotify => "LISTEN/NOTIFY",
            PrimaryReason::Temporary => "temporary object",
            PrimaryReason::SessionState => "changes session state",
            PrimaryReason::WritingFunction => "calls a function that writes",
            PrimaryReason::UnknownFunction => "calls a function not known to be read-only",
            PrimaryReason::Procedure => "procedural code",
            PrimaryReason::ServerFile => "server-side file",
            PrimaryReason::Unparsable => "does not parse",
            PrimaryReason::Hint => "sluice:primary hint",
            PrimaryReason::Unclassified => "not classified with certainty",
        }
    }
}

impl fmt::Display for PrimaryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// What a statement does besides reading or writing, in statement order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `BEGIN` / `START TRANSACTION` (`read_only` for `READ ONLY`).
    Begin { read_only: bool },
    /// `COMMIT` / `END` (also `COMMIT AND CHAIN`, which begins again).
    Commit,
    /// `ROLLBACK` / `ABORT` (not `ROLLBACK TO SAVEPOINT`).
    Rollback,
    /// Server session state that outlives the transaction changed: the
    /// server connection is no longer interchangeable.
    SessionState,
    /// A command for the gateway itself.
    Sluice(SluiceCommand),
}

/// `SET`/`RESET`/`SHOW` of a `sluice.*` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SluiceCommand {
    /// `SET sluice.route = 'primary' | 'replica' | 'auto'` (`RESET` = auto).
    SetRoute(RouteSetting),
    /// `SET sluice.sticky_key = 'user:42'`; `None` after `RESET`/`DEFAULT`
    /// (sticky per connection again).
    SetStickyKey(Option<String>),
    /// `SET sluice.min_lsn = '0/16B3748'`; `None` after `RESET`/`DEFAULT`.
    SetMinLsn(Option<Lsn>),
    /// `SHOW sluice.<name>`.
    Show(SluiceSetting),
    /// A malformed sluice command; the text is the error for the client.
    Invalid(String),
}

/// The settings `SHOW sluice.*` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SluiceSetting {
    Route,
    StickyKey,
    MinLsn,
    /// The WAL position of this client's last write (read-only).
    LastWriteLsn,
    /// The host table (read-only).
    Hosts,
}

impl SluiceSetting {
    fn from_name(name: &str) -> Option<SluiceSetting> {
        Some(match name {
            "route" => SluiceSetting::Route,
            "sticky_key" => SluiceSetting::StickyKey,
            "min_lsn" => SluiceSetting::MinLsn,
            "last_write_lsn" => SluiceSetting::LastWriteLsn,
            "hosts" => SluiceSetting::Hosts,
            _ => return None,
        })
    }

    /// The full setting name, `sluice.<name>`.
    pub fn name(self) -> &'static str {
        match self {
            SluiceSetting::Route => "sluice.route",
            SluiceSetting::StickyKey => "sluice.sticky_key",
            SluiceSetting::MinLsn => "sluice.min_lsn",
            SluiceSetting::LastWriteLsn => "sluice.last_write_lsn",
            SluiceSetting::Hosts => "sluice.hosts",
        }
    }
}

/// The session's `sluice.route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RouteSetting {
    /// Route each statement by its classification (the default).
    #[default]
    Auto,
    /// Everything to the primary.
    Primary,
    /// Everything to replicas, like a `/* sluice:replica */` hint on each
    /// statement.
    Replica,
}

impl RouteSetting {
    /// Applies the session setting to a statement's route.
    pub fn apply(self, route: Route) -> Route {
        match self {
            RouteSetting::Auto => route,
            RouteSetting::Primary => Route::Primary(PrimaryReason::Hint),
            RouteSetting::Replica => Route::Replica,
        }
    }
}

/// The verdict on one query string (one or more statements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Where the string may run, after hints.
    pub route: Route,
    /// Some statement may change data (ignoring hints): a transaction that
    /// ran it on the primary should record a sticky position on commit.
    pub may_write: bool,
    /// A `sluice:` comment decided the route.
    pub hinted: bool,
    /// Every statement is a sluice command: the gateway answers the string
    /// itself and sends nothing to a server.
    pub gateway_only: bool,
    /// Transaction, session and sluice effects in statement order.
    pub effects: Vec<Effect>,
    /// Exactly one statement, parsed and classified with certainty, and
    /// not `COPY` (whose data exchange follows the statement): the server
    /// answers it with its results or an error, then `ReadyForQuery`, so
    /// the gateway may append a query of its own right behind it.
    pub lone_statement: bool,
}

impl Classification {
    /// A read that may use a replica, with no effects: the starting point
    /// for combining several statements' verdicts.
    pub fn read() -> Classification {
        Classification {
            route: Route::Replica,
            may_write: false,
            hinted: false,
            gateway_only: false,
            effects: Vec::new(),
            lone_statement: false,
        }
    }

    /// Something the gateway cannot see into: the primary, assumed to write.
    pub fn unknown(reason: PrimaryReason) -> Classification {
        Classification {
            route: Route::Primary(reason),
            may_write: true,
            ..Classification::read()
        }
    }

    /// The first malformed sluice command's message, if any: the gateway
    /// should answer it as an error and send nothing to a server.
    pub fn sluice_error(&self) -> Option<&str> {
        self.effects.iter().find_map(|effect| match effect {
            Effect::Sluice(SluiceCommand::Invalid(message)) => Some(message.as_str()),
            _ => None,
        })
    }
}

/// Classifies a query string without caching; see [`Classifier`] for the
/// cached form the gateway uses.
pub fn classify(sql: &str) -> Classification {
    let mut verdict = match pg_query::parse(sql, 0) {
        Ok(parsed) => classify_statements(&parsed.protobuf),
        Err(_) => Classification::unknown(PrimaryReason::Unparsable),
    };
    if let Some(hint) = find_hint(sql) {
        verdict.hinted = true;
        verdict.route = match hint {
            Hint::Primary => Route::Primary(PrimaryReason::Hint),
            Hint::Replica => Route::Replica,
        };
    }
    verdict
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    Primary,
    Replica,
}

/// Finds a `sluice:primary` / `sluice:replica` word inside a comment. The
/// substring test keeps the common case (no hint) to one scan of the text;
/// only then is the text tokenized, so a hint inside a string literal or an
/// identifier does not count.
fn find_hint(sql: &str) -> Option<Hint> {
    if !sql.contains("sluice:") {
        return None;
    }
    let scanned = pg_query::scan(sql).ok()?;
    let comment_kinds = [
        protobuf::Token::SqlComment as i32,
        protobuf::Token::CComment as i32,
    ];
    for token in scanned.tokens {
        if !comment_kinds.contains(&token.token) {
            continue;
        }
        let Some(text) = sql.get(token.start as usize..token.end as usize) else {
            continue;
        };
        let body = text
            .trim_start_matches("--")
            .trim_start_matches("/*")
            .trim_end_matches("*/");
        for word in body.split_whitespace() {
            match word {
                "sluice:primary" => return Some(Hint::Primary),
                "sluice:replica" => return Some(Hint::Replica),
                _ => {}
            }
        }
    }
    None
}

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

fn classify_statements(parsed: &protobuf::ParseResult) -> Classification {
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

#[cfg(test)]
mod tests;
