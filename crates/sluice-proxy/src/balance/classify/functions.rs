//! Which function calls a replica can run.
//!
//! A `SELECT` can write through the functions it calls, and a user function
//! can do anything, so the classifier cannot trust a name it does not know.
//! We use an allowlist: the names of PostgreSQL 15's built-in functions
//! (`builtin_functions.txt`, generated from `pg_catalog.pg_proc`), minus a
//! denylist of built-ins that write, take locks, depend on session state or
//! only work on a primary. A call to anything else (a user or extension
//! function, or any schema other than `pg_catalog`) sends the statement to
//! the primary. The denylist is short and reviewed by hand; the allowlist is
//! generated, so nothing a user defines slips through.
//!
//! Known limit: a user function that reuses a built-in's name with other
//! argument types (`public.now(int)`) is taken for the built-in. Use a
//! `/* sluice:primary */` hint for those.

use std::collections::HashSet;
use std::sync::OnceLock;

/// What calling a function means for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FunctionKind {
    /// A built-in that only reads: any replica can run it.
    Read,
    /// `nextval`, `setval`, `currval`, `lastval`.
    Sequence,
    /// `pg_advisory_*`, `pg_try_advisory_*`.
    AdvisoryLock,
    /// `pg_notify`.
    Notify,
    /// `set_config`, `setseed`: changes the session.
    SessionState,
    /// A built-in that writes or needs the primary (large objects, WAL and
    /// slot control, `txid_current`, functions that run query text...).
    Writes,
    /// Not a known built-in.
    Unknown,
}

const SEQUENCE: &[&str] = &["nextval", "setval", "currval", "lastval"];
const ADVISORY_PREFIXES: &[&str] = &["pg_advisory_", "pg_try_advisory_"];
const SESSION: &[&str] = &["set_config", "setseed", "pg_stat_clear_snapshot"];

/// Built-ins that write, need a primary, or run arbitrary query text.
const WRITES_PREFIXES: &[&str] = &[
    "lo_",                    // large objects: lo_create, lo_import, lo_put, lo_unlink...
    "binary_upgrade_",        // pg_upgrade internals
    "brin_",                  // brin_summarize_range & co. write index pages
    "pg_backup_",             // pg_backup_start/stop
    "pg_copy_",               // replication slot copies
    "pg_create_",             // slots, restore points
    "pg_current_",            // pg_current_wal_lsn, pg_current_xact_id: fail on a standby
    "pg_drop_",               // pg_drop_replication_slot
    "pg_logical_",            // consume slots, emit messages
    "pg_replication_origin_", // origin bookkeeping
    "pg_rotate_logfile",
    "pg_stat_reset",
    "query_to_xml", // runs its text argument as a query
    "cursor_to_xml",
    "txid_current", // assigns a transaction id
    "RI_FKey_",     // trigger functions
    "plpgsql_",
    "tsvector_update_trigger",
];
const WRITES: &[&str] = &[
    "loread",
    "lowrite",
    "gin_clean_pending_list",
    "pg_cancel_backend",
    "pg_terminate_backend",
    "pg_log_backend_memory_contexts",
    "pg_extension_config_dump",
    "pg_import_system_collations",
    "pg_nextoid",
    "pg_promote",
    "pg_reload_conf",
    "pg_replication_slot_advance",
    "pg_stat_force_next_flush",
    "pg_stop_making_pinned_objects",
    "pg_switch_wal",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "suppress_redundant_updates_trigger",
    "ts_rewrite", // runs its text argument as a query
    "ts_stat",
    "unique_key_recheck",
];

fn builtins() -> &'static HashSet<&'static str> {
    static BUILTINS: OnceLock<HashSet<&'static str>> = OnceLock::new();
    BUILTINS.get_or_init(|| {
        include_str!("builtin_functions.txt")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    })
}

/// Classifies a call by its name as written (`"now"`, `"pg_catalog.count"`,
/// `"myschema.f"`), after the parser's case folding.
pub(crate) fn function_kind(qualified_name: &str) -> FunctionKind {
    let name = match qualified_name.split_once('.') {
        None => qualified_name,
        Some(("pg_catalog", name)) if !name.contains('.') => name,
        Some(_) => return FunctionKind::Unknown,
    };
    if SEQUENCE.contains(&name) {
        FunctionKind::Sequence
    } else if ADVISORY_PREFIXES.iter().any(|p| name.starts_with(p)) {
        FunctionKind::AdvisoryLock
    } else if name == "pg_notify" {
        FunctionKind::Notify
    } else if SESSION.contains(&name) {
        FunctionKind::SessionState
    } else if WRITES.contains(&name) || WRITES_PREFIXES.iter().any(|p| name.starts_with(p)) {
        FunctionKind::Writes
    } else if builtins().contains(name) {
        FunctionKind::Read
    } else {
        FunctionKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_builtins_are_allowed() {
        for name in [
            "now",
            "count",
            "sum",
            "inet_server_port",
            "pg_last_wal_replay_lsn",
            "pg_is_in_recovery",
            "pg_last_xact_replay_timestamp",
            "generate_series",
            "lower",
            "random",
            "pg_sleep",
            "pg_catalog.extract",
            "pg_catalog.count",
            "jsonb_build_object",
            "current_setting",
        ] {
            assert_eq!(function_kind(name), FunctionKind::Read, "{name}");
        }
    }

    #[test]
    fn writing_builtins_are_denied_with_their_reason() {
        let cases = [
            ("nextval", FunctionKind::Sequence),
            ("pg_catalog.setval", FunctionKind::Sequence),
            ("currval", FunctionKind::Sequence),
            ("pg_advisory_lock", FunctionKind::AdvisoryLock),
            ("pg_advisory_xact_lock_shared", FunctionKind::AdvisoryLock),
            ("pg_try_advisory_lock", FunctionKind::AdvisoryLock),
            ("pg_advisory_unlock_all", FunctionKind::AdvisoryLock),
            ("pg_notify", FunctionKind::Notify),
            ("set_config", FunctionKind::SessionState),
            ("setseed", FunctionKind::SessionState),
            ("lo_create", FunctionKind::Writes),
            ("lowrite", FunctionKind::Writes),
            ("pg_current_wal_lsn", FunctionKind::Writes),
            ("pg_current_wal_insert_lsn", FunctionKind::Writes),
            ("txid_current", FunctionKind::Writes),
            ("pg_current_xact_id", FunctionKind::Writes),
            ("pg_switch_wal", FunctionKind::Writes),
            ("pg_create_logical_replication_slot", FunctionKind::Writes),
            ("pg_stat_reset", FunctionKind::Writes),
            ("query_to_xml", FunctionKind::Writes),
            ("pg_terminate_backend", FunctionKind::Writes),
        ];
        for (name, kind) in cases {
            assert_eq!(function_kind(name), kind, "{name}");
        }
    }

    #[test]
    fn unknown_and_foreign_schema_functions_are_unknown() {
        for name in [
            "my_function",
            "public.now",
            "app.count",
            "pg_catalog.no_such_function",
            "pg_catalog.a.b",
            "NOW", // quoted upper case is a different function
            "",
        ] {
            assert_eq!(function_kind(name), FunctionKind::Unknown, "{name}");
        }
    }

    /// Every denylisted exact name is a real built-in, so a typo cannot hide.
    #[test]
    fn denylist_names_exist_in_postgres() {
        for name in WRITES.iter().chain(SEQUENCE).chain(SESSION) {
            assert!(
                builtins().contains(name),
                "{name} is not a PostgreSQL 15 built-in"
            );
        }
        for prefix in WRITES_PREFIXES.iter().chain(ADVISORY_PREFIXES) {
            assert!(
                builtins().iter().any(|b| b.starts_with(prefix)),
                "no built-in starts with {prefix}"
            );
        }
        assert!(builtins().len() > 2500, "{}", builtins().len());
    }
}
