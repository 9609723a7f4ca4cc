//! `/metrics` against a real PostgreSQL: the counters move by exactly what
//! clients did, the pool gauges follow a waiting client, the wait-time
//! histogram records its wait, the load balancer's decisions and host
//! health show per host; wrong paths get 404; a stalled scraper holds
//! nothing and scrapers are bounded.
//!
//! The test binds the metrics listener itself (port 0) and serves it with
//! [`sluice_proxy::metrics::serve`], which `sluice proxy` runs on
//! `metrics_listen_addr:metrics_port`. Scrapes are plain HTTP/1.1 over a
//! `TcpStream`; the exposition text is read by the small parser below.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestGateway;
use sluice_cluster::{Cluster, ClusterSpec};
use sluice_proxy::balance::hosts::HostState;

const LIMIT: Duration = Duration::from_secs(30);

/// Serves the metrics of `gw` on a free loopback port.
fn start_metrics(gw: &TestGateway) -> SocketAddr {
    let shared = gw.gateway.as_ref().expect("running").shared.clone();
    let listener = gw
        .runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind metrics");
    let addr = listener.local_addr().unwrap();
    gw.runtime
        .spawn(sluice_proxy::metrics::serve(listener, shared));
    addr
}

/// An HTTP answer: status, `Content-Type`, body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// `METHOD path` with `headers`, read to the end (the request asks the
/// server to close).
fn request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(LIMIT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    Ok(Answer {
        status,
        content_type,
        body: body.to_string(),
    })
}

/// `GET /metrics` in the Prometheus text format.
fn scrape(addr: SocketAddr) -> Metrics {
    let answer = request(addr, "GET", "/metrics", "").expect("scrape");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    Metrics::parse(&answer.body)
}

/// The samples of one exposition.
struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
    text: String,
}

impl Metrics {
    /// Reads `name{label="value",...} number` lines; checks that each
    /// sample belongs to a family announced by `# TYPE`.
    fn parse(text: &str) -> Metrics {
        let mut families = Vec::new();
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(comment) = line.strip_prefix("# ") {
                if let Some(family) = comment.strip_prefix("TYPE ") {
                    families.push(family.split(' ').next().unwrap().to_string());
                }
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("a number in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap())),
                None => (series, BTreeMap::new()),
            };
            assert!(
                families.iter().any(|f| name.starts_with(f.as_str())),
                "{name} has no # TYPE before it"
            );
            samples.push((name.to_string(), labels, value));
        }
        Metrics {
            samples,
            text: text.to_string(),
        }
    }

    /// The sample `name` with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, v)| *v)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", self.text))
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("key=\"");
        let end = after.find('"').expect("closing quote");
        labels.insert(key.to_string(), after[..end].to_string());
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// A tokio-postgres client through the gateway, on `runtime`.
async fn connect(port: u16) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("app")
        .password("app")
        .dbname("app")
        .connect_timeout(Duration::from_secs(10));
    let (client, connection) = tokio::time::timeout(LIMIT, config.connect(tokio_postgres::NoTls))
        .await
        .expect("connected in time")
        .expect("connect through the gateway");
    tokio::spawn(connection);
    client
}

async fn run(client: &tokio_postgres::Client, sql: &str) {
    tokio::time::timeout(LIMIT, client.simple_query(sql))
        .await
        .expect("query finished in time")
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Polls `condition` every 20 ms for at most `LIMIT`; panics naming `what`.
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < LIMIT, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The simple-protocol Query message's size: tag, length, text, NUL.
fn query_bytes(sql: &str) -> f64 {
    (1 + 4 + sql.len() + 1) as f64
}

#[test]
fn counters_move_as_clients_work_and_pool_gauges_follow_a_waiter() {
    let cluster = common::cluster();
    let gw = TestGateway::start(&cluster, "default_pool_size = 1", "", &[]);
    let metrics = start_metrics(&gw);
    let pool = gw.pool_stats("app");
    let host = pool.key.host.clone();
    let app = [("database", "app")];
    let app_user = [("database", "app"), ("user", "app")];
    let app_pool = [
        ("database", "app"),
        ("user", "app"),
        ("host", host.as_str()),
    ];

    let before_anyone = scrape(metrics);
    assert_eq!(before_anyone.value("sluice_up", &[]), 1.0);
    assert_eq!(
        before_anyone.value("sluice_stats_sql_transactions_pooled_total", &app),
        0.0
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(before_anyone
        .text
        .contains(&format!("sluice_build_info{{version=\"{version}\"")));

    let clients = client_runtime();
    clients.block_on(async {
        let holder = connect(gw.port).await;
        let before = scrape(metrics);
        for _ in 0..3 {
            run(&holder, "SELECT 1").await;
        }
        for sql in ["BEGIN", "SELECT 1", "COMMIT"] {
            run(&holder, sql).await;
        }
        let after = scrape(metrics);
        let moved = |name: &str| after.value(name, &app) - before.value(name, &app);
        assert_eq!(moved("sluice_stats_sql_transactions_pooled_total"), 4.0);
        assert_eq!(moved("sluice_stats_queries_pooled_total"), 6.0);
        let sent = 4.0 * query_bytes("SELECT 1") + query_bytes("BEGIN") + query_bytes("COMMIT");
        assert_eq!(moved("sluice_stats_received_bytes_total"), sent);
        assert!(moved("sluice_stats_sent_bytes_total") > 0.0);
        assert!(moved("sluice_stats_server_in_transaction_seconds_total") > 0.0);
        assert!(moved("sluice_stats_queries_duration_seconds_total") > 0.0);

        // Session pooling with one server: the holder keeps it, so the next
        // client waits (for its login or its query).
        assert_eq!(
            after.value("sluice_pools_client_active_connections", &app_user),
            1.0
        );
        assert_eq!(
            after.value("sluice_pools_server_active_connections", &app_user),
            1.0
        );
        assert_eq!(
            after.value("sluice_pools_client_waiting_connections", &app_user),
            0.0
        );
        assert_eq!(after.value("sluice_server_connects_total", &app_pool), 1.0);
        assert_eq!(after.value("sluice_used_servers", &[]), 1.0);
        let waits_before = after.value("sluice_client_wait_seconds_count", &app_pool);
        let port = gw.port;
        let waiter = tokio::spawn(async move {
            let client = connect(port).await;
            run(&client, "SELECT 1").await;
        });
        wait_for("a client waiting for the server", || {
            pool.snapshot().waiting == 1
        })
        .await;
        let waiting = scrape(metrics);
        assert_eq!(
            waiting.value("sluice_pools_client_waiting_connections", &app_user),
            1.0
        );
        assert!(waiting.value("sluice_pools_client_maxwait_seconds", &app_user) >= 0.0);

        drop(holder);
        tokio::time::timeout(LIMIT, waiter)
            .await
            .expect("the waiter was served")
            .unwrap();
        let served = scrape(metrics);
        let count = served.value("sluice_client_wait_seconds_count", &app_pool);
        assert_eq!(count, waits_before + 1.0, "the wait was observed once");
        let all = [app_pool[0], app_pool[1], app_pool[2], ("le", "+Inf")];
        assert_eq!(
            served.value("sluice_client_wait_seconds_bucket", &all),
            count
        );
        assert!(served.value("sluice_client_wait_seconds_sum", &app_pool) > 0.0);
        assert!(served.value("sluice_stats_client_wait_seconds_total", &app) > 0.0);
    });
}

#[test]
fn wrong_paths_and_methods_are_refused_and_openmetrics_is_negotiated() {
    let cluster = common::cluster();
    let gw = TestGateway::start(&cluster, "", "", &[]);
    let metrics = start_metrics(&gw);
    for path in ["/", "/metric", "/metrics/", "/favicon.ico"] {
        let answer = request(metrics, "GET", path, "").unwrap();
        assert_eq!(answer.status, 404, "GET {path}");
    }
    assert_eq!(
        request(metrics, "POST", "/metrics", "Content-Length: 0\r\n")
            .unwrap()
            .status,
        405
    );

    let openmetrics = request(
        metrics,
        "GET",
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n",
    )
    .unwrap();
    assert_eq!(openmetrics.status, 200);
    assert!(openmetrics
        .content_type
        .starts_with("application/openmetrics-text"));
    assert!(openmetrics.body.ends_with("# EOF\n"));
    assert!(openmetrics.body.contains("\nsluice_up 1\n"));
}

#[test]
fn a_stalled_scraper_holds_nothing_and_scrapers_are_bounded() {
    use sluice_proxy::metrics::MAX_CONNECTIONS;
    let cluster = common::cluster();
    let gw = TestGateway::start(&cluster, "", "", &[]);
    let metrics = start_metrics(&gw);
    // Scrapers that sent half a request and stopped, filling every slot.
    let mut stalled: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut stream = TcpStream::connect(metrics).unwrap();
            stream.write_all(b"GET /metrics HTTP/1.1\r\nHost:").unwrap();
            stream
        })
        .collect();
    // One more is closed at once, unanswered.
    let mut extra = TcpStream::connect(metrics).unwrap();
    extra.set_read_timeout(Some(LIMIT)).unwrap();
    let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    match extra.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!(
            "an answer past the limit: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
    // The gateway serves on.
    let (ok, out, err) = gw.psql("SELECT 41 + 1");
    assert!(ok && out == "42", "{err}");
    // A stalled scraper that goes away frees its slot.
    stalled.pop();
    let start = Instant::now();
    let answer = loop {
        match request(metrics, "GET", "/metrics", "") {
            Ok(answer) => break answer,
            Err(e) => {
                assert!(start.elapsed() < LIMIT, "no slot came free: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    assert_eq!(answer.status, 200);
    assert_eq!(
        Metrics::parse(&answer.body).value("sluice_used_clients", &[]),
        0.0
    );
    drop(stalled);
}

#[test]
fn routing_decisions_and_host_health_are_reported_per_host() {
    let cluster = Cluster::start(ClusterSpec {
        replicas: 1,
        ..Default::default()
    })
    .expect("start PostgreSQL with a standby");
    let replica = &cluster.replicas()[0];
    let extra = format!(
        "replicas = [\"127.0.0.1:{}\"]\n\n[load_balancing]\nreplica_check_interval = 0.05\n\
         sticky = \"off\"\nmax_replication_lag_bytes = 1048576\n",
        replica.port()
    );
    let gw = TestGateway::start(&cluster, "pool_mode = \"transaction\"", &extra, &[]);
    let metrics = start_metrics(&gw);
    let hosts = Arc::clone(&gw.balanced_app().hosts);
    let primary_addr = format!("127.0.0.1:{}", cluster.primary().port());
    let replica_addr = format!("127.0.0.1:{}", replica.port());
    let on_primary = [
        ("database", "app"),
        ("host", primary_addr.as_str()),
        ("role", "primary"),
    ];
    let on_replica = [
        ("database", "app"),
        ("host", replica_addr.as_str()),
        ("role", "replica"),
    ];

    let clients = client_runtime();
    clients.block_on(async {
        wait_for("the replica checked, up, its lag known", || {
            let health = hosts.replicas()[0].health();
            health.state == HostState::Up && health.lag_bytes.is_some()
        })
        .await;
        let client = connect(gw.port).await;
        let before = scrape(metrics);
        assert_eq!(before.value("sluice_host_up", &on_replica), 1.0);
        assert_eq!(before.value("sluice_host_up", &on_primary), 1.0);
        assert!(before
            .get("sluice_host_replication_lag_bytes", &on_replica)
            .is_some());

        run(&client, "SELECT 1").await;
        run(&client, "SELECT 2").await;
        // No replica has replayed this position: the sticky requirement wins.
        run(&client, "SET sluice.min_lsn = 'FFFFFFFF/0'").await;
        run(&client, "SELECT 3").await;
        run(&client, "RESET sluice.min_lsn").await;

        // The standby stops replaying and falls past the byte limit.
        cluster.pause_replay(replica).unwrap();
        cluster
            .sql_in(
                cluster.primary(),
                "app",
                "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad \
                 FROM generate_series(1, 20000) g",
            )
            .unwrap();
        wait_for("the replica seen past the byte limit", || {
            hosts.replicas()[0]
                .health()
                .lag_bytes
                .is_some_and(|lag| lag > 1048576)
        })
        .await;
        run(&client, "SELECT 4").await;

        let after = scrape(metrics);
        let moved = |name: &str, labels: &[(&str, &str)]| {
            after.value(name, labels) - before.value(name, labels)
        };
        let decisions = [
            ("replica", 2.0),
            ("primary_sticky", 1.0),
            ("primary_lag", 1.0),
            ("primary_unhealthy", 0.0),
        ];
        for (why, count) in decisions {
            let labels = [("database", "app"), ("decision", why)];
            assert_eq!(moved("sluice_read_routing_total", &labels), count, "{why}");
        }
        assert_eq!(moved("sluice_host_served_total", &on_replica), 2.0);
        assert_eq!(moved("sluice_host_served_total", &on_primary), 2.0);
        assert!(after.value("sluice_host_replication_lag_bytes", &on_replica) > 1048576.0);
        assert!(after
            .get("sluice_host_replication_lag_seconds", &on_replica)
            .is_some());
        assert_eq!(
            after.value("sluice_host_up", &on_replica),
            1.0,
            "paused, not down"
        );
        assert_eq!(after.value("sluice_host_in_flight", &on_replica), 0.0);
        // Pools exist per host: the replica's has its own connects.
        let replica_pool = [
            ("database", "app"),
            ("user", "app"),
            ("host", replica_addr.as_str()),
        ];
        assert_eq!(
            after.value("sluice_server_connects_total", &replica_pool),
            1.0
        );
        cluster.resume_replay(replica).unwrap();
    });
}
