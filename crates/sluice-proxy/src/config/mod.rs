//! Gateway configuration: a TOML file with pgbouncer's setting names, meanings
//! and units, so that a pgbouncer user recognises every line.
//!
//! The file is read once into an immutable [`Config`] that the server passes
//! around as `Arc<Config>` (never through globals). Every problem is reported
//! as `file:line: message`: the `toml` crate gives byte spans for syntax and
//! type errors (including unknown keys, thanks to `deny_unknown_fields`), and
//! values needing more than a type check are read as [`toml::Spanned`] so their
//! line is known too. The `auth_file` and `auth_hba_file` ([`auth`]) use
//! pgbouncer's formats and report their own `file:line` errors. A pgbouncer INI file is read too
//! ([`ini`]), converted to this TOML.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

mod auth;
pub mod ini;
mod resolved;
pub mod settings;
mod spans;
mod values;

use spans::{line_of, read_text, section_span, setting_span};
use values::user_list;
pub use values::{split_user_list, Seconds};

pub use auth::{AuthLookup, LoginMethod, DEFAULT_AUTH_QUERY};

use crate::auth::hba::Hba;
use crate::auth::{AuthFile, FileError};

use crate::balance::config::{validate_replicas, HostAddr, LoadBalancing};
use crate::tls::{self, ClientTls, ServerTls, SslMode};

/// A configuration that cannot be used, with the place that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    AuthFile(#[from] FileError),
}

/// A `[proxy]` value that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub &'static str);

/// How long a client keeps a server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum PoolMode {
    /// From login to logout; the server is reset with `server_reset_query`.
    Session,
    /// From the first statement of a transaction until `ReadyForQuery` says idle.
    Transaction,
}

impl PoolMode {
    /// Reads back `mode as u8`.
    pub fn from_u8(value: u8) -> PoolMode {
        if value == PoolMode::Transaction as u8 {
            PoolMode::Transaction
        } else {
            PoolMode::Session
        }
    }
}

impl fmt::Display for PoolMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        })
    }
}

/// How clients prove who they are to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AuthType {
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// md5; like pgbouncer, a user whose auth_file entry is a SCRAM secret gets SCRAM.
    #[serde(rename = "md5")]
    Md5,
    /// Any client naming a known user (or any user without an auth_file) is let in.
    #[serde(rename = "trust")]
    Trust,
    /// The method comes from the first `auth_hba_file` line the client matches.
    #[serde(rename = "hba")]
    Hba,
    /// The client's TLS certificate, verified by `client_tls_ca_file`: its CN is the user.
    #[serde(rename = "cert")]
    Cert,
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthType::ScramSha256 => "scram-sha-256",
            AuthType::Md5 => "md5",
            AuthType::Trust => "trust",
            AuthType::Hba => "hba",
            AuthType::Cert => "cert",
        })
    }
}

/// `[proxy]`: the gateway-wide settings (pgbouncer's `[pgbouncer]` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    /// Address to listen on; `*` means every IPv4 address.
    pub listen_addr: Spanned<String>,
    pub listen_port: u16,
    pub pool_mode: PoolMode,
    /// Client connections accepted at once; more get SQLSTATE 53300.
    pub max_client_conn: u32,
    /// Server connections per (database, user) pool.
    pub default_pool_size: Spanned<u32>,
    /// Server connections each pool keeps open even when idle.
    pub min_pool_size: u32,
    /// Extra connections a pool may open for clients that waited `reserve_pool_timeout`.
    pub reserve_pool_size: u32,
    pub reserve_pool_timeout: Seconds,
    /// Idle server connections older than this are closed (0 = never).
    pub server_idle_timeout: Seconds,
    /// A client waiting this long for a server connection gets an error (0 = forever).
    pub query_wait_timeout: Seconds,
    pub server_connect_timeout: Seconds,
    /// A client that has not logged in after this long is disconnected.
    pub client_login_timeout: Seconds,
    pub auth_type: AuthType,
    /// pgbouncer's userlist: `"user" "password-or-SCRAM-secret-or-md5-hash"`.
    pub auth_file: Option<Spanned<String>>,
    /// pgbouncer's HBA file (the rules of `auth_type = "hba"`), relative to this file.
    pub auth_hba_file: Option<Spanned<String>>,
    /// Users not in the auth_file are looked up with `auth_query` on a
    /// server connection of this user (its password from the auth_file).
    pub auth_user: Option<String>,
    /// Returns a user's name and secret; `$1` is the user name, bound as a
    /// parameter.
    pub auth_query: String,
    /// The `[databases]` entry whose server runs `auth_query` (default:
    /// the database the client asked for).
    pub auth_dbname: Option<Spanned<String>>,
    /// Run on a server connection when a session-mode client leaves.
    pub server_reset_query: String,
    /// Prepared statements kept per server connection in transaction mode
    /// (least recently used closed first); 0 passes statement names through untouched.
    pub max_prepared_statements: u32,
    /// Largest protocol message accepted from a client, in bytes.
    pub max_packet_size: Spanned<u32>,
    /// Threads serving clients (sluice's own setting). 1, the default, runs
    /// like pgbouncer on one thread, which costs the least CPU per
    /// transaction; 0 uses one thread per CPU core.
    pub worker_threads: u32,
    /// Users who may run every console command (`psql -d pgbouncer`).
    #[serde(deserialize_with = "user_list")]
    pub admin_users: Vec<String>,
    /// Users who may run the console's `SHOW` commands.
    #[serde(deserialize_with = "user_list")]
    pub stats_users: Vec<String>,
    /// Server connections per database, all users together (0 = no limit).
    pub max_db_connections: u32,
    /// Server connections per user, all databases together (0 = no limit).
    pub max_user_connections: u32,
    /// Client connections per database (0 = no limit).
    pub max_db_client_connections: u32,
    /// Client connections per user (0 = no limit).
    pub max_user_client_connections: u32,
    /// A query running longer is canceled and its client disconnected (0 = never).
    pub query_timeout: Seconds,
    /// A client idle inside a transaction longer is disconnected (0 = never).
    pub idle_transaction_timeout: Seconds,
    /// A client idle longer is disconnected (0 = never).
    pub client_idle_timeout: Seconds,
    /// A server connection older than this is closed once released (0 = never).
    pub server_lifetime: Seconds,
    /// Run on a server connection idle longer than `server_check_delay`
    /// before it is used again (empty: no check).
    pub server_check_query: String,
    pub server_check_delay: Seconds,
    /// The period of `SHOW STATS`'s averages, in seconds.
    pub stats_period: Seconds,
    /// How long a drain (SIGTERM, SIGINT, `SHUTDOWN WAIT_FOR_...`) may take
    /// before the rest is closed (sluice's own setting).
    pub shutdown_timeout: Seconds,
    /// Where `/metrics` (Prometheus text format) is served; off unless
    /// `metrics_port` is set (sluice's own settings).
    pub metrics_listen_addr: String,
    pub metrics_port: u16,
    /// Adds to `SHOW STATS` and `SHOW DATABASES` the columns that pgbouncer
    /// renamed long ago (`total_requests`, `reserve_pool`), which old
    /// tools such as Debian 12's prometheus-pgbouncer-exporter 1.7 still
    /// read (sluice's own setting; off: exactly pgbouncer 1.25's columns).
    pub console_legacy_columns: bool,
    /// TLS to clients (pgbouncer's names and meanings; see [`crate::tls`]).
    pub client_tls_sslmode: SslMode,
    pub client_tls_key_file: Option<String>,
    pub client_tls_cert_file: Option<String>,
    pub client_tls_ca_file: Option<String>,
    pub client_tls_protocols: String,
    pub client_tls_ciphers: String,
    /// TLS to servers, the health checker's connections included.
    pub server_tls_sslmode: SslMode,
    pub server_tls_key_file: Option<String>,
    pub server_tls_cert_file: Option<String>,
    pub server_tls_ca_file: Option<String>,
    pub server_tls_protocols: String,
    pub server_tls_ciphers: String,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            listen_addr: Spanned::new(0..0, "127.0.0.1".into()),
            listen_port: 6432,
            pool_mode: PoolMode::Session,
            max_client_conn: 100,
            default_pool_size: Spanned::new(0..0, 20),
            min_pool_size: 0,
            reserve_pool_size: 0,
            reserve_pool_timeout: Seconds(Duration::from_secs(5)),
            server_idle_timeout: Seconds(Duration::from_secs(600)),
            query_wait_timeout: Seconds(Duration::from_secs(120)),
            server_connect_timeout: Seconds(Duration::from_secs(15)),
            client_login_timeout: Seconds(Duration::from_secs(60)),
            auth_type: AuthType::Md5,
            auth_file: None,
            auth_hba_file: None,
            auth_user: None,
            auth_query: DEFAULT_AUTH_QUERY.into(),
            auth_dbname: None,
            server_reset_query: "DISCARD ALL".into(),
            max_prepared_statements: 200,
            max_packet_size: Spanned::new(0..0, 256 * 1024 * 1024),
            worker_threads: 1,
            admin_users: Vec::new(),
            stats_users: Vec::new(),
            max_db_connections: 0,
            max_user_connections: 0,
            max_db_client_connections: 0,
            max_user_client_connections: 0,
            query_timeout: Seconds(Duration::ZERO),
            idle_transaction_timeout: Seconds(Duration::ZERO),
            client_idle_timeout: Seconds(Duration::ZERO),
            server_lifetime: Seconds(Duration::from_secs(3600)),
            server_check_query: String::new(),
            server_check_delay: Seconds(Duration::from_secs(30)),
            stats_period: Seconds(Duration::from_secs(60)),
            shutdown_timeout: Seconds(Duration::from_secs(60)),
            metrics_listen_addr: "127.0.0.1".into(),
            metrics_port: 0,
            console_legacy_columns: false,
            client_tls_sslmode: SslMode::Disable,
            client_tls_key_file: None,
            client_tls_cert_file: None,
            client_tls_ca_file: None,
            client_tls_protocols: "secure".into(),
            client_tls_ciphers: "default".into(),
            server_tls_sslmode: SslMode::Prefer,
            server_tls_key_file: None,
            server_tls_cert_file: None,
            server_tls_ca_file: None,
            server_tls_protocols: "secure".into(),
            server_tls_ciphers: "default".into(),
        }
    }
}

/// `[databases.NAME]`: where the database clients call NAME lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub host: String,
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// The server-side database name; defaults to NAME.
    pub dbname: Option<String>,
    pub pool_size: Option<Spanned<u32>>,
    pub pool_mode: Option<PoolMode>,
    /// Overrides `[proxy] max_db_connections` for this database.
    pub max_db_connections: Option<u32>,
    /// Overrides `[proxy] max_db_client_connections` for this database.
    pub max_db_client_connections: Option<u32>,
    /// Override `[proxy] auth_user`, `auth_query`, `auth_dbname` for this database.
    pub auth_user: Option<String>,
    pub auth_query: Option<String>,
    pub auth_dbname: Option<Spanned<String>>,
    /// Hot standbys of this database (`"host:port"`) that may serve reads
    /// (see `[load_balancing]`).
    #[serde(default)]
    pub replicas: Vec<HostAddr>,
}

fn default_pg_port() -> u16 {
    5432
}

/// `[users.NAME]`: overrides for one user's pools.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub pool_size: Option<Spanned<u32>>,
    pub pool_mode: Option<PoolMode>,
    /// Overrides `[proxy] max_user_connections` for this user.
    pub max_user_connections: Option<u32>,
    /// Overrides `[proxy] max_user_client_connections` for this user.
    pub max_user_client_connections: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    proxy: ProxySettings,
    #[serde(default)]
    databases: BTreeMap<String, DatabaseConfig>,
    #[serde(default)]
    users: BTreeMap<String, UserConfig>,
    #[serde(default)]
    load_balancing: LoadBalancing,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub proxy: ProxySettings,
    /// The address `listen_addr` resolved to.
    pub listen_ip: IpAddr,
    pub databases: BTreeMap<String, DatabaseConfig>,
    pub users: BTreeMap<String, UserConfig>,
    /// Users and their secrets from `auth_file` (empty without one).
    pub auth: AuthFile,
    /// The rules of `auth_hba_file`, when it is set.
    pub hba: Option<Hba>,
    /// `[load_balancing]`: reads to replicas, sticky read-your-writes.
    pub load_balancing: LoadBalancing,
    /// TLS to clients (`None`: disabled) and to servers, built from the files named.
    pub client_tls: Option<ClientTls>,
    pub server_tls: ServerTls,
}

/// The settings one (database, user) pool runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub pool_size: u32,
    pub pool_mode: PoolMode,
}

impl Config {
    /// Reads and validates `path`, and the `auth_file` it names (relative to
    /// it): the gateway's TOML, or pgbouncer's INI file as it is (see
    /// [`ini::is_pgbouncer_ini`]). Starting and reloading both come here.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_text(path)?;
        if ini::is_pgbouncer_ini(path, &text) {
            return ini::PgbouncerIni::parse(path, &text)?.load();
        }
        Config::parse(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid =
            |span: Option<std::ops::Range<usize>>, message: String| ConfigError::Invalid {
                path: path.to_owned(),
                line: span.map_or(1, |s| line_of(text, s.start)),
                message,
            };
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| invalid(e.span(), e.message().trim().to_string()))?;
        let proxy = file.proxy;

        let listen_ip = match proxy.listen_addr.get_ref().as_str() {
            "*" => IpAddr::from([0, 0, 0, 0]),
            "localhost" => IpAddr::from([127, 0, 0, 1]),
            other => other.parse().map_err(|_| {
                invalid(
                    Some(proxy.listen_addr.span()),
                    format!("listen_addr: `{other}` is not an IP address (or `*`)"),
                )
            })?,
        };
        let positive = |value: &Spanned<u32>, name: &str| {
            if *value.get_ref() == 0 {
                Err(invalid(
                    Some(value.span()),
                    format!("{name} must be at least 1"),
                ))
            } else {
                Ok(())
            }
        };
        positive(&proxy.default_pool_size, "default_pool_size")?;
        if *proxy.max_packet_size.get_ref() < 1024 {
            return Err(invalid(
                Some(proxy.max_packet_size.span()),
                "max_packet_size must be at least 1024 bytes".into(),
            ));
        }
        for db in file.databases.values() {
            if let Some(size) = &db.pool_size {
                positive(size, "pool_size")?;
            }
        }
        for user in file.users.values() {
            if let Some(size) = &user.pool_size {
                positive(size, "pool_size")?;
            }
        }
        for (name, db) in &file.databases {
            validate_replicas(name, &db.host, db.port, &db.replicas).map_err(|message| {
                invalid(
                    section_span(text, &format!("databases.{name}")),
                    message.to_string(),
                )
            })?;
        }
        file.load_balancing.validate().map_err(|message| {
            invalid(section_span(text, "load_balancing"), message.to_string())
        })?;
        if file.databases.is_empty() {
            return Err(invalid(
                None,
                "no [databases.NAME] section: clients would have nowhere to go".into(),
            ));
        }
        auth::check_auth_dbnames(&proxy, &file.databases)
            .map_err(|(span, message)| invalid(Some(span), message))?;
        let (auth, hba) = auth::load(path, &proxy, &file.databases, &invalid)?;

        let mut config = Config {
            path: path.to_owned(),
            proxy,
            listen_ip,
            databases: file.databases,
            users: file.users,
            auth,
            hba,
            load_balancing: file.load_balancing,
            client_tls: None,
            server_tls: ServerTls::default(),
        };
        config
            .load_tls()
            .map_err(|e| invalid(setting_span(text, e.setting()), e.to_string()))?;
        Ok(config)
    }

    /// The settings of the pool serving `user` on the database clients call `database`,
    /// or `None` if no such database is configured. User overrides win over database ones.
    pub fn pool_settings(&self, database: &str, user: &str) -> Option<PoolSettings> {
        let db = self.databases.get(database)?;
        let user = self.users.get(user);
        let pool_size = user
            .and_then(|u| u.pool_size.as_ref())
            .or(db.pool_size.as_ref())
            .map_or(*self.proxy.default_pool_size.get_ref(), |s| *s.get_ref());
        let pool_mode = user
            .and_then(|u| u.pool_mode)
            .or(db.pool_mode)
            .unwrap_or(self.proxy.pool_mode);
        Some(PoolSettings {
            host: db.host.clone(),
            port: db.port,
            dbname: db.dbname.clone().unwrap_or_else(|| database.to_string()),
            pool_size,
            pool_mode,
        })
    }

    /// The user the replica health checker logs in as:
    /// `load_balancing.health_check_user`, else the first `auth_file` user
    /// (by name) whose password the file holds in plain text.
    pub fn health_check_user(&self) -> Option<String> {
        self.load_balancing
            .health_check_user
            .clone()
            .or_else(|| self.auth.first_user_with_password().map(str::to_owned))
    }

    /// (Re)builds TLS to clients and servers from the `*_tls_*` settings and
    /// the files they name: at every load, and after a console `SET`.
    pub fn load_tls(&mut self) -> Result<(), tls::TlsError> {
        let folder = self.path.parent().unwrap_or(Path::new("."));
        (self.client_tls, self.server_tls) = tls::load(&self.proxy, folder)?;
        Ok(())
    }

    /// The checks `[proxy]` values need beyond their types, for a `SET` on
    /// the console (a file gets them, with lines, from [`Config::parse`]).
    pub fn check_runtime_settings(&self) -> Result<(), InvalidSetting> {
        if *self.proxy.default_pool_size.get_ref() == 0 {
            return Err(InvalidSetting("default_pool_size must be at least 1"));
        }
        if *self.proxy.max_packet_size.get_ref() < 1024 {
            return Err(InvalidSetting(
                "max_packet_size must be at least 1024 bytes",
            ));
        }
        if self.proxy.auth_type == AuthType::Hba && self.hba.is_none() {
            return Err(InvalidSetting(
                "auth_type = hba needs an auth_hba_file (set in the file, then RELOAD)",
            ));
        }
        auth::check_auth_dbnames(&self.proxy, &self.databases)
            .map_err(|_| InvalidSetting("auth_dbname must name a configured database"))
    }

    /// `max_db_connections` for `database` (0: no limit).
    pub fn max_db_connections(&self, database: &str) -> u32 {
        self.databases
            .get(database)
            .and_then(|db| db.max_db_connections)
            .unwrap_or(self.proxy.max_db_connections)
    }

    /// `max_user_connections` for `user` (0: no limit).
    pub fn max_user_connections(&self, user: &str) -> u32 {
        self.users
            .get(user)
            .and_then(|u| u.max_user_connections)
            .unwrap_or(self.proxy.max_user_connections)
    }

    /// `max_db_client_connections` for `database` (0: no limit).
    pub fn max_db_client_connections(&self, database: &str) -> u32 {
        self.databases
            .get(database)
            .and_then(|db| db.max_db_client_connections)
            .unwrap_or(self.proxy.max_db_client_connections)
    }

    /// `max_user_client_connections` for `user` (0: no limit).
    pub fn max_user_client_connections(&self, user: &str) -> u32 {
        self.users
            .get(user)
            .and_then(|u| u.max_user_client_connections)
            .unwrap_or(self.proxy.max_user_client_connections)
    }

    /// The largest client message accepted, in bytes.
    pub fn max_packet_size(&self) -> usize {
        *self.proxy.max_packet_size.get_ref() as usize
    }
}

#[cfg(test)]
mod tests;
