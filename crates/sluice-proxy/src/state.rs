//! What an operator changes while the gateway runs (pgbouncer's `PAUSE`,
//! `SUSPEND`, `DISABLE`, `KILL` and `SHUTDOWN` states): which databases
//! are paused or disabled, whether everything is paused or suspended, and
//! whether the gateway is shutting down.
//!
//! A session asks [`GatewayState::may_start`] before it checks out a server
//! for a new transaction: one atomic load while nothing is paused; only
//! then does it look at the database and wait for `RESUME`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{watch, Notify};

/// How the gateway is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Shutdown {
    /// Serving.
    No = 0,
    /// `SIGINT`, `SHUTDOWN WAIT_FOR_SERVERS`: no new transaction starts
    /// (waiting clients are told), the gateway exits once every server
    /// connection is released.
    WaitForServers = 1,
    /// `SIGTERM`, `SHUTDOWN WAIT_FOR_CLIENTS`: each client is closed at its
    /// next transaction boundary; the gateway exits once none is left.
    Drain = 2,
    /// `SHUTDOWN`, a second signal, or `shutdown_timeout`: everything is
    /// closed now.
    Immediate = 3,
}

/// The paused and disabled flags of one database.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseFlags {
    pub paused: bool,
    pub disabled: bool,
}

/// Why a session may not start a transaction now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The gateway is shutting down (`server shutting down`).
    ShuttingDown,
}

/// The gateway's operator-controlled state, shared by every session.
#[derive(Debug)]
pub struct GatewayState {
    /// Something is paused (a database, or everything): the slow path.
    any_paused: AtomicBool,
    paused_all: AtomicBool,
    suspended: AtomicBool,
    databases: Mutex<HashMap<String, DatabaseFlags>>,
    shutdown: AtomicU8,
    /// Wakes sessions waiting for `RESUME` (or for shutdown).
    resumed: Notify,
    /// Sessions waiting in a pause now (they count as waiting clients).
    pause_waiters: AtomicU32,
    /// Tells the accept loop about shutdowns.
    shutdown_changed: watch::Sender<Shutdown>,
}

impl Default for GatewayState {
    fn default() -> GatewayState {
        GatewayState {
            any_paused: AtomicBool::new(false),
            paused_all: AtomicBool::new(false),
            suspended: AtomicBool::new(false),
            databases: Mutex::default(),
            shutdown: AtomicU8::new(Shutdown::No as u8),
            resumed: Notify::new(),
            pause_waiters: AtomicU32::new(0),
            shutdown_changed: watch::Sender::new(Shutdown::No),
        }
    }
}

impl GatewayState {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DatabaseFlags>> {
        self.databases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The flags of `database`.
    pub fn database(&self, database: &str) -> DatabaseFlags {
        self.lock().get(database).copied().unwrap_or_default()
    }

    pub fn is_paused_all(&self) -> bool {
        self.paused_all.load(Ordering::Relaxed)
    }

    pub fn is_suspended(&self) -> bool {
        self.suspended.load(Ordering::Relaxed)
    }

    pub fn shutdown(&self) -> Shutdown {
        match self.shutdown.load(Ordering::Relaxed) {
            1 => Shutdown::WaitForServers,
            2 => Shutdown::Drain,
            3 => Shutdown::Immediate,
            _ => Shutdown::No,
        }
    }

    /// Starts (or escalates) a shutdown; a milder mode never replaces a
    /// stronger one.
    pub fn begin_shutdown(&self, mode: Shutdown) {
        self.shutdown.fetch_max(mode as u8, Ordering::SeqCst);
        self.shutdown_changed.send_replace(self.shutdown());
        if mode == Shutdown::WaitForServers {
            // No new transaction starts: sessions must ask.
            self.any_paused.store(true, Ordering::SeqCst);
        }
        self.resumed.notify_waiters();
    }

    /// Follows shutdowns (the accept loop's view).
    pub fn watch_shutdown(&self) -> watch::Receiver<Shutdown> {
        self.shutdown_changed.subscribe()
    }

    /// `PAUSE` (`None`: everything) or `SUSPEND` (`suspend`).
    pub fn pause(&self, database: Option<&str>, suspend: bool) {
        match database {
            Some(database) => self.lock().entry(database.to_string()).or_default().paused = true,
            None if suspend => self.suspended.store(true, Ordering::SeqCst),
            None => self.paused_all.store(true, Ordering::SeqCst),
        }
        self.any_paused.store(true, Ordering::SeqCst);
    }

    /// `RESUME` (`None`: the global pause and suspension).
    pub fn resume(&self, database: Option<&str>) {
        {
            let mut databases = self.lock();
            match database {
                Some(database) => {
                    if let Some(flags) = databases.get_mut(database) {
                        flags.paused = false;
                    }
                }
                None => {
                    self.paused_all.store(false, Ordering::SeqCst);
                    self.suspended.store(false, Ordering::SeqCst);
                }
            }
            let still = self.paused_all.load(Ordering::SeqCst)
                || self.suspended.load(Ordering::SeqCst)
                || databases.values().any(|flags| flags.paused);
            self.any_paused.store(still, Ordering::SeqCst);
        }
        self.resumed.notify_waiters();
    }

    /// `DISABLE` / `ENABLE`.
    pub fn set_disabled(&self, database: &str, disabled: bool) {
        self.lock()
            .entry(database.to_string())
            .or_default()
            .disabled = disabled;
    }

    /// Whether a new transaction on `database` must wait now.
    fn must_wait(&self, database: &str) -> bool {
        self.any_paused.load(Ordering::Relaxed)
            && (self.paused_all.load(Ordering::Relaxed)
                || self.suspended.load(Ordering::Relaxed)
                || self.database(database).paused)
    }

    /// Whether a session must ask [`GatewayState::may_start`] before it
    /// checks out a server for a new transaction (one load on the hot path).
    #[inline]
    pub fn must_ask(&self) -> bool {
        self.any_paused.load(Ordering::Relaxed)
    }

    /// Waits while `database` (or everything) is paused; refuses once the
    /// gateway is shutting down and waiting for servers.
    pub async fn may_start(&self, database: &str) -> Result<(), Refusal> {
        self.pause_waiters.fetch_add(1, Ordering::Relaxed);
        let result = loop {
            let resumed = self.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            if self.shutdown() == Shutdown::WaitForServers {
                break Err(Refusal::ShuttingDown);
            }
            if !self.must_wait(database) {
                break Ok(());
            }
            // A notification can only be missed between the checks and
            // `enable`, which comes first; the timeout is a safety net.
            let _ = tokio::time::timeout(Duration::from_secs(1), resumed).await;
        };
        self.pause_waiters.fetch_sub(1, Ordering::Relaxed);
        result
    }

    /// Sessions waiting in a pause now.
    pub fn pause_waiters(&self) -> u32 {
        self.pause_waiters.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_paused_database_waits_until_resumed() {
        let state = Arc::new(GatewayState::default());
        assert!(!state.must_ask());
        state.pause(Some("app"), false);
        assert!(state.must_ask());
        assert_eq!(state.may_start("other").await, Ok(()), "only app is paused");
        let waiting = tokio::spawn({
            let state = state.clone();
            async move { state.may_start("app").await }
        });
        while state.pause_waiters() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished());
        state.resume(Some("app"));
        assert_eq!(waiting.await.unwrap(), Ok(()));
        assert_eq!(state.pause_waiters(), 0);
    }

    #[tokio::test]
    async fn shutting_down_refuses_new_transactions_and_wakes_waiters() {
        let state = Arc::new(GatewayState::default());
        state.pause(None, false);
        let waiting = tokio::spawn({
            let state = state.clone();
            async move { state.may_start("app").await }
        });
        while state.pause_waiters() == 0 {
            tokio::task::yield_now().await;
        }
        state.begin_shutdown(Shutdown::WaitForServers);
        assert_eq!(waiting.await.unwrap(), Err(Refusal::ShuttingDown));
        state.begin_shutdown(Shutdown::No);
        assert_eq!(state.shutdown(), Shutdown::WaitForServers, "never milder");
    }

    #[test]
    fn flags_per_database() {
        let state = GatewayState::default();
        state.set_disabled("app", true);
        state.pause(Some("app"), false);
        assert_eq!(
            state.database("app"),
            DatabaseFlags {
                paused: true,
                disabled: true
            }
        );
        state.resume(Some("app"));
        assert!(!state.database("app").paused);
        assert!(!state.must_wait("app"));
    }
}
