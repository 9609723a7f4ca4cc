//! `sluice-cluster`: starts and controls a throwaway local PostgreSQL cluster (a primary and
//! streaming hot standbys on loopback ports) for tests, benches and the demo.
//!
//! It drives the real server tools (`initdb`, `pg_ctl`, `pg_basebackup -R`, `psql`), blocking,
//! with `std::process`: the callers are test set-up code and the demo, where plain sequential
//! steps with good error messages beat an async API. PostgreSQL refuses to run as root, so when
//! the current user is root every server tool runs as the `postgres` OS user (`runuser`).
//!
//! Every cluster is created with the same users, so tests can exercise each authentication
//! method the gateway speaks to servers:
//!
//! | user        | password     | method over TCP |
//! |-------------|--------------|-----------------|
//! | `postgres`  | `postgres`   | scram-sha-256 (superuser) |
//! | `app`       | `app`        | scram-sha-256 (owns database `app`) |
//! | `background`| `background` | scram-sha-256 |
//! | `md5user`   | `md5pass`    | md5 |
//! | `trustuser` | —            | trust |
//!
//! Dropping a [`Cluster`] stops every server and deletes its data.

use std::fmt;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The database every cluster creates, owned by the user `app`.
pub const APP_DATABASE: &str = "app";

/// Where Debian installs the PostgreSQL 15 server tools.
const DEBIAN_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// How long a server may take to start, stop or catch up before we give up.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{step}: could not run `{program}`: {source}")]
    Spawn {
        step: String,
        program: String,
        source: std::io::Error,
    },
    #[error("{step} failed (exit {code}): {detail}")]
    Failed {
        step: String,
        code: i32,
        detail: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{what} did not happen within {seconds} s")]
    Timeout { what: String, seconds: u64 },
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Number of streaming hot standbys.
    pub replicas: usize,
    /// `max_connections` on every server.
    pub max_connections: u32,
    /// Extra `postgresql.conf` lines for every server (e.g. `"log_statement = 'all'"`).
    pub extra_conf: Vec<String>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            replicas: 0,
            max_connections: 300,
            extra_conf: Vec::new(),
        }
    }
}

/// Whether a node was created as the primary or as a hot standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

/// One PostgreSQL server of the cluster, listening on `127.0.0.1:port`.
#[derive(Debug, Clone)]
pub struct Node {
    name: String,
    port: u16,
    data_dir: PathBuf,
    role: Role,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// The server log written by `pg_ctl -l`.
    pub fn log_file(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }
    /// `host:port`, as used in gateway configuration.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (127.0.0.1:{})", self.name, self.port)
    }
}

/// A running primary with its hot standbys. Stopped and deleted on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    primary: Node,
    replicas: Vec<Node>,
    /// `Some("postgres")` when we are root and must run server tools as another user.
    run_as: Option<&'static str>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir.path())
            .field("primary", &self.primary)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl Cluster {
    /// The path of a PostgreSQL program: `$SLUICE_PG_BIN/NAME`, Debian's PostgreSQL 15 folder,
    /// else the bare name (found on `PATH`).
    pub fn bin(name: &str) -> PathBuf {
        if let Some(dir) = std::env::var_os("SLUICE_PG_BIN") {
            return Path::new(&dir).join(name);
        }
        let debian = Path::new(DEBIAN_PG_BIN).join(name);
        if debian.exists() {
            debian
        } else {
            PathBuf::from(name)
        }
    }

    /// Creates and starts a primary and `spec.replicas` streaming hot standbys.
    pub fn start(spec: ClusterSpec) -> Result<Cluster> {
        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some("postgres")
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("sluice-cluster-")
            .tempdir()?;
        let mut cluster = Cluster {
            primary: Node {
                name: "primary".into(),
                port: 0,
                data_dir: dir.path().join("primary"),
                role: Role::Primary,
            },
            replicas: Vec::new(),
            dir,
            run_as,
        };
        cluster.give_to_server_user(cluster.dir.path())?;
        cluster.init_primary(&spec)?;
        for i in 0..spec.replicas {
            let replica = cluster.create_replica(i + 1)?;
            cluster.replicas.push(replica);
        }
        cluster.wait_caught_up()?;
        Ok(cluster)
    }

    pub fn primary(&self) -> &Node {
        &self.primary
    }

    pub fn replicas(&self) -> &[Node] {
        &self.replicas
    }

    /// Every node, primary first.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        std::iter::once(&self.primary).chain(&self.replicas)
    }

    /// The folder holding the data directories, logs and unix sockets.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs SQL on `node` as the superuser (over the unix socket) and returns the trimmed
    /// unaligned output (`psql -AtX`). Several statements may be separated by `;`.
    pub fn sql(&self, node: &Node, sql: &str) -> Result<String> {
        let out = run(
            &format!("SQL on {node}"),
            Command::new(Self::bin("psql"))
                .args([
                    "-AtX",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .arg("-h")
                .arg(self.dir.path())
                .arg("-p")
                .arg(node.port.to_string())
                .arg("-c")
                .arg(sql),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Like [`Cluster::sql`] but in database `db`.
    pub fn sql_in(&self, node: &Node, db: &str, sql: &str) -> Result<String> {
        let out = run(
            &format!("SQL on {node}"),
            Command::new(Self::bin("psql"))
                .args(["-AtX", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", db])
                .arg("-h")
                .arg(self.dir.path())
                .arg("-p")
                .arg(node.port.to_string())
                .arg("-c")
                .arg(sql),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Pauses WAL replay on a standby: it stays up and serves reads, but falls behind.
    pub fn pause_replay(&self, replica: &Node) -> Result<()> {
        self.sql(replica, "SELECT pg_wal_replay_pause()").map(drop)
    }

    pub fn resume_replay(&self, replica: &Node) -> Result<()> {
        self.sql(replica, "SELECT pg_wal_replay_resume()").map(drop)
    }

    /// Stops a server (`pg_ctl stop -m fast`).
    pub fn stop(&self, node: &Node) -> Result<()> {
        self.pg_ctl(node, &["stop", "-m", "fast"]).map(drop)
    }

    /// Starts a stopped server and waits until it accepts connections.
    pub fn start_node(&self, node: &Node) -> Result<()> {
        self.pg_ctl(node, &["start"])?;
        self.wait_ready(node)
    }

    /// Restarts a server (`pg_ctl restart -m fast`).
    pub fn restart(&self, node: &Node) -> Result<()> {
        self.pg_ctl(node, &["restart", "-m", "fast"])?;
        self.wait_ready(node)
    }

    /// Waits until every running, unpaused replica has replayed the primary's current WAL position.
    pub fn wait_caught_up(&self) -> Result<()> {
        if self.replicas.is_empty() {
            return Ok(());
        }
        let lsn = self.sql(&self.primary, "SELECT pg_current_wal_lsn()")?;
        for replica in &self.replicas {
            let check = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
            wait_for(&format!("{replica} replaying up to {lsn}"), || {
                Ok(self.sql(replica, &check).map(|v| v == "t").unwrap_or(false))
            })?;
        }
        Ok(())
    }

    fn init_primary(&mut self, spec: &ClusterSpec) -> Result<()> {
        let pwfile = self.dir.path().join("pwfile");
        fs::write(&pwfile, "postgres\n")?;
        self.give_to_server_user(&pwfile)?;
        let data = self.primary.data_dir.clone();
        run(
            "initdb",
            self.server_tool("initdb")
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--auth-local=trust",
                ])
                .args(["--auth-host=scram-sha-256", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display())),
        )?;
        let mut conf = vec![
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", self.dir.path().display()),
            format!("max_connections = {}", spec.max_connections),
            "wal_level = replica".into(),
            "max_wal_senders = 10".into(),
            "wal_keep_size = '512MB'".into(),
            "hot_standby = on".into(),
            // Throwaway data: durability costs time and buys nothing here.
            "fsync = off".into(),
            "full_page_writes = off".into(),
            "shared_buffers = '64MB'".into(),
            "wal_receiver_status_interval = '1s'".into(),
            "logging_collector = off".into(),
        ];
        conf.extend(spec.extra_conf.iter().cloned());
        append_lines(&data.join("postgresql.conf"), &conf)?;
        fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             local replication all trust\n\
             host replication all 127.0.0.1/32 trust\n\
             host all trustuser 127.0.0.1/32 trust\n\
             host all md5user 127.0.0.1/32 md5\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )?;
        let primary = self.primary.clone();
        self.primary.port = self.start_on_free_port(&primary)?;
        let primary = self.primary.clone();
        self.sql(
            &primary,
            "CREATE ROLE app LOGIN PASSWORD 'app'; \
             CREATE ROLE background LOGIN PASSWORD 'background'; \
             CREATE ROLE trustuser LOGIN; \
             SET password_encryption = 'md5'; \
             CREATE ROLE md5user LOGIN PASSWORD 'md5pass'",
        )?;
        self.sql(
            &primary,
            &format!("CREATE DATABASE {APP_DATABASE} OWNER app"),
        )?;
        self.sql_in(
            &primary,
            APP_DATABASE,
            "GRANT ALL ON SCHEMA public TO PUBLIC",
        )?;
        Ok(())
    }

    fn create_replica(&self, index: usize) -> Result<Node> {
        let mut node = Node {
            name: format!("replica{index}"),
            port: 0,
            data_dir: self.dir.path().join(format!("replica{index}")),
            role: Role::Replica,
        };
        run(
            &format!("pg_basebackup for {}", node.name),
            self.server_tool("pg_basebackup")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                ])
                .arg("-p")
                .arg(self.primary.port.to_string())
                .arg("-D")
                .arg(&node.data_dir),
        )?;
        node.port = self.start_on_free_port(&node)?;
        Ok(node)
    }

    /// Picks a free loopback port, writes it into the node's config and starts the server;
    /// tries again with another port if a concurrent process took it first.
    fn start_on_free_port(&self, node: &Node) -> Result<u16> {
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            append_lines(
                &node.data_dir.join("postgresql.conf"),
                &[format!("port = {port}")],
            )?;
            let started = Node {
                port,
                ..node.clone()
            };
            match self.pg_ctl(&started, &["start"]) {
                Ok(_) => {
                    self.wait_ready(&started)?;
                    return Ok(port);
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    fn wait_ready(&self, node: &Node) -> Result<()> {
        wait_for(&format!("{node} accepting connections"), || {
            Ok(self.sql(node, "SELECT 1").is_ok())
        })
    }

    fn pg_ctl(&self, node: &Node, action: &[&str]) -> Result<Output> {
        run(
            &format!("pg_ctl {} {node}", action[0]),
            self.server_tool("pg_ctl")
                .arg("-D")
                .arg(&node.data_dir)
                .arg("-l")
                .arg(node.log_file())
                .args(["-w", "-t", "60"])
                .args(action),
        )
        .map_err(|err| with_log_tail(err, &node.log_file()))
    }

    /// A command for a server tool, run as the `postgres` OS user when we are root.
    fn server_tool(&self, name: &str) -> Command {
        match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(Self::bin(name));
                cmd
            }
            None => Command::new(Self::bin(name)),
        }
    }

    fn give_to_server_user(&self, path: &Path) -> Result<()> {
        if let Some(user) = self.run_as {
            run(
                "chown",
                Command::new("chown")
                    .arg(format!("{user}:{user}"))
                    .arg(path),
            )?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in std::iter::once(&self.primary).chain(&self.replicas) {
            if node.port != 0 {
                let _ = self
                    .server_tool("pg_ctl")
                    .arg("-D")
                    .arg(&node.data_dir)
                    .args(["stop", "-m", "immediate", "-w"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn run(step: &str, cmd: &mut Command) -> Result<Output> {
    let program = format!("{:?}", cmd.get_program());
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ClusterError::Spawn {
            step: step.to_string(),
            program,
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(ClusterError::Failed {
            step: step.to_string(),
            code: out.status.code().unwrap_or(-1),
            detail,
        })
    }
}

/// Adds the last lines of a server log to a failure, where the real reason usually is.
fn with_log_tail(err: ClusterError, log: &Path) -> ClusterError {
    match err {
        ClusterError::Failed { step, code, detail } => {
            let tail = fs::read_to_string(log)
                .map(|text| {
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(5)..].join(" | ")
                })
                .unwrap_or_default();
            ClusterError::Failed {
                step,
                code,
                detail: format!("{detail} [log: {tail}]"),
            }
        }
        other => other,
    }
}

fn append_lines(path: &Path, lines: &[String]) -> Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new().append(true).open(path)?;
    for line in lines {
        writeln!(file, "{line}")?;
    }
    Ok(())
}

fn wait_for(what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < WAIT_LIMIT {
        if done()? {
            return Ok(());
        }
        sleep(Duration::from_millis(50));
    }
    Err(ClusterError::Timeout {
        what: what.to_string(),
        seconds: WAIT_LIMIT.as_secs(),
    })
}
