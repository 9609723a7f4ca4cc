//! Operating the gateway as a process, against a real PostgreSQL: the
//! console through psql, Debian's prometheus-pgbouncer-exporter, reloads by
//! `SIGHUP` under load (pool sizes changed, a database added) and a broken
//! reload, `PAUSE`/`RESUME` under load, and shutdown by `SIGTERM` (drain at
//! transaction boundaries) and `SIGINT` (wait for servers). Every wait is
//! bounded; every process is stopped when its test ends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sluice_cluster::{free_port, Cluster, ClusterSpec};

/// One PostgreSQL for the whole test binary, with pgbench's tables.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::start(ClusterSpec::default()).expect("start PostgreSQL");
        let init = Command::new(Cluster::bin("pgbench"))
            .args(["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-U", "app"])
            .arg("-p")
            .arg(cluster.primary().port().to_string())
            .arg("app")
            .env("PGPASSWORD", "app")
            .output()
            .expect("pgbench -i");
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        cluster
    })
}

const USERLIST: &str = "\"app\" \"app\"\n\"admin\" \"admin\"\n\"stats\" \"stats\"\n";

/// A `sluice proxy` process in front of the cluster's primary.
struct Proxy {
    child: Child,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts it with `proxy` lines in `[proxy]` and `extra` sections after.
    fn start(proxy: &str, extra: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("userlist.txt"), USERLIST).unwrap();
        let port = free_port().unwrap();
        let config = dir.path().join("gw.toml");
        std::fs::write(&config, config_text(port, proxy, extra)).unwrap();
        let log = dir.path().join("gateway.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["proxy", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sluice proxy starts");
        let proxy = Proxy {
            child,
            port,
            config,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the gateway did not listen: {}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    fn rewrite(&self, proxy: &str, extra: &str) {
        std::fs::write(&self.config, config_text(self.port, proxy, extra)).unwrap();
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// psql as `user` (password = name) to `database`: (success, stdout, stderr).
    fn psql(&self, user: &str, database: &str, sql: &str) -> (bool, String, String) {
        let out = bounded(
            Command::new(Cluster::bin("psql"))
                .args(["-qAtX", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
                .arg("-p")
                .arg(self.port.to_string())
                .args(["-U", user, "-d", database, "-c", sql])
                .env("PGPASSWORD", user),
            Duration::from_secs(60),
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    }

    /// pgbench as `app` through the gateway, started in the background.
    fn pgbench(&self, args: &[&str]) -> Child {
        Command::new(Cluster::bin("pgbench"))
            .args(["-n", "-h", "127.0.0.1", "-U", "app"])
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .arg("app")
            .env("PGPASSWORD", "app")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pgbench starts")
    }

    /// Waits at most `limit` for the process to exit; how long it took.
    fn wait_exit(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.child.try_wait().unwrap().is_some() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_text(port: u16, proxy: &str, extra: &str) -> String {
    let server = cluster().primary().port();
    format!(
        "[proxy]\nlisten_addr = \"127.0.0.1\"\nlisten_port = {port}\nauth_type = \"scram-sha-256\"\n\
         auth_file = \"userlist.txt\"\npool_mode = \"transaction\"\nmax_client_conn = 500\n\
         admin_users = \"admin\"\nstats_users = \"stats\"\n{proxy}\n\n\
         [databases.app]\nhost = \"127.0.0.1\"\nport = {server}\n{extra}\n"
    )
}

/// Runs a command to its end, killed after `limit`.
fn bounded(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    finish(child, limit)
}

/// Waits for a child's output, killing it after `limit`.
fn finish(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// pgbench's summary line `number of failed transactions: N (...)`, and
/// the processed count.
fn pgbench_counts(stdout: &str) -> (u64, u64) {
    let number = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.split('/').next())
            .and_then(|n| n.parse().ok())
    };
    let processed = number("number of transactions actually processed:").unwrap_or(0);
    let failed = number("number of failed transactions:").unwrap_or(0);
    (processed, failed)
}

#[test]
fn psql_speaks_to_the_console_with_pgbouncers_rules() {
    let proxy = Proxy::start("", "");
    let (ok, pools, err) = proxy.psql("admin", "pgbouncer", "SHOW POOLS");
    assert!(ok, "{err}");
    assert!(
        pools.lines().any(|l| l.starts_with("pgbouncer|pgbouncer|")),
        "{pools}"
    );
    let (ok, version, _) = proxy.psql("stats", "pgbouncer", "SHOW VERSION");
    assert!(
        ok && version.starts_with("PgBouncer 1.25.2 (sluice "),
        "{version}"
    );
    let (ok, _, err) = proxy.psql("stats", "pgbouncer", "PAUSE");
    assert!(!ok);
    assert!(err.contains("ERROR:  admin access needed"), "{err}");
    let (ok, _, err) = proxy.psql("app", "pgbouncer", "SHOW POOLS");
    assert!(!ok);
    assert!(err.contains("FATAL:  not allowed"), "{err}");
}

#[test]
fn sighup_every_second_under_load_fails_no_transaction() {
    let proxy = Proxy::start("default_pool_size = 5", "");
    let pgbench = proxy.pgbench(&["-T", "20", "-c", "50", "-j", "2"]);
    let mut last_size = 5;
    for second in 1..=18 {
        std::thread::sleep(Duration::from_secs(1));
        last_size = [5, 10, 15][second % 3];
        let extra = if second >= 9 {
            // A database added halfway.
            format!(
                "\n[databases.app2]\nhost = \"127.0.0.1\"\nport = {}\ndbname = \"app\"\n",
                cluster().primary().port()
            )
        } else {
            String::new()
        };
        proxy.rewrite(&format!("default_pool_size = {last_size}"), &extra);
        proxy.signal(libc::SIGHUP);
    }
    let out = finish(pgbench, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (processed, failed) = pgbench_counts(&stdout);
    assert!(processed > 0, "{stdout}");
    assert_eq!(failed, 0, "{stdout}");
    assert!(!stderr.contains("aborted"), "{stderr}");
    let (ok, one, err) = proxy.psql("app", "app2", "SELECT 1");
    assert!(ok && one == "1", "the added database serves: {err}");
    let (_, config, _) = proxy.psql("admin", "pgbouncer", "SHOW CONFIG");
    assert!(
        config
            .lines()
            .any(|l| l == format!("default_pool_size|{last_size}|20|yes")),
        "{config}"
    );
    assert!(proxy.log().contains("configuration reloaded"));
}

#[test]
fn a_broken_reload_is_refused_and_the_gateway_keeps_serving() {
    let proxy = Proxy::start("", "");
    std::fs::write(
        &proxy.config,
        "[proxy]\nlisten_port = \"not a port\"\n\n[databases.app]\nhost = \"h\"\n",
    )
    .unwrap();
    proxy.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy.log().contains("reload refused") {
        assert!(Instant::now() < deadline, "{}", proxy.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = proxy.log();
    let refusal = log.lines().find(|l| l.contains("reload refused")).unwrap();
    assert!(
        refusal.contains("gw.toml:2: "),
        "file:line in the log: {refusal}"
    );
    let (ok, one, err) = proxy.psql("app", "app", "SELECT 1");
    assert!(ok && one == "1", "{err}");
    let (ok, _, err) = proxy.psql("admin", "pgbouncer", "RELOAD");
    assert!(!ok);
    assert!(
        err.contains("RELOAD failed, see logs for additional details"),
        "{err}"
    );
}

#[test]
fn pause_then_resume_under_load_loses_no_transaction() {
    let proxy = Proxy::start("default_pool_size = 10", "");
    let pgbench = proxy.pgbench(&["-S", "-T", "8", "-c", "20", "-j", "2"]);
    std::thread::sleep(Duration::from_secs(2));
    let (ok, _, err) = proxy.psql("admin", "pgbouncer", "PAUSE");
    assert!(ok, "{err}");
    let (_, state, _) = proxy.psql("admin", "pgbouncer", "SHOW STATE");
    assert!(state.contains("paused|yes"), "{state}");
    std::thread::sleep(Duration::from_secs(1));
    let (ok, _, err) = proxy.psql("admin", "pgbouncer", "RESUME");
    assert!(ok, "{err}");
    let out = finish(pgbench, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (processed, failed) = pgbench_counts(&stdout);
    assert!(processed > 0);
    assert_eq!(failed, 0, "{stdout}");
}

/// A pgbench script of explicit transactions that take a while.
fn transactions_script(dir: &Path) -> PathBuf {
    let script = dir.join("transactions.sql");
    std::fs::write(
        &script,
        "\\set aid random(1, 100000)\nBEGIN;\n\
         UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n\
         SELECT pg_sleep(0.02);\n\
         UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE aid = :aid;\nEND;\n",
    )
    .unwrap();
    script
}

#[test]
fn sigterm_drains_at_transaction_boundaries_within_shutdown_timeout() {
    let mut proxy = Proxy::start("default_pool_size = 20\nshutdown_timeout = 10", "");
    let dir = tempfile::tempdir().unwrap();
    let script = transactions_script(dir.path());
    let pgbench = proxy.pgbench(&[
        "-T",
        "30",
        "-c",
        "50",
        "-j",
        "2",
        "-f",
        script.to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_secs(3));
    proxy.signal(libc::SIGTERM);
    let took = proxy
        .wait_exit(Duration::from_secs(20))
        .expect("the gateway exits");
    assert!(
        took < Duration::from_secs(10),
        "within shutdown_timeout: {took:?}"
    );
    let out = finish(pgbench, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let aborts: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("aborted in command"))
        .collect();
    assert!(!aborts.is_empty(), "clients were closed: {stderr}");
    for abort in &aborts {
        // Command 1 is BEGIN: a client was closed between transactions,
        // never in the middle of one.
        assert!(abort.contains("aborted in command 1 "), "{abort}");
    }
    assert!(proxy.log().contains("gateway stopped"));
}

#[test]
fn sigint_waits_for_the_running_transaction_then_exits() {
    let mut proxy = Proxy::start("shutdown_timeout = 10", "");
    let holder = {
        let mut command = Command::new(Cluster::bin("psql"));
        command
            .args(["-qAtX", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .arg("-p")
            .arg(proxy.port.to_string())
            .args(["-U", "app", "-d", "app"])
            .args([
                "-c",
                "BEGIN; SELECT pg_sleep(2); SELECT 'committed'; COMMIT;",
            ])
            .env("PGPASSWORD", "app")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.spawn().unwrap()
    };
    std::thread::sleep(Duration::from_millis(500));
    proxy.signal(libc::SIGINT);
    let took = proxy
        .wait_exit(Duration::from_secs(15))
        .expect("the gateway exits");
    assert!(
        took >= Duration::from_millis(1000),
        "it waited for the transaction: {took:?}"
    );
    let out = finish(holder, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("committed"));
}

/// GETs `path` from `127.0.0.1:port`; the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

/// A sample's value in Prometheus text, by its full name with labels.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn debians_prometheus_pgbouncer_exporter_follows_the_load() {
    let exporter = Path::new("/usr/bin/prometheus-pgbouncer-exporter");
    assert!(
        exporter.is_file(),
        "Debian's prometheus-pgbouncer-exporter is missing: run `bash scripts/setup.sh`"
    );
    // Exporter 1.7 reads two columns pgbouncer renamed long ago.
    let proxy = Proxy::start("console_legacy_columns = true", "");
    let port = free_port().unwrap();
    let mut running = Command::new(exporter)
        .args(["--host", "127.0.0.1", "--pgbouncer-host", "127.0.0.1"])
        .args(["--pgbouncer-user", "stats"])
        .arg("--pgbouncer-port")
        .arg(proxy.port.to_string())
        .arg("--port")
        .arg(port.to_string())
        .env("PGPASSWORD", "stats")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the exporter starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = loop {
        if let Some(body) = http_get(port, "/metrics") {
            if body.contains("pgbouncer_") {
                break body;
            }
        }
        if running.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = running.kill();
            let mut stderr = String::new();
            let _ = running.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("the exporter did not serve: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = finish(
        proxy.pgbench(&["-S", "-T", "3", "-c", "4", "-j", "2"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success());
    let after = http_get(port, "/metrics").expect("a second scrape");
    let _ = running.kill();
    let _ = running.wait();
    let series = |name: &str| format!("{name}{{database=\"app\"}}");
    for name in [
        "pgbouncer_requests_total",
        "pgbouncer_received_bytes_total",
        "pgbouncer_sent_bytes_total",
    ] {
        let (b, a) = (
            sample(&before, &series(name)),
            sample(&after, &series(name)),
        );
        assert!(b.is_some() && a.is_some(), "{name} in\n{after}");
        assert!(a > b, "{name} moved with the load: {b:?} -> {a:?}");
    }
    assert!(
        after.contains("pgbouncer_active_clients{database=\"app\",user=\"app\"}"),
        "{after}"
    );
    assert!(
        sample(&after, "pgbouncer_pool_size{database=\"app\"}").is_some(),
        "{after}"
    );
}
