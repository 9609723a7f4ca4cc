//! The console commands that change things, in pgbouncer 1.25's words:
//! `PAUSE`, `RESUME`, `SUSPEND`, `RECONNECT`, `WAIT_CLOSE`, `DISABLE`,
//! `ENABLE`, `KILL`, `KILL_CLIENT`, `RELOAD`, `SET` and `SHUTDOWN`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use super::command::{Command, ShutdownMode};
use super::{is_console, Answer, Console, ConsoleError};
use crate::config::settings;
use crate::pool::Pool;
use crate::protocol::{self, sqlstate};
use crate::state::Shutdown;

/// How often a blocking command (`PAUSE`, `WAIT_CLOSE`) looks again.
const POLL: Duration = Duration::from_millis(20);

pub async fn run(console: &Console<'_>, command: Command, out: &mut BytesMut) -> Answer {
    let shared = &console.shared;
    let state = &shared.state;
    let tag = match command {
        Command::Pause(database) => {
            check_database(console, database.as_deref(), "pause")?;
            let already = state.is_paused_all()
                || state.is_suspended()
                || database
                    .as_deref()
                    .is_some_and(|db| state.database(db).paused);
            if already {
                return Err(ConsoleError::new("already suspended/paused"));
            }
            state.pause(database.as_deref(), false);
            // Like pgbouncer: wait for every running transaction to end,
            // then close the servers.
            while clients_holding_servers(console, database.as_deref()) {
                tokio::time::sleep(POLL).await;
            }
            for pool in pools_of(console, database.as_deref()) {
                pool.close_idle();
            }
            "PAUSE"
        }
        Command::Resume(None) => {
            if state.shutdown() != Shutdown::No {
                return Err(ConsoleError::new("pooler is shutting down"));
            }
            if !state.is_paused_all() && !state.is_suspended() {
                return Err(ConsoleError::new("pooler is not paused/suspended"));
            }
            state.resume(None);
            "RESUME"
        }
        Command::Resume(Some(database)) => {
            check_database(console, Some(&database), "resume")?;
            if !state.database(&database).paused {
                return Err(ConsoleError::new(format!(
                    "database {database} is not paused"
                )));
            }
            state.resume(Some(&database));
            "RESUME"
        }
        Command::Suspend => {
            if state.is_paused_all() || state.is_suspended() {
                return Err(ConsoleError::new("already suspended/paused"));
            }
            let config = shared.config();
            if config.databases.keys().any(|db| state.database(db).paused) {
                return Err(ConsoleError::new("cannot suspend with paused databases"));
            }
            state.pause(None, true);
            "SUSPEND"
        }
        Command::Reconnect(database) => {
            check_database(console, database.as_deref(), "reconnect")?;
            for pool in pools_of(console, database.as_deref()) {
                pool.retire();
            }
            "RECONNECT"
        }
        Command::WaitClose(database) => {
            check_database(console, database.as_deref(), "wait in")?;
            let pools = pools_of(console, database.as_deref());
            while pools.iter().any(|pool| {
                pool.servers
                    .all()
                    .iter()
                    .any(|s| s.close_needed.load(Relaxed))
            }) {
                tokio::time::sleep(POLL).await;
            }
            "WAIT_CLOSE"
        }
        Command::Disable(database) => {
            check_database(console, Some(&database), "disable")?;
            state.set_disabled(&database, true);
            "DISABLE"
        }
        Command::Enable(database) => {
            // (pgbouncer says "disable" here too.)
            check_database(console, Some(&database), "disable")?;
            state.set_disabled(&database, false);
            "ENABLE"
        }
        Command::Kill(database) => {
            check_database(console, database.as_deref(), "kill")?;
            let already = match database.as_deref() {
                Some(db) => state.database(db).paused,
                None => state.is_paused_all() || state.is_suspended(),
            };
            if already {
                return Err(ConsoleError::new("already suspended/paused"));
            }
            state.pause(database.as_deref(), false);
            for client in shared.clients.all() {
                let of_database = database.as_deref().is_none_or(|db| client.database == db);
                if of_database && client.pool.is_some() {
                    client.kill(sqlstate::PROTOCOL_VIOLATION, "database removed");
                }
            }
            for pool in pools_of(console, database.as_deref()) {
                pool.retire();
            }
            "KILL"
        }
        Command::KillClient(id) => {
            let client = shared.clients.all().into_iter().find(|c| c.id == id);
            let Some(client) = client else {
                return Err(ConsoleError::new("client not found"));
            };
            client.kill(sqlstate::PROTOCOL_VIOLATION, "admin forced disconnect");
            "KILL_CLIENT"
        }
        Command::Reload => {
            shared.reload().map_err(|_| ConsoleError {
                code: "F0000",
                message: "RELOAD failed, see logs for additional details".into(),
            })?;
            "RELOAD"
        }
        Command::Set { key, value } => {
            let failed = || ConsoleError::new("SET failed");
            let setting = settings::find(&key).ok_or_else(failed)?;
            let current = shared.config();
            let mut next = (*current).clone();
            setting.set(&mut next.proxy, &value).map_err(|_| failed())?;
            // pgbouncer accepts a setting that needs a restart and changes
            // nothing.
            if setting.changeable {
                next.check_runtime_settings().map_err(|_| failed())?;
                // What the settings derive (TLS from the files they name) is
                // derived again, as a reload would.
                next.load_tls().map_err(|_| failed())?;
                shared.apply(next);
            }
            protocol::command_complete(out, &format!("SET {key}={value}"));
            return Ok(());
        }
        Command::Shutdown(mode) => {
            let mode = match mode {
                ShutdownMode::Immediate => Shutdown::Immediate,
                ShutdownMode::WaitForServers => Shutdown::WaitForServers,
                ShutdownMode::WaitForClients => Shutdown::Drain,
            };
            tracing::info!(?mode, "SHUTDOWN from the console");
            state.begin_shutdown(mode);
            "SHUTDOWN"
        }
        Command::Show(_) => unreachable!("SHOW is answered by show.rs"),
    };
    protocol::command_complete(out, tag);
    Ok(())
}

/// A command's database argument must be configured, and not the console.
fn check_database(console: &Console<'_>, database: Option<&str>, verb: &str) -> Answer {
    let Some(database) = database else {
        return Ok(());
    };
    if is_console(database) {
        return Err(ConsoleError::new(format!(
            "cannot {verb} admin db: {database}"
        )));
    }
    if !console.shared.config().databases.contains_key(database) {
        return Err(ConsoleError::new(format!("no such database: {database}")));
    }
    Ok(())
}

/// The pools of `database` (every pool for `None`).
fn pools_of(console: &Console<'_>, database: Option<&str>) -> Vec<Arc<Pool>> {
    console
        .shared
        .pools
        .all()
        .into_iter()
        .filter(|pool| database.is_none_or(|db| pool.key.database == db))
        .collect()
}

/// Whether a client of `database` (of any, for `None`) holds a server.
fn clients_holding_servers(console: &Console<'_>, database: Option<&str>) -> bool {
    console
        .shared
        .clients
        .all()
        .iter()
        .any(|client| client.holds_server() && database.is_none_or(|db| client.database == db))
}
