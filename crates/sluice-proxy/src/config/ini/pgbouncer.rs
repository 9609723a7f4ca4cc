//! The one table of pgbouncer's settings: for every setting pgbouncer 1.25
//! reads (its `[pgbouncer]` keys from `src/main.c`, its `[databases]` and
//! `[users]` parameters from `src/loader.c`), the TOML key the gateway reads
//! it as, or why the gateway cannot.

use self::Kind::*;
use self::Place::*;

/// Where pgbouncer reads a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// A `key = value` line of `[pgbouncer]`.
    Pgbouncer,
    /// A parameter of a `[databases]` line: `app = host=db pool_size=20`.
    Database,
    /// A parameter of a `[users]` line: `batch = pool_mode=session`.
    User,
}

/// How pgbouncer reads a value, and so what TOML value it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "Flag is for pgbouncer's 0/1 settings, none of which the gateway has yet"
)]
pub(super) enum Kind {
    /// A C integer, as pgbouncer's `strtol(value, 0)` reads it: `20`, `0x14`, `024` (octal).
    Integer,
    /// A number in a `[databases]` or `[users]` line, read with `atoi`:
    /// decimal digits only (seconds there are whole seconds, so `Decimal` too).
    Decimal,
    /// Seconds, fractions allowed (`strtod`), never negative.
    Seconds,
    /// Text as written.
    Text,
    /// A server to connect to over TCP: a Unix socket (`/dir`, `@name`)
    /// or a list of hosts (`a,b`) is refused.
    Host,
    /// One of pgbouncer's words, in any case (`strcasecmp`); written in lower case.
    Keyword,
    /// A comma-separated list of names: a TOML array of strings.
    List,
    /// A 0/1 switch (pgbouncer's integer flags): a TOML boolean.
    Flag,
}

/// What the gateway does with a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// Read as this TOML key: a dotted path from the top for `[pgbouncer]`
    /// (`proxy.listen_port`), a key of `[databases.NAME]` or `[users.NAME]`
    /// for their parameters.
    Toml(&'static str, Kind),
    /// Known to pgbouncer, not done by the gateway; the text says what to do
    /// instead (may be empty).
    Unsupported(&'static str),
}

#[derive(Debug)]
pub(super) struct Setting {
    pub place: Place,
    pub name: &'static str,
    pub target: Target,
}

const fn to(place: Place, name: &'static str, key: &'static str, kind: Kind) -> Setting {
    Setting {
        place,
        name,
        target: Target::Toml(key, kind),
    }
}

const fn no(place: Place, name: &'static str, instead: &'static str) -> Setting {
    Setting {
        place,
        name,
        target: Target::Unsupported(instead),
    }
}

const NO_TLS: &str = "not a rustls setting (rustls picks its own key exchange and TLS 1.3 suites)";
const STDERR: &str = "sluice logs to stderr; RUST_LOG sets how much";
const AUTH_FILE_ONLY: &str = "users and passwords come from auth_file only";
const TCP_ONLY: &str = "sluice listens on TCP only";
const NO_DAEMON: &str = "sluice does not daemonize: run it under a service manager";
const NO_SETUID: &str = "sluice does not switch users: start it as the user it should run as";
const NO_FORCED_USER: &str = "a forced server user: sluice logs in to servers as the client's user";
const NO_FORCED_PASSWORD: &str = "sluice logs in to servers with the client user's auth_file entry";
const CLIENT_PARAMETERS: &str = "clients' own startup parameters are applied";
const GLOBAL_RESERVE: &str = "only [pgbouncer] reserve_pool_size";
const GLOBAL_MIN_POOL: &str = "only [pgbouncer] min_pool_size";

/// Every setting of pgbouncer 1.25, in its source's order per place.
///
/// When the gateway learns a setting, turn its `no(...)` line into a
/// `to(...)` line naming the TOML key and the kind of value: that one line is
/// all `--config pgbouncer.ini` and `--print-toml` need (the tests check that
/// every `to` key is one the TOML configuration accepts).
#[rustfmt::skip]
pub(super) const SETTINGS: &[Setting] = &[
    to(Pgbouncer, "admin_users",              "proxy.admin_users", List),
    no(Pgbouncer, "application_name_add_host",  ""),
    to(Pgbouncer, "auth_dbname",                "proxy.auth_dbname", Text),
    to(Pgbouncer, "auth_file",                  "proxy.auth_file", Text),
    to(Pgbouncer, "auth_hba_file",              "proxy.auth_hba_file", Text),
    no(Pgbouncer, "auth_ident_file",            AUTH_FILE_ONLY),
    no(Pgbouncer, "auth_ldap_options",          AUTH_FILE_ONLY),
    to(Pgbouncer, "auth_query",                 "proxy.auth_query", Text),
    to(Pgbouncer, "auth_type",                  "proxy.auth_type", Keyword),
    to(Pgbouncer, "auth_user",                  "proxy.auth_user", Text),
    no(Pgbouncer, "autodb_idle_timeout",        ""),
    no(Pgbouncer, "cancel_wait_timeout",        ""),
    to(Pgbouncer, "client_idle_timeout",      "proxy.client_idle_timeout", Seconds),
    to(Pgbouncer, "client_login_timeout",       "proxy.client_login_timeout", Seconds),
    no(Pgbouncer, "client_tls13_ciphers",       NO_TLS),
    to(Pgbouncer, "client_tls_ca_file", "proxy.client_tls_ca_file", Text),
    to(Pgbouncer, "client_tls_cert_file", "proxy.client_tls_cert_file", Text),
    to(Pgbouncer, "client_tls_ciphers", "proxy.client_tls_ciphers", Text),
    no(Pgbouncer, "client_tls_dheparams",       NO_TLS),
    no(Pgbouncer, "client_tls_ecdhcurve",       NO_TLS),
    to(Pgbouncer, "client_tls_key_file", "proxy.client_tls_key_file", Text),
    to(Pgbouncer, "client_tls_protocols", "proxy.client_tls_protocols", Text),
    to(Pgbouncer, "client_tls_sslmode", "proxy.client_tls_sslmode", Keyword),
    no(Pgbouncer, "conffile",                   ""),
    to(Pgbouncer, "default_pool_size",          "proxy.default_pool_size", Integer),
    no(Pgbouncer, "disable_pqexec",             ""),
    no(Pgbouncer, "dns_max_ttl",                ""),
    no(Pgbouncer, "dns_nxdomain_ttl",           ""),
    no(Pgbouncer, "dns_zone_check_period",      ""),
    to(Pgbouncer, "idle_transaction_timeout", "proxy.idle_transaction_timeout", Seconds),
    no(Pgbouncer, "ignore_startup_parameters",  ""),
    no(Pgbouncer, "job_name",                   ""),
    to(Pgbouncer, "listen_addr",                "proxy.listen_addr", Text),
    no(Pgbouncer, "listen_backlog",             ""),
    to(Pgbouncer, "listen_port",                "proxy.listen_port", Integer),
    no(Pgbouncer, "log_connections",            STDERR),
    no(Pgbouncer, "log_disconnections",         STDERR),
    no(Pgbouncer, "log_pooler_errors",          STDERR),
    no(Pgbouncer, "log_stats",                  STDERR),
    no(Pgbouncer, "logfile",                    STDERR),
    to(Pgbouncer, "max_client_conn",            "proxy.max_client_conn", Integer),
    to(Pgbouncer, "max_db_client_connections", "proxy.max_db_client_connections", Integer),
    to(Pgbouncer, "max_db_connections",       "proxy.max_db_connections", Integer),
    to(Pgbouncer, "max_packet_size",            "proxy.max_packet_size", Integer),
    to(Pgbouncer, "max_prepared_statements",    "proxy.max_prepared_statements", Integer),
    to(Pgbouncer, "max_user_client_connections", "proxy.max_user_client_connections", Integer),
    to(Pgbouncer, "max_user_connections",     "proxy.max_user_connections", Integer),
    to(Pgbouncer, "min_pool_size",              "proxy.min_pool_size", Integer),
    no(Pgbouncer, "peer_id",                    "no peering"),
    no(Pgbouncer, "pidfile",                    NO_DAEMON),
    no(Pgbouncer, "pkt_buf",                    ""),
    to(Pgbouncer, "pool_mode",                  "proxy.pool_mode", Keyword),
    to(Pgbouncer, "query_timeout",            "proxy.query_timeout", Seconds),
    no(Pgbouncer, "query_wait_notify",          ""),
    to(Pgbouncer, "query_wait_timeout",         "proxy.query_wait_timeout", Seconds),
    to(Pgbouncer, "reserve_pool_size",          "proxy.reserve_pool_size", Integer),
    to(Pgbouncer, "reserve_pool_timeout",       "proxy.reserve_pool_timeout", Seconds),
    no(Pgbouncer, "resolv_conf",                ""),
    no(Pgbouncer, "sbuf_loopcnt",               ""),
    no(Pgbouncer, "scram_iterations",           ""),
    to(Pgbouncer, "server_check_delay",       "proxy.server_check_delay", Seconds),
    to(Pgbouncer, "server_check_query",       "proxy.server_check_query", Text),
    to(Pgbouncer, "server_connect_timeout",     "proxy.server_connect_timeout", Seconds),
    no(Pgbouncer, "server_fast_close",          ""),
    to(Pgbouncer, "server_idle_timeout",        "proxy.server_idle_timeout", Seconds),
    to(Pgbouncer, "server_lifetime",          "proxy.server_lifetime", Seconds),
    no(Pgbouncer, "server_login_retry",         ""),
    to(Pgbouncer, "server_reset_query",         "proxy.server_reset_query", Text),
    no(Pgbouncer, "server_reset_query_always",  ""),
    no(Pgbouncer, "server_round_robin",         ""),
    no(Pgbouncer, "server_tls13_ciphers",       NO_TLS),
    to(Pgbouncer, "server_tls_ca_file", "proxy.server_tls_ca_file", Text),
    to(Pgbouncer, "server_tls_cert_file", "proxy.server_tls_cert_file", Text),
    to(Pgbouncer, "server_tls_ciphers", "proxy.server_tls_ciphers", Text),
    to(Pgbouncer, "server_tls_key_file", "proxy.server_tls_key_file", Text),
    to(Pgbouncer, "server_tls_protocols", "proxy.server_tls_protocols", Text),
    to(Pgbouncer, "server_tls_sslmode", "proxy.server_tls_sslmode", Keyword),
    no(Pgbouncer, "so_reuseport",               ""),
    to(Pgbouncer, "stats_period",             "proxy.stats_period", Integer),
    to(Pgbouncer, "stats_users",              "proxy.stats_users", List),
    no(Pgbouncer, "suspend_timeout",            ""),
    no(Pgbouncer, "syslog",                     STDERR),
    no(Pgbouncer, "syslog_facility",            STDERR),
    no(Pgbouncer, "syslog_ident",               STDERR),
    no(Pgbouncer, "tcp_defer_accept",           ""),
    no(Pgbouncer, "tcp_keepalive",              ""),
    no(Pgbouncer, "tcp_keepcnt",                ""),
    no(Pgbouncer, "tcp_keepidle",               ""),
    no(Pgbouncer, "tcp_keepintvl",              ""),
    no(Pgbouncer, "tcp_socket_buffer",          ""),
    no(Pgbouncer, "tcp_user_timeout",           ""),
    no(Pgbouncer, "track_extra_parameters",     ""),
    no(Pgbouncer, "transaction_timeout",        ""),
    no(Pgbouncer, "unix_socket_dir",            TCP_ONLY),
    no(Pgbouncer, "unix_socket_group",          TCP_ONLY),
    no(Pgbouncer, "unix_socket_mode",           TCP_ONLY),
    no(Pgbouncer, "user",                       NO_SETUID),
    no(Pgbouncer, "verbose",                    STDERR),
    // A [databases] line's parameters.
    to(Database,  "dbname",                     "dbname", Text),
    to(Database,  "host",                       "host", Host),
    to(Database,  "port",                       "port", Decimal),
    no(Database,  "user",                       NO_FORCED_USER),
    no(Database,  "password",                   NO_FORCED_PASSWORD),
    to(Database,  "auth_user",                  "auth_user", Text),
    to(Database,  "auth_dbname",                "auth_dbname", Text),
    no(Database,  "client_encoding",            CLIENT_PARAMETERS),
    no(Database,  "datestyle",                  CLIENT_PARAMETERS),
    no(Database,  "timezone",                   CLIENT_PARAMETERS),
    to(Database,  "pool_size",                  "pool_size", Decimal),
    no(Database,  "min_pool_size",              GLOBAL_MIN_POOL),
    no(Database,  "reserve_pool",               GLOBAL_RESERVE),
    no(Database,  "reserve_pool_size",          GLOBAL_RESERVE),
    to(Database,  "max_db_connections",       "max_db_connections", Decimal),
    to(Database,  "max_db_client_connections", "max_db_client_connections", Decimal),
    no(Database,  "server_lifetime",            ""),
    no(Database,  "load_balance_hosts",         "one host per database"),
    to(Database,  "pool_mode",                  "pool_mode", Keyword),
    no(Database,  "connect_query",              ""),
    no(Database,  "application_name",           CLIENT_PARAMETERS),
    to(Database,  "auth_query",                 "auth_query", Text),
    // A [users] line's parameters.
    to(User,      "pool_mode",                  "pool_mode", Keyword),
    to(User,      "pool_size",                  "pool_size", Decimal),
    no(User,      "reserve_pool_size",          GLOBAL_RESERVE),
    to(User,      "max_user_connections",     "max_user_connections", Decimal),
    no(User,      "transaction_timeout",        ""),
    no(User,      "idle_transaction_timeout",   ""),
    no(User,      "query_timeout",              ""),
    no(User,      "client_idle_timeout",        ""),
    to(User,      "max_user_client_connections", "max_user_client_connections", Decimal),
];

/// The setting `name` of `place`, if pgbouncer has one.
pub(super) fn find(place: Place, name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.place == place && s.name == name)
}

/// The known setting of `place` closest to a misspelt `name`, if one is close enough.
pub(super) fn nearest(place: Place, name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    SETTINGS
        .iter()
        .filter(|s| s.place == place)
        .map(|s| (strsim::jaro_winkler(&name, s.name), s.name))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, known)| known)
}
