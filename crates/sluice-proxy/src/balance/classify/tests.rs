//! The routing table of issue 5, statement by statement.

use super::*;
use PrimaryReason as R;

fn route(sql: &str) -> Route {
    classify(sql).route
}

#[track_caller]
fn assert_routes(cases: &[(&str, Route)]) {
    let mut failures = Vec::new();
    for (sql, expected) in cases {
        let actual = route(sql);
        if actual != *expected {
            failures.push(format!("{sql}\n    expected {expected:?}, got {actual:?}"));
        }
    }
    assert!(failures.is_empty(), "misrouted:\n{}", failures.join("\n"));
}

const REPLICA: Route = Route::Replica;
const fn primary(reason: PrimaryReason) -> Route {
    Route::Primary(reason)
}

#[test]
fn reads_go_to_replicas() {
    assert_routes(&[
        ("SELECT 1", REPLICA),
        ("select * from accounts where id = $1", REPLICA),
        ("SELECT inet_server_port()", REPLICA),
        ("SELECT now(), count(*), sum(x) FROM t GROUP BY y", REPLICA),
        (
            "SELECT pg_last_wal_replay_lsn(), pg_is_in_recovery()",
            REPLICA,
        ),
        (
            "SELECT extract(epoch FROM now()), substring('abc' FROM 2)",
            REPLICA,
        ),
        ("VALUES (1), (2)", REPLICA),
        ("TABLE accounts", REPLICA),
        ("WITH x AS (SELECT 1) SELECT * FROM x", REPLICA),
        (
            "SELECT * FROM generate_series(1, 10) g JOIN t ON t.id = g",
            REPLICA,
        ),
        ("SELECT a FROM t UNION SELECT b FROM u", REPLICA),
        (
            "SELECT EXISTS (SELECT 1 FROM t WHERE t.x = lower($1))",
            REPLICA,
        ),
        ("SHOW search_path", REPLICA),
        ("SHOW ALL", REPLICA),
        ("EXPLAIN SELECT * FROM t", REPLICA),
        ("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t", REPLICA),
        ("COPY accounts TO STDOUT", REPLICA),
        (
            "COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)",
            REPLICA,
        ),
        ("SELECT 1; SELECT 2", REPLICA),
        ("", REPLICA),
        ("-- just a comment", REPLICA),
        ("SET LOCAL statement_timeout = '1s'", REPLICA),
        ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", REPLICA),
        ("COMMIT", REPLICA),
        ("ROLLBACK", REPLICA),
        ("SAVEPOINT a", REPLICA),
        ("RELEASE SAVEPOINT a", REPLICA),
        ("ROLLBACK TO SAVEPOINT a", REPLICA),
        ("DECLARE c CURSOR FOR SELECT 1", REPLICA),
        ("SELECT 'nextval(1)', $$setval$$", REPLICA),
    ]);
}

#[test]
fn writes_and_schema_changes_go_to_the_primary() {
    assert_routes(&[
        ("INSERT INTO t VALUES (1)", primary(R::Write)),
        ("UPDATE t SET a = 1", primary(R::Write)),
        ("DELETE FROM t", primary(R::Write)),
        (
            "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
            primary(R::Write),
        ),
        ("TRUNCATE t", primary(R::Write)),
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            primary(R::Write),
        ),
        (
            "SELECT * FROM (WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT * FROM i) s",
            primary(R::Write),
        ),
        ("COPY t FROM STDIN", primary(R::Write)),
        ("COPY t TO '/tmp/t.csv'", primary(R::ServerFile)),
        ("COPY t FROM PROGRAM 'cat'", primary(R::ServerFile)),
        ("CREATE TABLE t (id int)", primary(R::Ddl)),
        ("ALTER TABLE t ADD COLUMN x int", primary(R::Ddl)),
        ("DROP TABLE t", primary(R::Ddl)),
        ("GRANT SELECT ON t TO app", primary(R::Ddl)),
        ("CREATE INDEX ON t (x)", primary(R::Ddl)),
        ("VACUUM t", primary(R::Maintenance)),
        ("ANALYZE t", primary(R::Maintenance)),
        ("REFRESH MATERIALIZED VIEW v", primary(R::Maintenance)),
        (
            "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
            primary(R::Write),
        ),
        ("EXPLAIN UPDATE t SET a = 1", primary(R::Write)),
        ("CALL do_things()", primary(R::Procedure)),
        ("DO $$ BEGIN PERFORM 1; END $$", primary(R::Procedure)),
        ("SELECT 1; INSERT INTO t VALUES (1)", primary(R::Write)),
    ]);
}

#[test]
fn transactions_locks_and_special_reads_go_to_the_primary() {
    assert_routes(&[
        ("BEGIN", primary(R::Transaction)),
        ("START TRANSACTION", primary(R::Transaction)),
        (
            "BEGIN ISOLATION LEVEL SERIALIZABLE",
            primary(R::Transaction),
        ),
        ("BEGIN READ WRITE", primary(R::Transaction)),
        ("BEGIN; SELECT 1; COMMIT", primary(R::Transaction)),
        ("PREPARE TRANSACTION 'x'", primary(R::Transaction)),
        ("COMMIT PREPARED 'x'", primary(R::Transaction)),
        ("SELECT * FROM t FOR UPDATE", primary(R::Lock)),
        ("SELECT * FROM t FOR SHARE SKIP LOCKED", primary(R::Lock)),
        ("SELECT * FROM t FOR NO KEY UPDATE", primary(R::Lock)),
        (
            "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR KEY SHARE)",
            primary(R::Lock),
        ),
        ("LOCK TABLE t", primary(R::Lock)),
        ("SELECT * INTO t2 FROM t", primary(R::SelectInto)),
        ("SELECT nextval('s')", primary(R::Sequence)),
        ("SELECT setval('s', 10)", primary(R::Sequence)),
        ("SELECT currval('s')", primary(R::Sequence)),
        (
            "SELECT CASE WHEN $1 THEN pg_catalog.nextval('s') END",
            primary(R::Sequence),
        ),
        (
            "SELECT * FROM t WHERE id = (SELECT nextval('s'))",
            primary(R::Sequence),
        ),
        ("SELECT pg_advisory_lock(1)", primary(R::AdvisoryLock)),
        (
            "SELECT pg_try_advisory_xact_lock(1, 2)",
            primary(R::AdvisoryLock),
        ),
        ("SELECT pg_advisory_unlock_all()", primary(R::AdvisoryLock)),
        ("LISTEN chan", primary(R::ListenNotify)),
        ("UNLISTEN *", primary(R::ListenNotify)),
        ("NOTIFY chan, 'x'", primary(R::ListenNotify)),
        ("SELECT pg_notify('chan', 'x')", primary(R::ListenNotify)),
        ("CREATE TEMP TABLE t (id int)", primary(R::Temporary)),
        ("CREATE TEMPORARY VIEW v AS SELECT 1", primary(R::Temporary)),
        ("CREATE TEMP TABLE t AS SELECT 1", primary(R::Temporary)),
        ("SELECT 1 INTO TEMP t", primary(R::Temporary)),
        ("SELECT pg_current_wal_lsn()", primary(R::WritingFunction)),
        ("SELECT txid_current()", primary(R::WritingFunction)),
        ("SELECT lo_create(0)", primary(R::WritingFunction)),
        (
            "SELECT query_to_xml('delete from t', true, true, '')",
            primary(R::WritingFunction),
        ),
        (
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            primary(R::SessionState),
        ),
        ("FETCH 10 FROM c", primary(R::SessionState)),
        ("CLOSE c", primary(R::SessionState)),
        (
            "BEGIN READ ONLY; DECLARE c CURSOR FOR SELECT 1; FETCH c; CLOSE c; COMMIT",
            REPLICA,
        ),
        (
            "BEGIN READ ONLY; DECLARE c CURSOR FOR SELECT 1; FETCH other; COMMIT",
            primary(R::SessionState),
        ),
        (
            "DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE",
            primary(R::Lock),
        ),
    ]);
}

#[test]
fn session_state_goes_to_the_primary() {
    assert_routes(&[
        ("SET search_path = app", primary(R::SessionState)),
        (
            "SET SESSION statement_timeout = 0",
            primary(R::SessionState),
        ),
        (
            "SET default_transaction_read_only = on",
            primary(R::SessionState),
        ),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            primary(R::SessionState),
        ),
        ("RESET search_path", primary(R::SessionState)),
        ("RESET ALL", primary(R::SessionState)),
        ("DISCARD ALL", primary(R::SessionState)),
        ("PREPARE q AS SELECT 1", primary(R::SessionState)),
        ("EXECUTE q", primary(R::SessionState)),
        ("DEALLOCATE q", primary(R::SessionState)),
        ("LOAD 'auto_explain'", primary(R::SessionState)),
        (
            "SELECT set_config('search_path', 'app', false)",
            primary(R::SessionState),
        ),
    ]);
    let set = classify("SET search_path = app");
    assert_eq!(set.effects, [Effect::SessionState]);
    assert!(!set.may_write);
    assert!(classify("EXECUTE q").may_write, "EXECUTE may run anything");
}

#[test]
fn unknown_functions_go_to_the_primary_known_read_only_builtins_do_not() {
    assert_routes(&[
        ("SELECT my_function()", primary(R::UnknownFunction)),
        (
            "SELECT * FROM my_set_returning_function(1)",
            primary(R::UnknownFunction),
        ),
        ("SELECT app.now()", primary(R::UnknownFunction)),
        (
            "SELECT count(*) FROM t WHERE f(x)",
            primary(R::UnknownFunction),
        ),
        ("SELECT pg_catalog.now()", REPLICA),
        (
            "SELECT lower(name), length(name), coalesce(a, b), greatest(1, 2) FROM t",
            REPLICA,
        ),
        ("SELECT json_agg(t) FROM t", REPLICA),
        ("SELECT pg_sleep(0)", REPLICA),
        // An unknown function anywhere beats read-only ones; a sequence beats both.
        ("SELECT now(), f()", primary(R::UnknownFunction)),
        ("SELECT f(), nextval('s')", primary(R::Sequence)),
    ]);
}

#[test]
fn unparsable_text_goes_to_the_primary() {
    for sql in [
        "SELEC 1",
        "SELECT (",
        "SELECT 1 FROM",
        "SELECT '\0'",
        "INSERT INTO",
    ] {
        let verdict = classify(sql);
        assert_eq!(verdict.route, primary(R::Unparsable), "{sql:?}");
        assert!(verdict.may_write);
    }
}

#[test]
fn read_only_transactions_go_to_replicas() {
    for sql in [
        "BEGIN READ ONLY",
        "START TRANSACTION READ ONLY",
        "begin transaction isolation level repeatable read, read only",
        "START TRANSACTION READ WRITE, READ ONLY",
        "BEGIN READ ONLY; SELECT 1; COMMIT",
    ] {
        let verdict = classify(sql);
        assert_eq!(verdict.route, REPLICA, "{sql}");
        assert_eq!(
            verdict.effects[0],
            Effect::Begin { read_only: true },
            "{sql}"
        );
    }
    let verdict = classify("START TRANSACTION READ ONLY, READ WRITE");
    assert_eq!(verdict.route, primary(R::Transaction));
    assert_eq!(verdict.effects, [Effect::Begin { read_only: false }]);
}

#[test]
fn transaction_effects_in_order() {
    let verdict = classify("BEGIN; INSERT INTO t VALUES (1); COMMIT; BEGIN READ ONLY; ROLLBACK");
    assert_eq!(
        verdict.effects,
        [
            Effect::Begin { read_only: false },
            Effect::Commit,
            Effect::Begin { read_only: true },
            Effect::Rollback,
        ]
    );
    assert!(verdict.may_write);
    assert_eq!(classify("END").effects, [Effect::Commit]);
    assert_eq!(classify("ABORT").effects, [Effect::Rollback]);
    assert_eq!(
        classify("COMMIT AND CHAIN").effects,
        [Effect::Commit, Effect::Begin { read_only: false }]
    );
    assert!(classify("ROLLBACK TO SAVEPOINT s").effects.is_empty());
    assert_eq!(
        classify("PREPARE TRANSACTION 'g'").effects,
        [Effect::Commit]
    );
    assert!(!classify("BEGIN").may_write, "BEGIN alone writes nothing");
    assert!(!classify("SELECT 1").may_write);
}

#[test]
fn hints_win() {
    let hinted = classify("/* sluice:primary */ SELECT 1");
    assert_eq!(hinted.route, primary(R::Hint));
    assert!(hinted.hinted);
    assert!(!hinted.may_write, "a hint does not make a read a write");
    assert_routes(&[
        ("SELECT 1 -- sluice:primary", primary(R::Hint)),
        ("SELECT /*sluice:primary*/ 1", primary(R::Hint)),
        (
            "/* app=web sluice:primary route=x */ SELECT 1",
            primary(R::Hint),
        ),
        ("/* sluice:replica */ SELECT my_function()", REPLICA),
        ("/* sluice:replica */ SELEC garbage", REPLICA),
        // Not in a comment: no hint.
        ("SELECT 'sluice:primary'", REPLICA),
        ("SELECT 1 AS \"sluice:primary\"", REPLICA),
        (
            "SELECT my_function(), 'sluice:replica'",
            primary(R::UnknownFunction),
        ),
        // Near misses are not hints.
        ("/* sluice:primaryish */ SELECT 1", REPLICA),
        ("/* SLUICE:PRIMARY */ SELECT 1", REPLICA),
    ]);
    let write = classify("/* sluice:replica */ INSERT INTO t VALUES (1)");
    assert_eq!(
        write.route, REPLICA,
        "the hint wins; the replica will refuse the write"
    );
    assert!(write.may_write);
}

#[test]
fn sluice_commands_are_for_the_gateway() {
    let cases = [
        (
            "SET sluice.route = 'primary'",
            SluiceCommand::SetRoute(RouteSetting::Primary),
        ),
        (
            "SET sluice.route TO replica",
            SluiceCommand::SetRoute(RouteSetting::Replica),
        ),
        (
            "set sluice.route = auto",
            SluiceCommand::SetRoute(RouteSetting::Auto),
        ),
        (
            "RESET sluice.route",
            SluiceCommand::SetRoute(RouteSetting::Auto),
        ),
        (
            "SET sluice.sticky_key = 'user:42'",
            SluiceCommand::SetStickyKey(Some("user:42".into())),
        ),
        (
            "SET sluice.sticky_key = 42",
            SluiceCommand::SetStickyKey(Some("42".into())),
        ),
        (
            "SET sluice.sticky_key TO DEFAULT",
            SluiceCommand::SetStickyKey(None),
        ),
        (
            "SET sluice.min_lsn = '0/16B3748'",
            SluiceCommand::SetMinLsn(Some(Lsn(0x16B3748))),
        ),
        ("RESET sluice.min_lsn", SluiceCommand::SetMinLsn(None)),
        (
            "SHOW sluice.last_write_lsn",
            SluiceCommand::Show(SluiceSetting::LastWriteLsn),
        ),
        (
            "SHOW sluice.hosts",
            SluiceCommand::Show(SluiceSetting::Hosts),
        ),
        (
            "show SLUICE.route",
            SluiceCommand::Show(SluiceSetting::Route),
        ),
        (
            "SET SESSION sluice.route = 'primary'",
            SluiceCommand::SetRoute(RouteSetting::Primary),
        ),
    ];
    for (sql, command) in cases {
        let verdict = classify(sql);
        assert_eq!(verdict.effects, [Effect::Sluice(command)], "{sql}");
        assert!(verdict.gateway_only, "{sql}");
        assert_eq!(verdict.route, REPLICA, "{sql}");
        assert!(verdict.sluice_error().is_none(), "{sql}");
    }
    assert_eq!(SluiceSetting::LastWriteLsn.name(), "sluice.last_write_lsn");
}

#[test]
fn bad_sluice_commands_carry_a_message() {
    let long_key = format!(
        "SET sluice.sticky_key = '{}'",
        "k".repeat(MAX_STICKY_KEY + 1)
    );
    let cases = [
        (
            "SET sluice.route = 'sideways'",
            "invalid value for sluice.route",
        ),
        ("SET sluice.min_lsn = 'yesterday'", "invalid WAL position"),
        ("SET sluice.sticky_key = ''", "must not be empty"),
        (&long_key, "at most 256 bytes, got 257"),
        (
            "SET sluice.routing = 'primary'",
            "unrecognized configuration parameter \"sluice.routing\"",
        ),
        (
            "SHOW sluice.nothing",
            "unrecognized configuration parameter",
        ),
        ("SET sluice.last_write_lsn = '0/1'", "read-only"),
        (
            "SET sluice.route = 'primary', 'replica'",
            "takes a single value",
        ),
        (
            "SET sluice.route = 'primary'; SELECT 1",
            "must be sent as their own query",
        ),
    ];
    for (sql, expected) in cases {
        let verdict = classify(sql);
        let message = verdict
            .sluice_error()
            .unwrap_or_else(|| panic!("{sql}: no error"));
        assert!(message.contains(expected), "{sql}: {message}");
    }
    // A mixed string is not answered by the gateway alone.
    assert!(!classify("SHOW sluice.hosts; SELECT 1").gateway_only);
    assert!(classify("SHOW sluice.hosts; SHOW sluice.route").gateway_only);
    assert!(!classify("").gateway_only);
}

#[test]
fn session_route_setting_applies_like_a_hint() {
    let write = primary(R::Write);
    assert_eq!(RouteSetting::Auto.apply(write), write);
    assert_eq!(RouteSetting::Auto.apply(REPLICA), REPLICA);
    assert_eq!(RouteSetting::Primary.apply(REPLICA), primary(R::Hint));
    assert_eq!(
        RouteSetting::Replica.apply(primary(R::UnknownFunction)),
        REPLICA
    );
}

#[test]
fn reasons_describe_themselves() {
    assert_eq!(R::Sequence.to_string(), "uses a sequence");
    assert!(R::Write.may_write() && R::UnknownFunction.may_write() && R::Unparsable.may_write());
    assert!(!R::SessionState.may_write() && !R::Transaction.may_write());
}

/// Deterministic garbage built from SQL fragments: the classifier must never
/// panic, and whatever does not parse must go to the primary.
#[test]
fn arbitrary_text_never_panics_and_unparsable_goes_to_the_primary() {
    const PIECES: &[&str] = &[
        "SELECT",
        "INSERT",
        "INTO",
        "FROM",
        "t",
        "(",
        ")",
        ",",
        ";",
        "'",
        "\"",
        "$$",
        "$1",
        "/*",
        "*/",
        "--",
        "\n",
        "nextval",
        "FOR UPDATE",
        "WITH",
        "AS",
        "BEGIN",
        "SET",
        "sluice.route",
        "=",
        "1",
        "é",
        "\0",
        "sluice:replica",
        "::",
        "[",
        "]",
        "E'\\",
        "COPY",
        "SHOW",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut unparsable = 0;
    for _ in 0..3000 {
        let length = (next() % 12) as usize;
        let text: Vec<&str> = (0..length)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        let sql = text.join(" ");
        let verdict = classify(&sql);
        if pg_query::parse(&sql, 0).is_err() {
            unparsable += 1;
            if !verdict.hinted {
                assert_eq!(verdict.route, primary(R::Unparsable), "{sql:?}");
            }
        }
    }
    assert!(
        unparsable > 1000,
        "the generator should mostly produce garbage: {unparsable}"
    );
}

#[test]
fn lone_statements_are_single_parsed_and_not_copy() {
    for sql in [
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1;",
        "  COMMIT",
        "END",
        "ROLLBACK",
        "SELECT 1",
        "/* sluice:primary */ DELETE FROM t",
    ] {
        assert!(classify(sql).lone_statement, "{sql}");
    }
    for sql in [
        "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
        "BEGIN; UPDATE t SET a = 1; COMMIT",
        "COPY t FROM STDIN",
        "COPY t TO STDOUT",
        "COPY (SELECT 1) TO STDOUT",
        "INSERT INTO",
        "",
    ] {
        assert!(!classify(sql).lone_statement, "{sql}");
    }
}
