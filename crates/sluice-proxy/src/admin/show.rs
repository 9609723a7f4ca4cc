//! The console's `SHOW` commands, in pgbouncer 1.25's columns (see
//! [`super::columns`]) with the gateway's own numbers. Things pgbouncer has
//! and the gateway does not (peers, DNS caches, file descriptor passing)
//! answer with their columns and no rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

    fn pools(&self) -> Table {
        let mut table = Table::new(columns::POOLS);
        for line in pool_lines(&self.pools, &self.idle, &self.shared.config()) {
            table.push(vec![
                v(&line.database),
                v(&line.user),
                v(line.cl_active),
                v(line.cl_waiting),
                v(0),
                v(0),
                v(line.sv_active),
                v(0),
                v(0),
                v(line.sv_idle),
                v(line.sv_used),
                v(0),
                v(line.sv_login),
                v(line.max_wait.as_secs()),
                v(line.max_wait.subsec_micros()),
                v(line.mode),
                None,
            ]);
        }
        // The console itself, as pgbouncer lists it.
        table.push(vec![
            v("pgbouncer"),
            v("pgbouncer"),
            v(self.console_clients()),
            v(0),
            v(0),
            v(0),
            v(0),
            v(0),
            v(0),
            v(0),
            v(0),
            v(0),
            v(0),
            v(0),
            v(0),
            v("statement"),
            None,
        ]);
        table
    }

    /// Totals per database (the console's own row last, all zero).
    fn totals_by_database(&self, config: &Config) -> BTreeMap<String, Totals> {
        let mut totals = totals_by_database(&self.pools, config);
        totals.insert("pgbouncer".into(), Totals::default());
        totals
    }

    fn stats(&self, config: &Config, which: Stats) -> Table {
        let legacy = config.proxy.console_legacy_columns;
        let mut columns: Vec<Column> = match which {
            Stats::Both => columns::STATS.to_vec(),
            Stats::Totals => columns::STATS_TOTALS.to_vec(),
            Stats::Averages => columns::STATS_AVERAGES.to_vec(),
        };
        if legacy && which == Stats::Both {
            // What pgbouncer before 1.8 called total_query_count.
            columns.push(("total_requests", ColumnType::Numeric));
        }
        let mut table = Table {
            columns,
            rows: Vec::new(),
        };
        let averages = self.shared.averages();
        for (database, totals) in self.totals_by_database(config) {
            let average = averages.get(&database).copied().unwrap_or_default();
            let t = &totals;
            let total_values = [
                t.server_assignment_count,
                t.xact_count,
                t.query_count,
                t.bytes_received,
                t.bytes_sent,
                t.xact_time_us,
                t.query_time_us,
                t.wait_time_us,
                t.client_parse_count,
                t.server_parse_count,
                t.bind_count,
            ];
            let a = &average;
            let average_values = [
                a.server_assignment_count,
                a.xact_count,
                a.query_count,
                a.bytes_received,
                a.bytes_sent,
                a.xact_time_us,
                a.query_time_us,
                a.wait_time_us,
                a.client_parse_count,
                a.server_parse_count,
                a.bind_count,
            ];
            let mut row = vec![v(&database)];
            if which != Stats::Averages {
                row.extend(total_values.iter().map(v));
            }
            if which != Stats::Totals {
                row.extend(average_values.iter().map(v));
            }
            if legacy && which == Stats::Both {
                row.push(v(t.query_count));
            }
            table.push(row);
        }
        table
    }

    fn totals(&self) -> Table {
        let mut all = Totals::default();
        for pool in &self.pools {
            pool.stats.add_to(&mut all);
        }
        let mut average = crate::pool::stats::Averages::default();
        for a in self.shared.averages().values() {
            average.server_assignment_count += a.server_assignment_count;
            average.xact_count += a.xact_count;
            average.query_count += a.query_count;
            average.bytes_received += a.bytes_received;
            average.bytes_sent += a.bytes_sent;
            average.xact_time_us = average.xact_time_us.max(a.xact_time_us);
            average.query_time_us = average.query_time_us.max(a.query_time_us);
            average.wait_time_us = average.wait_time_us.max(a.wait_time_us);
            average.client_parse_count += a.client_parse_count;
            average.server_parse_count += a.server_parse_count;
            average.bind_count += a.bind_count;
        }
        let mut table = Table::new(columns::TOTALS);
        let rows = [
            ("total_server_assignment_count", all.server_assignment_count),
            ("total_xact_count", all.xact_count),
            ("total_query_count", all.query_count),
            ("total_client_bytes", all.bytes_received),
            ("total_server_bytes", all.bytes_sent),
            ("total_xact_time", all.xact_time_us),
            ("total_query_time", all.query_time_us),
            ("total_wait_time", all.wait_time_us),
            ("total_ps_client_parse_count", all.client_parse_count),
            ("total_ps_server_parse_count", all.server_parse_count),
            ("total_ps_bind_count", all.bind_count),
            (
                "avg_server_assignment_count",
                average.server_assignment_count,
            ),
            ("avg_xact_count", average.xact_count),
            ("avg_query_count", average.query_count),
            ("avg_client_bytes", average.bytes_received),
            ("avg_server_bytes", average.bytes_sent),
            ("avg_xact_time", average.xact_time_us),
            ("avg_query_time", average.query_time_us),
            ("avg_wait_time", average.wait_time_us),
            ("avg_ps_client_parse_count", average.client_parse_count),
            ("avg_ps_server_parse_count", average.server_parse_count),
            ("avg_ps_bind_count", average.bind_count),
        ];
        for (name, value) in rows {
            table.push(vec![v(name), v(value)]);
        }
        table
    }

    /// A client's state as `SHOW CLIENTS` names it, and how long it has waited.
    fn client_state(&self, client: &ClientEntry) -> (&'static str, Duration) {
        if client.server().is_some() {
            return ("active", Duration::ZERO);
        }
        match self.waiting.get(&(Arc::as_ptr(&client.wait_slot) as usize)) {
            Some(waited) => ("waiting", *waited),
            None => ("idle", Duration::ZERO),
        }
    }

    fn client_row(
        &self,
        client: &ClientEntry,
        state: &str,
        waited: Duration,
    ) -> Vec<Option<String>> {
        let link = client
            .server()
            .map_or_else(String::new, |server| server.ptr());
        vec![
            v("C"),
            v(&client.user),
            v(&client.database),
            v("none"),
            v(state),
            v(addr_text(client.peer.addr)),
            v(client.peer.addr.map_or(0, |a| a.port())),
            v(addr_text(client.peer.local)),
            v(client.peer.local.map_or(0, |a| a.port())),
            v(timestamp(client.connect_time)),
            v(timestamp(at_us(client.last_request_us.load(Relaxed)))),
            v(waited.as_secs()),
            v(waited.subsec_micros()),
            v(u8::from(client.is_closing())),
            v(client.ptr()),
            v(link),
            v(0),
            v(""),
            v(&*client
                .application_name
                .lock()
                .unwrap_or_else(|e| e.into_inner())),
            v(client.prepared_statements.load(Relaxed)),
            v(client.id),
        ]
    }

    fn clients(&self) -> Table {
        let mut table = Table::new(columns::CLIENTS);
        for client in &self.clients {
            let (state, waited) = self.client_state(client);
            table.push(self.client_row(client, state, waited));
        }
        table
    }

    /// A server connection's state as `SHOW SERVERS` names it.
    fn server_state(&self, pool: &Pool, server: &ServerInfo) -> &'static str {
        match self.idle.get(&server.id) {
            Some(last_used) => {
                let limits = pool.limits();
                if !limits.server_check_query.is_empty()
                    && last_used.elapsed() >= limits.server_check_delay
                {
                    "used"
                } else {
                    "idle"
                }
            }
            None => "active",
        }
    }

    fn server_row(&self, pool: &Pool, server: &ServerInfo, state: &str) -> Vec<Option<String>> {
        let client = self.links.get(&server.id);
        let application_name = client.map_or_else(String::new, |c| {
            c.application_name
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .to_string()
        });
        let request = client.map_or(server.opened_us, |c| c.last_request_us.load(Relaxed));
        vec![
            v("S"),
            v(&pool.key.user),
            v(&pool.key.database),
            v("none"),
            v(state),
            v(&server.target.host),
            v(server.target.port),
            v(addr_text(server.local)),
            v(server.local.map_or(0, |a| a.port())),
            v(timestamp(server.connect_time)),
            v(timestamp(at_us(request))),
            v(0),
            v(0),
            v(u8::from(server.close_needed.load(Relaxed))),
            v(server.ptr()),
            v(client.map_or_else(String::new, |c| c.ptr())),
            v(server.pid),
            v(""),
            v(application_name),
            v(server.prepared_statements.load(Relaxed)),
            v(server.id),
        ]
    }

    fn servers(&self) -> Table {
        let mut table = Table::new(columns::SERVERS);
        for pool in &self.pools {
            for server in pool.servers.all() {
                let state = self.server_state(pool, &server);
                table.push(self.server_row(pool, &server, state));
            }
        }
        table
    }

    /// `SHOW SOCKETS` (every client and server) or `SHOW ACTIVE_SOCKETS`
    /// (those that are doing something): the CLIENTS/SERVERS columns, the
    /// state as the list name, and the buffer columns (the gateway keeps
    /// no per-socket buffer positions: zeros).
    fn sockets(&self, active_only: bool) -> Table {
        let columns = if active_only {
            columns::ACTIVE_SOCKETS
        } else {
            columns::SOCKETS
        };
        let mut table = Table::new(columns);
        let buffers = || std::iter::repeat_n(v(0), 7);
        for client in &self.clients {
            let (state, waited) = self.client_state(client);
            let list = match state {
                "waiting" => "cl_waiting",
                _ => "cl_active",
            };
            if active_only && state == "idle" {
                continue;
            }
            let mut row = self.client_row(client, list, waited);
            row.extend(buffers());
            table.push(row);
        }
        for pool in &self.pools {
            for server in pool.servers.all() {
                let state = self.server_state(pool, &server);
                if active_only && state != "active" {
                    continue;
                }
                let mut row = self.server_row(pool, &server, &format!("sv_{state}"));
                row.extend(buffers());
                table.push(row);
            }
        }
        table
    }

    fn databases(&self, config: &Config) -> Table {
        let legacy = config.proxy.console_legacy_columns;
        let mut columns = columns::DATABASES.to_vec();
        if legacy {
            // What pgbouncer before 1.24 called reserve_pool_size.
            columns.push(("reserve_pool", ColumnType::Int4));
        }
        let mut table = Table {
            columns,
            rows: Vec::new(),
        };
        let p = &config.proxy;
        for (name, db) in &config.databases {
            let settings = config.pool_settings(name, "").expect("configured database");
            let flags = self.shared.state.database(name);
            let clients = self.clients.iter().filter(|c| c.database == *name).count();
            let open = self.shared.pools.database_cap(config, name).open();
            let mut row = vec![
                v(name),
                v(&db.host),
                v(db.port),
                v(&settings.dbname),
                None,
                v(db.pool_size
                    .as_ref()
                    .map_or(*p.default_pool_size.get_ref(), |s| *s.get_ref())),
                v(p.min_pool_size),
                v(p.reserve_pool_size),
                v(p.server_lifetime.0.as_secs()),
                db.pool_mode.map(|mode| mode.to_string()),
                None,
                v(config.max_db_connections(name)),
                v(open),
                v(config.max_db_client_connections(name)),
                v(clients),
                flag(flags.paused),
                flag(flags.disabled),
            ];
            if legacy {
                row.push(v(p.reserve_pool_size));
            }
            table.push(row);
        }
        let mut console = vec![
            v("pgbouncer"),
            None,
            v(p.listen_port),
            v("pgbouncer"),
            v("pgbouncer"),
            v(2),
            v(0),
            v(0),
            v(p.server_lifetime.0.as_secs()),
            v("statement"),
            None,
            v(0),
            v(0),
            v(0),
            v(self.console_clients()),
            v(0),
            v(0),
        ];
        if legacy {
            console.push(v(0));
        }
        table.push(console);
        table
    }

    fn users(&self, config: &Config) -> Table {
        let mut names: Vec<String> = config.auth.users().map(str::to_string).collect();
        names.extend(config.users.keys().cloned());
        names.push("pgbouncer".into());
        names.sort();
        names.dedup();
        let mut table = Table::new(columns::USERS);
        for name in names {
            let user = config.users.get(&name);
            let pool_size = user
                .and_then(|u| u.pool_size.as_ref())
                .map_or_else(String::new, |s| s.get_ref().to_string());
            let clients = self.clients.iter().filter(|c| c.user == name).count();
            let open = self.shared.pools.user_cap(config, &name).open();
            table.push(vec![
                v(&name),
                v(pool_size),
                v(""),
                user.and_then(|u| u.pool_mode)
                    .map(|mode: PoolMode| mode.to_string()),
                v(config.max_user_connections(&name)),
                v(open),
                v(config.max_user_client_connections(&name)),
                v(clients),
            ]);
        }
        table
    }

    fn lists(&self, config: &Config) -> Table {
        let users = self.users(config).rows.len();
        let servers: usize = self.pools.iter().map(|p| p.servers.len()).sum();
        let logging_in = self.shared.logging_in.load(Relaxed);
        let mut table = Table::new(columns::LISTS);
        let rows: [(&str, i64); 14] = [
            ("databases", config.databases.len() as i64 + 1),
            ("users", users as i64),
            ("peers", 0),
            ("pools", groups(&self.pools).len() as i64 + 1),
            ("peer_pools", 0),
            ("free_clients", 0),
            ("used_clients", self.clients.len() as i64),
            ("login_clients", logging_in as i64),
            ("free_servers", 0),
            ("used_servers", servers as i64),
            ("dns_names", 0),
            ("dns_zones", 0),
            ("dns_queries", 0),
            ("dns_pending", 0),
        ];
        for (name, value) in rows {
            table.push(vec![v(name), v(value)]);
        }
        table
    }

    /// pgbouncer's memory caches, as far as the gateway has them: object
    /// sizes and how many are in use.
    fn mem(&self) -> Table {
        let servers: usize = self.pools.iter().map(|p| p.servers.len()).sum();
        let rows: [(&str, usize, usize); 12] = [
            ("user_cache", 0, 0),
            ("credentials_cache", 0, 0),
            ("db_cache", 0, 0),
            ("peer_cache", 0, 0),
            ("peer_pool_cache", 0, 0),
            ("pool_cache", std::mem::size_of::<Pool>(), self.pools.len()),
            ("outstanding_request_cache", 0, 0),
            (
                "server_cache",
                std::mem::size_of::<crate::backend::ServerConn>(),
                servers,
            ),
            (
                "client_cache",
                std::mem::size_of::<ClientEntry>(),
                self.clients.len(),
            ),
            ("iobuf_cache", crate::buffers::SIZE, 0),
            ("var_list_cache", 0, 0),
            ("server_prepared_statement_cache", 0, 0),
        ];
        let mut table = Table::new(columns::MEM);
        for (name, size, used) in rows {
            table.push(vec![v(name), v(size), v(used), v(0), v(size * used)]);
        }
        table
    }

    /// Sluice's own: every load-balanced database's hosts (`SHOW
    /// sluice.hosts`, with the database in front).
    fn hosts(&self) -> Table {
        let mut columns: Vec<Column> = vec![("database", ColumnType::Text)];
        columns.extend(
            crate::frontend::local::HOSTS_COLUMNS
                .iter()
                .map(|name| (*name, ColumnType::Text)),
        );
        let mut table = Table {
            columns,
            rows: Vec::new(),
        };
        for name in self.shared.config().databases.keys() {
            if let Some(db) = self.shared.router.database(name) {
                for row in crate::frontend::local::hosts_rows(&db.hosts) {
                    let mut full = vec![v(name)];
                    full.extend(row);
                    table.push(full);
                }
            }
        }
        table
    }
}

/// The pools grouped by (database, user), the primary's first.
fn groups(pools: &[Arc<Pool>]) -> BTreeMap<(String, String), Vec<&Arc<Pool>>> {
    let mut groups: BTreeMap<(String, String), Vec<&Arc<Pool>>> = BTreeMap::new();
    for pool in pools {
        groups
            .entry((pool.key.database.clone(), pool.key.user.clone()))
            .or_default()
            .push(pool);
    }
    groups
}

/// One (database, user) line of `SHOW POOLS`, over the pools of every
/// host; the metrics endpoint reports the same lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLine {
    pub database: String,
    pub user: String,
    pub cl_active: u64,
    pub cl_waiting: u32,
    pub sv_active: u32,
    pub sv_idle: u32,
    /// Idle longer than `server_check_delay`: checked before reuse.
    pub sv_used: u32,
    pub sv_login: u32,
    /// How long the longest waiting client has waited.
    pub max_wait: Duration,
    pub mode: PoolMode,
}

/// The idle server connections of `pools` by id, with when each was last
/// used (what [`pool_lines`] needs besides the pools).
pub fn idle_servers(pools: &[Arc<Pool>]) -> HashMap<u64, Instant> {
    let mut idle = HashMap::new();
    for pool in pools {
        pool.inspect(
            |_, _| {},
            |server: &ServerInfo, last_used| {
                idle.insert(server.id, last_used);
            },
        );
    }
    idle
}

/// `SHOW POOLS`' lines (without the console's), by database and user;
/// `idle_servers`: [`idle_servers`] of the same pools.
pub fn pool_lines(
    pools: &[Arc<Pool>],
    idle_servers: &HashMap<u64, Instant>,
    config: &Config,
) -> Vec<PoolLine> {
    let mut lines = Vec::new();
    for ((database, user), pools) in groups(pools) {
        let (mut clients, mut waiting, mut active, mut idle, mut used, mut login) =
            (0u64, 0u32, 0u32, 0u32, 0u32, 0u32);
        let mut max_wait = Duration::ZERO;
        for pool in &pools {
            let snapshot = pool.snapshot();
            clients += pool.stats.clients.load(Relaxed);
            waiting += snapshot.waiting;
            active += snapshot.open - snapshot.idle - snapshot.connecting;
            login += snapshot.connecting;
            let limits = pool.limits();
            let check = !limits.server_check_query.is_empty();
            for last_used in pool_idle(idle_servers, pool) {
                if check && last_used.elapsed() >= limits.server_check_delay {
                    used += 1;
                } else {
                    idle += 1;
                }
            }
            max_wait = max_wait.max(snapshot.max_wait);
        }
        let mode = config
            .pool_settings(&database, &user)
            .map_or_else(|| pools[0].mode(), |s| s.pool_mode);
        lines.push(PoolLine {
            cl_active: clients.saturating_sub(u64::from(waiting)),
            cl_waiting: waiting,
            sv_active: active,
            sv_idle: idle,
            sv_used: used,
            sv_login: login,
            max_wait,
            mode,
            database,
            user,
        });
    }
    lines
}

/// The pools' counters summed per database (`SHOW STATS`' totals), every
/// configured database included.
pub fn totals_by_database(pools: &[Arc<Pool>], config: &Config) -> BTreeMap<String, Totals> {
    let mut totals: BTreeMap<String, Totals> = config
        .databases
        .keys()
        .map(|name| (name.clone(), Totals::default()))
        .collect();
    for pool in pools {
        pool.stats
            .add_to(totals.entry(pool.key.database.clone()).or_default());
    }
    totals
}

/// Which of SHOW STATS's halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stats {
    Both,
    Totals,
    Averages,
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
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The calendar date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_pgbouncers() {
        let time = UNIX_EPOCH + Duration::from_secs(1_796_302_940); // 2026-12-03 13:02:20
        assert_eq!(timestamp(time), "2026-12-03 13:02:20 UTC");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn fake_parameters_are_known() {
        assert!(is_fake_parameter("timezone") && !is_fake_parameter("pools"));
        assert!(VERSION.starts_with("PgBouncer 1.25.2 (sluice "));
    }
}
