//! The one collector behind `/metrics`: at each scrape it reads the pools,
//! the client registry and the host table and encodes them as Prometheus
//! series (names in the module doc of [`super`]).

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use crate::admin::show::{self, VERSION};
use crate::config::Config;
use crate::pool::stats::WAIT_BUCKETS_US;
use crate::server::Shared;

/// Reads the gateway's own counters at scrape time.
pub(super) struct GatewayCollector {
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for GatewayCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GatewayCollector")
    }
}

impl Collector for GatewayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let shared = &self.shared;
        let config = shared.config();
        let mut pools = shared.pools.all();
        // (A stable order for whoever reads the text.)
        pools.sort_by(|a, b| {
            let (a, b) = (&a.key, &b.key);
            (&a.database, &a.user, &a.host).cmp(&(&b.database, &b.user, &b.host))
        });
        let out = &mut encoder;

        gauge(out, "up", "1: the gateway is serving", [((), 1u32)])?;
        let build = MetricType::Info;
        let mut info = out.encode_descriptor("build", "The gateway's version", None, build)?;
        info.encode_info(&[("version", env!("CARGO_PKG_VERSION")), ("console", VERSION)])?;

        let used_servers: usize = pools.iter().map(|pool| pool.servers.len()).sum();
        let lists = [
            (
                "used_clients",
                "Clients logged in (SHOW LISTS used_clients)",
                shared.clients.count() as u64,
            ),
            (
                "login_clients",
                "Clients connected and logging in (SHOW LISTS login_clients)",
                u64::from(shared.logging_in.load(Relaxed)),
            ),
            (
                "client_connections",
                "Client connections open, logged in or not (counted against max_client_conn)",
                u64::from(shared.connections.load(Relaxed)),
            ),
            (
                "used_servers",
                "Server connections open (SHOW LISTS used_servers)",
                used_servers as u64,
            ),
            (
                "config_max_client_connections",
                "max_client_conn",
                u64::from(config.proxy.max_client_conn),
            ),
        ];
        for (name, help, value) in lists {
            gauge(out, name, help, [((), value)])?;
        }

        encode_pools(out, &pools, &config)?;
        encode_stats(out, &pools, &config)?;
        encode_pool_counters(out, &pools)?;
        encode_hosts(out, shared, &config)
    }
}

/// `SHOW POOLS`, one series per database and user.
fn encode_pools(
    out: &mut DescriptorEncoder,
    pools: &[Arc<crate::pool::Pool>],
    config: &Config,
) -> Result<(), fmt::Error> {
    let lines = show::pool_lines(pools, &show::idle_servers(pools), config);
    let labels = |line: &show::PoolLine| {
        [
            ("database", line.database.clone()),
            ("user", line.user.clone()),
        ]
    };
    type Column = (&'static str, &'static str, fn(&show::PoolLine) -> u64);
    let columns: [Column; 6] = [
        (
            "pools_client_active_connections",
            "Clients linked to a server or idle (cl_active)",
            |l| l.cl_active,
        ),
        (
            "pools_client_waiting_connections",
            "Clients waiting for a server (cl_waiting)",
            |l| u64::from(l.cl_waiting),
        ),
        (
            "pools_server_active_connections",
            "Server connections linked to a client (sv_active)",
            |l| u64::from(l.sv_active),
        ),
        (
            "pools_server_idle_connections",
            "Server connections idle and ready (sv_idle)",
            |l| u64::from(l.sv_idle),
        ),
        (
            "pools_server_used_connections",
            "Server connections idle past server_check_delay (sv_used)",
            |l| u64::from(l.sv_used),
        ),
        (
            "pools_server_login_connections",
            "Server connections logging in (sv_login)",
            |l| u64::from(l.sv_login),
        ),
    ];
    for (name, help, value) in columns {
        gauge(out, name, help, lines.iter().map(|l| (labels(l), value(l))))?;
    }
    gauge(
        out,
        "pools_client_maxwait_seconds",
        "How long the longest waiting client has waited (maxwait, maxwait_us)",
        lines.iter().map(|l| (labels(l), l.max_wait.as_secs_f64())),
    )
}

/// `SHOW STATS`' totals, one series per database.
fn encode_stats(
    out: &mut DescriptorEncoder,
    pools: &[Arc<crate::pool::Pool>],
    config: &Config,
) -> Result<(), fmt::Error> {
    use crate::pool::stats::Totals;
    let totals = show::totals_by_database(pools, config);
    let labels = |database: &String| [("database", database.clone())];
    type Column = (&'static str, &'static str, fn(&Totals) -> u64);
    let counts: [Column; 8] = [
        (
            "stats_server_assignments",
            "Times a server was assigned to a client (total_server_assignment_count)",
            |t| t.server_assignment_count,
        ),
        (
            "stats_sql_transactions_pooled",
            "Transactions pooled (total_xact_count)",
            |t| t.xact_count,
        ),
        (
            "stats_queries_pooled",
            "Queries pooled (total_query_count)",
            |t| t.query_count,
        ),
        (
            "stats_received_bytes",
            "Bytes received from clients (total_received)",
            |t| t.bytes_received,
        ),
        (
            "stats_sent_bytes",
            "Bytes sent to clients (total_sent)",
            |t| t.bytes_sent,
        ),
        (
            "stats_client_parses",
            "Parse messages from clients (total_client_parse_count)",
            |t| t.client_parse_count,
        ),
        (
            "stats_server_parses",
            "Parse messages sent to servers (total_server_parse_count)",
            |t| t.server_parse_count,
        ),
        ("stats_binds", "Bind messages (total_bind_count)", |t| {
            t.bind_count
        }),
    ];
    for (name, help, value) in counts {
        counter(
            out,
            name,
            help,
            totals.iter().map(|(d, t)| (labels(d), value(t))),
        )?;
    }
    let times: [Column; 3] = [
        (
            "stats_server_in_transaction_seconds",
            "Time spent in transactions (total_xact_time)",
            |t| t.xact_time_us,
        ),
        (
            "stats_queries_duration_seconds",
            "Time spent in queries (total_query_time)",
            |t| t.query_time_us,
        ),
        (
            "stats_client_wait_seconds",
            "Time clients waited for a server (total_wait_time)",
            |t| t.wait_time_us,
        ),
    ];
    for (name, help, value) in times {
        let rows = totals.iter().map(|(d, t)| (labels(d), seconds(value(t))));
        counter(out, name, help, rows)?;
    }
    Ok(())
}

/// Per pool (database, user, host): connects and the wait-time histogram.
fn encode_pool_counters(
    out: &mut DescriptorEncoder,
    pools: &[Arc<crate::pool::Pool>],
) -> Result<(), fmt::Error> {
    use crate::pool::PoolStats;
    use std::sync::atomic::AtomicU64;
    let labels = |pool: &crate::pool::Pool| {
        [
            ("database", pool.key.database.clone()),
            ("user", pool.key.user.clone()),
            ("host", pool.key.host.clone()),
        ]
    };
    type Column = (&'static str, &'static str, fn(&PoolStats) -> &AtomicU64);
    let columns: [Column; 4] = [
        ("server_connects", "Server connections opened", |s| {
            &s.server_connects
        }),
        (
            "server_connect_errors",
            "Server connection attempts that failed",
            |s| &s.server_connect_errors,
        ),
        (
            "server_reserve_pool_connects",
            "Server connections opened from the reserve pool",
            |s| &s.reserve_used,
        ),
        (
            "client_wait_timeouts",
            "Clients that gave up after query_wait_timeout",
            |s| &s.wait_timeouts,
        ),
    ];
    for (name, help, value) in columns {
        let rows = pools
            .iter()
            .map(|p| (labels(p), value(&p.stats).load(Relaxed)));
        counter(out, name, help, rows)?;
    }
    let mut histogram = out.encode_descriptor(
        "client_wait_seconds",
        "Time clients waited for a server connection, of the checkouts that had to wait",
        None,
        MetricType::Histogram,
    )?;
    for pool in pools {
        let stats = &pool.stats;
        let counts = stats.wait_buckets.each_ref().map(|b| b.load(Relaxed));
        let bounds = WAIT_BUCKETS_US
            .iter()
            .map(|&us| seconds(us))
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(counts).collect();
        let count = counts.iter().sum();
        let sum = seconds(stats.wait_time_us.load(Relaxed));
        let labels = labels(pool);
        histogram
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// Load balancing: per database with replicas, its hosts' health and
/// counts, and its read routing decisions.
fn encode_hosts(
    out: &mut DescriptorEncoder,
    shared: &Shared,
    config: &Config,
) -> Result<(), fmt::Error> {
    let databases: Vec<_> = config
        .databases
        .keys()
        .filter_map(|name| Some((name.clone(), shared.router.database(name)?)))
        .collect();
    let rows: Vec<_> = databases
        .iter()
        .flat_map(|(name, db)| db.hosts.rows().into_iter().map(move |row| (name, row)))
        .collect();
    let labels = |(database, row): &(&String, crate::balance::hosts::HostRow)| {
        [
            ("database", (*database).clone()),
            ("host", row.addr.clone()),
            ("role", row.role.to_string()),
        ]
    };
    use crate::balance::hosts::HostState;
    gauge(
        out,
        "host_up",
        "1: the host answered its last health check; 0: it did not, or was not checked yet",
        rows.iter()
            .map(|r| (labels(r), u32::from(r.1.state == HostState::Up))),
    )?;
    gauge(
        out,
        "host_replication_lag_bytes",
        "Bytes of WAL a replica has not replayed yet (where known)",
        rows.iter()
            .filter_map(|r| Some((labels(r), r.1.lag_bytes?))),
    )?;
    gauge(
        out,
        "host_replication_lag_seconds",
        "How long ago the primary was at a replica's replayed position (where known)",
        rows.iter()
            .filter_map(|r| Some((labels(r), r.1.lag_seconds?))),
    )?;
    gauge(
        out,
        "host_in_flight",
        "Requests running on the host now",
        rows.iter().map(|r| (labels(r), r.1.in_flight as u64)),
    )?;
    counter(
        out,
        "host_served",
        "Requests sent to the host (SHOW HOSTS served)",
        rows.iter().map(|r| (labels(r), r.1.served)),
    )?;

    let mut decisions = Vec::new();
    let mut position_reads = Vec::new();
    for (name, db) in &databases {
        let reads = &db.reads;
        for (decision, count) in [
            ("replica", &reads.replica),
            ("primary_sticky", &reads.primary_sticky),
            ("primary_lag", &reads.primary_lag),
            ("primary_unhealthy", &reads.primary_unhealthy),
        ] {
            let labels = [("database", name.clone()), ("decision", decision.into())];
            decisions.push((labels, count.load(Relaxed)));
        }
        for (how, count) in [
            ("pipelined", &db.lsn_reads.pipelined),
            ("separate", &db.lsn_reads.separate),
        ] {
            let labels = [("database", name.clone()), ("how", how.into())];
            position_reads.push((labels, count.load(Relaxed)));
        }
    }
    counter(
        out,
        "read_routing",
        "Reads routed: to a replica, or to the primary because no replica had replayed \
         the client's sticky position (primary_sticky), was within the lag limits \
         (primary_lag) or was up (primary_unhealthy)",
        decisions,
    )?;
    counter(
        out,
        "sticky_position_reads",
        "WAL position reads after writing transactions: in the same write as the \
         request that ended them (pipelined), or on a round trip of their own (separate)",
        position_reads,
    )
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// One gauge family; `()` as the labels of an unlabelled one.
fn gauge<L: Labels, V: EncodeGaugeValue>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, V)>,
) -> Result<(), fmt::Error> {
    let mut metric = out.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        match labels.set() {
            Some(set) => metric.encode_family(&set)?.encode_gauge(&value)?,
            None => metric.encode_gauge(&value)?,
        }
    }
    Ok(())
}

/// One counter family (its samples get `_total`).
fn counter<L: Labels, V: EncodeCounterValue>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, V)>,
) -> Result<(), fmt::Error> {
    let mut metric = out.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        match labels.set() {
            Some(set) => metric
                .encode_family(&set)?
                .encode_counter::<NoLabelSet, _, f64>(&value, None)?,
            None => metric.encode_counter::<NoLabelSet, _, f64>(&value, None)?,
        }
    }
    Ok(())
}

/// A series' labels: `()` for none, else an array of (name, value).
trait Labels {
    type Set: EncodeLabelSet;
    fn set(self) -> Option<Self::Set>;
}

impl Labels for () {
    type Set = [(&'static str, String); 0];
    fn set(self) -> Option<Self::Set> {
        None
    }
}

impl<const N: usize> Labels for [(&'static str, String); N] {
    type Set = Self;
    fn set(self) -> Option<Self> {
        Some(self)
    }
}
