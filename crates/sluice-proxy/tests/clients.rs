//! Real clients through the gateway against real PostgreSQL: psql, pgbench
//! (simple, extended, prepared), tokio-postgres and psycopg 3; the
//! authentication methods; session and transaction pooling semantics.

mod common;

use std::process::Command;

use common::{cluster, run_bounded, TestGateway};
use sluice_cluster::Cluster;

const TX: &str = "pool_mode = \"transaction\"";

#[test]
fn psql_simple_query_in_transaction_mode() {
    let cluster = cluster();
    let gw = TestGateway::start(&cluster, TX, "", &[]);
    let (ok, out, err) = gw.psql("SELECT 1 + 1; SELECT current_user");
    assert!(ok, "{err}");
    assert_eq!(out, "2\napp");
}

#[test]
fn md5_and_trust_users_and_wrong_passwords() {
    let cluster = cluster();
    // Clients authenticate with md5 here; the gateway logs in to the server
    // with md5 (md5user), SCRAM (app) or nothing (trustuser).
    let gw = TestGateway::start(
        &cluster,
        "auth_type = \"md5\"\npool_mode = \"transaction\"",
        "",
        &[],
    );
    let (ok, out, err) = gw.psql_as("md5user", "md5pass", "SELECT current_user");
    assert!(ok, "{err}");
    assert_eq!(out, "md5user");
    let (ok, out, err) = gw.psql_as("app", "app", "SELECT current_user");
    assert!(ok, "{err}");
    assert_eq!(out, "app");
    let (ok, _, err) = gw.psql_as("md5user", "wrong", "SELECT 1");
    assert!(!ok);
    assert!(
        err.contains("password authentication failed for user \"md5user\""),
        "{err}"
    );
    let (ok, out, err) = gw.psql_as("trustuser", "trustpw", "SELECT current_user");
    assert!(ok, "{err}");
    assert_eq!(out, "trustuser");

    let scram = TestGateway::start(&cluster, TX, "", &[]);
    let (ok, _, err) = scram.psql_as("app", "nope", "SELECT 1");
    assert!(!ok);
    assert!(
        err.contains("password authentication failed for user \"app\""),
        "{err}"
    );
    let (ok, _, err) = scram.psql_as("nobody", "x", "SELECT 1");
    assert!(!ok);
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn unknown_database_is_refused_by_name() {
    let cluster = cluster();
    let gw = TestGateway::start(&cluster, TX, "", &[]);
    let out = run_bounded(
        Command::new(Cluster::bin("psql"))
            .arg(format!(
                "host=127.0.0.1 port={} user=app password=app dbname=nope",
                gw.port
            ))
            .args(["-c", "SELECT 1"]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no such database: nope"), "{err}");
}

fn pgbench(gw: &TestGateway, args: &[&str]) -> String {
    let out = run_bounded(
        Command::new(Cluster::bin("pgbench"))
            .env("PGPASSWORD", "app")
            .args(["-h", "127.0.0.1", "-p", &gw.port.to_string(), "-U", "app"])
            .args(args)
            .arg("app"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "pgbench {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout + &stderr
}

#[test]
fn pgbench_simple_extended_and_prepared_in_transaction_mode() {
    let cluster = cluster();
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 4",
        "",
        &[],
    );
    // Initialisation goes through the gateway too (it uses COPY FROM STDIN).
    pgbench(&gw, &["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        // TPC-B-like: explicit transactions with several statements.
        let out = pgbench(&gw, &["-M", mode, "-c", "8", "-j", "2", "-t", "100"]);
        assert!(
            out.contains("number of transactions actually processed: 800/800"),
            "{mode}: {out}"
        );
        assert!(
            out.contains("number of failed transactions: 0"),
            "{mode}: {out}"
        );
        // Select-only.
        let out = pgbench(&gw, &["-M", mode, "-S", "-c", "16", "-j", "2", "-t", "200"]);
        assert!(
            out.contains("number of transactions actually processed: 3200/3200"),
            "{mode}: {out}"
        );
    }
    // The server never saw more than the pool's 4 connections for `app`.
    let pool = gw.pool_stats("app");
    assert!(pool.snapshot().open <= 4, "{:?}", pool.snapshot());
}

#[test]
fn tokio_postgres_prepared_statements_survive_server_changes() {
    let cluster = cluster();
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 2\nmax_prepared_statements = 3",
        "",
        &[],
    );
    let conninfo = gw.conninfo("app", "app");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..6 {
            let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            clients.push(client);
        }
        // Each client prepares several statements: more than fit on one server
        // connection (max_prepared_statements = 3), so eviction and
        // re-preparation both happen.
        let mut statements = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let mut mine = Vec::new();
            for k in 0..4 {
                let sql = format!("SELECT $1::int * {} + {}", k + 1, i);
                mine.push(client.prepare(&sql).await.expect("prepare"));
            }
            statements.push(mine);
        }
        for round in 0..10i32 {
            let mut tasks = Vec::new();
            for (i, client) in clients.iter().enumerate() {
                let stmts = statements[i].clone();
                let client = client.clone_handle();
                tasks.push(async move {
                    for (k, stmt) in stmts.iter().enumerate() {
                        let row = client.query_one(stmt, &[&round]).await.expect("query");
                        let value: i32 = row.get(0);
                        assert_eq!(value, round * (k as i32 + 1) + i as i32);
                    }
                });
            }
            futures_join_all(tasks).await;
        }
        // A transaction keeps its server connection throughout.
        let mut client = clients.pop().unwrap();
        let tx = client.transaction().await.unwrap();
        let pid1: i32 = tx
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let pid2: i32 = tx
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(pid1, pid2);
        tx.commit().await.unwrap();
        // A client statement name that was closed is really gone.
        let stmt = client.prepare("SELECT 42").await.unwrap();
        drop(stmt); // tokio-postgres sends Close for it
        let row = client.query_one("SELECT 43", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 43);
    });
}

trait CloneHandle {
    fn clone_handle(&self) -> &Self;
}

impl CloneHandle for tokio_postgres::Client {
    fn clone_handle(&self) -> &Self {
        self
    }
}

async fn show(client: &tokio_postgres::Client) -> String {
    let rows = client
        .simple_query("SELECT current_setting('application_name') || ' ' || current_setting('TimeZone') || ' ' || current_setting('statement_timeout')")
        .await
        .unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap().to_string()),
            _ => None,
        })
        .expect("a row")
}

async fn futures_join_all<F: std::future::Future<Output = ()>>(tasks: Vec<F>) {
    let mut pinned: Vec<_> = tasks.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        pinned.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pinned.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

#[test]
fn psycopg_prepared_copy_notices_and_cancel() {
    let Some(python) = common::python() else {
        panic!("the repository virtualenv (.venv) must have psycopg 3: run scripts/setup.sh");
    };
    let cluster = cluster();
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 2",
        "",
        &[],
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/psycopg_through_gateway.py");
    let out = run_bounded(
        Command::new(python)
            .arg(script)
            .arg(gw.conninfo("app", "app")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("all psycopg checks passed"), "{stdout}");
}

#[test]
fn session_mode_keeps_state_then_resets_with_discard_all() {
    let cluster = cluster();
    common::create_role(&cluster, "sess");
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"session\"\ndefault_pool_size = 1",
        "",
        &["sess"],
    );
    let (ok, out, err) = gw.psql_as(
        "sess",
        "sess",
        "CREATE TEMP TABLE mine (x int); INSERT INTO mine VALUES (1); \
         PREPARE q AS SELECT count(*) FROM mine; SET work_mem = '7MB'; EXECUTE q; SHOW work_mem; SELECT pg_backend_pid()",
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], &["1", "7MB", lines[2]]);
    let pid = lines[2].to_string();
    // Same server connection (pool of 1), but nothing of the last session left.
    let (ok, out, err) = gw.psql_as(
        "sess",
        "sess",
        "SELECT pg_backend_pid(); SHOW work_mem; SELECT count(*) FROM pg_prepared_statements; \
         SELECT count(*) FROM pg_class WHERE relname = 'mine' AND relpersistence = 't'",
    );
    assert!(ok, "{err}");
    assert_eq!(out, format!("{pid}\n4MB\n0\n0"));
}

#[test]
fn sql_prepare_in_transaction_mode_is_a_clear_error() {
    let cluster = cluster();
    let gw = TestGateway::start(&cluster, TX, "", &[]);
    let (ok, _, err) = gw.psql("PREPARE q AS SELECT 1");
    assert!(!ok);
    assert!(
        err.contains("SQL PREPARE is not supported in transaction pooling mode"),
        "{err}"
    );
    // PREPARE TRANSACTION is not that, and the session goes on after the error.
    let (ok, out, err) = gw.psql("SELECT 'PREPARE is fine in a string'");
    assert!(ok, "{err}");
    assert_eq!(out, "PREPARE is fine in a string");
}

#[test]
fn disconnect_mid_transaction_rolls_back_before_reuse() {
    let cluster = cluster();
    common::create_role(&cluster, "midtx");
    cluster
        .sql_in(
            cluster.primary(),
            "app",
            "CREATE TABLE IF NOT EXISTS midtx_t (x int); GRANT ALL ON midtx_t TO PUBLIC",
        )
        .unwrap();
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 1",
        "",
        &["midtx"],
    );
    // psql sends BEGIN and INSERT, then leaves without COMMIT.
    let (ok, _, err) = gw.psql_as(
        "midtx",
        "midtx",
        "BEGIN; INSERT INTO midtx_t VALUES (1); SELECT 1",
    );
    assert!(ok, "{err}");
    // The only server connection was rolled back and is clean for the next client.
    let (ok, out, err) = gw.psql_as(
        "midtx",
        "midtx",
        "SELECT count(*) FROM midtx_t; BEGIN; SELECT 2; COMMIT",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "0\n2");
    assert!(!err.contains("already a transaction"), "{err}");
}

#[test]
fn startup_parameters_follow_the_client_across_server_connections() {
    let cluster = cluster();
    common::create_role(&cluster, "params");
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 1",
        "",
        &["params"],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connect = |app: &'static str, options: &'static str| {
            let mut config = tokio_postgres::Config::new();
            config
                .host("127.0.0.1")
                .port(gw.port)
                .user("params")
                .password("params")
                .dbname("app")
                .application_name(app);
            if !options.is_empty() {
                config.options(options);
            }
            async move {
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(connection);
                client
            }
        };
        let alpha = connect("alpha", "-c TimeZone=Asia/Tokyo -c statement_timeout=12345").await;
        let beta = connect("beta", "").await;
        let default_tz = cluster.sql(cluster.primary(), "SHOW TimeZone").unwrap();
        for _ in 0..3 {
            assert_eq!(show(&alpha).await, "alpha Asia/Tokyo 12345ms");
            assert_eq!(show(&beta).await, format!("beta {default_tz} 0"));
        }
        // A SET of a reported parameter follows the client too.
        alpha
            .simple_query("SET application_name = 'gamma'")
            .await
            .unwrap();
        assert_eq!(show(&beta).await, format!("beta {default_tz} 0"));
        assert_eq!(show(&alpha).await, "gamma Asia/Tokyo 12345ms");
    });
}

#[test]
fn prepared_statement_errors_leave_the_mapping_consistent() {
    let cluster = cluster();
    common::create_role(&cluster, "prep_err");
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 2",
        "",
        &["prep_err"],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (client, connection) = tokio_postgres::connect(
                &gw.conninfo("prep_err", "prep_err"),
                tokio_postgres::NoTls,
            )
            .await
            .unwrap();
            tokio::spawn(connection);
            clients.push(client);
        }
        let divide = clients[0].prepare("SELECT 10 / $1::int").await.unwrap();
        let echo = clients[1].prepare("SELECT $1::int").await.unwrap();
        // A syntax error is reported at prepare time, as by PostgreSQL.
        assert!(clients[2].prepare("SELEC 1").await.is_err());
        for round in 0..5 {
            let err = clients[0]
                .query_one(&divide, &[&0i32])
                .await
                .expect_err("division by zero");
            assert_eq!(err.code().map(|c| c.code()), Some("22012"), "{err:?}");
            let row = clients[0].query_one(&divide, &[&2i32]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), 5);
            let row = clients[1].query_one(&echo, &[&round]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), round);
            // Keep a server busy so the statements move between connections.
            clients[2].batch_execute("BEGIN").await.unwrap();
            let row = clients[0].query_one(&divide, &[&5i32]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), 2);
            clients[2].batch_execute("COMMIT").await.unwrap();
        }
    });
}
