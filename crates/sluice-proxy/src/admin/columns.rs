//! The result columns of every `SHOW`, exactly as pgbouncer 1.25.2 sends them
//! (names, order and types; captured from the real thing, see
//! `tests/fixtures/pgbouncer-1.25-show-columns.txt`, which a test compares
//! with these).

use crate::protocol::ColumnType::{self, *};

/// A result column: its name and type.
pub type Column = (&'static str, ColumnType);

pub const POOLS: &[Column] = &[
    ("database", Text),
    ("user", Text),
    ("cl_active", Int4),
    ("cl_waiting", Int4),
    ("cl_active_cancel_req", Int4),
    ("cl_waiting_cancel_req", Int4),
    ("sv_active", Int4),
    ("sv_active_cancel", Int4),
    ("sv_being_canceled", Int4),
    ("sv_idle", Int4),
    ("sv_used", Int4),
    ("sv_tested", Int4),
    ("sv_login", Int4),
    ("maxwait", Int4),
    ("maxwait_us", Int4),
    ("pool_mode", Text),
    ("load_balance_hosts", Text),
];

pub const STATS: &[Column] = &[
    ("database", Text),
    ("total_server_assignment_count", Numeric),
    ("total_xact_count", Numeric),
    ("total_query_count", Numeric),
    ("total_received", Numeric),
    ("total_sent", Numeric),
    ("total_xact_time", Numeric),
    ("total_query_time", Numeric),
    ("total_wait_time", Numeric),
    ("total_client_parse_count", Numeric),
    ("total_server_parse_count", Numeric),
    ("total_bind_count", Numeric),
    ("avg_server_assignment_count", Numeric),
    ("avg_xact_count", Numeric),
    ("avg_query_count", Numeric),
    ("avg_recv", Numeric),
    ("avg_sent", Numeric),
    ("avg_xact_time", Numeric),
    ("avg_query_time", Numeric),
    ("avg_wait_time", Numeric),
    ("avg_client_parse_count", Numeric),
    ("avg_server_parse_count", Numeric),
    ("avg_bind_count", Numeric),
];

pub const STATS_TOTALS: &[Column] = &[
    ("database", Text),
    ("server_assignment_count", Numeric),
    ("xact_count", Numeric),
    ("query_count", Numeric),
    ("bytes_received", Numeric),
    ("bytes_sent", Numeric),
    ("xact_time", Numeric),
    ("query_time", Numeric),
    ("wait_time", Numeric),
    ("client_parse_count", Numeric),
    ("server_parse_count", Numeric),
    ("bind_count", Numeric),
];

pub const STATS_AVERAGES: &[Column] = &[
    ("database", Text),
    ("server_assignment_count", Numeric),
    ("xact_count", Numeric),
    ("query_count", Numeric),
    ("bytes_received", Numeric),
    ("bytes_sent", Numeric),
    ("xact_time", Numeric),
    ("query_time", Numeric),
    ("wait_time", Numeric),
    ("avg_client_parse_count", Numeric),
    ("avg_server_parse_count", Numeric),
    ("avg_bind_count", Numeric),
];

pub const CLIENTS: &[Column] = &[
    ("type", Text),
    ("user", Text),
    ("database", Text),
    ("replication", Text),
    ("state", Text),
    ("addr", Text),
    ("port", Int4),
    ("local_addr", Text),
    ("local_port", Int4),
    ("connect_time", Text),
    ("request_time", Text),
    ("wait", Int4),
    ("wait_us", Int4),
    ("close_needed", Int4),
    ("ptr", Text),
    ("link", Text),
    ("remote_pid", Int4),
    ("tls", Text),
    ("application_name", Text),
    ("prepared_statements", Int4),
    ("id", Int4),
];

pub const SERVERS: &[Column] = &[
    ("type", Text),
    ("user", Text),
    ("database", Text),
    ("replication", Text),
    ("state", Text),
    ("addr", Text),
    ("port", Int4),
    ("local_addr", Text),
    ("local_port", Int4),
    ("connect_time", Text),
    ("request_time", Text),
    ("wait", Int4),
    ("wait_us", Int4),
    ("close_needed", Int4),
    ("ptr", Text),
    ("link", Text),
    ("remote_pid", Int4),
    ("tls", Text),
    ("application_name", Text),
    ("prepared_statements", Int4),
    ("id", Int4),
];

pub const DATABASES: &[Column] = &[
    ("name", Text),
    ("host", Text),
    ("port", Int4),
    ("database", Text),
    ("force_user", Text),
    ("pool_size", Int4),
    ("min_pool_size", Int4),
    ("reserve_pool_size", Int4),
    ("server_lifetime", Int4),
    ("pool_mode", Text),
    ("load_balance_hosts", Text),
    ("max_connections", Int4),
    ("current_connections", Int4),
    ("max_client_connections", Int4),
    ("current_client_connections", Int4),
    ("paused", Int4),
    ("disabled", Int4),
];

pub const USERS: &[Column] = &[
    ("name", Text),
    ("pool_size", Text),
    ("reserve_pool_size", Text),
    ("pool_mode", Text),
    ("max_user_connections", Int4),
    ("current_connections", Int4),
    ("max_user_client_connections", Int4),
    ("current_client_connections", Int4),
];

pub const CONFIG: &[Column] = &[
    ("key", Text),
    ("value", Text),
    ("default", Text),
    ("changeable", Text),
];

pub const LISTS: &[Column] = &[("list", Text), ("items", Int4)];

pub const STATE: &[Column] = &[("key", Text), ("value", Text)];

pub const VERSION: &[Column] = &[("version", Text)];

pub const MEM: &[Column] = &[
    ("name", Text),
    ("size", Int4),
    ("used", Int4),
    ("free", Int4),
    ("memtotal", Int4),
];

pub const FDS: &[Column] = &[
    ("fd", Int4),
    ("task", Text),
    ("user", Text),
    ("database", Text),
    ("addr", Text),
    ("port", Int4),
    ("cancel", Int8),
    ("link", Int4),
    ("client_encoding", Text),
    ("std_strings", Text),
    ("datestyle", Text),
    ("timezone", Text),
    ("password", Text),
    ("scram_client_key", Bytea),
    ("scram_server_key", Bytea),
];

pub const SOCKETS: &[Column] = &[
    ("type", Text),
    ("user", Text),
    ("database", Text),
    ("replication", Text),
    ("state", Text),
    ("addr", Text),
    ("port", Int4),
    ("local_addr", Text),
    ("local_port", Int4),
    ("connect_time", Text),
    ("request_time", Text),
    ("wait", Int4),
    ("wait_us", Int4),
    ("close_needed", Int4),
    ("ptr", Text),
    ("link", Text),
    ("remote_pid", Int4),
    ("tls", Text),
    ("application_name", Text),
    ("prepared_statements", Int4),
    ("id", Int4),
    ("recv_pos", Int4),
    ("pkt_pos", Int4),
    ("pkt_remain", Int4),
    ("send_pos", Int4),
    ("send_remain", Int4),
    ("pkt_avail", Int4),
    ("send_avail", Int4),
];

pub const ACTIVE_SOCKETS: &[Column] = &[
    ("type", Text),
    ("user", Text),
    ("database", Text),
    ("replication", Text),
    ("state", Text),
    ("addr", Text),
    ("port", Int4),
    ("local_addr", Text),
    ("local_port", Int4),
    ("connect_time", Text),
    ("request_time", Text),
    ("wait", Int4),
    ("wait_us", Int4),
    ("close_needed", Int4),
    ("ptr", Text),
    ("link", Text),
    ("remote_pid", Int4),
    ("tls", Text),
    ("application_name", Text),
    ("prepared_statements", Int4),
    ("id", Int4),
    ("recv_pos", Int4),
    ("pkt_pos", Int4),
    ("pkt_remain", Int4),
    ("send_pos", Int4),
    ("send_remain", Int4),
    ("pkt_avail", Int4),
    ("send_avail", Int4),
];

pub const DNS_HOSTS: &[Column] = &[("hostname", Text), ("ttl", Int8), ("addrs", Text)];

pub const DNS_ZONES: &[Column] = &[("zonename", Text), ("serial", Int8), ("count", Int4)];

pub const PEERS: &[Column] = &[
    ("peer_id", Int4),
    ("host", Text),
    ("port", Int4),
    ("pool_size", Int4),
];

pub const PEER_POOLS: &[Column] = &[
    ("peer_id", Int4),
    ("cl_active_cancel_req", Int4),
    ("cl_waiting_cancel_req", Int4),
    ("sv_active_cancel", Int4),
    ("sv_login", Int4),
];

pub const TOTALS: &[Column] = &[("name", Text), ("value", Numeric)];

/// Every command with its columns, for the comparison test.
pub const ALL: &[(&str, &[Column])] = &[
    ("POOLS", POOLS),
    ("STATS", STATS),
    ("STATS_TOTALS", STATS_TOTALS),
    ("STATS_AVERAGES", STATS_AVERAGES),
    ("CLIENTS", CLIENTS),
    ("SERVERS", SERVERS),
    ("DATABASES", DATABASES),
    ("USERS", USERS),
    ("CONFIG", CONFIG),
    ("LISTS", LISTS),
    ("STATE", STATE),
    ("VERSION", VERSION),
    ("MEM", MEM),
    ("FDS", FDS),
    ("SOCKETS", SOCKETS),
    ("ACTIVE_SOCKETS", ACTIVE_SOCKETS),
    ("DNS_HOSTS", DNS_HOSTS),
    ("DNS_ZONES", DNS_ZONES),
    ("PEERS", PEERS),
    ("PEER_POOLS", PEER_POOLS),
    ("TOTALS", TOTALS),
];
