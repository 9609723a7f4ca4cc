//! pgbouncer's limits and timeouts against real PostgreSQL, each firing
//! with pgbouncer 1.25's words (`FATAL 08P01 ...`): client connection
//! limits per database and user, `max_db_connections` (waits, never
//! fails), `query_timeout`, `idle_transaction_timeout`,
//! `client_idle_timeout`, `server_lifetime`, `server_check_query`, and the
//! console's averages per `stats_period`. Each test has its own role, so it
//! can count its own server connections.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, create_role, TestGateway};
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls};

/// A client, and what its connection ended with (the gateway's FATAL for
/// a client it closed while the client was idle).
async fn connect(
    gw: &TestGateway,
    user: &str,
) -> Result<(Client, oneshot::Receiver<Option<String>>), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(&gw.conninfo(user, user), NoTls).await?;
    let (ended, ending) = oneshot::channel();
    tokio::spawn(async move {
        let outcome = connection.await.err().map(|e| fatal_text(&e));
        let _ = ended.send(outcome);
    });
    Ok((client, ending))
}

/// `SQLSTATE message` of a server error, or the error's text.
fn fatal_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A gateway for `user` in transaction pooling with `settings` added.
fn gateway(user: &str, settings: &str) -> TestGateway {
    let cluster = cluster();
    create_role(&cluster, user);
    TestGateway::start(
        &cluster,
        &format!("pool_mode = \"transaction\"\n{settings}"),
        "",
        &[user],
    )
}

#[test]
fn client_connection_limits_per_database_and_user() {
    let gw = gateway("climit", "max_db_client_connections = 2");
    runtime().block_on(async {
        let _first = connect(&gw, "climit").await.unwrap();
        let _second = connect(&gw, "climit").await.unwrap();
        let refused = connect(&gw, "climit")
            .await
            .expect_err("a third is refused");
        assert_eq!(
            fatal_text(&refused),
            "08P01 client connections exceeded (max_db_client_connections)"
        );
    });
    let gw = gateway("ulimit", "max_user_client_connections = 1");
    runtime().block_on(async {
        let _first = connect(&gw, "ulimit").await.unwrap();
        let refused = connect(&gw, "ulimit")
            .await
            .expect_err("a second is refused");
        assert_eq!(
            fatal_text(&refused),
            "08P01 client connections exceeded (max_user_client_connections)"
        );
    });
}

#[test]
fn max_db_connections_makes_clients_wait_not_fail() {
    let gw = gateway("dblimit", "default_pool_size = 5\nmax_db_connections = 1");
    runtime().block_on(async {
        let (holder, _) = connect(&gw, "dblimit").await.unwrap();
        let (waiter, _) = connect(&gw, "dblimit").await.unwrap();
        holder.batch_execute("BEGIN").await.unwrap();
        let started = Instant::now();
        let waiting =
            tokio::spawn(async move { waiter.simple_query("SELECT 2").await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "the database's one connection is taken"
        );
        holder.batch_execute("COMMIT").await.unwrap();
        waiting
            .await
            .unwrap()
            .expect("served once the holder committed");
        assert!(started.elapsed() >= Duration::from_millis(300));
    });
}

#[test]
fn query_timeout_cancels_the_query_and_closes_the_client() {
    let gw = gateway("qtimeout", "query_timeout = 1");
    // psql shows the FATAL the gateway sends in the middle of the query
    // (tokio-postgres reports only that the connection closed).
    let started = Instant::now();
    let (ok, _, stderr) = gw.psql_as("qtimeout", "qtimeout", "SELECT pg_sleep(10)");
    assert!(!ok);
    assert!(stderr.starts_with("FATAL:  query timeout"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The server stopped the query too: nothing of it is left running.
    let cluster = cluster();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let running: i64 = cluster
            .sql(
                cluster.primary(),
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'qtimeout' AND state = 'active'",
            )
            .unwrap()
            .parse()
            .unwrap();
        if running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the query still runs");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn idle_transaction_timeout_closes_a_client_idle_in_its_transaction() {
    let gw = gateway("ittimeout", "idle_transaction_timeout = 1");
    runtime().block_on(async {
        let (client, ended) = connect(&gw, "ittimeout").await.unwrap();
        client.batch_execute("BEGIN").await.unwrap();
        let said = tokio::time::timeout(Duration::from_secs(5), ended)
            .await
            .expect("closed within the timeout and the janitor's period")
            .unwrap();
        assert_eq!(said.as_deref(), Some("08P01 idle transaction timeout"));
        assert!(client.simple_query("SELECT 1").await.is_err());
    });
}

#[test]
fn client_idle_timeout_closes_an_idle_client_only() {
    let gw = gateway("citimeout", "client_idle_timeout = 1");
    runtime().block_on(async {
        let (idle, ended) = connect(&gw, "citimeout").await.unwrap();
        idle.simple_query("SELECT 1").await.unwrap();
        // A client that keeps working meanwhile is never idle that long.
        let (busy, _) = connect(&gw, "citimeout").await.unwrap();
        let working = tokio::spawn(async move {
            for _ in 0..12 {
                busy.simple_query("SELECT 1").await.expect("still served");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let said = tokio::time::timeout(Duration::from_secs(5), ended)
            .await
            .expect("closed")
            .unwrap();
        assert_eq!(said.as_deref(), Some("08P01 client_idle_timeout"));
        working.await.unwrap();
    });
}

#[test]
fn server_lifetime_renews_server_connections_unseen() {
    let gw = gateway("lifetime", "server_lifetime = 1\ndefault_pool_size = 1");
    runtime().block_on(async {
        let (client, _) = connect(&gw, "lifetime").await.unwrap();
        let pid = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
            rows.into_iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
        };
        let first = pid(client
            .simple_query("SELECT pg_backend_pid()")
            .await
            .unwrap());
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let second = pid(client
            .simple_query("SELECT pg_backend_pid()")
            .await
            .unwrap());
        assert!(first.is_some() && second.is_some());
        assert_ne!(first, second, "an older connection was replaced");
    });
}

#[test]
fn server_check_query_runs_on_connections_idle_past_the_delay() {
    let cluster = cluster();
    create_role(&cluster, "checker");
    cluster
        .sql_in(
            cluster.primary(),
            "app",
            "CREATE TABLE IF NOT EXISTS sluice_checks (at timestamptz DEFAULT now()); \
             GRANT ALL ON sluice_checks TO checker",
        )
        .unwrap();
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\nserver_check_delay = 0.3\n\
         server_check_query = \"INSERT INTO sluice_checks DEFAULT VALUES\"",
        "",
        &["checker"],
    );
    let checks = || -> i64 {
        cluster
            .sql_in(
                cluster.primary(),
                "app",
                "SELECT count(*) FROM sluice_checks",
            )
            .unwrap()
            .parse()
            .unwrap()
    };
    runtime().block_on(async {
        let (client, _) = connect(&gw, "checker").await.unwrap();
        client.simple_query("SELECT 1").await.unwrap();
        let before = checks();
        client.simple_query("SELECT 1").await.unwrap();
        assert_eq!(checks(), before, "used again at once: no check");
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.simple_query("SELECT 1").await.unwrap();
        assert_eq!(checks(), before + 1, "idle past the delay: checked first");
    });
}

#[test]
fn stats_averages_are_per_stats_period() {
    let gw = gateway("averager", "stats_period = 1\nadmin_users = \"averager\"");
    runtime().block_on(async {
        let (client, _) = connect(&gw, "averager").await.unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500) {
            client.simple_query("SELECT 1").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let console = tokio_postgres::connect(
            &gw.conninfo("averager", "averager")
                .replace("dbname=app", "dbname=pgbouncer"),
            NoTls,
        )
        .await;
        let (console, connection) = console.unwrap();
        tokio::spawn(connection);
        let rows = console.simple_query("SHOW STATS_AVERAGES").await.unwrap();
        let app = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row)
                    if row.get("database") == Some("app") =>
                {
                    Some(row.get("xact_count").unwrap().parse::<u64>().unwrap())
                }
                _ => None,
            })
            .expect("a row for app");
        assert!(
            app > 0,
            "transactions per second over the last period: {app}"
        );
    });
}
