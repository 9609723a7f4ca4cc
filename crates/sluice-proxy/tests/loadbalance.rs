//! Load balancing through the gateway against a real primary with two
//! streaming hot standbys: where reads and writes land, hints and settings,
//! sticky read-your-writes (also across two gateways sharing Redis), lag
//! limits, and a replica killed under a read load.
//!
//! `SELECT inet_server_port()` tells which host served a statement. Each
//! test starts its own cluster because it pauses or stops servers.

mod common;

use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{run_bounded, TestGateway};
use sluice_cluster::{Cluster, ClusterSpec};
use sluice_proxy::balance::hosts::HostState;
use tokio_postgres::SimpleQueryMessage;

const LIMIT: Duration = Duration::from_secs(30);

fn cluster() -> Cluster {
    let cluster = Cluster::start(ClusterSpec {
        replicas: 2,
        ..Default::default()
    })
    .expect("start PostgreSQL with two standbys");
    cluster
        .sql_in(
            cluster.primary(),
            "app",
            "GRANT ALL ON SCHEMA public TO PUBLIC; \
             CREATE TABLE items (key text PRIMARY KEY, value int); \
             GRANT ALL ON items TO PUBLIC; \
             CREATE FUNCTION app_port() RETURNS int LANGUAGE sql STABLE \
             AS 'SELECT inet_server_port()'",
        )
        .expect("schema");
    cluster.wait_caught_up().expect("standbys caught up");
    cluster
}

/// A transaction-mode gateway in front of `cluster` with its two replicas;
/// `lb` lines go into `[load_balancing]`.
fn gateway(cluster: &Cluster, lb: &str) -> TestGateway {
    gateway_in(cluster, "transaction", lb)
}

fn gateway_in(cluster: &Cluster, pool_mode: &str, lb: &str) -> TestGateway {
    let replicas: Vec<String> = cluster
        .replicas()
        .iter()
        .map(|r| format!("\"127.0.0.1:{}\"", r.port()))
        .collect();
    let extra = format!(
        "replicas = [{}]\n\n[load_balancing]\nreplica_check_interval = 0.05\n\
         primary_only_users = [\"background\"]\n{lb}\n",
        replicas.join(", ")
    );
    let gw = TestGateway::start(
        cluster,
        &format!("pool_mode = \"{pool_mode}\"\ndefault_pool_size = 4"),
        &extra,
        &[],
    );
    let hosts = gw.balanced_app().hosts.clone();
    wait_for("both replicas checked and up", || {
        hosts.replicas().iter().all(|r| {
            let health = r.health();
            health.state == HostState::Up && health.in_recovery == Some(true)
        })
    });
    gw
}

/// Polls `condition` every 50 ms for at most `LIMIT`; panics naming `what`.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < LIMIT, "gave up waiting for: {what}");
        sleep(Duration::from_millis(50));
    }
}

/// One client connection through the gateway (tokio-postgres on its own
/// small runtime), with blocking helpers.
struct Conn {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Conn {
    /// Connects as `user` (password = name) with startup `options`.
    fn open(gw: &TestGateway, user: &str, options: &str) -> Conn {
        Conn::open_port(gw.port, user, options)
    }

    fn open_port(port: u16, user: &str, options: &str) -> Conn {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user(user)
            .password(user)
            .dbname("app")
            .connect_timeout(Duration::from_secs(10));
        if !options.is_empty() {
            config.options(options);
        }
        let client = runtime.block_on(async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .expect("connect through the gateway");
            tokio::spawn(connection);
            client
        });
        Conn { runtime, client }
    }

    /// Every row of the last result of a simple query, as text.
    fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        self.try_rows(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    fn try_rows(&self, sql: &str) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
        let messages = self
            .runtime
            .block_on(async { tokio::time::timeout(LIMIT, self.client.simple_query(sql)).await })
            .expect("query finished in time")?;
        let mut rows = Vec::new();
        for message in messages {
            match message {
                SimpleQueryMessage::Row(row) => rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or("").to_string())
                        .collect(),
                ),
                SimpleQueryMessage::CommandComplete(_) => {}
                _ => {}
            }
        }
        Ok(rows)
    }

    /// The first column of the first row.
    fn value(&self, sql: &str) -> String {
        self.rows(sql)
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next())
            .unwrap_or_else(|| panic!("{sql}: no row"))
    }

    fn port(&self, sql: &str) -> u16 {
        self.value(sql).parse().expect("a port")
    }

    /// Runs a prepared statement (extended protocol, named statement).
    fn prepared_port(&self, statement: &tokio_postgres::Statement) -> u16 {
        let row = self
            .runtime
            .block_on(self.client.query_one(statement, &[]))
            .expect("prepared query");
        row.get::<_, i32>(0) as u16
    }
}

fn ports(cluster: &Cluster) -> (u16, u16, u16) {
    (
        cluster.primary().port(),
        cluster.replicas()[0].port(),
        cluster.replicas()[1].port(),
    )
}

#[test]
fn reads_spread_writes_go_to_the_primary_and_hints_route_as_stated() {
    let cluster = cluster();
    let (primary, r0, r1) = ports(&cluster);
    // Sticky reads are their own test: here a write must not pin the
    // following reads to the primary.
    let gw = gateway(&cluster, "sticky = \"off\"");
    let conn = Conn::open(&gw, "app", "");

    // Reads spread over both replicas, never the primary.
    let mut seen: Vec<u16> = (0..40)
        .map(|_| conn.port("SELECT inet_server_port()"))
        .collect();
    seen.sort();
    seen.dedup();
    let mut replicas = vec![r0, r1];
    replicas.sort();
    assert_eq!(seen, replicas);

    // Writes land on the primary.
    assert_eq!(
        conn.port("INSERT INTO items VALUES ('w', 1) RETURNING inet_server_port()"),
        primary
    );
    // Things that must run on the primary although they only read.
    for sql in [
        "SELECT inet_server_port() FROM items FOR UPDATE",
        "SELECT app_port()", // not a known read-only built-in
        "SELECT inet_server_port(), pg_advisory_xact_lock(1)",
    ] {
        let port: u16 = conn.rows(sql)[0][0].parse().unwrap();
        assert_eq!(port, primary, "{sql}");
    }
    // An explicit transaction goes to the primary; a read-only one may not.
    let rows = conn.rows("BEGIN; SELECT inet_server_port(); COMMIT");
    assert_eq!(rows[0][0].parse::<u16>().unwrap(), primary);
    let rows = conn.rows("BEGIN READ ONLY; SELECT inet_server_port(); COMMIT");
    assert_ne!(rows[0][0].parse::<u16>().unwrap(), primary);

    // Hints: a comment wins in both directions.
    assert_eq!(
        conn.port("/* sluice:primary */ SELECT inet_server_port()"),
        primary
    );
    assert_ne!(conn.port("/* sluice:replica */ SELECT app_port()"), primary);
    // SET sluice.route, and SHOW of it, answered by the gateway.
    conn.rows("SET sluice.route = 'primary'");
    assert_eq!(conn.value("SHOW sluice.route"), "primary");
    assert_eq!(conn.port("SELECT inet_server_port()"), primary);
    // ... a comment still wins over the session setting.
    assert_ne!(
        conn.port("/* sluice:replica */ SELECT inet_server_port()"),
        primary
    );
    conn.rows("SET sluice.route = 'replica'");
    assert_ne!(conn.port("SELECT app_port()"), primary);
    conn.rows("RESET sluice.route");
    assert_eq!(conn.value("SHOW sluice.route"), "auto");
    assert_eq!(conn.port("SELECT app_port()"), primary);
    // A bad value and a mix with SQL are clear errors.
    let error = conn.try_rows("SET sluice.route = 'sideways'").unwrap_err();
    assert!(format!("{error:?}").contains("sluice.route"), "{error:?}");
    let error = conn
        .try_rows("SET sluice.route = 'primary'; SELECT 1")
        .unwrap_err();
    assert!(format!("{error:?}").contains("on their own"), "{error:?}");

    // sluice.* through the extended protocol is refused, not forwarded.
    let error = conn
        .runtime
        .block_on(conn.client.query("SHOW sluice.route", &[]))
        .unwrap_err();
    assert!(
        format!("{error:?}").contains("simple query protocol"),
        "{error:?}"
    );

    // Prepared statements (extended protocol) are classified once and routed.
    let read = conn
        .runtime
        .block_on(conn.client.prepare("SELECT inet_server_port()"))
        .unwrap();
    let mut seen: Vec<u16> = (0..20).map(|_| conn.prepared_port(&read)).collect();
    seen.sort();
    seen.dedup();
    assert!(!seen.contains(&primary), "{seen:?}");
    assert_eq!(seen.len(), 2, "{seen:?}");
    let write = conn
        .runtime
        .block_on(
            conn.client
                .prepare("UPDATE items SET value = value + 1 RETURNING inet_server_port()"),
        )
        .unwrap();
    assert_eq!(conn.prepared_port(&write), primary);

    // psycopg's pipeline mode: results fetched inside the pipeline make it
    // send Flush before the Sync; the Sync must follow on the same replica.
    let python = common::python().expect("the repository virtualenv (.venv) with psycopg 3");
    let script = "import psycopg, sys\n\
        with psycopg.connect(sys.argv[1], autocommit=True) as conn:\n\
        \x20   with conn.pipeline():\n\
        \x20       first = conn.execute('SELECT inet_server_port()')\n\
        \x20       print(first.fetchone()[0])\n\
        \x20       second = conn.execute('SELECT inet_server_port()')\n\
        \x20   print(second.fetchone()[0])\n";
    let out = run_bounded(
        Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(gw.conninfo("app", "app")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for port in stdout.lines() {
        assert_ne!(port.parse::<u16>().unwrap(), primary, "{stdout}");
    }

    // primary_only_users: every statement of `background` uses the primary.
    let background = Conn::open(&gw, "background", "");
    for _ in 0..10 {
        assert_eq!(background.port("SELECT inet_server_port()"), primary);
    }

    // SHOW sluice.hosts: one row per host with role, state, lag, served.
    let rows = conn.rows("SHOW sluice.hosts");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0][0], "primary");
    assert_eq!(rows[0][1], format!("127.0.0.1:{primary}"));
    assert_eq!(rows[0][3], "f");
    for (row, port) in rows[1..].iter().zip([r0, r1]) {
        assert_eq!(row[0], "replica");
        assert_eq!(row[1], format!("127.0.0.1:{port}"));
        assert_eq!(row[2], "up");
        assert!(row[8].parse::<u64>().unwrap() >= 10, "served: {row:?}");
    }

    // Session pooling: a read-only session may be served by a replica,
    // any other session by the primary.
    let session_gw = gateway_in(&cluster, "session", "");
    let read_only = Conn::open(&session_gw, "app", "-c default_transaction_read_only=on");
    let port = read_only.port("SELECT inet_server_port()");
    assert!(port == r0 || port == r1, "{port}");
    assert_eq!(
        read_only.port("SELECT inet_server_port()"),
        port,
        "one server per session"
    );
    let read_write = Conn::open(&session_gw, "app", "");
    assert_eq!(read_write.port("SELECT inet_server_port()"), primary);

    // sluice.min_lsn far in the future: no replica qualifies.
    conn.rows("SET sluice.min_lsn = 'FFFFFFFF/0'");
    assert_eq!(conn.value("SHOW sluice.min_lsn"), "FFFFFFFF/0");
    assert_eq!(conn.port("SELECT inet_server_port()"), primary);
    conn.rows("RESET sluice.min_lsn");
    wait_for("reads back on replicas", || {
        conn.port("SELECT inet_server_port()") != primary
    });
}

/// Resumes replay and waits until the replicas have everything. Then one
/// more write straight to the primary: a client's recorded position is the
/// primary's WAL *insert* position, which lies past a page header when the
/// last record ended exactly on a page boundary; a standby reaches it only
/// with the next record (until then that client's reads stay on the primary).
fn resume_and_catch_up(cluster: &Cluster) {
    for replica in cluster.replicas() {
        cluster.resume_replay(replica).unwrap();
    }
    cluster
        .sql_in(
            cluster.primary(),
            "app",
            "INSERT INTO items VALUES ('nudge', 0) ON CONFLICT DO NOTHING",
        )
        .unwrap();
    cluster.wait_caught_up().unwrap();
}

/// Writes a fresh value for `key` and reads it back on the same or another
/// connection; returns (value seen, port that served the read).
fn write_then_read(writer: &Conn, reader: &Conn, key: &str, value: i32) -> (Option<i32>, u16) {
    writer.rows(&format!(
        "INSERT INTO items VALUES ('{key}', {value}) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    ));
    let rows = reader.rows(&format!(
        "SELECT (SELECT value FROM items WHERE key = '{key}'), inet_server_port()"
    ));
    let seen = rows[0][0].parse().ok();
    (seen, rows[0][1].parse().unwrap())
}

#[test]
fn sticky_reads_see_their_writes_while_replay_is_paused() {
    let cluster = cluster();
    let (primary, _, _) = ports(&cluster);
    let gw = gateway(&cluster, "sticky = \"connection\"\nsticky_ttl = 30");
    let off = gateway(&cluster, "sticky = \"off\"");
    for replica in cluster.replicas() {
        cluster.pause_replay(replica).unwrap();
    }

    // Sticky per connection: every read after a write sees it (the primary serves).
    let conn = Conn::open(&gw, "app", "");
    for i in 0..10 {
        let (seen, port) = write_then_read(&conn, &conn, "conn", i);
        assert_eq!(seen, Some(i), "read {i} missed its own write");
        assert_eq!(port, primary);
    }
    let lsn = conn.value("SHOW sluice.last_write_lsn");
    assert_ne!(lsn, "0/0");
    // A writing transaction too, and only its commit records the position.
    let rows = conn.rows(
        "BEGIN; UPDATE items SET value = 100 WHERE key = 'conn'; COMMIT; \
         SELECT value, inet_server_port() FROM items WHERE key = 'conn'",
    );
    assert_eq!(rows[0][0], "100");
    let later = conn.value("SHOW sluice.last_write_lsn");
    assert_ne!(later, lsn, "the transaction's commit moved the position");

    // Another connection has no sticky position: it reads the stale replica.
    let other = Conn::open(&gw, "app", "");
    let (seen, port) = write_then_read(&conn, &other, "conn", 7);
    assert_ne!(seen, Some(7), "a paused replica cannot have the new value");
    assert_ne!(port, primary);
    // ... unless it carries the writer's position over (sluice.min_lsn).
    let position = conn.value("SHOW sluice.last_write_lsn");
    other.rows(&format!("SET sluice.min_lsn = '{position}'"));
    let rows = other.rows("SELECT value, inet_server_port() FROM items WHERE key = 'conn'");
    assert_eq!(rows[0], ["7".to_string(), primary.to_string()]);

    // sticky = "off": the stale read is observed (the mechanism matters).
    let plain = Conn::open(&off, "app", "");
    let mut stale = 0;
    for i in 0..5 {
        let (seen, port) = write_then_read(&plain, &plain, "off", 1000 + i);
        assert_ne!(port, primary);
        stale += usize::from(seen != Some(1000 + i));
    }
    assert_eq!(stale, 5, "every read went to a paused replica");

    // Resume replay: reads return to the replicas once they catch up.
    resume_and_catch_up(&cluster);
    wait_for("sticky reads back on a replica", || {
        conn.port("SELECT inet_server_port()") != primary
    });
    let rows = conn.rows("SELECT value FROM items WHERE key = 'conn'");
    assert_eq!(rows[0][0], "7");
}

/// How often the gateway read the primary's WAL position after a write:
/// (appended to the request that ended the transaction, on a separate
/// round trip).
fn lsn_reads(gw: &TestGateway) -> (u64, u64) {
    let db = gw.balanced_app();
    let reads = &db.lsn_reads;
    (
        reads.pipelined.load(std::sync::atomic::Ordering::Relaxed),
        reads.separate.load(std::sync::atomic::Ordering::Relaxed),
    )
}

/// Asserts how many position reads of each kind happened since `before`,
/// and returns the new totals.
#[track_caller]
fn assert_lsn_reads(
    gw: &TestGateway,
    before: (u64, u64),
    pipelined: u64,
    separate: u64,
) -> (u64, u64) {
    let now = lsn_reads(gw);
    assert_eq!(
        (now.0 - before.0, now.1 - before.1),
        (pipelined, separate),
        "(pipelined, separate) position reads"
    );
    now
}

#[test]
fn the_write_position_is_read_in_the_round_trip_that_ends_the_transaction() {
    let cluster = cluster();
    let (primary, _, _) = ports(&cluster);
    cluster
        .sql_in(
            cluster.primary(),
            "app",
            "CREATE TABLE parents (id int PRIMARY KEY); \
             CREATE TABLE children (id int, parent int REFERENCES parents \
             DEFERRABLE INITIALLY DEFERRED); \
             GRANT ALL ON parents, children TO PUBLIC",
        )
        .unwrap();
    cluster.wait_caught_up().unwrap();
    let gw = gateway(&cluster, "sticky = \"connection\"\nsticky_ttl = 30");
    for replica in cluster.replicas() {
        cluster.pause_replay(replica).unwrap();
    }
    let conn = Conn::open(&gw, "app", "");
    let mut counts = lsn_reads(&gw);
    assert_eq!(counts, (0, 0));

    // An autocommit write in the simple protocol: its position comes with
    // its own answer, and the next read (same connection) sees it.
    let mut position = conn.value("SHOW sluice.last_write_lsn");
    for i in 0..5 {
        let (seen, port) = write_then_read(&conn, &conn, "simple", i);
        assert_eq!((seen, port), (Some(i), primary), "read {i}");
        let now = conn.value("SHOW sluice.last_write_lsn");
        assert_ne!(now, position, "write {i} recorded a new position");
        position = now;
    }
    counts = assert_lsn_reads(&gw, counts, 5, 0);

    // The extended protocol (tokio-postgres: a named statement, prepared
    // first; preparing runs nothing, so it reads no position).
    let insert = "INSERT INTO items VALUES ($1, $2) \
                  ON CONFLICT (key) DO UPDATE SET value = excluded.value";
    for i in 0..5 {
        let written = conn
            .runtime
            .block_on(conn.client.execute(insert, &[&"extended", &i]))
            .unwrap();
        assert_eq!(written, 1);
        let rows = conn.rows("SELECT value, inet_server_port() FROM items WHERE key = 'extended'");
        assert_eq!(rows[0], [i.to_string(), primary.to_string()]);
    }
    counts = assert_lsn_reads(&gw, counts, 5, 0);
    // A failing autocommit write (the client gets the error; all goes on).
    let error = conn
        .runtime
        .block_on(
            conn.client
                .execute("INSERT INTO parents VALUES ($1), ($1)", &[&1i32]),
        )
        .unwrap_err();
    assert!(format!("{error:?}").contains("duplicate key"), "{error:?}");
    assert_eq!(conn.value("SELECT count(*) FROM parents"), "0");
    counts = assert_lsn_reads(&gw, counts, 1, 0);

    // An explicit transaction, one statement per request: the write inside
    // it reads nothing (the query must not run in the client's
    // transaction); its COMMIT carries the position read.
    conn.rows("BEGIN");
    conn.rows("UPDATE items SET value = 100 WHERE key = 'simple'");
    counts = assert_lsn_reads(&gw, counts, 0, 0);
    assert_eq!(conn.value("SHOW transaction_isolation"), "read committed");
    conn.rows("COMMIT");
    counts = assert_lsn_reads(&gw, counts, 1, 0);
    let rows = conn.rows("SELECT value, inet_server_port() FROM items WHERE key = 'simple'");
    assert_eq!(rows[0], ["100".to_string(), primary.to_string()]);
    assert_ne!(conn.value("SHOW sluice.last_write_lsn"), position);
    // A transaction that was opened by a write request and stays open.
    conn.rows("BEGIN ISOLATION LEVEL REPEATABLE READ");
    conn.rows("UPDATE items SET value = 101 WHERE key = 'simple'");
    conn.rows("END");
    counts = assert_lsn_reads(&gw, counts, 1, 0);

    // A COMMIT that fails (deferred foreign key): the client gets the error
    // and an idle connection; nothing is left open on the server.
    conn.rows("BEGIN");
    conn.rows("INSERT INTO children VALUES (1, 999)");
    let error = conn.try_rows("COMMIT").unwrap_err();
    assert!(format!("{error:?}").contains("foreign key"), "{error:?}");
    counts = assert_lsn_reads(&gw, counts, 1, 0);
    assert_eq!(conn.value("SELECT count(*) FROM children"), "0");
    conn.rows("BEGIN");
    conn.rows("INSERT INTO parents VALUES (7)");
    conn.rows("INSERT INTO children VALUES (1, 7)");
    conn.rows("COMMIT");
    let rows = conn.rows("SELECT count(*), inet_server_port() FROM children");
    assert_eq!(rows[0], ["1".to_string(), primary.to_string()]);
    counts = assert_lsn_reads(&gw, counts, 1, 0);

    // A failed transaction ended by COMMIT (answered ROLLBACK) and one
    // ended by ROLLBACK: the appended query runs after them, not inside.
    conn.rows("BEGIN");
    conn.rows("UPDATE items SET value = -1 WHERE key = 'simple'");
    assert!(conn.try_rows("SELECT 1 / 0").is_err());
    conn.rows("COMMIT");
    conn.rows("BEGIN");
    conn.rows("UPDATE items SET value = -2 WHERE key = 'simple'");
    conn.rows("ROLLBACK");
    counts = assert_lsn_reads(&gw, counts, 2, 0);
    assert_eq!(
        conn.value("SELECT value FROM items WHERE key = 'simple'"),
        "101"
    );

    // Not pipelined (a separate round trip after the transaction):
    // several statements in one string, and COPY.
    let rows = conn.rows(
        "BEGIN; UPDATE items SET value = 200 WHERE key = 'simple'; COMMIT; \
         SELECT value, inet_server_port() FROM items WHERE key = 'simple'",
    );
    assert_eq!(rows[0], ["200".to_string(), primary.to_string()]);
    counts = assert_lsn_reads(&gw, counts, 0, 1);
    let python = common::python().expect("the repository virtualenv (.venv) with psycopg 3");
    let run_python = |script: &str| {
        let out = run_bounded(
            Command::new(&python)
                .arg("-c")
                .arg(script)
                .arg(gw.conninfo("app", "app"))
                .arg(primary.to_string()),
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && stdout.contains("psycopg ok"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run_python(
        "import psycopg, sys\n\
        with psycopg.connect(sys.argv[1], autocommit=True) as conn:\n\
        \x20   with conn.cursor().copy('COPY items FROM STDIN') as copy:\n\
        \x20       copy.write_row(('copied', 5))\n\
        print('psycopg ok')\n",
    );
    let rows = conn.rows("SELECT value, inet_server_port() FROM items WHERE key = 'copied'");
    assert_eq!(rows[0], ["5".to_string(), primary.to_string()]);
    counts = assert_lsn_reads(&gw, counts, 0, 1);

    // psycopg: autocommit writes (unnamed then prepared statements), a
    // transaction, and pipeline mode; every read sees the write before it.
    run_python(
        "import psycopg, sys\n\
        primary = int(sys.argv[2])\n\
        def check(conn, key, value):\n\
        \x20   row = conn.execute('SELECT value, inet_server_port() FROM items WHERE key = %s', (key,)).fetchone()\n\
        \x20   assert row == (value, primary), (key, value, row)\n\
        upsert = 'INSERT INTO items VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value'\n\
        with psycopg.connect(sys.argv[1], autocommit=True) as conn:\n\
        \x20   for i in range(8):\n\
        \x20       conn.execute(upsert, ('py', i))\n\
        \x20       check(conn, 'py', i)\n\
        \x20   with conn.transaction():\n\
        \x20       conn.execute(upsert, ('py', 100))\n\
        \x20   check(conn, 'py', 100)\n\
        \x20   with conn.pipeline():\n\
        \x20       for i in range(5):\n\
        \x20           conn.execute(upsert, ('pipe', i))\n\
        \x20           conn.execute(upsert, ('pipe2', i))\n\
        \x20   check(conn, 'pipe', 4)\n\
        \x20   check(conn, 'pipe2', 4)\n\
        \x20   with conn.pipeline():\n\
        \x20       conn.execute(upsert, ('pipe', 50))\n\
        \x20       cur = conn.execute('SELECT value FROM items WHERE key = %s', ('pipe',))\n\
        \x20   assert cur.fetchone() == (50,)\n\
        \x20   check(conn, 'pipe', 50)\n\
        \x20   with conn.pipeline() as pipeline:\n\
        \x20       conn.execute(upsert, ('synced', 1))\n\
        \x20       pipeline.sync()\n\
        \x20       conn.execute(upsert, ('synced', 2))\n\
        \x20   check(conn, 'synced', 2)\n\
        print('psycopg ok')\n",
    );
    let (pipelined, separate) = lsn_reads(&gw);
    // Eight autocommit writes and the transaction's COMMIT at least.
    assert!(
        pipelined - counts.0 >= 9,
        "{:?}",
        (pipelined, separate, counts)
    );

    // Another connection without a position reads the stale replica (the
    // writes really are invisible there, so the reads above prove it).
    let other = Conn::open(&gw, "app", "");
    let rows =
        other.rows("SELECT (SELECT value FROM items WHERE key = 'simple'), inet_server_port()");
    assert_ne!(rows[0][0], "200");
    assert_ne!(rows[0][1], primary.to_string());
}

#[test]
fn sticky_key_is_shared_by_two_gateways_through_redis() {
    let cluster = cluster();
    let (primary, _, _) = ports(&cluster);
    let redis = Redis::start();
    let lb = format!(
        "sticky = \"key\"\nsticky_store = \"{}\"\nsticky_ttl = 30",
        redis.url()
    );
    let a = gateway(&cluster, &lb);
    let b = gateway(&cluster, &lb);
    for replica in cluster.replicas() {
        cluster.pause_replay(replica).unwrap();
    }
    // The key from the startup packet on one side, from SET on the other.
    let writer = Conn::open(&a, "app", "-c sluice.sticky_key=user:42");
    let reader = Conn::open(&b, "app", "");
    reader.rows("SET sluice.sticky_key = 'user:42'");
    assert_eq!(reader.value("SHOW sluice.sticky_key"), "user:42");
    for i in 0..10 {
        let (seen, port) = write_then_read(&writer, &reader, "shared", i);
        assert_eq!(
            seen,
            Some(i),
            "read {i} through the other gateway missed the write"
        );
        assert_eq!(port, primary);
    }
    // A client with another key on gateway B reads from a (stale) replica.
    let stranger = Conn::open(&b, "app", "-c sluice.sticky_key=user:7");
    let rows =
        stranger.rows("SELECT (SELECT value FROM items WHERE key = 'shared'), inet_server_port()");
    assert_ne!(rows[0][0], "9");
    assert_ne!(rows[0][1], primary.to_string());

    resume_and_catch_up(&cluster);
    wait_for("keyed reads back on a replica", || {
        reader.port("SELECT inet_server_port()") != primary
    });
}

#[test]
fn a_replica_past_the_lag_limit_gets_no_reads() {
    let cluster = cluster();
    let (primary, r0, r1) = ports(&cluster);
    let gw = gateway(
        &cluster,
        "sticky = \"off\"\nmax_replication_lag_bytes = 1048576",
    );
    let conn = Conn::open(&gw, "app", "");
    cluster.pause_replay(&cluster.replicas()[0]).unwrap();
    conn.rows("INSERT INTO items SELECT 'bulk' || g, g FROM generate_series(1, 30000) g");
    wait_for("replica 0 seen past the byte limit", || {
        let rows = conn.rows("SHOW sluice.hosts");
        rows[1][5].parse::<u64>().is_ok_and(|lag| lag > 1048576)
            && rows[2][5].parse::<u64>().is_ok_and(|lag| lag <= 1048576)
    });
    // Replica 0 never serves. Replica 1 may briefly pass the limit too (autovacuum after the bulk
    // insert writes WAL), and then reads rightly go to the primary; it serves again once back
    // under the limit.
    let read_avoiding_r0 = || {
        let port = conn.port("SELECT inet_server_port()");
        assert_ne!(port, r0, "the replica past the lag limit served a read");
        port
    };
    for _ in 0..20 {
        read_avoiding_r0();
    }
    wait_for("replica 1 serves reads", || read_avoiding_r0() == r1);
    cluster.resume_replay(&cluster.replicas()[0]).unwrap();
    wait_for("replica 0 serves reads again", || {
        conn.port("SELECT inet_server_port()") == r0
    });
    assert_ne!(conn.port("SELECT inet_server_port()"), primary);
}

#[test]
fn killing_a_replica_under_read_load_fails_no_transaction() {
    let cluster = cluster();
    let (primary, r0, r1) = ports(&cluster);
    let init = run_bounded(
        Command::new(Cluster::bin("pgbench"))
            .args(["-i", "-s", "1", "-q"])
            .arg(format!(
                "host=127.0.0.1 port={primary} user=app password=app dbname=app"
            )),
    );
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    cluster.wait_caught_up().unwrap();
    let gw = gateway(&cluster, "");

    // A bounded read load: 4 clients for 6 seconds, plain pgbench -S.
    let load = Command::new(Cluster::bin("pgbench"))
        .args(["-S", "-n", "-c", "4", "-j", "2", "-T", "6"])
        .arg(gw.conninfo("app", "app"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgbench");
    sleep(Duration::from_secs(2));
    cluster.stop(&cluster.replicas()[0]).unwrap();
    let out = wait_bounded(load);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pgbench failed:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("aborted"), "{stderr}");
    let failed = stdout
        .lines()
        .find(|l| l.starts_with("number of failed transactions"))
        .unwrap_or("number of failed transactions: 0");
    assert!(failed.contains(": 0 "), "{failed}");

    // The stopped replica is marked down; the other serves the reads.
    let conn = Conn::open(&gw, "app", "");
    let rows = conn.rows("SHOW sluice.hosts");
    assert_eq!(rows[1][2], "down", "{rows:?}");
    for _ in 0..10 {
        assert_eq!(conn.port("SELECT inet_server_port()"), r1);
    }
    // Start it again: it rejoins the rotation.
    cluster.start_node(&cluster.replicas()[0]).unwrap();
    wait_for("the restarted replica serves reads again", || {
        conn.port("SELECT inet_server_port()") == r0
    });

    // The primary gone: reads keep working on the replicas; a write gets a
    // clear error after a few tries with backoff.
    cluster.stop(cluster.primary()).unwrap();
    let error = conn
        .try_rows("INSERT INTO items VALUES ('lost', 1)")
        .unwrap_err();
    let message = format!("{error:?}");
    assert!(
        message.contains("primary unreachable after 3 attempts"),
        "{message}"
    );
    assert_ne!(conn.port("SELECT inet_server_port()"), primary);
}

/// Waits for a child with a hard limit (60 s), then collects its output.
fn wait_bounded(mut child: Child) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

/// A throwaway redis-server without persistence; killed on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Redis {
        let port = sluice_cluster::free_port().expect("free port");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        let redis = Redis { port, child };
        wait_for("redis-server accepts connections", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
