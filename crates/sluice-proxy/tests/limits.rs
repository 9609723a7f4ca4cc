//! Limits and waits against real PostgreSQL: 1,000 clients on 10 server
//! connections, max_client_conn (53300), FIFO waiting, the reserve pool,
//! query_wait_timeout, idle reaping and min_pool_size. Each test uses its own
//! role so it can count its server connections in pg_stat_activity.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cluster, create_role, server_connections, TestGateway};
use tokio_postgres::{Client, NoTls};

async fn connect(gw: &TestGateway, user: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(&gw.conninfo(user, user), NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Lets this process open a few thousand sockets (1,000 clients on each side).
fn raise_fd_limit() {
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < 8192 {
            limit.rlim_cur = limit.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[test]
fn thousand_clients_share_ten_server_connections() {
    raise_fd_limit();
    let cluster = cluster();
    create_role(&cluster, "many");
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 10\nmax_client_conn = 1100",
        "",
        &["many"],
    );
    // Watch the server side while the clients run.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicI64::new(0));
    let watcher = {
        let (done, peak, cluster) = (done.clone(), peak.clone(), cluster.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let n = server_connections(&cluster, "many");
                peak.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let rt = runtime();
    let ok = rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..1000 {
            clients.push(connect(&gw, "many").await.expect("connect"));
        }
        let clients = Arc::new(clients);
        let mut tasks = Vec::new();
        for i in 0..1000 {
            let clients = clients.clone();
            tasks.push(tokio::spawn(async move {
                let client = &clients[i];
                for round in 0..3i32 {
                    let row = client
                        .query_one("SELECT $1::int + 1", &[&round])
                        .await
                        .expect("query");
                    assert_eq!(row.get::<_, i32>(0), round + 1);
                    client
                        .batch_execute("BEGIN; SELECT pg_backend_pid(); COMMIT")
                        .await
                        .expect("transaction");
                }
            }));
        }
        let mut ok = 0;
        for task in tasks {
            if task.await.is_ok() {
                ok += 1;
            }
        }
        ok
    });
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    assert_eq!(ok, 1000, "every client's transactions succeed");
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (1..=10).contains(&peak),
        "server saw {peak} connections for 1,000 clients"
    );
    let stats = gw.pool_stats("many");
    assert!(stats.snapshot().open <= 10);
    assert!(stats.stats.xact_count.load(Ordering::Relaxed) >= 6000);
}

#[test]
fn max_client_conn_refuses_with_53300_and_keeps_serving() {
    let cluster = cluster();
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\nmax_client_conn = 3",
        "",
        &[],
    );
    let rt = runtime();
    rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(connect(&gw, "app").await.expect("within the limit"));
        }
        let err = tokio_postgres::connect(&gw.conninfo("app", "app"), NoTls)
            .await
            .err()
            .expect("the fourth client is refused");
        let db = err.as_db_error().expect("a PostgreSQL error");
        assert_eq!(db.code().code(), "53300", "{err}");
        assert!(db.message().contains("max_client_conn"), "{err}");
        for client in &held {
            let row = client
                .query_one("SELECT 1", &[])
                .await
                .expect("others keep working");
            assert_eq!(row.get::<_, i32>(0), 1);
        }
        // A slot frees when a client leaves.
        drop(held.pop());
        let mut again = None;
        for _ in 0..50 {
            if let Ok(client) = connect(&gw, "app").await {
                again = Some(client);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(again.is_some(), "a freed slot is reusable");
    });
}

#[test]
fn query_wait_timeout_errors_and_the_client_recovers() {
    let cluster = cluster();
    create_role(&cluster, "waiter");
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 1\nquery_wait_timeout = 0.5",
        "",
        &["waiter"],
    );
    let rt = runtime();
    rt.block_on(async {
        let holder = connect(&gw, "waiter").await.unwrap();
        let waiter = connect(&gw, "waiter").await.unwrap();
        holder.batch_execute("BEGIN").await.unwrap();
        let err = waiter
            .simple_query("SELECT 1")
            .await
            .expect_err("no server free");
        let db = err.as_db_error().expect("a PostgreSQL error");
        assert!(db.message().contains("query_wait_timeout"), "{err}");
        holder.batch_execute("COMMIT").await.unwrap();
        let row = waiter
            .query_one("SELECT 2", &[])
            .await
            .expect("same client, later");
        assert_eq!(row.get::<_, i32>(0), 2);
        assert!(
            gw.pool_stats("waiter")
                .stats
                .wait_timeouts
                .load(Ordering::Relaxed)
                >= 1
        );
    });
}

#[test]
fn reserve_pool_opens_after_reserve_pool_timeout_and_no_further() {
    let cluster = cluster();
    create_role(&cluster, "reserver");
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 1\nreserve_pool_size = 1\n\
         reserve_pool_timeout = 0.2\nquery_wait_timeout = 1.5",
        "",
        &["reserver"],
    );
    let rt = runtime();
    rt.block_on(async {
        let a = connect(&gw, "reserver").await.unwrap();
        let b = connect(&gw, "reserver").await.unwrap();
        let c = connect(&gw, "reserver").await.unwrap();
        a.batch_execute("BEGIN").await.unwrap();
        // b waits reserve_pool_timeout, then gets the reserve connection.
        b.batch_execute("BEGIN")
            .await
            .expect("reserve pool serves b");
        assert_eq!(server_connections(&cluster, "reserver"), 2);
        // Pool and reserve are both busy: c times out.
        let err = c.simple_query("SELECT 1").await.expect_err("nothing left");
        assert!(
            err.to_string().contains("query_wait_timeout")
                || format!("{err:?}").contains("query_wait_timeout"),
            "{err:?}"
        );
        a.batch_execute("COMMIT").await.unwrap();
        b.batch_execute("COMMIT").await.unwrap();
        c.simple_query("SELECT 1")
            .await
            .expect("c is served once a connection frees");
        let stats = gw.pool_stats("reserver");
        assert_eq!(stats.stats.reserve_used.load(Ordering::Relaxed), 1);
        assert!(server_connections(&cluster, "reserver") <= 2);
    });
}

/// The order is taken on the server: each waiter's statement draws the next
/// number of a sequence, so it shows the order in which the gateway handed
/// the one server connection on. (Recording the order when each test task
/// saw its answer was flaky under load: a task that was served first could
/// be polled after the next one.)
#[test]
fn waiting_clients_are_served_in_arrival_order() {
    let cluster = cluster();
    create_role(&cluster, "fifo");
    cluster
        .sql_in(
            cluster.primary(),
            "app",
            "DROP SEQUENCE IF EXISTS fifo_order; CREATE SEQUENCE fifo_order; \
             GRANT USAGE ON SEQUENCE fifo_order TO fifo",
        )
        .expect("sequence");
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 1\nquery_wait_timeout = 30",
        "",
        &["fifo"],
    );
    let rt = runtime();
    rt.block_on(async {
        let holder = connect(&gw, "fifo").await.unwrap();
        let mut waiters = Vec::new();
        for _ in 0..4 {
            waiters.push(connect(&gw, "fifo").await.unwrap());
        }
        holder.batch_execute("BEGIN").await.unwrap();
        let pool = gw.pool_stats("fifo");
        let mut tasks = Vec::new();
        for (i, client) in waiters.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                // One request (simple protocol): `query_one` would be two (prepare, then
                // execute), each queued on its own, so the second could fairly queue behind
                // another client's first.
                let messages = client
                    .simple_query("SELECT nextval('fifo_order')")
                    .await
                    .expect("served");
                let value = messages
                    .iter()
                    .find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
                        _ => None,
                    })
                    .expect("a row");
                (value.parse::<i64>().unwrap(), i)
            }));
            // Wait until this client is queued before the next one arrives.
            let deadline = Instant::now() + Duration::from_secs(30);
            while pool.snapshot().waiting < i as u32 + 1 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        assert_eq!(pool.snapshot().waiting, 4);
        holder.batch_execute("COMMIT").await.unwrap();
        let mut served = Vec::new();
        for task in tasks {
            served.push(task.await.unwrap());
        }
        served.sort();
        let order: Vec<usize> = served.iter().map(|&(_, i)| i).collect();
        assert_eq!(order, vec![0, 1, 2, 3], "{served:?}");
    });
}

#[test]
fn idle_server_connections_are_reaped_down_to_min_pool_size() {
    let cluster = cluster();
    create_role(&cluster, "idler");
    let gw = TestGateway::start(
        &cluster,
        "pool_mode = \"transaction\"\ndefault_pool_size = 3\nmin_pool_size = 1\nserver_idle_timeout = 0.5",
        "",
        &["idler"],
    );
    let rt = runtime();
    rt.block_on(async {
        let clients = [
            connect(&gw, "idler").await.unwrap(),
            connect(&gw, "idler").await.unwrap(),
            connect(&gw, "idler").await.unwrap(),
        ];
        for client in &clients {
            client.batch_execute("BEGIN").await.unwrap();
        }
        assert_eq!(server_connections(&cluster, "idler"), 3);
        for client in &clients {
            client.batch_execute("COMMIT").await.unwrap();
        }
        // Bounded wait for the janitor; then exactly min_pool_size remain.
        let deadline = Instant::now() + Duration::from_secs(20);
        while server_connections(&cluster, "idler") > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(server_connections(&cluster, "idler"), 1);
        assert_eq!(gw.pool_stats("idler").snapshot().open, 1);
        // And the pool still serves.
        clients[0].simple_query("SELECT 1").await.unwrap();
    });
}
