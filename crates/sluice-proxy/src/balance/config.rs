//! The `[load_balancing]` section and the per-database `replicas` list.
//!
//! These are plain serde types that the gateway's configuration embeds:
//!
//! ```toml
//! [databases.app]
//! host = "127.0.0.1"
//! port = 5432
//! replicas = ["127.0.0.1:5433", "127.0.0.1:5434"]   # -> Vec<HostAddr>
//!
//! [load_balancing]                                    # -> LoadBalancing
//! enabled = true
//! replica_check_interval = 0.1
//! max_replication_lag_bytes = 16777216
//! max_replication_lag_time = 30
//! sticky = "connection"
//! sticky_ttl = 30
//! sticky_store = "memory"
//! primary_only_users = ["background"]
//! ```
//!
//! Every value that can be checked alone is checked while deserializing, so
//! the `toml` crate reports it with its line (the gateway turns the span into
//! `file:line: message`); unknown keys are errors (`deny_unknown_fields`).
//! Checks that need more than one value are separate functions
//! ([`LoadBalancing::validate`], [`validate_replicas`]) returning a message
//! that names the setting.
//!
//! Defaults: the section may be left out entirely. Balancing then is
//! `enabled`, but it only has an effect for databases that list `replicas`,
//! so listing replicas is the opt-in and `enabled = false` the kill switch.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// `[load_balancing]`: how reads are spread and how writes stay visible.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadBalancing {
    /// Send reads to replicas at all. Default `true` (see the module doc).
    pub enabled: bool,
    /// How often each replica's health and replay position is polled.
    /// Seconds in the file (fractions allowed); default 0.1.
    #[serde(deserialize_with = "positive_seconds")]
    pub replica_check_interval: Duration,
    /// Replicas further behind the primary than this many bytes of WAL get
    /// no reads. Default 16 MiB.
    pub max_replication_lag_bytes: u64,
    /// Replicas further behind than this (seconds) get no reads. Default 30.
    #[serde(deserialize_with = "positive_seconds")]
    pub max_replication_lag_time: Duration,
    /// What a write's WAL position is remembered for. Default `connection`.
    pub sticky: StickyMode,
    /// Seconds after a key's last write until it is forgotten. Default 30.
    #[serde(deserialize_with = "positive_seconds")]
    pub sticky_ttl: Duration,
    /// Where sticky positions live. Default `memory`.
    pub sticky_store: StickyStoreConfig,
    /// Users whose every statement goes to the primary (background jobs).
    pub primary_only_users: Vec<String>,
    /// The user the health checker logs in as (its password must be in the
    /// `auth_file` in plain text). Default: the first such user by name.
    pub health_check_user: Option<String>,
}

impl Default for LoadBalancing {
    fn default() -> Self {
        LoadBalancing {
            enabled: true,
            replica_check_interval: Duration::from_millis(100),
            max_replication_lag_bytes: 16 * 1024 * 1024,
            max_replication_lag_time: Duration::from_secs(30),
            sticky: StickyMode::Connection,
            sticky_ttl: Duration::from_secs(30),
            sticky_store: StickyStoreConfig::Memory,
            primary_only_users: Vec::new(),
            health_check_user: None,
        }
    }
}

/// A `[load_balancing]` setting or `replicas` entry that cannot be used.
/// The message names the setting, so the caller only adds the file and line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BalanceConfigError {
    #[error("load_balancing.primary_only_users: user names must not be empty (got {0:?})")]
    EmptyPrimaryOnlyUser(String),
    #[error(
        "load_balancing.max_replication_lag_time ({lag}s) must not be shorter than \
         replica_check_interval ({interval}s): every replica would look too far behind"
    )]
    LagLimitBelowCheckInterval { lag: f64, interval: f64 },
    #[error("sticky_store {0:?} names no Redis host")]
    StickyStoreWithoutHost(String),
    #[error("sticky_store {0:?}: TLS to Redis (rediss://) is not supported; use redis://")]
    StickyStoreTls(String),
    #[error("sticky_store must be \"memory\" or a \"redis://host:port\" URL, got {0:?}")]
    StickyStoreUnknown(String),
    #[error("replica {0:?} must be \"host:port\", e.g. \"127.0.0.1:5433\"")]
    NotHostPort(String),
    #[error("replica {0:?}: write an IPv6 address in brackets, like \"[::1]:5433\"")]
    BareIpv6(String),
    #[error("replica {0:?}: port must be 1-65535")]
    BadPort(String),
    #[error("databases.{database}.replicas: {replica} is the primary itself")]
    ReplicaIsPrimary { database: String, replica: HostAddr },
    #[error("databases.{database}.replicas: {replica} is listed twice")]
    ReplicaListedTwice { database: String, replica: HostAddr },
}

impl LoadBalancing {
    /// Checks that span several settings. The message names the setting, so
    /// the caller only needs to add the file (and the section's line).
    pub fn validate(&self) -> Result<(), BalanceConfigError> {
        if let Some(user) = self.primary_only_users.iter().find(|u| u.is_empty()) {
            return Err(BalanceConfigError::EmptyPrimaryOnlyUser(user.clone()));
        }
        if self.max_replication_lag_time < self.replica_check_interval {
            return Err(BalanceConfigError::LagLimitBelowCheckInterval {
                lag: self.max_replication_lag_time.as_secs_f64(),
                interval: self.replica_check_interval.as_secs_f64(),
            });
        }
        Ok(())
    }

    /// Whether `user` must always use the primary.
    pub fn is_primary_only(&self, user: &str) -> bool {
        self.primary_only_users.iter().any(|u| u == user)
    }
}

/// What a write's WAL position is remembered for (`sticky = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StickyMode {
    /// Each client connection reads its own writes.
    Connection,
    /// An application-chosen key (startup parameter `sluice.sticky_key` or
    /// `SET sluice.sticky_key`) shared across connections and gateways; a
    /// connection that set no key is sticky per connection.
    Key,
    /// No read-your-writes: reads may see stale data right after a write.
    Off,
}

impl fmt::Display for StickyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StickyMode::Connection => "connection",
            StickyMode::Key => "key",
            StickyMode::Off => "off",
        })
    }
}

/// Where sticky positions are kept (`sticky_store = "memory" | "redis://..."`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyStoreConfig {
    /// In this gateway process only.
    Memory,
    /// In Redis, shared by every gateway pointing at it. Holds the URL as
    /// written, e.g. `redis://127.0.0.1:6379/0`.
    Redis(String),
}

impl StickyStoreConfig {
    /// Reads the setting's text form. `rediss://` (TLS) is refused because
    /// this build has no TLS support for Redis.
    pub fn parse(text: &str) -> Result<StickyStoreConfig, BalanceConfigError> {
        if text == "memory" {
            return Ok(StickyStoreConfig::Memory);
        }
        if let Some(rest) = text.strip_prefix("redis://") {
            let host = rest.split(['/', '?']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or("");
            if host.is_empty() {
                return Err(BalanceConfigError::StickyStoreWithoutHost(text.to_owned()));
            }
            return Ok(StickyStoreConfig::Redis(text.to_owned()));
        }
        if text.starts_with("rediss://") {
            return Err(BalanceConfigError::StickyStoreTls(text.to_owned()));
        }
        Err(BalanceConfigError::StickyStoreUnknown(text.to_owned()))
    }
}

impl fmt::Display for StickyStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StickyStoreConfig::Memory => f.write_str("memory"),
            StickyStoreConfig::Redis(url) => f.write_str(url),
        }
    }
}

impl<'de> Deserialize<'de> for StickyStoreConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        StickyStoreConfig::parse(&text).map_err(de::Error::custom)
    }
}

/// A server address: one entry of a database's `replicas = ["host:port",
/// ...]` (also used for the primary in [`super::hosts::Hosts`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostAddr {
    /// Host name or IP address (IPv6 without the brackets).
    pub host: String,
    pub port: u16,
}

impl HostAddr {
    /// Reads `host:port` or `[ipv6]:port`; the port is required so that a
    /// replica on the primary's host cannot silently point at the primary.
    pub fn parse(text: &str) -> Result<HostAddr, BalanceConfigError> {
        let expected = || BalanceConfigError::NotHostPort(text.to_owned());
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(expected)?;
            (host, after.strip_prefix(':').ok_or_else(expected)?)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
            if host.contains(':') {
                return Err(BalanceConfigError::BareIpv6(text.to_owned()));
            }
            (host, port)
        };
        if host.is_empty() || host.chars().any(char::is_whitespace) {
            return Err(expected());
        }
        let port = match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(BalanceConfigError::BadPort(text.to_owned())),
        };
        Ok(HostAddr {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for HostAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        HostAddr::parse(&text).map_err(de::Error::custom)
    }
}

/// Checks a database's replica list against itself and its primary: no
/// duplicates, and no replica that is the primary (it would take reads
/// meant for standbys and make every health check fail "not in recovery").
/// `database` names the `[databases.NAME]` section in the message.
pub fn validate_replicas(
    database: &str,
    primary_host: &str,
    primary_port: u16,
    replicas: &[HostAddr],
) -> Result<(), BalanceConfigError> {
    for (i, replica) in replicas.iter().enumerate() {
        let (database, replica_owned) = (database.to_owned(), replica.clone());
        if replica.host == primary_host && replica.port == primary_port {
            return Err(BalanceConfigError::ReplicaIsPrimary {
                database,
                replica: replica_owned,
            });
        }
        if replicas[..i].contains(replica) {
            return Err(BalanceConfigError::ReplicaListedTwice {
                database,
                replica: replica_owned,
            });
        }
    }
    Ok(())
}

/// Seconds as an integer or a fraction, greater than zero and sane.
fn positive_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Integer(i64),
        Float(f64),
    }
    let value = match Number::deserialize(deserializer)
        .map_err(|_| de::Error::custom("expected a number of seconds"))?
    {
        Number::Integer(i) => i as f64,
        Number::Float(f) => f,
    };
    if !(value > 0.0 && value <= 1e9) {
        return Err(de::Error::custom(format!(
            "seconds must be greater than 0 and at most 1e9, got {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the gateway embeds these types; mirrors its `[databases.NAME]`.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        load_balancing: LoadBalancing,
        #[serde(default)]
        databases: std::collections::BTreeMap<String, Database>,
    }

    #[derive(Debug, Deserialize)]
    struct Database {
        #[serde(default)]
        replicas: Vec<HostAddr>,
    }

    fn load(text: &str) -> Result<File, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_example_parses() {
        let file = load(
            r#"
[databases.app]
replicas = ["127.0.0.1:5433", "127.0.0.1:5434"]

[load_balancing]
enabled = true
replica_check_interval = 0.1
max_replication_lag_bytes = 16777216
max_replication_lag_time = 30
sticky = "connection"
sticky_ttl = 30
sticky_store = "memory"
primary_only_users = ["background"]
"#,
        )
        .unwrap();
        let lb = &file.load_balancing;
        assert_eq!(
            lb,
            &LoadBalancing {
                primary_only_users: vec!["background".into()],
                ..LoadBalancing::default()
            }
        );
        assert!(lb.is_primary_only("background"));
        assert!(!lb.is_primary_only("app"));
        lb.validate().unwrap();
        let replicas = &file.databases["app"].replicas;
        assert_eq!(
            replicas[1],
            HostAddr {
                host: "127.0.0.1".into(),
                port: 5434
            }
        );
        validate_replicas("app", "127.0.0.1", 5432, replicas).unwrap();
    }

    #[test]
    fn absent_section_means_defaults() {
        let file = load("").unwrap();
        assert_eq!(file.load_balancing, LoadBalancing::default());
        assert!(file.load_balancing.enabled);
        assert_eq!(file.load_balancing.sticky, StickyMode::Connection);
    }

    #[test]
    fn redis_store_and_key_mode() {
        let file = load(
            "[load_balancing]\nsticky = \"key\"\nsticky_store = \"redis://127.0.0.1:6379/0\"\nsticky_ttl = 2.5\n",
        )
        .unwrap();
        let lb = file.load_balancing;
        assert_eq!(lb.sticky, StickyMode::Key);
        assert_eq!(
            lb.sticky_store,
            StickyStoreConfig::Redis("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!(lb.sticky_ttl, Duration::from_millis(2500));
    }

    /// Each bad value is reported with its line and a message naming what is wrong.
    #[test]
    fn bad_values_are_reported_with_their_line() {
        let cases = [
            ("sticky = \"session\"", "unknown variant `session`"),
            (
                "sticky_store = \"postgres://x\"",
                "must be \"memory\" or a \"redis://host:port\" URL",
            ),
            ("sticky_store = \"rediss://x:1\"", "TLS to Redis"),
            ("sticky_store = \"redis://\"", "names no Redis host"),
            ("sticky_ttl = 0", "greater than 0"),
            ("replica_check_interval = -1", "greater than 0"),
            (
                "max_replication_lag_time = \"30s\"",
                "expected a number of seconds",
            ),
            ("max_replication_lag_bytes = -5", "invalid value"),
            ("stickyness = \"off\"", "unknown field `stickyness`"),
        ];
        for (line, expected) in cases {
            let error = load(&format!("[load_balancing]\n{line}\n")).unwrap_err();
            assert!(error.contains(expected), "{line}: {error}");
            assert!(error.contains("line 2"), "{line}: {error}");
        }
    }

    #[test]
    fn replica_addresses() {
        assert_eq!(
            HostAddr::parse("db-2.internal:5433").unwrap(),
            HostAddr {
                host: "db-2.internal".into(),
                port: 5433
            }
        );
        let v6 = HostAddr::parse("[::1]:6000").unwrap();
        assert_eq!(
            v6,
            HostAddr {
                host: "::1".into(),
                port: 6000
            }
        );
        assert_eq!(v6.to_string(), "[::1]:6000");
        for (bad, expected) in [
            ("127.0.0.1", "must be \"host:port\""),
            (":5432", "must be \"host:port\""),
            ("host:0", "port must be 1-65535"),
            ("host:99999", "port must be 1-65535"),
            ("host:abc", "port must be 1-65535"),
            ("::1:5432", "in brackets"),
            ("[::1]5432", "must be \"host:port\""),
        ] {
            let error = HostAddr::parse(bad).unwrap_err().to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
        let error = load("[databases.app]\nreplicas = [\"nohost\"]\n").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn cross_checks_name_the_setting() {
        let primary = HostAddr::parse("127.0.0.1:5432").unwrap();
        let other = HostAddr::parse("127.0.0.1:5433").unwrap();
        let error = validate_replicas("app", "127.0.0.1", 5432, &[primary]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "databases.app.replicas: 127.0.0.1:5432 is the primary itself"
        );
        let error =
            validate_replicas("app", "127.0.0.1", 5432, &[other.clone(), other]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "databases.app.replicas: 127.0.0.1:5433 is listed twice"
        );

        let lb = LoadBalancing {
            replica_check_interval: Duration::from_secs(5),
            max_replication_lag_time: Duration::from_secs(1),
            ..LoadBalancing::default()
        };
        assert!(lb
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_replication_lag_time"));
        let lb = LoadBalancing {
            primary_only_users: vec![String::new()],
            ..LoadBalancing::default()
        };
        assert!(lb
            .validate()
            .unwrap_err()
            .to_string()
            .contains("primary_only_users"));
    }
}
