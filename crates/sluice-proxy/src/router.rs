//! The request router's gateway-wide state (issue 5): per database with
//! `replicas`, the host table and its health checker; the statement
//! classifier cache; the sticky store for application keys. Also the
//! gateway's own answers to `SHOW sluice.*`.
//!
//! The per-request decisions live in `client.rs` (`Session::checkout`),
//! which asks [`crate::balance::route::target`] with the state kept here.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use crate::balance::classify::Classifier;
use crate::balance::config::{HostAddr, StickyMode};
use crate::balance::hosts::{spawn_health_checker, CheckerConfig, HealthChecker, Hosts};
use crate::balance::sticky::AnyStore;
use crate::config::Config;

/// Verdicts cached by statement text; enough for any application's set of
/// distinct statements.
const CLASSIFIER_CAPACITY: usize = 16 * 1024;

/// The balancing state of one database.
pub struct BalancedDatabase {
    pub hosts: Arc<Hosts>,
    /// How the primary's WAL position was read after writing transactions.
    pub lsn_reads: LsnReads,
    /// Stops the checker tasks when the gateway goes away.
    _checker: HealthChecker,
}

/// Counts of the gateway's `SELECT pg_current_wal_insert_lsn()` after
/// writing transactions (sticky read-your-writes), by how it was sent.
#[derive(Debug, Default)]
pub struct LsnReads {
    /// Appended to the request that ended the transaction (no extra round trip).
    pub pipelined: AtomicU64,
    /// Sent on its own after the transaction ended (one extra round trip).
    pub separate: AtomicU64,
}

/// Everything routing needs that is shared by all clients.
pub struct Router {
    pub classifier: Classifier,
    /// Where application sticky keys (`sticky = "key"`) are kept; `None`
    /// unless that mode is on. Connection keys live in their session.
    pub store: Option<AnyStore>,
    databases: HashMap<String, Arc<BalancedDatabase>>,
}

impl Router {
    /// Builds the router and starts one health checker per database with
    /// replicas (when `load_balancing.enabled`). Must run inside a Tokio
    /// runtime. Fails only for a Redis URL the client library refuses.
    pub fn start(config: &Config) -> Result<Router, String> {
        let lb = &config.load_balancing;
        let mut databases = HashMap::new();
        if lb.enabled {
            let user = config
                .health_check_user()
                .unwrap_or_else(|| "postgres".into());
            let password = config.auth.get(&user).and_then(|s| s.password.clone());
            for (name, db) in &config.databases {
                if db.replicas.is_empty() {
                    continue;
                }
                let primary = HostAddr {
                    host: db.host.clone(),
                    port: db.port,
                };
                let hosts = Arc::new(Hosts::new(primary, db.replicas.clone()));
                let dbname = db.dbname.clone().unwrap_or_else(|| name.clone());
                let checker_config = CheckerConfig::new(lb, &user, password.as_deref(), &dbname);
                let checker = spawn_health_checker(checker_config, hosts.clone());
                tracing::info!(database = %name, replicas = db.replicas.len(), check_user = %user, "load balancing reads");
                databases.insert(
                    name.clone(),
                    Arc::new(BalancedDatabase {
                        hosts,
                        lsn_reads: LsnReads::default(),
                        _checker: checker,
                    }),
                );
            }
        }
        let store = if lb.enabled && lb.sticky == StickyMode::Key && !databases.is_empty() {
            Some(
                AnyStore::from_config(&lb.sticky_store, lb.sticky_ttl)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        Ok(Router {
            classifier: Classifier::new(CLASSIFIER_CAPACITY),
            store,
            databases,
        })
    }

    /// The balancing state of `database`, if reads may go to its replicas.
    pub fn database(&self, database: &str) -> Option<&Arc<BalancedDatabase>> {
        self.databases.get(database)
    }
}

/// Encodes a result set of text columns (RowDescription, DataRows,
/// CommandComplete) as the gateway's answer to a `SHOW`.
pub fn text_result(out: &mut BytesMut, columns: &[&str], rows: &[Vec<Option<String>>], tag: &str) {
    let at = begin(out, b'T');
    out.put_i16(columns.len() as i16);
    for column in columns {
        out.put_slice(column.as_bytes());
        out.put_u8(0);
        out.put_i32(0); // table oid
        out.put_i16(0); // column number
        out.put_i32(25); // text
        out.put_i16(-1);
        out.put_i32(-1);
        out.put_i16(0); // text format
    }
    finish(out, at);
    for row in rows {
        let at = begin(out, b'D');
        out.put_i16(row.len() as i16);
        for value in row {
            match value {
                Some(text) => {
                    out.put_i32(text.len() as i32);
                    out.put_slice(text.as_bytes());
                }
                None => out.put_i32(-1),
            }
        }
        finish(out, at);
    }
    command_complete(out, tag);
}

/// `CommandComplete` with `tag` (e.g. `SET`).
pub fn command_complete(out: &mut BytesMut, tag: &str) {
    let at = begin(out, b'C');
    out.put_slice(tag.as_bytes());
    out.put_u8(0);
    finish(out, at);
}

/// The columns of `SHOW sluice.hosts`.
pub const HOSTS_COLUMNS: &[&str] = &[
    "role",
    "host",
    "state",
    "in_recovery",
    "wal_lsn",
    "lag_bytes",
    "lag_seconds",
    "in_flight",
    "served",
    "last_error",
];

/// The rows of `SHOW sluice.hosts` for one database.
pub fn hosts_rows(hosts: &Hosts) -> Vec<Vec<Option<String>>> {
    hosts
        .rows()
        .into_iter()
        .map(|row| {
            vec![
                Some(row.role.to_string()),
                Some(row.addr),
                Some(row.state.to_string()),
                row.in_recovery
                    .map(|r| if r { "t" } else { "f" }.to_string()),
                row.wal_lsn.map(|l| l.to_string()),
                row.lag_bytes.map(|b| b.to_string()),
                row.lag_seconds.map(|s| format!("{s:.3}")),
                Some(row.in_flight.to_string()),
                Some(row.served.to_string()),
                row.last_error,
            ]
        })
        .collect()
}

fn begin(out: &mut BytesMut, tag: u8) -> usize {
    out.put_u8(tag);
    let at = out.len();
    out.put_i32(0);
    at
}

fn finish(out: &mut BytesMut, at: usize) {
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_result_is_well_framed() {
        let mut out = BytesMut::new();
        text_result(
            &mut out,
            &["a", "b"],
            &[vec![Some("x".into()), None]],
            "SHOW",
        );
        // Walk the frames: T, D, C, each length consistent.
        let mut tags = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let len = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            tags.push(rest[0]);
            rest = &rest[1 + len..];
        }
        assert_eq!(tags, b"TDC");
        // The DataRow: 2 columns, "x" then NULL.
        let data_row = &out[out.iter().position(|&b| b == b'D').unwrap()..];
        assert_eq!(&data_row[5..7], &2i16.to_be_bytes());
        assert_eq!(&data_row[7..11], &1i32.to_be_bytes());
        assert_eq!(data_row[11], b'x');
        assert_eq!(&data_row[12..16], &(-1i32).to_be_bytes());
    }
}
