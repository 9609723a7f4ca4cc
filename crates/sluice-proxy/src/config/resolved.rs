//! The resolved configuration written back as TOML: what `sluice proxy --check`
//! shows and `--print-toml` turns a pgbouncer INI file into.

use std::fmt;

use super::Config;
use crate::tls::{Side, Written};

/// The resolved settings, as `sluice proxy --check` prints them.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.proxy;
        writeln!(f, "# resolved from {}", self.path.display())?;
        writeln!(f, "[proxy]")?;
        writeln!(f, "listen_addr = \"{}\"", p.listen_addr.get_ref())?;
        writeln!(f, "listen_port = {}", p.listen_port)?;
        writeln!(f, "pool_mode = \"{}\"", p.pool_mode)?;
        writeln!(f, "max_client_conn = {}", p.max_client_conn)?;
        writeln!(f, "default_pool_size = {}", p.default_pool_size.get_ref())?;
        writeln!(f, "min_pool_size = {}", p.min_pool_size)?;
        writeln!(f, "reserve_pool_size = {}", p.reserve_pool_size)?;
        writeln!(f, "reserve_pool_timeout = {}", p.reserve_pool_timeout)?;
        writeln!(f, "server_idle_timeout = {}", p.server_idle_timeout)?;
        writeln!(f, "query_wait_timeout = {}", p.query_wait_timeout)?;
        writeln!(f, "server_connect_timeout = {}", p.server_connect_timeout)?;
        writeln!(f, "client_login_timeout = {}", p.client_login_timeout)?;
        writeln!(f, "auth_type = \"{}\"", p.auth_type)?;
        if let Some(file) = &p.auth_file {
            writeln!(
                f,
                "auth_file = \"{}\"  # {} users",
                file.get_ref(),
                self.auth.len()
            )?;
        }
        if let (Some(file), Some(hba)) = (&p.auth_hba_file, &self.hba) {
            writeln!(
                f,
                "auth_hba_file = \"{}\"  # {} rules",
                file.get_ref(),
                hba.rules().len()
            )?;
        }
        for side in [Side::Client, Side::Server] {
            let (prefix, written) = (side.prefix(), Written::of(side, p));
            writeln!(f, "{prefix}_tls_sslmode = \"{}\"", written.mode)?;
            for (name, file) in written.files {
                if let Some(file) = file {
                    writeln!(f, "{prefix}_tls_{name} = {file:?}")?;
                }
            }
            writeln!(f, "{prefix}_tls_protocols = {:?}", written.protocols)?;
            writeln!(f, "{prefix}_tls_ciphers = {:?}", written.ciphers)?;
        }
        if let Some(user) = &p.auth_user {
            writeln!(f, "auth_user = {user:?}")?;
        }
        if p.auth_user.is_some() || p.auth_query != super::DEFAULT_AUTH_QUERY {
            writeln!(f, "auth_query = {:?}", p.auth_query)?;
        }
        if let Some(name) = &p.auth_dbname {
            writeln!(f, "auth_dbname = {:?}", name.get_ref())?;
        }
        writeln!(f, "server_reset_query = {:?}", p.server_reset_query)?;
        writeln!(f, "max_prepared_statements = {}", p.max_prepared_statements)?;
        writeln!(f, "max_packet_size = {}", p.max_packet_size.get_ref())?;
        writeln!(f, "worker_threads = {}", p.worker_threads)?;
        writeln!(f, "admin_users = {:?}", p.admin_users)?;
        writeln!(f, "stats_users = {:?}", p.stats_users)?;
        writeln!(f, "max_db_connections = {}", p.max_db_connections)?;
        writeln!(f, "max_user_connections = {}", p.max_user_connections)?;
        writeln!(
            f,
            "max_db_client_connections = {}",
            p.max_db_client_connections
        )?;
        writeln!(
            f,
            "max_user_client_connections = {}",
            p.max_user_client_connections
        )?;
        writeln!(f, "query_timeout = {}", p.query_timeout)?;
        writeln!(
            f,
            "idle_transaction_timeout = {}",
            p.idle_transaction_timeout
        )?;
        writeln!(f, "client_idle_timeout = {}", p.client_idle_timeout)?;
        writeln!(f, "server_lifetime = {}", p.server_lifetime)?;
        writeln!(f, "server_check_query = {:?}", p.server_check_query)?;
        writeln!(f, "server_check_delay = {}", p.server_check_delay)?;
        writeln!(f, "stats_period = {}", p.stats_period)?;
        writeln!(f, "shutdown_timeout = {}", p.shutdown_timeout)?;
        writeln!(f, "metrics_listen_addr = {:?}", p.metrics_listen_addr)?;
        writeln!(f, "metrics_port = {}", p.metrics_port)?;
        writeln!(f, "console_legacy_columns = {}", p.console_legacy_columns)?;
        for (name, db) in &self.databases {
            let s = self.pool_settings(name, "").expect("configured database");
            writeln!(f, "\n[databases.{name}]")?;
            writeln!(f, "host = \"{}\"", db.host)?;
            writeln!(f, "port = {}", db.port)?;
            writeln!(f, "dbname = \"{}\"", s.dbname)?;
            writeln!(f, "pool_size = {}", s.pool_size)?;
            writeln!(f, "pool_mode = \"{}\"", s.pool_mode)?;
            if let Some(max) = db.max_db_connections {
                writeln!(f, "max_db_connections = {max}")?;
            }
            if let Some(max) = db.max_db_client_connections {
                writeln!(f, "max_db_client_connections = {max}")?;
            }
            if let Some(user) = &db.auth_user {
                writeln!(f, "auth_user = {user:?}")?;
            }
            if let Some(query) = &db.auth_query {
                writeln!(f, "auth_query = {query:?}")?;
            }
            if let Some(name) = &db.auth_dbname {
                writeln!(f, "auth_dbname = {:?}", name.get_ref())?;
            }
            if !db.replicas.is_empty() {
                let list: Vec<String> = db.replicas.iter().map(|r| format!("\"{r}\"")).collect();
                writeln!(f, "replicas = [{}]", list.join(", "))?;
            }
        }
        let lb = &self.load_balancing;
        writeln!(f, "\n[load_balancing]")?;
        writeln!(f, "enabled = {}", lb.enabled)?;
        writeln!(
            f,
            "replica_check_interval = {}",
            lb.replica_check_interval.as_secs_f64()
        )?;
        writeln!(
            f,
            "max_replication_lag_bytes = {}",
            lb.max_replication_lag_bytes
        )?;
        writeln!(
            f,
            "max_replication_lag_time = {}",
            lb.max_replication_lag_time.as_secs_f64()
        )?;
        writeln!(f, "sticky = \"{}\"", lb.sticky)?;
        writeln!(f, "sticky_ttl = {}", lb.sticky_ttl.as_secs_f64())?;
        writeln!(f, "sticky_store = \"{}\"", lb.sticky_store)?;
        writeln!(f, "primary_only_users = {:?}", lb.primary_only_users)?;
        match (&lb.health_check_user, self.health_check_user()) {
            (Some(user), _) => writeln!(f, "health_check_user = \"{user}\"")?,
            (None, Some(user)) => writeln!(f, "# replicas are checked as user \"{user}\"")?,
            (None, None) => {}
        }
        for (name, user) in &self.users {
            writeln!(f, "\n[users.{name}]")?;
            if let Some(size) = &user.pool_size {
                writeln!(f, "pool_size = {}", size.get_ref())?;
            }
            if let Some(mode) = user.pool_mode {
                writeln!(f, "pool_mode = \"{mode}\"")?;
            }
            if let Some(max) = user.max_user_connections {
                writeln!(f, "max_user_connections = {max}")?;
            }
            if let Some(max) = user.max_user_client_connections {
                writeln!(f, "max_user_client_connections = {max}")?;
            }
        }
        Ok(())
    }
}
