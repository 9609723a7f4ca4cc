//! Shared test support: one PostgreSQL cluster per test binary (stopped at
//! process exit), a gateway per test on a free loopback port, and helpers
//! to run psql and pgbench against it with bounded work.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use sluice_cluster::{Cluster, ClusterSpec};
use sluice_proxy::{Config, Gateway};

static CLUSTER: Mutex<Option<Arc<Cluster>>> = Mutex::new(None);
static AT_EXIT: Once = Once::new();

extern "C" fn stop_cluster() {
    if let Ok(mut cluster) = CLUSTER.lock() {
        cluster.take();
    }
}

extern "C" {
    fn atexit(callback: extern "C" fn()) -> i32;
}

/// The cluster every test of this binary shares (started on first use).
pub fn cluster() -> Arc<Cluster> {
    let mut slot = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cluster) = slot.as_ref() {
        return cluster.clone();
    }
    let cluster = Arc::new(Cluster::start(ClusterSpec::default()).expect("start PostgreSQL"));
    cluster
        .sql_in(
            cluster.primary(),
            "app",
            "GRANT ALL ON SCHEMA public TO PUBLIC; \
             GRANT CONNECT ON DATABASE app TO PUBLIC",
        )
        .expect("grant");
    AT_EXIT.call_once(|| unsafe {
        atexit(stop_cluster);
    });
    *slot = Some(cluster.clone());
    cluster
}

/// A private cluster (for tests that stop or restart servers).
pub fn private_cluster() -> Cluster {
    Cluster::start(ClusterSpec::default()).expect("start PostgreSQL")
}

/// Creates a login role (scram password = its name) with its own pool, so a
/// test can count its server connections in pg_stat_activity undisturbed.
pub fn create_role(cluster: &Cluster, name: &str) {
    cluster
        .sql(
            cluster.primary(),
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN \
                 CREATE ROLE {name} LOGIN PASSWORD '{name}'; END IF; END $$"
            ),
        )
        .expect("create role");
}

/// Creates login role `name` with `password` (scram-sha-256, the cluster's
/// default) and returns its secret as the server stores it.
pub fn role_with_secret(cluster: &Cluster, name: &str, password: &str) -> String {
    cluster
        .sql(
            cluster.primary(),
            &format!(
                "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN PASSWORD '{password}'; \
                 GRANT CONNECT ON DATABASE app TO {name}"
            ),
        )
        .expect("create role");
    let secret = cluster
        .sql(
            cluster.primary(),
            &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{name}'"),
        )
        .expect("read secret");
    assert!(secret.starts_with("SCRAM-SHA-256$"), "{secret}");
    secret
}

pub const USERLIST: &str = "\"app\" \"app\"\n\"md5user\" \"md5pass\"\n\"trustuser\" \"trustpw\"\n\"background\" \"background\"\n\"postgres\" \"postgres\"\n";

/// A gateway running on its own runtime; stopped on drop.
pub struct TestGateway {
    pub port: u16,
    pub gateway: Option<Gateway>,
    pub runtime: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
}

impl TestGateway {
    /// Starts a gateway in front of `cluster`'s primary. `proxy` lines go in
    /// `[proxy]`; `extra` is appended; `extra_users` are added to the userlist.
    pub fn start(cluster: &Cluster, proxy: &str, extra: &str, extra_users: &[&str]) -> TestGateway {
        let mut userlist = USERLIST.to_string();
        for user in extra_users {
            userlist.push_str(&format!("\"{user}\" \"{user}\"\n"));
        }
        Self::start_with_userlist(cluster, proxy, extra, &userlist)
    }

    /// Like [`TestGateway::start`], with exactly `userlist` as the auth_file.
    pub fn start_with_userlist(
        cluster: &Cluster,
        proxy: &str,
        extra: &str,
        userlist: &str,
    ) -> TestGateway {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("userlist.txt"), userlist).unwrap();
        let auth = if proxy.contains("auth_type") {
            ""
        } else {
            "auth_type = \"scram-sha-256\"\n"
        };
        let text = format!(
            "[proxy]\nlisten_addr = \"127.0.0.1\"\nlisten_port = 0\n{auth}\
             auth_file = \"userlist.txt\"\n{proxy}\n\n[databases.app]\nhost = \"127.0.0.1\"\nport = {}\n{extra}\n",
            cluster.primary().port()
        );
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, &text).unwrap();
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let gateway = runtime
            .block_on(Gateway::start(Arc::new(config)))
            .expect("start gateway");
        TestGateway {
            port: gateway.addr.port(),
            gateway: Some(gateway),
            runtime,
            dir,
        }
    }

    /// The load-balancing state of database `app` (its host table and counters).
    pub fn balanced_app(&self) -> Arc<sluice_proxy::router::BalancedDatabase> {
        self.gateway
            .as_ref()
            .expect("gateway running")
            .shared
            .router
            .database("app")
            .expect("load balancing is on for app")
            .clone()
    }

    pub fn conninfo(&self, user: &str, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password='{password}' dbname=app connect_timeout=10",
            self.port
        )
    }

    /// Runs `psql -AtX` as `app` with `sql`; returns (success, stdout, stderr).
    pub fn psql(&self, sql: &str) -> (bool, String, String) {
        self.psql_as("app", "app", sql)
    }

    pub fn psql_as(&self, user: &str, password: &str, sql: &str) -> (bool, String, String) {
        psql_at(&self.conninfo(user, password), sql)
    }

    pub fn pool_stats(&self, user: &str) -> Arc<sluice_proxy::pool::Pool> {
        let gw = self.gateway.as_ref().unwrap();
        gw.shared
            .pools
            .get(&gw.shared.config(), "app", user)
            .expect("pool")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), gateway.shutdown()).await
            });
        }
    }
}

/// Runs `psql -AtX` with `conninfo` and `sql`; returns (success, stdout, stderr).
pub fn psql_at(conninfo: &str, sql: &str) -> (bool, String, String) {
    let out = run_bounded(
        Command::new(Cluster::bin("psql"))
            .args(["-qAtX", "-v", "ON_ERROR_STOP=1"])
            .arg(conninfo)
            .arg("-c")
            .arg(sql),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Runs a command with a hard time limit (60 s) so no test can hang.
pub fn run_bounded(command: &mut Command) -> Output {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().expect("wait");
    let _ = done_tx.send(());
    let _ = watchdog.join();
    out
}

/// The Python with psycopg 3, if the repository's virtualenv has it.
pub fn python() -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import psycopg"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(python)
}

/// Connections `user` has open on the server (as pg_stat_activity shows).
pub fn server_connections(cluster: &Cluster, user: &str) -> i64 {
    cluster
        .sql(
            cluster.primary(),
            &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}' AND backend_type = 'client backend'"),
        )
        .expect("count")
        .parse()
        .expect("number")
}
