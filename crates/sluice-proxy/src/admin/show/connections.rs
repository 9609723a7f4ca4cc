//! `SHOW CLIENTS`, `SHOW SERVERS` and `SHOW SOCKETS`: one row per connection,
//! in the states pgbouncer names.

use super::*;

impl View {
    /// A client's state as `SHOW CLIENTS` names it, and how long it has waited.
    pub(super) fn client_state(&self, client: &ClientEntry) -> (&'static str, Duration) {
        if client.server().is_some() {
            return ("active", Duration::ZERO);
        }
        match self.waiting.get(&(Arc::as_ptr(&client.wait_slot) as usize)) {
            Some(waited) => ("waiting", *waited),
            None => ("idle", Duration::ZERO),
        }
    }

    pub(super) fn client_row(
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
            v(&*client.tls),
            v(&*client
                .application_name
                .lock()
                .unwrap_or_else(|e| e.into_inner())),
            v(client.prepared_statements.load(Relaxed)),
            v(client.id),
        ]
    }

    pub(super) fn clients(&self) -> Table {
        let mut table = Table::new(columns::CLIENTS);
        for client in &self.clients {
            let (state, waited) = self.client_state(client);
            table.push(self.client_row(client, state, waited));
        }
        table
    }

    /// A server connection's state as `SHOW SERVERS` names it.
    pub(super) fn server_state(&self, pool: &Pool, server: &ServerInfo) -> &'static str {
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

    pub(super) fn server_row(
        &self,
        pool: &Pool,
        server: &ServerInfo,
        state: &str,
    ) -> Vec<Option<String>> {
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

    pub(super) fn servers(&self) -> Table {
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
    pub(super) fn sockets(&self, active_only: bool) -> Table {
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
}
