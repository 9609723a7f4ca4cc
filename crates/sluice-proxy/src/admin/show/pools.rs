//! `SHOW POOLS`, `SHOW STATS` (and its halves) and `SHOW TOTALS`: the pools
//! grouped by (database, user) and their counters, which `/metrics` reports too.

use super::*;

impl View {
    pub(super) fn pools(&self) -> Table {
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
    pub(super) fn totals_by_database(&self, config: &Config) -> BTreeMap<String, Totals> {
        let mut totals = totals_by_database(&self.pools, config);
        totals.insert("pgbouncer".into(), Totals::default());
        totals
    }

    pub(super) fn stats(&self, config: &Config, which: Stats) -> Table {
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

    pub(super) fn totals(&self) -> Table {
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
}

/// The pools grouped by (database, user), the primary's first.
pub(super) fn groups(pools: &[Arc<Pool>]) -> BTreeMap<(String, String), Vec<&Arc<Pool>>> {
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
pub(super) enum Stats {
    Both,
    Totals,
    Averages,
}
