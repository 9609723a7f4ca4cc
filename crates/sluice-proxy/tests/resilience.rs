//! Failures: server restarts and outages while clients stay connected, and
//! malformed or oversized client messages (which close only that client).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use common::{private_cluster, TestGateway};
use sluice_proxy::protocol;
use tokio_postgres::NoTls;

#[test]
fn server_restart_and_outage_while_clients_stay_connected() {
    let cluster = private_cluster();
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 2\nserver_connect_timeout = 2",
        "",
        &[],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connect = || async {
            let (client, connection) = tokio_postgres::connect(&gw.conninfo("app", "app"), NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            client
        };
        let idle = connect().await;
        let in_tx = connect().await;
        let pid: i32 = idle
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        in_tx.batch_execute("BEGIN").await.unwrap();

        tokio::task::block_in_place(|| cluster.restart(cluster.primary())).expect("restart");

        // The idle client's next transaction gets a fresh server connection.
        let new_pid: i32 = idle
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("works after the restart")
            .get(0);
        assert_ne!(pid, new_pid);
        // The client whose transaction the restart killed is told so.
        assert!(in_tx.simple_query("SELECT 1").await.is_err());

        // Outage: requests fail with a clear error naming the server; the
        // client stays connected and works again once the server is back.
        tokio::task::block_in_place(|| cluster.stop(cluster.primary())).expect("stop");
        let err = idle
            .simple_query("SELECT 1")
            .await
            .expect_err("server is down");
        let text = format!("{err:?}");
        assert!(
            text.contains(&format!("127.0.0.1:{}", cluster.primary().port())),
            "{text}"
        );
        tokio::task::block_in_place(|| cluster.start_node(cluster.primary())).expect("start");
        let row = idle.query_one("SELECT 3", &[]).await.expect("back");
        assert_eq!(row.get::<_, i32>(0), 3);
        let fresh = connect().await;
        fresh
            .simple_query("SELECT 1")
            .await
            .expect("new clients too");
    });
}

/// A raw client that logs in with trust auth and returns the socket.
fn raw_login(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = BytesMut::new();
    protocol::startup_message(&mut buf, &[("user", "app"), ("database", "app")]);
    stream.write_all(&buf).unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !seen.ends_with(&[b'Z', 0, 0, 0, 5, b'I']) {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "gateway closed during login");
        seen.extend_from_slice(&chunk[..n]);
    }
    stream
}

/// Everything the gateway sends until it closes the connection.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn malformed_and_oversized_messages_close_only_that_client() {
    let cluster = common::cluster();
    let gw = TestGateway::start(
        &cluster,
        "auth_type = \"trust\"\npool_mode = \"transaction\"\nmax_packet_size = 4096",
        "",
        &[],
    );
    let bystander = raw_login(gw.port);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "oversized",
            {
                let mut m = vec![b'Q'];
                m.extend_from_slice(&100_000i32.to_be_bytes());
                m.extend_from_slice(&[b'x'; 64]);
                m
            },
            "exceeds max_packet_size",
        ),
        (
            "negative length",
            vec![b'Q', 0xff, 0xff, 0xff, 0xf0],
            "invalid message length",
        ),
        (
            "unknown type",
            vec![b'?', 0, 0, 0, 4],
            "malformed message type",
        ),
        (
            "query without terminator",
            vec![b'Q', 0, 0, 0, 7, b'a', b'b', b'c'],
            "malformed Query",
        ),
        (
            "bind without names",
            vec![b'B', 0, 0, 0, 6, b'x', b'y'],
            "malformed Bind",
        ),
    ];
    for (name, bytes, expected) in cases {
        let mut victim = raw_login(gw.port);
        victim.write_all(&bytes).unwrap();
        let answer = read_to_close(&mut victim);
        assert!(
            answer.contains("08P01") && answer.contains(expected),
            "{name}: {answer:?}"
        );
    }

    // Garbage instead of a startup packet.
    let mut http = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_to_close(&mut http);
    assert!(answer.contains("08P01"), "{answer:?}");

    // SSLRequest is answered 'N' and the login continues in plain text.
    let mut ssl = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    ssl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ssl.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .unwrap();
    let mut n = [0u8; 1];
    ssl.read_exact(&mut n).unwrap();
    assert_eq!(&n, b"N");

    // The bystander never noticed.
    let mut bystander = bystander;
    let mut buf = BytesMut::new();
    protocol::query(&mut buf, "SELECT 42");
    bystander.write_all(&buf).unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !seen.ends_with(&[b'Z', 0, 0, 0, 5, b'I']) {
        let n = bystander.read(&mut chunk).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&chunk[..n]);
    }
    assert!(seen.windows(2).any(|w| w == b"42"));
    let (ok, out, err) = gw.psql("SELECT 'still serving'");
    assert!(ok, "{err}");
    assert_eq!(out, "still serving");
}
