//! SCRAM pass-through against a real PostgreSQL: the auth_file holds only a
//! role's SCRAM secret (copied from `pg_authid`), no password, and the
//! gateway still logs in to the server once a client has logged in to it.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::{cluster, role_with_secret, server_connections, TestGateway};
use sluice_cluster::{Cluster, ClusterSpec};
use sluice_proxy::balance::hosts::HostState;

/// Starts a gateway whose auth_file is exactly `userlist`.
fn gateway_with_userlist(cluster: &Cluster, proxy: &str, userlist: &str) -> TestGateway {
    TestGateway::start_with_userlist(cluster, proxy, "", userlist)
}

#[test]
fn secret_only_user_logs_in_to_the_server_by_pass_through() {
    let cluster = cluster();
    let secret = role_with_secret(&cluster, "pt_user", "pt-pass");
    // The userlist line as the README shows how to make it.
    let line = cluster
        .sql(
            cluster.primary(),
            "SELECT format('\"%s\" \"%s\"', rolname, rolpassword) FROM pg_authid \
             WHERE rolname = 'pt_user'",
        )
        .expect("userlist line");
    assert_eq!(line, format!("\"pt_user\" \"{secret}\""));
    let gw = gateway_with_userlist(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 2",
        &format!("{line}\n"),
    );
    let pool = gw.pool_stats("pt_user");

    // Before any client logged in, the gateway has nothing to log in with.
    let error = gw
        .runtime
        .block_on(pool.checkout())
        .map(|_| ())
        .expect_err("no ClientKey yet");
    let message = error.to_string();
    assert!(
        message.contains("pt_user") && message.contains("only after a client has logged in"),
        "{message}"
    );

    // A wrong password is refused, and teaches the gateway nothing.
    let (ok, _, stderr) = gw.psql_as("pt_user", "wrong", "SELECT 1");
    assert!(!ok);
    assert!(
        stderr.contains("password authentication failed for user \"pt_user\""),
        "{stderr}"
    );
    assert!(gw.runtime.block_on(pool.checkout()).is_err());

    // The right password: the client's proof gives the gateway the key.
    let (ok, out, stderr) = gw.psql_as(
        "pt_user",
        "pt-pass",
        "SELECT current_user, pg_backend_pid()",
    );
    assert!(ok, "{stderr}");
    let (user, first_pid) = out.split_once('|').expect("two columns");
    assert_eq!(user, "pt_user");

    // A second client (tokio-postgres) is served by the same server connection.
    let conninfo = gw.conninfo("pt_user", "pt-pass");
    let second_pid: i32 = gw.runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .expect("tokio-postgres connects through the gateway");
        tokio::spawn(connection);
        let row = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("query");
        row.get(0)
    });
    assert_eq!(second_pid.to_string(), first_pid);
    assert_eq!(pool.stats.server_connects.load(Relaxed), 1);
    assert_eq!(pool.stats.server_connect_errors.load(Relaxed), 2);
    assert_eq!(server_connections(&cluster, "pt_user"), 1);

    // Still refused with a wrong password after the key is known.
    let (ok, _, stderr) = gw.psql_as("pt_user", "pt-pas", "SELECT 1");
    assert!(!ok);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
}

#[test]
fn min_pool_size_fills_once_a_client_has_logged_in() {
    let cluster = cluster();
    let secret = role_with_secret(&cluster, "pt_min", "pt-min-pass");
    let gw = gateway_with_userlist(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 4\nmin_pool_size = 3\nserver_idle_timeout = 1",
        &format!("\"pt_min\" \"{secret}\"\n"),
    );
    let (ok, out, stderr) = gw.psql_as("pt_min", "pt-min-pass", "SELECT current_user");
    assert!(ok, "{stderr}");
    assert_eq!(out, "pt_min");
    // The janitor opens the rest of min_pool_size with the learned key.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server_connections(&cluster, "pt_min") < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server_connections(&cluster, "pt_min"), 3);
    assert_eq!(
        gw.pool_stats("pt_min").stats.server_connects.load(Relaxed),
        3
    );
}

#[test]
fn secret_with_another_salt_gets_a_clear_error() {
    let cluster = cluster();
    role_with_secret(&cluster, "pt_other", "pt-other-pass");
    // The same password, but a secret made here: another salt than the server's.
    let local = postgres_protocol::password::scram_sha_256(b"pt-other-pass");
    let gw = gateway_with_userlist(
        &cluster,
        "pool_mode = \"transaction\"",
        &format!("\"pt_other\" \"{local}\"\n"),
    );
    let (ok, _, stderr) = gw.psql_as("pt_other", "pt-other-pass", "SELECT 1");
    assert!(!ok);
    let server = cluster.primary().addr();
    assert!(
        stderr.contains(&format!(
            "server {server} stores a different SCRAM secret for user \"pt_other\" than the auth_file"
        )),
        "{stderr}"
    );
    // The client itself was not the problem: its password matched the file.
    assert!(
        !stderr.contains("password authentication failed"),
        "{stderr}"
    );
}

#[test]
fn replica_pools_log_in_with_the_same_learned_key() {
    let cluster = Cluster::start(ClusterSpec {
        replicas: 1,
        ..Default::default()
    })
    .expect("start PostgreSQL with a standby");
    let secret = role_with_secret(&cluster, "pt_replica", "pt-replica-pass");
    cluster.wait_caught_up().expect("standby caught up");
    let replica = cluster.replicas()[0].port();
    // The health checker logs in as `postgres` (plain password); the client
    // user has only its secret.
    let gw = TestGateway::start_with_userlist(
        &cluster,
        "pool_mode = \"transaction\"",
        &format!(
            "replicas = [\"127.0.0.1:{replica}\"]\n\n[load_balancing]\n\
             replica_check_interval = 0.05\nsticky = \"off\"\n"
        ),
        &format!("\"postgres\" \"postgres\"\n\"pt_replica\" \"{secret}\"\n"),
    );
    let hosts = gw.balanced_app().hosts.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hosts.replicas()[0].health().state != HostState::Up {
        assert!(Instant::now() < deadline, "replica never checked up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The login itself uses the primary; the read goes to the replica,
    // whose pool logs in with the key the login just taught the gateway.
    let (ok, out, stderr) =
        gw.psql_as("pt_replica", "pt-replica-pass", "SELECT inet_server_port()");
    assert!(ok, "{stderr}");
    assert_eq!(out, replica.to_string());
}
