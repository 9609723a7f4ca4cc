//! `auth_user` / `auth_query` / `auth_dbname` against a real PostgreSQL:
//! users that are in no auth_file log in through the gateway with the
//! secret the server stores (SCRAM by pass-through, or md5), their pools
//! log in to the server with it, and wrong passwords, unknown users, NULL
//! secrets, changed passwords and dead servers get the answers they should.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::{cluster, private_cluster, server_connections, TestGateway};
use sluice_cluster::Cluster;
use tokio_postgres::NoTls;

/// Creates login role `name` with `password` (SCRAM, the cluster's default)
/// that may use database app.
fn role(cluster: &Cluster, name: &str, password: &str) {
    cluster
        .sql(
            cluster.primary(),
            &format!(
                "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN PASSWORD '{password}'; \
                 GRANT CONNECT ON DATABASE app TO {name}"
            ),
        )
        .expect("create role");
}

/// The gateway's auth_file holds only `postgres`, the auth_user.
const AUTH_USER_ONLY: &str = "\"postgres\" \"postgres\"\n";

fn gateway(cluster: &Cluster, proxy: &str) -> TestGateway {
    TestGateway::start_with_userlist(
        cluster,
        &format!("auth_user = \"postgres\"\npool_mode = \"transaction\"\n{proxy}"),
        "",
        AUTH_USER_ONLY,
    )
}

/// psql's stderr for a login that must fail.
fn refused(gw: &TestGateway, user: &str, password: &str) -> String {
    let (ok, out, stderr) = gw.psql_as(user, password, "SELECT 1");
    assert!(!ok, "{user} logged in: {out}");
    stderr
}

#[test]
fn scram_user_from_auth_query_logs_in_and_pools_by_pass_through() {
    let cluster = cluster();
    role(&cluster, "aq_scram", "aq-scram-pass");
    let gw = gateway(&cluster, "default_pool_size = 3");

    let (ok, out, stderr) = gw.psql_as("aq_scram", "aq-scram-pass", "SELECT current_user");
    assert!(ok, "{stderr}");
    assert_eq!(out, "aq_scram");

    // Three clients inside transactions hold three server connections, each
    // opened by the pool with the ClientKey the first login revealed; then
    // in transaction pooling they share them.
    let conninfo = gw.conninfo("aq_scram", "aq-scram-pass");
    let pids: BTreeSet<i32> = gw.runtime.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (client, connection) = tokio_postgres::connect(&conninfo, NoTls)
                .await
                .expect("connects through the gateway");
            tokio::spawn(connection);
            clients.push(client);
        }
        let mut pids = BTreeSet::new();
        for client in &clients {
            client.batch_execute("BEGIN").await.unwrap();
            let row = client
                .query_one("SELECT pg_backend_pid(), current_user::text", &[])
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(1), "aq_scram");
            pids.insert(row.get::<_, i32>(0));
        }
        for client in &clients {
            client.batch_execute("COMMIT").await.unwrap();
        }
        for round in 0..20 {
            for client in &clients {
                let row = client.query_one("SELECT $1::int4 + 1", &[&round]).await;
                assert_eq!(row.unwrap().get::<_, i32>(0), round + 1);
            }
        }
        pids
    });
    assert_eq!(pids.len(), 3, "three server connections: {pids:?}");
    let pool = gw.pool_stats("aq_scram");
    assert_eq!(pool.stats.server_connects.load(Relaxed), 3);
    assert_eq!(pool.stats.server_connect_errors.load(Relaxed), 0);
    assert_eq!(server_connections(&cluster, "aq_scram"), 3);

    // A wrong password is refused as PostgreSQL refuses it.
    let stderr = refused(&gw, "aq_scram", "wrong");
    assert!(
        stderr.contains("password authentication failed for user \"aq_scram\""),
        "{stderr}"
    );
}

#[test]
fn md5_user_from_auth_query_logs_in_with_md5_on_both_sides() {
    let cluster = cluster();
    // The harness's md5user: stored as md5, and pg_hba asks it for md5.
    let stored = cluster
        .sql(
            cluster.primary(),
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'md5user'",
        )
        .unwrap();
    assert!(stored.starts_with("md5"), "{stored}");
    let gw = gateway(&cluster, "auth_type = \"md5\"\ndefault_pool_size = 2");
    let (ok, out, stderr) = gw.psql_as("md5user", "md5pass", "SELECT current_user");
    assert!(ok, "{stderr}");
    assert_eq!(out, "md5user");
    // Two clients in transactions: the second server connection logs in
    // with the stored md5 hash too.
    let conninfo = gw.conninfo("md5user", "md5pass");
    gw.runtime.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..2 {
            let (client, connection) = tokio_postgres::connect(&conninfo, NoTls).await.unwrap();
            tokio::spawn(connection);
            client.batch_execute("BEGIN").await.unwrap();
            clients.push(client);
        }
        for client in &clients {
            let row = client.query_one("SELECT current_user::text", &[]).await;
            assert_eq!(row.unwrap().get::<_, String>(0), "md5user");
            client.batch_execute("COMMIT").await.unwrap();
        }
    });
    assert_eq!(
        gw.pool_stats("md5user").stats.server_connects.load(Relaxed),
        2
    );
    let stderr = refused(&gw, "md5user", "md5pas");
    assert!(
        stderr.contains("password authentication failed for user \"md5user\""),
        "{stderr}"
    );
}

#[test]
fn unknown_users_and_unusable_secrets_fail_as_postgresql_says() {
    let cluster = cluster();
    cluster
        .sql(
            cluster.primary(),
            "DROP ROLE IF EXISTS aq_nopass, aq_expired, aq_nologin; \
             CREATE ROLE aq_nopass LOGIN; \
             CREATE ROLE aq_expired LOGIN PASSWORD 'aq-expired' VALID UNTIL '2000-01-01'; \
             CREATE ROLE aq_nologin NOLOGIN PASSWORD 'aq-nologin'",
        )
        .unwrap();
    let gw = gateway(&cluster, "");
    for (user, password) in [
        ("aq_nobody", "whatever"),
        ("aq_nopass", "x"),
        ("aq_expired", "aq-expired"),
        ("aq_nologin", "aq-nologin"),
    ] {
        let stderr = refused(&gw, user, password);
        assert!(
            stderr.contains(&format!(
                "password authentication failed for user \"{user}\""
            )),
            "{user}: {stderr}"
        );
    }
    // None of them got a server connection of their own.
    for user in ["aq_nobody", "aq_nopass", "aq_expired", "aq_nologin"] {
        assert_eq!(server_connections(&cluster, user), 0, "{user}");
    }
}

#[test]
fn a_changed_password_is_taken_once_the_cached_answer_expires() {
    let cluster = cluster();
    role(&cluster, "aq_change", "aq-old");
    let gw = gateway(&cluster, "");
    let (ok, _, stderr) = gw.psql_as("aq_change", "aq-old", "SELECT 1");
    assert!(ok, "{stderr}");
    cluster
        .sql(cluster.primary(), "ALTER ROLE aq_change PASSWORD 'aq-new'")
        .unwrap();
    // Within the cache's few seconds the old answer may still be used;
    // after them the new password logs in.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, stderr) = gw.psql_as("aq_change", "aq-new", "SELECT current_user");
        if ok {
            assert_eq!(out, "aq_change");
            break;
        }
        assert!(
            stderr.contains("password authentication failed"),
            "{stderr}"
        );
        assert!(Instant::now() < deadline, "the new password never worked");
        std::thread::sleep(Duration::from_millis(250));
    }
    let stderr = refused(&gw, "aq_change", "aq-old");
    assert!(
        stderr.contains("password authentication failed for user \"aq_change\""),
        "{stderr}"
    );
    // A new server connection logs in with the new secret's ClientKey.
    let pool = gw.pool_stats("aq_change");
    pool.close_idle();
    let connects = pool.stats.server_connects.load(Relaxed);
    let (ok, out, stderr) = gw.psql_as("aq_change", "aq-new", "SELECT current_user");
    assert!(ok, "{stderr}");
    assert_eq!(out, "aq_change");
    assert_eq!(pool.stats.server_connects.load(Relaxed), connects + 1);
}

#[test]
fn per_database_auth_user_query_and_dbname() {
    let cluster = cluster();
    // pgbouncer's advice: a non-superuser auth_user calling a SECURITY
    // DEFINER function. This one answers only for users in aq_allowed, and
    // counts its calls.
    cluster
        .sql(
            cluster.primary(),
            "DROP ROLE IF EXISTS aq_lookup; CREATE ROLE aq_lookup LOGIN PASSWORD 'aq-lookup-pass'; \
             CREATE TABLE aq_allowed (name text); CREATE TABLE aq_calls (name text); \
             CREATE FUNCTION aq_lookup(p_user name) RETURNS TABLE (usename name, passwd text) \
             LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN \
               INSERT INTO aq_calls VALUES (p_user); \
               RETURN QUERY SELECT rolname, rolpassword::text FROM pg_authid \
                 WHERE rolname = p_user AND rolname IN (SELECT name FROM aq_allowed); \
             END $$; \
             REVOKE ALL ON FUNCTION aq_lookup(name) FROM PUBLIC; \
             GRANT EXECUTE ON FUNCTION aq_lookup(name) TO aq_lookup",
        )
        .unwrap();
    role(&cluster, "aq_shop", "aq-shop-pass");
    role(&cluster, "aq_other", "aq-other-pass");
    // A name that would break SQL pasted into the query: it is bound.
    cluster
        .sql(
            cluster.primary(),
            "DROP ROLE IF EXISTS \"aq'quote\"; CREATE ROLE \"aq'quote\" LOGIN PASSWORD 'aq-quote-pass'; \
             GRANT CONNECT ON DATABASE app TO \"aq'quote\"; \
             INSERT INTO aq_allowed VALUES ('aq_shop'), ('aq''quote')",
        )
        .unwrap();
    let port = cluster.primary().port();
    // `app` uses the global auth_user (postgres, pg_authid); `shop` (the
    // same server database) its own, whose function lives in database
    // postgres, reached through the [databases] entry `authdb`.
    let gw = TestGateway::start_with_userlist(
        &cluster,
        "auth_user = \"postgres\"\npool_mode = \"transaction\"",
        &format!(
            "\n[databases.shop]\nhost = \"127.0.0.1\"\nport = {port}\ndbname = \"app\"\n\
             auth_user = \"aq_lookup\"\nauth_dbname = \"authdb\"\n\
             auth_query = \"SELECT usename, passwd FROM aq_lookup($1)\"\n\
             \n[databases.authdb]\nhost = \"127.0.0.1\"\nport = {port}\ndbname = \"postgres\"\n"
        ),
        &format!("{AUTH_USER_ONLY}\"aq_lookup\" \"aq-lookup-pass\"\n"),
    );
    let login = |user: &str, password: &str, dbname: &str| {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(gw.port)
            .user(user)
            .password(password)
            .dbname(dbname)
            .connect_timeout(Duration::from_secs(10));
        async move {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(connection);
            let row = client.query_one("SELECT current_user::text", &[]).await?;
            Ok::<String, tokio_postgres::Error>(row.get(0))
        }
    };
    let calls = || {
        cluster
            .sql(cluster.primary(), "SELECT count(*) FROM aq_calls")
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    gw.runtime.block_on(async {
        // A burst of ten logins runs the query once, on one connection.
        let burst: Vec<_> = (0..10)
            .map(|_| tokio::spawn(login("aq_shop", "aq-shop-pass", "shop")))
            .collect();
        for login in burst {
            assert_eq!(login.await.unwrap().unwrap(), "aq_shop");
        }
        assert_eq!(calls(), 1);
        assert_eq!(server_connections(&cluster, "aq_lookup"), 1);
        let quoted = login("aq'quote", "aq-quote-pass", "shop").await;
        assert_eq!(quoted.unwrap(), "aq'quote");
        // aq_other is not in aq_allowed: shop's lookup does not find it,
        // while app's (pg_authid) does.
        let error = login("aq_other", "aq-other-pass", "shop")
            .await
            .expect_err("shop's lookup does not know aq_other");
        let message = error.as_db_error().map(|e| e.message().to_string());
        assert_eq!(
            message.as_deref(),
            Some("password authentication failed for user \"aq_other\"")
        );
        let app = login("aq_other", "aq-other-pass", "app").await;
        assert_eq!(app.unwrap(), "aq_other");
    });
    let who: String = cluster
        .sql(
            cluster.primary(),
            "SELECT string_agg(name, ',' ORDER BY name COLLATE \"C\") FROM aq_calls",
        )
        .unwrap();
    assert_eq!(who, "aq'quote,aq_other,aq_shop");
}

#[test]
fn a_dead_server_fails_the_lookup_naming_it() {
    let cluster = private_cluster();
    role(&cluster, "aq_dead", "aq-dead-pass");
    let gw = gateway(&cluster, "");
    let addr = cluster.primary().addr();
    cluster.stop(cluster.primary()).unwrap();
    let stderr = refused(&gw, "aq_dead", "aq-dead-pass");
    assert!(
        stderr.contains(&format!(
            "auth_query failed: could not connect to server {addr}"
        )),
        "{stderr}"
    );
    // Back up: the same gateway looks the user up again.
    cluster.start_node(cluster.primary()).unwrap();
    let (ok, out, stderr) = gw.psql_as("aq_dead", "aq-dead-pass", "SELECT current_user");
    assert!(ok, "{stderr}");
    assert_eq!(out, "aq_dead");
}

#[test]
fn a_server_that_never_answers_fails_the_lookup_in_server_connect_timeout() {
    let cluster = cluster();
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let gw = TestGateway::start_with_userlist(
        &cluster,
        "auth_user = \"postgres\"\nserver_connect_timeout = 1\nclient_login_timeout = 30",
        &format!("\n[databases.silent]\nhost = \"127.0.0.1\"\nport = {silent_port}\n"),
        AUTH_USER_ONLY,
    );
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(gw.port)
        .user("aq_anyone")
        .password("x")
        .dbname("silent");
    let error = gw
        .runtime
        .block_on(config.connect(NoTls))
        .map(drop)
        .expect_err("nobody answers the lookup");
    let message = error.as_db_error().map(|e| e.message().to_string());
    let message = message.unwrap_or_else(|| error.to_string());
    assert!(
        message.starts_with("auth_query failed")
            && message.contains(&format!("127.0.0.1:{silent_port}")),
        "{message}"
    );
}

#[test]
fn the_readme_example_pgbouncer_ini_and_lookup_function_work() {
    let cluster = cluster();
    let fixture = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/auth_query")
            .join(name);
        std::fs::read_to_string(path).unwrap()
    };
    cluster
        .sql(cluster.primary(), &fixture("user_lookup.sql"))
        .expect("the README's SQL runs");
    role(&cluster, "aq_readme", "aq-readme-pass");
    let dir = tempfile::tempdir().unwrap();
    let port = cluster.primary().port();
    let ini = fixture("pgbouncer.ini")
        .replace("port=5432", &format!("port={port}"))
        .replace("listen_port = 6432", "listen_port = 0");
    std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap();
    std::fs::write(dir.path().join("userlist.txt"), fixture("userlist.txt")).unwrap();
    let config = sluice_proxy::Config::load(&dir.path().join("pgbouncer.ini")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let gateway = runtime
        .block_on(sluice_proxy::Gateway::start(std::sync::Arc::new(config)))
        .unwrap();
    let gw = TestGateway {
        port: gateway.addr.port(),
        gateway: Some(gateway),
        runtime,
        dir,
    };
    let (ok, out, stderr) = gw.psql_as("aq_readme", "aq-readme-pass", "SELECT current_user");
    assert!(ok, "{stderr}");
    assert_eq!(out, "aq_readme");
    let stderr = refused(&gw, "aq_readme", "wrong");
    assert!(stderr.contains("password authentication failed for user \"aq_readme\""));
    // The lookups ran as pgbouncer_auth, in database postgres.
    let lookups = cluster
        .sql(
            cluster.primary(),
            "SELECT datname FROM pg_stat_activity WHERE usename = 'pgbouncer_auth'",
        )
        .unwrap();
    assert_eq!(lookups, "postgres");
}
