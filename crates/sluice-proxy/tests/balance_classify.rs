//! The classifier's verdicts checked against a real hot standby: whatever
//! it sends to a replica must run there, and the statements it keeps on
//! the primary for writing must really fail on a standby (so the rules are
//! needed, not just cautious).

use sluice_cluster::{Cluster, ClusterSpec};
use sluice_proxy::balance::classify::{classify, PrimaryReason, Route};

/// Statements the classifier routes to replicas; each must succeed on one.
const READS: &[&str] = &[
    "SELECT 1",
    "SELECT inet_server_port(), now(), pg_is_in_recovery(), pg_last_wal_replay_lsn()",
    "SELECT count(*), sum(id), max(a) FROM t",
    "SELECT * FROM t WHERE id = 1 ORDER BY a LIMIT 5",
    "SELECT extract(epoch FROM now()), lower('A'), substring('abc' FROM 2), coalesce(NULL, 1)",
    "SELECT json_agg(t) FROM t",
    "SELECT * FROM generate_series(1, 3) g LEFT JOIN t ON t.id = g",
    "VALUES (1), (2)",
    "TABLE t",
    "WITH x AS (SELECT id FROM t) SELECT count(*) FROM x",
    "SHOW search_path",
    "EXPLAIN SELECT * FROM t",
    "EXPLAIN ANALYZE SELECT * FROM t",
    "SELECT pg_sleep(0)",
    "SELECT random(), gen_random_uuid() IS NOT NULL",
    "SELECT current_setting('search_path'), pg_backend_pid()",
    "SELECT 1; SELECT 2",
    "BEGIN READ ONLY; SELECT * FROM t; COMMIT",
    "START TRANSACTION READ ONLY; SET LOCAL statement_timeout = '5s'; SELECT 1; COMMIT",
    "BEGIN READ ONLY; DECLARE c CURSOR FOR SELECT * FROM t; FETCH ALL FROM c; COMMIT",
];

/// Statements kept on the primary because they write; each must fail on a
/// standby.
const WRITES: &[&str] = &[
    "INSERT INTO t VALUES (1, 1)",
    "UPDATE t SET a = 2",
    "DELETE FROM t",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t FOR SHARE",
    "SELECT * INTO t_copy FROM t",
    "SELECT nextval('s')",
    "SELECT setval('s', 5)",
    "CREATE TEMP TABLE tmp (id int)",
    "CREATE TABLE t2 (id int)",
    "SELECT pg_current_wal_lsn()",
    "SELECT txid_current()",
    "SELECT lo_create(0)",
    "LISTEN channel",
    "NOTIFY channel",
    "SELECT pg_notify('channel', 'x')",
    "BEGIN; INSERT INTO t VALUES (2, 2); COMMIT",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn verdicts_hold_on_a_real_standby() {
    for sql in READS {
        assert_eq!(classify(sql).route, Route::Replica, "classifier: {sql}");
    }
    for sql in WRITES {
        assert!(
            matches!(classify(sql).route, Route::Primary(_)),
            "classifier: {sql}"
        );
    }

    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = Cluster::start(ClusterSpec {
            replicas: 1,
            ..Default::default()
        })
        .unwrap();
        cluster
            .sql_in(
                cluster.primary(),
                "app",
                "CREATE TABLE t (id int, a int); INSERT INTO t VALUES (1, 1); CREATE SEQUENCE s",
            )
            .unwrap();
        cluster.wait_caught_up().unwrap();
        cluster
    })
    .await
    .unwrap();

    let url = format!(
        "host=127.0.0.1 port={} user=postgres password=postgres dbname=app",
        cluster.replicas()[0].port()
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);

    let mut failures = Vec::new();
    for sql in READS {
        if let Err(error) = client.simple_query(sql).await {
            failures.push(format!("read failed on the standby: {sql}: {error:?}"));
        }
        // Leave no transaction open for the next statement.
        let _ = client.simple_query("ROLLBACK").await;
    }
    for sql in WRITES {
        match client.simple_query(sql).await {
            Ok(_) => failures.push(format!("write succeeded on a standby: {sql}")),
            Err(error) => {
                let code = error
                    .code()
                    .map(|c| c.code().to_owned())
                    .unwrap_or_default();
                // 25006 read_only_sql_transaction, 55000 object_not_in_prerequisite_state
                // (recovery in progress), 0A000 feature_not_supported (LISTEN),
                // XX000 "cannot assign OIDs during recovery" (large objects).
                if !["25006", "55000", "0A000", "XX000"].contains(&code.as_str()) {
                    failures.push(format!("{sql}: unexpected error {code}: {error:?}"));
                }
            }
        }
        let _ = client.simple_query("ROLLBACK").await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Unknown functions are sent to the primary even though this one would
    // happen to work on a standby: the classifier cannot know that.
    assert_eq!(
        classify("SELECT my_read_only_function()").route,
        Route::Primary(PrimaryReason::UnknownFunction)
    );
    drop(client);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}
