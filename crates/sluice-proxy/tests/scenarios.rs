//! Scenario tests: the gateway's session loop driven byte by byte, with the
//! test playing the client and every server over in-memory pipes (see
//! `scenario/mod.rs`). Each checks one behaviour exactly: what a server
//! receives, what the client sees, and what never crosses.

mod scenario;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use scenario::*;
use sluice_proxy::balance::hosts::HostState;
use sluice_proxy::protocol::TxStatus::{Idle, InTransaction};

const QUIET: Duration = Duration::from_millis(200);

// ---- plain pooling ---------------------------------------------------------

#[tokio::test]
async fn a_query_is_relayed_and_the_server_released_for_the_next_client() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    assert_eq!(server.addr, "primary:5432");
    client.query("SELECT 1").await;
    assert_eq!(server.expect_query().await, "SELECT 1");
    server.answer_value("?column?", "1", Idle).await;
    let answer = client.until_ready().await;
    assert_eq!(tags(&answer), "TDCZ");
    assert_eq!(answer[1].first_column().as_deref(), Some("1"));

    let mut second = gw.client().await;
    second.query("SELECT 2").await;
    assert_eq!(
        server.expect_query().await,
        "SELECT 2",
        "the same server serves"
    );
    server.answer_value("?column?", "2", Idle).await;
    assert_eq!(tags(&second.until_ready().await), "TDCZ");
    assert!(!gw.has_unclaimed_server(), "no second server was opened");
}

#[tokio::test]
async fn a_transaction_keeps_its_server_until_it_ends() {
    let mut gw = Scenario::simple("");
    let mut first = gw.client().await;
    let mut server = gw.server().await;
    first.query("BEGIN").await;
    server.expect_query().await;
    server.answer_command("BEGIN", InTransaction).await;
    first.until_ready().await;
    // Another client needs a server now: the first one is taken.
    let mut second = gw.client().await;
    second.query("SELECT 2").await;
    let mut other = gw.server().await;
    assert_eq!(other.expect_query().await, "SELECT 2");
    other.answer_value("?column?", "2", Idle).await;
    second.until_ready().await;
    first.query("COMMIT").await;
    assert_eq!(server.expect_query().await, "COMMIT");
    server.answer_command("COMMIT", Idle).await;
    assert_eq!(tags(&first.until_ready().await), "CZ");
}

#[tokio::test]
async fn a_client_that_leaves_mid_transaction_is_rolled_back_before_reuse() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    client.query("BEGIN").await;
    server.expect_query().await;
    server.answer_command("BEGIN", InTransaction).await;
    client.until_ready().await;
    drop(client);
    assert_eq!(server.expect_query().await, "ROLLBACK");
    server.answer_command("ROLLBACK", Idle).await;

    let mut next = gw.client().await;
    next.query("SELECT 1").await;
    assert_eq!(server.expect_query().await, "SELECT 1", "reused once clean");
}

#[tokio::test]
async fn terminate_ends_the_client_and_keeps_the_server() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    client.send(&[b'X', 0, 0, 0, 4]).await;
    assert!(client.until_closed().await.is_empty());
    server.assert_silent(QUIET).await;
    let mut next = gw.client().await;
    next.query("SELECT 1").await;
    assert_eq!(server.expect_query().await, "SELECT 1");
}

#[tokio::test]
async fn a_server_lost_mid_answer_is_reported_and_not_retried() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    client.query("SELECT 1").await;
    server.expect_query().await;
    let mut part = bytes::BytesMut::new();
    sluice_proxy::protocol::text_result(&mut part, &["a"], &[vec![Some("1".into())]], "SELECT 1");
    server.send(&part[..part.len() - 14]).await; // RowDescription and DataRow
    drop(server);
    let seen = client.until_closed().await;
    assert_eq!(tags(&seen), "TDE");
    assert_eq!(seen[2].error_code(), "08006");
    assert!(!gw.has_unclaimed_server(), "nothing was sent again");
}

#[tokio::test]
async fn a_partial_data_row_is_streamed_before_the_rest_arrives() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    client.query("SELECT big").await;
    server.expect_query().await;
    let value = "x".repeat(100_000);
    let mut answer = bytes::BytesMut::new();
    sluice_proxy::protocol::text_result(
        &mut answer,
        &["big"],
        &[vec![Some(value.clone())]],
        "SELECT 1",
    );
    sluice_proxy::protocol::ready_for_query(&mut answer, Idle);
    let half = 40_000;
    server.send(&answer[..half]).await;
    // The client has most of the row before the server sends the rest.
    client.read_at_least(half - 100).await;
    server.send(&answer[half..]).await;
    let seen = client.until_ready().await;
    assert_eq!(tags(&seen), "TDCZ");
    assert_eq!(seen[1].first_column().unwrap().len(), value.len());
}

#[tokio::test]
async fn copy_from_stdin_passes_through() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    client.query("COPY t FROM STDIN").await;
    server.expect_query().await;
    server.send(&[b'G', 0, 0, 0, 7, 0, 0, 0]).await; // CopyInResponse, text, 0 columns
    assert_eq!(client.recv().await.tag, b'G');
    let mut data = bytes::BytesMut::new();
    data.extend_from_slice(&[b'd', 0, 0, 0, 6, b'1', b'\n']);
    data.extend_from_slice(&[b'c', 0, 0, 0, 4]);
    client.send(&data).await;
    server.expect("dc").await;
    server.answer_command("COPY 1", Idle).await;
    assert_eq!(tags(&client.until_ready().await), "CZ");
}

#[tokio::test]
async fn startup_parameters_follow_the_client_to_another_server() {
    let mut gw = Scenario::simple("");
    let mut client = gw.start_client(&[("TimeZone", "Asia/Tokyo")]).await;
    let mut first = gw.server().await;
    // Applied once at login, so that a bad value fails it.
    assert_eq!(
        first.expect_query().await,
        "SET \"TimeZone\" = 'Asia/Tokyo';"
    );
    let mut out = parameter_status("TimeZone", "Asia/Tokyo");
    out.extend_from_slice(&command_complete("SET"));
    out.extend_from_slice(&ready(Idle));
    first.send(&out).await;
    client.finish_login().await;
    let reported = client
        .login_messages
        .iter()
        .find(|m| m.tag == b'S' && m.text() == "TimeZone");
    assert_eq!(reported.unwrap().second_text(), "Asia/Tokyo");

    // Hold the first server with another client's transaction (whose
    // parameters it takes on first).
    let mut holder = gw.client().await;
    holder.query("BEGIN").await;
    assert_eq!(first.expect_query().await, "SET \"TimeZone\" = 'UTC';");
    first.answer_command("SET", Idle).await;
    assert_eq!(first.expect_query().await, "BEGIN");
    first.answer_command("BEGIN", InTransaction).await;
    holder.until_ready().await;
    client.query("SELECT now()").await;
    let mut second = gw.server().await;
    assert_eq!(
        second.expect_query().await,
        "SET \"TimeZone\" = 'Asia/Tokyo';"
    );
    second.answer_command("SET", Idle).await;
    assert_eq!(second.expect_query().await, "SELECT now()");
}

#[tokio::test]
async fn a_parameter_the_server_reports_follows_the_client() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    client.query("SET application_name = 'report'").await;
    server.expect_query().await;
    let mut out = parameter_status("application_name", "report");
    out.extend_from_slice(&command_complete("SET"));
    out.extend_from_slice(&ready(Idle));
    server.send(&out).await;
    assert_eq!(tags(&client.until_ready().await), "SCZ");
    // The same server already runs with it: the next request needs no SET.
    client.query("SELECT 1").await;
    assert_eq!(server.expect_query().await, "SELECT 1");
}

#[tokio::test]
async fn query_wait_timeout_answers_57014_and_the_client_goes_on() {
    let mut gw = Scenario::simple("default_pool_size = 1\nquery_wait_timeout = 0.2");
    let mut holder = gw.client().await;
    let mut server = gw.server().await;
    holder.query("BEGIN").await;
    server.expect_query().await;
    server.answer_command("BEGIN", InTransaction).await;
    holder.until_ready().await;
    let mut waiter = gw.client().await;
    waiter.query("SELECT 1").await;
    let seen = waiter.until_ready().await;
    assert_eq!(tags(&seen), "EZ");
    assert_eq!(seen[0].error_code(), "57014");
    assert!(seen[0].error_message().contains("query_wait_timeout"));
    assert_eq!(gw.pool().stats.wait_timeouts.load(Relaxed), 1);
}

#[tokio::test]
async fn session_pooling_keeps_the_server_then_resets_it() {
    let mut gw = Scenario::simple("pool_mode = \"session\"");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    // The login borrowed it to learn the server's parameters.
    assert_eq!(server.expect_query().await, "DISCARD ALL");
    server.answer_command("DISCARD ALL", Idle).await;
    for sql in ["SELECT 1", "SELECT 2"] {
        client.query(sql).await;
        assert_eq!(server.expect_query().await, sql);
        server.answer_value("?column?", "1", Idle).await;
        client.until_ready().await;
    }
    drop(client);
    assert_eq!(server.expect_query().await, "DISCARD ALL");
    server.answer_command("DISCARD ALL", Idle).await;
    let mut next = gw.client().await;
    next.query("SELECT 3").await;
    assert_eq!(server.expect_query().await, "SELECT 3");
}

#[tokio::test]
async fn pool_counters_count_what_passed() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    let stats = &gw.pool().stats;
    assert_eq!(stats.clients.load(Relaxed), 1);
    assert_eq!(stats.server_connects.load(Relaxed), 1);
    let sql = query("SELECT 1");
    client.send(&sql).await;
    server.expect_query().await;
    server.answer_value("?column?", "1", Idle).await;
    let answer = client.until_ready().await;
    let answer_bytes: usize = answer.iter().map(|m| 5 + m.body.len()).sum();
    assert_eq!(stats.xact_count.load(Relaxed), 1);
    assert_eq!(stats.query_count.load(Relaxed), 1);
    assert_eq!(stats.bytes_received.load(Relaxed), sql.len() as u64);
    assert_eq!(stats.bytes_sent.load(Relaxed), answer_bytes as u64);
    assert_eq!(stats.waits.load(Relaxed), 0);
    drop(client);
    let left = async {
        while stats.clients.load(Relaxed) != 0 {
            tokio::task::yield_now().await;
        }
    };
    bounded("the client to be counted out", left).await;
}

#[tokio::test]
async fn a_cancel_request_reaches_the_clients_current_server() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    client.query("SELECT pg_sleep(60)").await;
    server.expect_query().await;
    let (pid, secret) = client.cancel_key();
    let mut canceller = gw.start_cancel(pid, secret).await;
    let (addr, mut cancel) = gw.raw_connection().await;
    assert_eq!(addr, "primary:5432");
    let packet = read_exact(&mut cancel, 16).await;
    assert_eq!(
        &packet[4..8],
        &80_877_102i32.to_be_bytes(),
        "a CancelRequest"
    );
    assert_eq!(
        &packet[8..12],
        &server.pid.to_be_bytes(),
        "the server's own key"
    );
    assert_eq!(&packet[12..16], &77i32.to_be_bytes());
    drop(cancel);
    assert!(canceller.until_closed().await.is_empty());
}

// ---- what the gateway answers itself -----------------------------------------

#[tokio::test]
async fn unknown_database_is_refused_by_name() {
    let mut gw = Scenario::simple("");
    let mut client = gw.start_client(&[("database", "nope")]).await;
    let seen = client.until_closed().await;
    assert_eq!(tags(&seen), "E");
    assert_eq!(seen[0].error_code(), "3D000");
    assert_eq!(seen[0].error_message(), "no such database: nope");
}

#[tokio::test]
async fn a_malformed_message_closes_the_client_with_08p01() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    client.send(&[b'Q', 0, 0, 0, 2]).await;
    let seen = client.until_closed().await;
    assert_eq!(tags(&seen), "E");
    assert_eq!(seen[0].error_code(), "08P01");
    server.assert_silent(QUIET).await;
}

#[tokio::test]
async fn sql_prepare_is_refused_in_transaction_pooling() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    client.query("  /* hi */ PREPARE q AS SELECT 1").await;
    let seen = client.until_ready().await;
    assert_eq!(tags(&seen), "EZ");
    assert_eq!(seen[0].error_code(), "0A000");
    assert!(seen[0]
        .error_message()
        .contains("protocol-level prepared statements"));
    server.assert_silent(QUIET).await;
    // PREPARE TRANSACTION is a server's business.
    client.query("PREPARE TRANSACTION 'x'").await;
    assert_eq!(server.expect_query().await, "PREPARE TRANSACTION 'x'");
}

// ---- prepared statements in transaction pooling ------------------------------

/// Sends Parse + Bind + Execute + Sync of `sql` as statement `name`.
async fn prepare_and_run(client: &mut TestClient, name: &str, sql: &str) {
    client
        .send(&batch(&[parse(name, sql), bind(name), execute(), sync()]))
        .await;
}

/// A server's answer to Parse (if `parsed`), Bind, Execute, Sync.
async fn answer_execution(server: &mut TestServer, parsed: bool) {
    let mut out = if parsed {
        empty(b'1')
    } else {
        bytes::BytesMut::new()
    };
    out.extend_from_slice(&empty(b'2'));
    out.extend_from_slice(&command_complete("SELECT 1"));
    out.extend_from_slice(&ready(Idle));
    server.send(&out).await;
}

#[tokio::test]
async fn a_named_statement_gets_the_gateways_name_on_the_server() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    prepare_and_run(&mut client, "s1", "SELECT 1").await;
    let got = server.expect("PBES").await;
    let server_name = got[0].text();
    assert!(server_name.starts_with("sluice_"), "{server_name}");
    assert_eq!(got[0].second_text(), "SELECT 1");
    assert_eq!(got[1].second_text(), server_name, "Bind names it too");
    answer_execution(&mut server, true).await;
    assert_eq!(tags(&client.until_ready().await), "12CZ");
}

#[tokio::test]
async fn a_statement_is_prepared_again_on_another_server_and_its_parse_complete_swallowed() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut first = gw.server().await;
    prepare_and_run(&mut client, "s1", "SELECT 1").await;
    let name = first.expect("PBES").await[0].text();
    answer_execution(&mut first, true).await;
    client.until_ready().await;

    let mut holder = gw.client().await;
    holder.query("BEGIN").await;
    first.expect_query().await;
    first.answer_command("BEGIN", InTransaction).await;
    holder.until_ready().await;

    client.send(&batch(&[bind("s1"), execute(), sync()])).await;
    let mut second = gw.server().await;
    let got = second.expect("PBES").await;
    assert_eq!(got[0].text(), name, "re-prepared under the same name");
    assert_eq!(got[0].second_text(), "SELECT 1");
    answer_execution(&mut second, true).await;
    assert_eq!(
        tags(&client.until_ready().await),
        "2CZ",
        "the injected ParseComplete is swallowed"
    );
}

#[tokio::test]
async fn a_lone_parse_is_answered_without_a_server_and_prepared_at_first_use() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    client
        .send(&batch(&[parse("s1", "SELECT 1"), sync()]))
        .await;
    assert_eq!(tags(&client.until_ready().await), "1Z");
    server.assert_silent(QUIET).await;
    client.send(&batch(&[bind("s1"), execute(), sync()])).await;
    let got = server.expect("PBES").await;
    assert_eq!(got[0].second_text(), "SELECT 1");
    answer_execution(&mut server, true).await;
    assert_eq!(tags(&client.until_ready().await), "2CZ");
}

#[tokio::test]
async fn closing_a_statement_closes_it_on_the_server_and_forgets_it() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    prepare_and_run(&mut client, "s1", "SELECT 1").await;
    let name = server.expect("PBES").await[0].text();
    answer_execution(&mut server, true).await;
    client.until_ready().await;
    client.send(&batch(&[close_statement("s1"), sync()])).await;
    let got = server.expect("CS").await;
    assert_eq!(&got[0].body[1..], format!("{name}\0").as_bytes());
    let mut out = empty(b'3');
    out.extend_from_slice(&ready(Idle));
    server.send(&out).await;
    assert_eq!(tags(&client.until_ready().await), "3Z");
    // Forgotten: a Bind of that name goes through as the client wrote it.
    client.send(&batch(&[bind("s1"), execute(), sync()])).await;
    assert_eq!(server.expect("BES").await[0].second_text(), "s1");
}

#[tokio::test]
async fn an_evicted_statement_is_closed_and_its_close_complete_swallowed() {
    let mut gw = Scenario::simple("max_prepared_statements = 1");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    prepare_and_run(&mut client, "s1", "SELECT 1").await;
    let evicted = server.expect("PBES").await[0].text();
    answer_execution(&mut server, true).await;
    client.until_ready().await;
    prepare_and_run(&mut client, "s2", "SELECT 2").await;
    let got = server.expect("CPBES").await;
    assert_eq!(&got[0].body[1..], format!("{evicted}\0").as_bytes());
    let mut out = empty(b'3');
    out.extend_from_slice(&empty(b'1'));
    out.extend_from_slice(&empty(b'2'));
    out.extend_from_slice(&command_complete("SELECT 1"));
    out.extend_from_slice(&ready(Idle));
    server.send(&out).await;
    assert_eq!(tags(&client.until_ready().await), "12CZ");
}

#[tokio::test]
async fn a_failed_parse_is_forgotten_so_the_statement_is_prepared_again() {
    let mut gw = Scenario::simple("");
    let mut client = gw.client().await;
    let mut server = gw.server().await;
    prepare_and_run(&mut client, "s1", "SELEC 1").await;
    server.expect("PBES").await;
    let mut out = error("ERROR", "42601", "syntax error");
    out.extend_from_slice(&ready(Idle));
    server.send(&out).await;
    assert_eq!(tags(&client.until_ready().await), "EZ");
    // The server never created it: the next use prepares it again.
    client.send(&batch(&[bind("s1"), execute(), sync()])).await;
    server.expect("PBES").await;
}

// ---- load balancing ----------------------------------------------------------

#[tokio::test]
async fn a_read_goes_to_a_replica_and_a_write_to_the_primary() {
    let mut gw = Scenario::balanced("sticky = \"off\"");
    let mut client = gw.client().await;
    let mut primary = gw.server().await;
    assert_eq!(primary.addr, "primary:5432");
    client.query("SELECT 1").await;
    let mut replica = gw.server().await;
    assert!(replica.addr.starts_with("replica"), "{}", replica.addr);
    assert_eq!(replica.expect_query().await, "SELECT 1");
    replica.answer_value("?column?", "1", Idle).await;
    assert_eq!(tags(&client.until_ready().await), "TDCZ");
    client.query("INSERT INTO t VALUES (1)").await;
    assert_eq!(primary.expect_query().await, "INSERT INTO t VALUES (1)");
    primary.answer_command("INSERT 0 1", Idle).await;
    assert_eq!(tags(&client.until_ready().await), "CZ");
    let served: Vec<u64> = gw.hosts().replicas().iter().map(|r| r.served()).collect();
    assert_eq!(served.iter().sum::<u64>(), 1);
}

#[tokio::test]
async fn the_position_query_rides_behind_an_autocommit_write_and_its_answer_is_removed() {
    let mut gw = Scenario::balanced("");
    let mut client = gw.client().await;
    let mut primary = gw.server().await;
    client.query("INSERT INTO t VALUES (1)").await;
    let got = primary.expect("QQ").await;
    assert_eq!(got[0].text(), "INSERT INTO t VALUES (1)");
    assert_eq!(got[1].text(), "SELECT pg_current_wal_insert_lsn()");
    let mut out = command_complete("INSERT 0 1");
    out.extend_from_slice(&ready(Idle));
    primary.send(&out).await;
    primary
        .answer_value("pg_current_wal_insert_lsn", "0/200", Idle)
        .await;
    assert_eq!(
        tags(&client.until_ready().await),
        "CZ",
        "none of the position query's answer"
    );
    client.query("SHOW sluice.last_write_lsn").await;
    let seen = client.until_ready().await;
    assert_eq!(seen[1].first_column().as_deref(), Some("0/200"));
    let reads = &gw.shared.router.database("app").unwrap().lsn_reads;
    assert_eq!(
        (reads.pipelined.load(Relaxed), reads.separate.load(Relaxed)),
        (1, 0)
    );
}

#[tokio::test]
async fn a_notification_behind_the_position_query_still_reaches_the_client() {
    let mut gw = Scenario::balanced("");
    let mut client = gw.client().await;
    let mut primary = gw.server().await;
    client.query("INSERT INTO t VALUES (1)").await;
    primary.expect("QQ").await;
    let mut out = command_complete("INSERT 0 1");
    out.extend_from_slice(&ready(Idle));
    // NotificationResponse: pid, channel "ch", payload "hi".
    out.extend_from_slice(&[b'A', 0, 0, 0, 14, 0, 0, 0, 9, b'c', b'h', 0, b'h', b'i', 0]);
    primary.send(&out).await;
    primary
        .answer_value("pg_current_wal_insert_lsn", "0/200", Idle)
        .await;
    assert_eq!(tags(&client.until_ready().await), "CAZ");
}

#[tokio::test]
async fn a_multi_statement_write_reads_the_position_on_a_separate_round_trip() {
    let mut gw = Scenario::balanced("");
    let mut client = gw.client().await;
    let mut primary = gw.server().await;
    client
        .query("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
        .await;
    primary.expect_query().await;
    let mut out = command_complete("INSERT 0 1");
    out.extend_from_slice(&command_complete("INSERT 0 1"));
    out.extend_from_slice(&ready(Idle));
    primary.send(&out).await;
    // The client's ReadyForQuery waits for the position.
    assert_eq!(
        primary.expect_query().await,
        "SELECT pg_current_wal_insert_lsn()"
    );
    primary
        .answer_value("pg_current_wal_insert_lsn", "0/300", Idle)
        .await;
    assert_eq!(tags(&client.until_ready().await), "CCZ");
    let reads = &gw.shared.router.database("app").unwrap().lsn_reads;
    assert_eq!(
        (reads.pipelined.load(Relaxed), reads.separate.load(Relaxed)),
        (0, 1)
    );
}

#[tokio::test]
async fn a_read_after_a_write_waits_for_a_replica_that_replayed_it() {
    let mut gw = Scenario::balanced("");
    let mut client = gw.client().await;
    let mut primary = gw.server().await;
    client.query("UPDATE t SET a = 1").await;
    primary.expect("QQ").await;
    primary.answer_command("UPDATE 1", Idle).await;
    primary
        .answer_value("pg_current_wal_insert_lsn", "0/200", Idle)
        .await;
    client.until_ready().await;
    // Both replicas replayed only 0/100: the primary serves the read.
    client.query("SELECT a FROM t").await;
    assert_eq!(primary.expect_query().await, "SELECT a FROM t");
    primary.answer_value("a", "1", Idle).await;
    client.until_ready().await;
    // Once one has replayed it, the read goes there.
    gw.hosts().replicas()[1].mark_up(health(true, 0x300));
    client.query("SELECT a FROM t").await;
    let mut replica = gw.server().await;
    assert_eq!(replica.addr, "replica2:5432");
    assert_eq!(replica.expect_query().await, "SELECT a FROM t");
}

#[tokio::test]
async fn a_replica_that_drops_the_connection_before_answering_is_replaced() {
    let mut gw = Scenario::balanced("sticky = \"off\"");
    let mut client = gw.client().await;
    let _primary = gw.server().await;
    client.query("SELECT 1").await;
    let mut failing = gw.server().await;
    failing.expect_query().await;
    let failed_addr = failing.addr.clone();
    drop(failing);
    let mut other = gw.server().await;
    assert_ne!(other.addr, failed_addr);
    assert_eq!(
        other.expect_query().await,
        "SELECT 1",
        "the same request, sent again"
    );
    other.answer_value("?column?", "1", Idle).await;
    assert_eq!(tags(&client.until_ready().await), "TDCZ");
    let hosts = gw.hosts();
    let down = hosts
        .replicas()
        .iter()
        .find(|r| r.addr.to_string() == failed_addr)
        .unwrap();
    assert_eq!(down.health().state, HostState::Down);
}

#[tokio::test]
async fn a_replica_shutting_down_before_answering_is_replaced() {
    let mut gw = Scenario::balanced("sticky = \"off\"");
    let mut client = gw.client().await;
    let _primary = gw.server().await;
    client.query("SELECT 1").await;
    let mut failing = gw.server().await;
    failing.expect_query().await;
    failing
        .send(&error(
            "FATAL",
            "57P01",
            "terminating connection due to administrator command",
        ))
        .await;
    let mut other = gw.server().await;
    assert_ne!(other.addr, failing.addr);
    assert_eq!(other.expect_query().await, "SELECT 1");
    other.answer_value("?column?", "1", Idle).await;
    assert_eq!(
        tags(&client.until_ready().await),
        "TDCZ",
        "the client never saw the FATAL"
    );
}

// ---- sluice.* commands ---------------------------------------------------------

/// Sends `sql` and returns the answer's messages.
async fn ask(client: &mut TestClient, sql: &str) -> Vec<Msg> {
    client.query(sql).await;
    client.until_ready().await
}

/// The value a `SHOW` answered with.
async fn show(client: &mut TestClient, setting: &str) -> String {
    let seen = ask(client, &format!("SHOW {setting}")).await;
    assert_eq!(tags(&seen), "TDCZ", "{seen:?}");
    assert_eq!(
        seen[0].body[2..2 + setting.len()],
        *setting.as_bytes(),
        "column named after it"
    );
    seen[1].first_column().unwrap_or_default()
}

#[tokio::test]
async fn sluice_route_is_set_shown_and_obeyed() {
    let mut gw = Scenario::balanced("sticky = \"off\"");
    let mut client = gw.client().await;
    let mut primary = gw.server().await;
    assert_eq!(show(&mut client, "sluice.route").await, "auto");
    let seen = ask(&mut client, "SET sluice.route = 'primary'").await;
    assert_eq!(tags(&seen), "CZ");
    assert_eq!(seen[0].text(), "SET");
    assert_eq!(show(&mut client, "sluice.route").await, "primary");
    client.query("SELECT 1").await;
    assert_eq!(
        primary.expect_query().await,
        "SELECT 1",
        "a read on the primary"
    );
    primary.answer_value("?column?", "1", Idle).await;
    client.until_ready().await;
    ask(&mut client, "RESET sluice.route").await;
    assert_eq!(show(&mut client, "sluice.route").await, "auto");
}

#[tokio::test]
async fn sluice_sticky_key_is_set_shown_and_reset() {
    let mut gw = Scenario::balanced("sticky = \"key\"");
    let mut client = gw
        .client_with(&[("options", "-c sluice.sticky_key=user:7")])
        .await;
    assert_eq!(show(&mut client, "sluice.sticky_key").await, "user:7");
    ask(&mut client, "SET sluice.sticky_key = 'user:42'").await;
    assert_eq!(show(&mut client, "sluice.sticky_key").await, "user:42");
    ask(&mut client, "RESET sluice.sticky_key").await;
    assert_eq!(show(&mut client, "sluice.sticky_key").await, "");
}

#[tokio::test]
async fn sluice_min_lsn_keeps_reads_off_replicas_behind_it() {
    let mut gw = Scenario::balanced("");
    let mut client = gw.client().await;
    let mut primary = gw.server().await;
    ask(&mut client, "SET sluice.min_lsn = '0/200'").await;
    assert_eq!(show(&mut client, "sluice.min_lsn").await, "0/200");
    client.query("SELECT 1").await;
    assert_eq!(primary.expect_query().await, "SELECT 1");
    primary.answer_value("?column?", "1", Idle).await;
    client.until_ready().await;
    gw.hosts().replicas()[0].mark_up(health(true, 0x200));
    client.query("SELECT 1").await;
    assert_eq!(gw.server().await.addr, "replica1:5432");
}

#[tokio::test]
async fn sluice_last_write_lsn_starts_at_zero() {
    let mut gw = Scenario::balanced("");
    let mut client = gw.client().await;
    assert_eq!(show(&mut client, "sluice.last_write_lsn").await, "0/0");
}

#[tokio::test]
async fn sluice_hosts_lists_every_host() {
    let mut gw = Scenario::balanced("");
    let mut client = gw.client().await;
    let seen = ask(&mut client, "SHOW sluice.hosts").await;
    assert_eq!(tags(&seen), "TDDDCZ");
    let roles: Vec<String> = seen[1..4]
        .iter()
        .map(|row| row.first_column().unwrap())
        .collect();
    assert_eq!(roles, ["primary", "replica", "replica"]);
    let columns = String::from_utf8_lossy(&seen[0].body).into_owned();
    for column in ["role", "host", "state", "lag_bytes", "served", "last_error"] {
        assert!(columns.contains(column), "{column} in {columns:?}");
    }
}

#[tokio::test]
async fn sluice_commands_mixed_with_sql_or_in_the_extended_protocol_are_refused() {
    let mut gw = Scenario::balanced("");
    let mut client = gw.client().await;
    let mut primary = gw.server().await;
    let seen = ask(&mut client, "SET sluice.route = 'primary'; SELECT 1").await;
    assert_eq!(tags(&seen), "EZ");
    assert_eq!(seen[0].error_code(), "0A000");
    client
        .send(&batch(&[
            parse("", "SHOW sluice.route"),
            bind(""),
            execute(),
            sync(),
        ]))
        .await;
    let seen = client.until_ready().await;
    assert_eq!(tags(&seen), "EZ");
    assert!(seen[0].error_message().contains("simple query protocol"));
    primary.assert_silent(QUIET).await;
}

#[tokio::test]
async fn an_invalid_sluice_value_is_an_error() {
    let mut gw = Scenario::balanced("");
    let mut client = gw.client().await;
    let seen = ask(&mut client, "SET sluice.route = 'sideways'").await;
    assert_eq!(tags(&seen), "EZ");
    assert_eq!(seen[0].error_code(), "22023");
    assert_eq!(show(&mut client, "sluice.route").await, "auto");
}
