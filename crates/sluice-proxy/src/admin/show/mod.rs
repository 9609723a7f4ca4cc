//! The console's `SHOW` commands, in pgbouncer 1.25's columns (see
//! [`super::columns`]) with the gateway's own numbers. Things pgbouncer has
//! and the gateway does not (peers, DNS caches, file descriptor passing)
//! answer with their columns and no rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;

use super::columns::{self, Column};
use super::Console;
use crate::backend::ServerInfo;
use crate::clients::ClientEntry;
use crate::clock;
use crate::config::settings::SETTINGS;
use crate::config::{Config, PoolMode};
use crate::pool::stats::Totals;
use crate::pool::{Pool, WaitSlot};
use crate::protocol::{self, ColumnType};

mod connections;
mod databases;
mod pools;

use pools::Stats;
pub use pools::{idle_servers, pool_lines, totals_by_database, PoolLine};

/// The version `SHOW VERSION` and the console's `server_version` give: the
/// pgbouncer release whose console this one speaks, then the gateway's own.
pub const VERSION: &str = concat!("PgBouncer 1.25.2 (sluice ", env!("CARGO_PKG_VERSION"), ")");

/// Parameters pgbouncer's console answers `SHOW` of (and ignores `SET` of).
const FAKE_PARAMETERS: &[(&str, &str)] = &[
    ("client_encoding", "UTF-8"),
    ("default_transaction_isolation", "read committed"),
    ("standard_conforming_strings", "on"),
    ("datestyle", "ISO"),
    ("timezone", "GMT"),
];

pub fn is_fake_parameter(name: &str) -> bool {
    FAKE_PARAMETERS.iter().any(|(known, _)| *known == name)
}

const HELP: &str = "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n\
\tSHOW PEERS|PEER_POOLS\n\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n\
\tSHOW DNS_HOSTS|DNS_ZONES\n\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n\
\tSHOW HOSTS\n\tSET key = arg\n\tRELOAD\n\tPAUSE [<db>]\n\tRESUME [<db>]\n\
\tDISABLE <db>\n\tENABLE <db>\n\tRECONNECT [<db>]\n\tKILL [<db>]\n\
\tKILL_CLIENT <client_id>\n\tSUSPEND\n\tSHUTDOWN\n\
\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n\tWAIT_CLOSE [<db>]";

/// The rows of one answer.
struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Option<String>>>,
}

impl Table {
    fn new(columns: &[Column]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<Option<String>>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    fn write(self, out: &mut BytesMut) {
        protocol::row_description(out, self.columns.iter().copied());
        for row in &self.rows {
            protocol::data_row(out, row.iter().map(|v| v.as_deref().map(str::as_bytes)));
        }
        protocol::command_complete(out, "SHOW");
    }
}

/// A value for a row.
fn v(value: impl ToString) -> Option<String> {
    Some(value.to_string())
}

/// `0`/`1` as pgbouncer's int columns show booleans.
fn flag(value: bool) -> Option<String> {
    v(u8::from(value))
}

/// Answers `SHOW item`; `None` for an item the console does not know.
pub fn show(console: &Console<'_>, item: &str, out: &mut BytesMut) -> Option<()> {
    let shared = &console.shared;
    let config = shared.config();
    let view = View::take(console);
    let table = match item {
        "pools" => view.pools(),
        "stats" => view.stats(&config, Stats::Both),
        "stats_totals" => view.stats(&config, Stats::Totals),
        "stats_averages" => view.stats(&config, Stats::Averages),
        "totals" => view.totals(),
        "clients" => view.clients(),
        "servers" => view.servers(),
        "sockets" => view.sockets(false),
        "active_sockets" => view.sockets(true),
        "databases" => view.databases(&config),
        "users" => view.users(&config),
        "config" => config_table(&config),
        "lists" => view.lists(&config),
        "state" => {
            let state = &shared.state;
            let yes_no = |b: bool| v(if b { "yes" } else { "no" });
            let mut table = Table::new(columns::STATE);
            let active = state.shutdown() == crate::state::Shutdown::No;
            table.push(vec![v("active"), yes_no(active)]);
            table.push(vec![v("paused"), yes_no(state.is_paused_all())]);
            table.push(vec![v("suspended"), yes_no(state.is_suspended())]);
            table
        }
        "version" => {
            let mut table = Table::new(columns::VERSION);
            table.push(vec![v(VERSION)]);
            table
        }
        "mem" => view.mem(),
        "hosts" => view.hosts(),
        "help" => {
            protocol::notice(out, "Console usage", Some(HELP));
            protocol::command_complete(out, "SHOW");
            return Some(());
        }
        "fds" => Table::new(columns::FDS),
        "dns_hosts" => Table::new(columns::DNS_HOSTS),
        "dns_zones" => Table::new(columns::DNS_ZONES),
        "peers" => Table::new(columns::PEERS),
        "peer_pools" => Table::new(columns::PEER_POOLS),
        other => {
            let (name, value) = FAKE_PARAMETERS.iter().find(|(name, _)| *name == other)?;
            let mut table = Table::new(&[(name, ColumnType::Text)]);
            table.push(vec![v(value)]);
            table
        }
    };
    table.write(out);
    Some(())
}

/// Everything a `SHOW` reads, taken once so that one answer is consistent.
struct View {
    pools: Vec<Arc<Pool>>,
    clients: Vec<Arc<ClientEntry>>,
    /// Waiting clients' slots, by address, with how long they have waited.
    waiting: HashMap<usize, Duration>,
    /// Which client each server connection serves, by server id.
    links: HashMap<u64, Arc<ClientEntry>>,
    /// Idle server connections by id: when each was last used.
    idle: HashMap<u64, Instant>,
    shared: Arc<crate::server::Shared>,
}

impl View {
    fn take(console: &Console<'_>) -> View {
        let shared = console.shared.clone();
        let pools = shared.pools.all();
        let clients = shared.clients.all();
        let mut waiting = HashMap::new();
        let mut idle = HashMap::new();
        for pool in &pools {
            pool.inspect(
                |slot: &Arc<WaitSlot>, waited| {
                    waiting.insert(Arc::as_ptr(slot) as usize, waited);
                },
                |server: &ServerInfo, last_used| {
                    idle.insert(server.id, last_used);
                },
            );
        }
        let links = clients
            .iter()
            .filter_map(|client| Some((client.server()?.id, client.clone())))
            .collect();
        View {
            pools,
            clients,
            waiting,
            links,
            idle,
            shared,
        }
    }

    fn console_clients(&self) -> usize {
        self.clients.iter().filter(|c| c.pool.is_none()).count()
    }
}

fn config_table(config: &Config) -> Table {
    let mut table = Table::new(columns::CONFIG);
    let yes_no = |b: bool| v(if b { "yes" } else { "no" });
    for setting in SETTINGS {
        table.push(vec![
            v(setting.name),
            v(setting.value(&config.proxy)),
            v(setting.default_value()),
            yes_no(setting.changeable),
        ]);
    }
    table
}

/// The idle connections of `pool` and when each was last used.
fn pool_idle<'a>(
    idle: &'a HashMap<u64, Instant>,
    pool: &Pool,
) -> impl Iterator<Item = Instant> + 'a {
    let ids: Vec<u64> = pool.servers.all().iter().map(|s| s.id).collect();
    ids.into_iter().filter_map(move |id| idle.get(&id).copied())
}

fn addr_text(addr: Option<std::net::SocketAddr>) -> String {
    addr.map_or_else(|| "unix".to_string(), |a| a.ip().to_string())
}

/// The wall-clock time of a [`clock::now_us`] reading.
fn at_us(us: u64) -> SystemTime {
    SystemTime::now() - clock::since(us)
}

/// `YYYY-MM-DD HH:MM:SS UTC`, as pgbouncer prints times.
pub fn timestamp(time: SystemTime) -> String {
    let rfc3339 = humantime::format_rfc3339_seconds(time).to_string();
    // `2026-12-03T13:02:20Z` → `2026-12-03 13:02:20 UTC`
    format!(
        "{} UTC",
        rfc3339.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn timestamps_are_pgbouncers() {
        let time = UNIX_EPOCH + Duration::from_secs(1_796_302_940); // 2026-12-03 13:02:20
        assert_eq!(timestamp(time), "2026-12-03 13:02:20 UTC");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap_day), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn fake_parameters_are_known() {
        assert!(is_fake_parameter("timezone") && !is_fake_parameter("pools"));
        assert!(VERSION.starts_with("PgBouncer 1.25.2 (sluice "));
    }
}
