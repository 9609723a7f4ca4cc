//! `SHOW DATABASES`, `SHOW USERS`, `SHOW LISTS`, `SHOW MEM` and Sluice's own
//! `SHOW HOSTS`: what is configured and how much of it is in use.

use super::pools::groups;
use super::*;

impl View {
    pub(super) fn databases(&self, config: &Config) -> Table {
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

    pub(super) fn users(&self, config: &Config) -> Table {
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

    pub(super) fn lists(&self, config: &Config) -> Table {
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
    pub(super) fn mem(&self) -> Table {
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
    pub(super) fn hosts(&self) -> Table {
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
