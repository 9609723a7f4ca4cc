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
mod statement;
mod walk;

use std::fmt;

use pg_query::protobuf;

use self::statement::classify_statements;
use super::lsn::Lsn;

pub use self::cache::Classifier;
pub use self::statement::MAX_STICKY_KEY;

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

#[cfg(test)]
mod tests;
