//! The admin console, driven over in-memory pipes (see `scenario/mod.rs`):
//! pgbouncer 1.25's columns for every `SHOW`, who may do what, the error
//! texts, and what `SHOW POOLS`/`CLIENTS`/`SERVERS`/`STATS` report while
//! clients work.

mod scenario;

use std::time::Duration;

use scenario::*;
use sluice_proxy::protocol::TxStatus::{Idle, InTransaction};

const USERS: &str = "admin_users = \"admin\"\nstats_users = [\"stats\"]";

fn gateway(proxy: &str) -> Scenario {
    Scenario::simple(&format!("{USERS}\n{proxy}"))
}

/// Sends `command` on a console client and returns its answer.
async fn ask(console: &mut TestClient, command: &str) -> Vec<Msg> {
    console.query(command).await;
    console.until_ready().await
}

/// The rows of a `SHOW` as maps from column name to value.
async fn show(
    console: &mut TestClient,
    what: &str,
) -> Vec<std::collections::HashMap<String, Option<String>>> {
    let answer = ask(console, &format!("SHOW {what}")).await;
    let columns = TestClient::columns(&answer[0]);
    TestClient::rows(&answer)
        .into_iter()
        .map(|row| columns.iter().map(|(n, _)| n.clone()).zip(row).collect())
        .collect()
}

fn value<'a>(row: &'a std::collections::HashMap<String, Option<String>>, column: &str) -> &'a str {
    row.get(column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .as_deref()
        .unwrap_or("NULL")
}

#[tokio::test]
async fn every_show_has_pgbouncer_1_25s_columns() {
    let mut gw = gateway("");
    let mut console = gw.console("admin").await;
    let fixture = include_str!("fixtures/pgbouncer-1.25-show-columns.txt");
    let mut compared = 0;
    for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
        let (command, columns) = line.split_once(':').unwrap();
        let expected: Vec<(String, i32)> = columns
            .split(',')
            .filter(|c| !c.trim().is_empty())
            .map(|c| {
                let (name, oid) = c.trim().rsplit_once(' ').unwrap();
                (name.to_string(), oid.parse().unwrap())
            })
            .collect();
        let answer = ask(&mut console, &format!("SHOW {command}")).await;
        if expected.is_empty() {
            assert_eq!(tags(&answer), "NCZ", "SHOW {command} answers with a notice");
            continue;
        }
        assert_eq!(answer.last().unwrap().tag, b'Z');
        assert_eq!(TestClient::columns(&answer[0]), expected, "SHOW {command}");
        assert_eq!(answer[answer.len() - 2].text(), "SHOW");
        compared += 1;
    }
    assert!(compared >= 20, "{compared} commands compared");
}

#[tokio::test]
async fn legacy_columns_are_added_only_when_asked() {
    let mut gw = gateway("console_legacy_columns = true");
    let mut console = gw.console("stats").await;
    let stats = ask(&mut console, "SHOW STATS;").await;
    let columns = TestClient::columns(&stats[0]);
    assert_eq!(
        columns.last().unwrap(),
        &("total_requests".to_string(), 1700)
    );
    let databases = ask(&mut console, "SHOW DATABASES;").await;
    let columns = TestClient::columns(&databases[0]);
    assert_eq!(columns.last().unwrap(), &("reserve_pool".to_string(), 23));
}

#[tokio::test]
async fn stats_users_may_show_but_not_change() {
    let mut gw = gateway("");
    let mut console = gw.console("stats").await;
    assert_eq!(show(&mut console, "VERSION").await.len(), 1);
    for command in [
        "PAUSE",
        "RESUME",
        "RELOAD",
        "SET default_pool_size = 3",
        "SHOW FDS",
    ] {
        let answer = ask(&mut console, command).await;
        assert_eq!(tags(&answer), "EZ", "{command}");
        assert_eq!(answer[0].error_code(), "08P01");
        assert_eq!(
            answer[0].error_message(),
            "admin access needed",
            "{command}"
        );
    }
    let answer = ask(&mut console, "SET timezone = 'UTC'").await;
    assert_eq!(tags(&answer), "NCZ", "the fake parameters are for everyone");
}

#[tokio::test]
async fn other_users_are_not_allowed_on_the_console() {
    let mut gw = gateway("");
    let mut client = gw
        .start_client(&[("user", "app"), ("database", "pgbouncer")])
        .await;
    let seen = client.until_closed().await;
    let error = seen.iter().find(|m| m.tag == b'E').expect("an error");
    assert_eq!(error.error_code(), "08P01");
    assert_eq!(error.error_message(), "not allowed");
}

#[tokio::test]
async fn mistakes_get_pgbouncers_words() {
    let mut gw = gateway("");
    let mut console = gw.console("admin").await;
    for (command, message) in [
        ("FOO", "invalid command 'FOO', use SHOW HELP;"),
        ("SHOW foo", "invalid command 'SHOW foo', use SHOW HELP;"),
        (
            "SHOW POOLS; SHOW STATE",
            "invalid command 'SHOW POOLS; SHOW STATE', use SHOW HELP;",
        ),
        ("PAUSE nope", "no such database: nope"),
        ("PAUSE pgbouncer", "cannot pause admin db: pgbouncer"),
        ("RESUME", "pooler is not paused/suspended"),
        ("KILL_CLIENT 999", "client not found"),
        ("SET nope = 1", "SET failed"),
        ("SET default_pool_size = lots", "SET failed"),
    ] {
        let answer = ask(&mut console, command).await;
        assert_eq!(tags(&answer), "EZ", "{command}");
        assert_eq!(answer[0].error_message(), message, "{command}");
        assert_eq!(
            answer[0].body.iter().filter(|&&b| b == 0).count(),
            4,
            "S, C, M only"
        );
    }
    let answer = ask(&mut console, "SELECT version").await;
    assert_eq!(
        TestClient::rows(&answer)[0][0].as_deref().unwrap(),
        sluice_proxy::admin::show::VERSION
    );
}

#[tokio::test]
async fn the_extended_protocol_is_refused_then_the_console_closes() {
    let mut gw = gateway("");
    let mut console = gw.console("admin").await;
    console
        .send(&batch(&[
            parse("", "SHOW POOLS"),
            bind(""),
            execute(),
            sync(),
        ]))
        .await;
    let seen = console.until_closed().await;
    assert_eq!(tags(&seen), "EZE");
    assert_eq!(
        seen[0].error_message(),
        "extended query protocol not supported by admin console"
    );
    assert_eq!(seen[2].error_message(), "bad packet");
}

#[tokio::test]
async fn set_changes_a_setting_and_show_config_says_so() {
    let mut gw = gateway("");
    let mut console = gw.console("admin").await;
    let answer = ask(&mut console, "SET default_pool_size = 7").await;
    assert_eq!(answer[0].text(), "SET default_pool_size=7");
    let config = show(&mut console, "CONFIG").await;
    let pool_size = config
        .iter()
        .find(|row| value(row, "key") == "default_pool_size")
        .unwrap();
    assert_eq!(value(pool_size, "value"), "7");
    assert_eq!(
        value(pool_size, "default"),
        "20",
        "pgbouncer's default, not the file's"
    );
    assert_eq!(value(pool_size, "changeable"), "yes");
    // A setting that needs a restart is accepted and changes nothing.
    let answer = ask(&mut console, "SET listen_port = 7777").await;
    assert_eq!(answer[0].text(), "SET listen_port=7777");
    assert_eq!(gw.shared.config().proxy.listen_port, 0);
}

#[tokio::test]
async fn show_pools_clients_and_servers_follow_a_waiting_client() {
    let mut gw = gateway("default_pool_size = 1");
    let mut holder = gw.client().await;
    let mut server = gw.server().await;
    holder.query("BEGIN").await;
    server.expect_query().await;
    server.answer_command("BEGIN", InTransaction).await;
    holder.until_ready().await;
    let mut waiter = gw.client().await;
    waiter.query("SELECT 1").await;
    let mut console = gw.console("admin").await;
    // The waiter joins the queue as soon as its request is read.
    let pools = loop {
        let pools = show(&mut console, "POOLS").await;
        if value(&pools[0], "cl_waiting") == "1" {
            break pools;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let app = &pools[0];
    assert_eq!(value(app, "database"), "app");
    assert_eq!(value(app, "cl_active"), "1");
    assert_eq!(value(app, "sv_active"), "1");
    assert_eq!(value(app, "sv_idle"), "0");
    assert_eq!(value(app, "pool_mode"), "transaction");
    assert_eq!(value(&pools[1], "database"), "pgbouncer");
    assert_eq!(value(&pools[1], "cl_active"), "1", "the console itself");

    let clients = show(&mut console, "CLIENTS").await;
    let states: Vec<&str> = clients.iter().map(|c| value(c, "state")).collect();
    assert_eq!(
        states,
        ["active", "waiting", "idle"],
        "holder, waiter, console"
    );
    let servers = show(&mut console, "SERVERS").await;
    assert_eq!(servers.len(), 1);
    assert_eq!(value(&servers[0], "state"), "active");
    assert_eq!(
        value(&servers[0], "link"),
        value(&clients[0], "ptr"),
        "linked both ways"
    );
    assert_eq!(value(&clients[0], "link"), value(&servers[0], "ptr"));
    assert_eq!(value(&servers[0], "remote_pid"), server.pid.to_string());

    holder.query("COMMIT").await;
    server.expect_query().await;
    server.answer_command("COMMIT", Idle).await;
    holder.until_ready().await;
    assert_eq!(
        server.expect_query().await,
        "SELECT 1",
        "the waiter is served"
    );
}

#[tokio::test]
async fn show_stats_counts_transactions_queries_and_bytes() {
    let mut gw = gateway("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    for _ in 0..3 {
        client.query("SELECT 1").await;
        server.expect_query().await;
        server.answer_value("?column?", "1", Idle).await;
        client.until_ready().await;
    }
    let mut console = gw.console("stats").await;
    let totals = show(&mut console, "STATS_TOTALS").await;
    let app = totals
        .iter()
        .find(|r| value(r, "database") == "app")
        .unwrap();
    assert_eq!(value(app, "xact_count"), "3");
    assert_eq!(value(app, "query_count"), "3");
    assert_eq!(
        value(app, "server_assignment_count"),
        "4",
        "3 queries and the login's"
    );
    assert_eq!(
        value(app, "bytes_received"),
        (3 * query("SELECT 1").len()).to_string()
    );
    assert!(value(app, "bytes_sent").parse::<u64>().unwrap() > 0);
    let lists = show(&mut console, "LISTS").await;
    let used_clients = lists
        .iter()
        .find(|r| value(r, "list") == "used_clients")
        .unwrap();
    assert_eq!(
        value(used_clients, "items"),
        "2",
        "the client and the console"
    );
}

#[tokio::test]
async fn kill_client_closes_it_with_pgbouncers_message() {
    let mut gw = gateway("");
    let mut client = gw.client().await;
    let mut console = gw.console("admin").await;
    let clients = show(&mut console, "CLIENTS").await;
    let id = value(&clients[0], "id").to_string();
    let answer = ask(&mut console, &format!("KILL_CLIENT {id}")).await;
    assert_eq!(answer[0].text(), "KILL_CLIENT");
    let seen = client.until_closed().await;
    assert_eq!(tags(&seen), "E");
    assert_eq!(seen[0].error_code(), "08P01");
    assert_eq!(seen[0].error_message(), "admin forced disconnect");
}

#[tokio::test]
async fn a_disabled_database_refuses_new_logins_only() {
    let mut gw = gateway("");
    let mut existing = gw.client().await;
    let mut server = gw.server().await;
    let mut console = gw.console("admin").await;
    assert_eq!(ask(&mut console, "DISABLE app").await[0].text(), "DISABLE");
    let databases = show(&mut console, "DATABASES").await;
    assert_eq!(value(&databases[0], "disabled"), "1");
    let mut refused = gw.start_client(&[]).await;
    let seen = refused.until_closed().await;
    let error = seen.iter().find(|m| m.tag == b'E').unwrap();
    assert_eq!(error.error_message(), "database \"app\" is disabled");
    existing.query("SELECT 1").await;
    assert_eq!(
        server.expect_query().await,
        "SELECT 1",
        "existing clients go on"
    );
    ask(&mut console, "ENABLE app").await;
    gw.client().await;
}

#[tokio::test]
async fn pause_waits_for_the_running_transaction_and_holds_new_ones_until_resume() {
    let mut gw = gateway("");
    let mut holder = gw.client().await;
    let mut server = gw.server().await;
    holder.query("BEGIN").await;
    server.expect_query().await;
    server.answer_command("BEGIN", InTransaction).await;
    holder.until_ready().await;
    let mut console = gw.console("admin").await;
    console.query("PAUSE app").await;
    console.assert_silent(Duration::from_millis(100)).await;
    holder.query("COMMIT").await;
    server.expect_query().await;
    server.answer_command("COMMIT", Idle).await;
    holder.until_ready().await;
    assert_eq!(
        tags(&console.until_ready().await),
        "CZ",
        "PAUSE returns once it ended"
    );
    // Paused: a new transaction waits, and no server hears of it.
    holder.query("SELECT 1").await;
    holder.assert_silent(Duration::from_millis(100)).await;
    let databases = show(&mut console, "DATABASES").await;
    assert_eq!(value(&databases[0], "paused"), "1");
    assert_eq!(ask(&mut console, "RESUME app").await[0].text(), "RESUME");
    // PAUSE closed the idle server: the request opens a new one.
    let mut fresh = gw.server().await;
    assert_eq!(fresh.expect_query().await, "SELECT 1");
}

#[tokio::test]
async fn show_help_state_and_the_fake_parameters() {
    let mut gw = gateway("");
    let mut console = gw.console("admin").await;
    let help = ask(&mut console, "SHOW HELP").await;
    assert_eq!(tags(&help), "NCZ");
    assert_eq!(help[0].error_message(), "Console usage");
    let state = show(&mut console, "STATE").await;
    assert_eq!(value(&state[1], "key"), "paused");
    assert_eq!(value(&state[1], "value"), "no");
    let timezone = ask(&mut console, "SHOW timezone").await;
    assert_eq!(
        TestClient::columns(&timezone[0]),
        [("timezone".to_string(), 25)]
    );
    assert_eq!(TestClient::rows(&timezone)[0][0].as_deref(), Some("GMT"));
}
