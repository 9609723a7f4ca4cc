//! Every logged-in client (pgbouncer's client lists in `objects.c`): its
//! cancel key and the server serving it right now, what the console shows
//! of it (`SHOW CLIENTS`), and how the gateway closes it from outside its
//! task (`KILL_CLIENT`, `KILL db`, the janitor's timeouts, shutdown).
//!
//! Each client gets its own BackendKeyData from the gateway (its server
//! connection changes from one transaction to the next). A CancelRequest
//! arrives on a fresh connection carrying that key; the registry finds the
//! client and forwards the request to the backend serving it.
//!
//! Closing a client from outside: its task is aborted, which drops the
//! session (and with it any server connection it holds: returned after a
//! ROLLBACK, or closed). The session's own drop sends the client the FATAL
//! message the closer left. A drain must never cut a transaction: it marks
//! the client as closing and aborts only a client that holds no server;
//! a client that does closes itself when its transaction ends. The client
//! announces that it holds a server before it sends anything on it, and
//! checks the mark right after, so that one of the two always sees the
//! other (see [`ClientEntry::begin_transaction`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use rand::Rng;
use tokio::task::AbortHandle;

use crate::backend::{send_cancel, ServerInfo};
use crate::clock;
use crate::pool::{Pool, WaitSlot};

/// Where a client connected from, known at accept.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer {
    pub addr: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
}

/// One logged-in client, shared by its session and the registry.
pub struct ClientEntry {
    /// The console's `id` for it (`KILL_CLIENT id`).
    pub id: u64,
    /// Its BackendKeyData.
    pub pid: i32,
    pub secret: i32,
    pub peer: Peer,
    pub connect_time: SystemTime,
    pub user: String,
    pub database: String,
    /// Its pool (the primary's), and where it waits for a server.
    pub pool: Option<Arc<Pool>>,
    pub wait_slot: Arc<WaitSlot>,
    /// The server connection serving it now (`None` between transactions).
    server: Mutex<Option<Arc<ServerInfo>>>,
    /// It holds a server (set before it sends anything on one).
    in_transaction: AtomicBool,
    /// Its server's last ReadyForQuery said "in a transaction block".
    in_block: AtomicBool,
    /// Marked for closing; the message it is told.
    closing: AtomicBool,
    close_message: Mutex<Option<(&'static str, String)>>,
    /// When it last sent a request / last heard ReadyForQuery
    /// ([`clock::now_us`]).
    pub last_request_us: AtomicU64,
    pub last_ready_us: AtomicU64,
    /// `application_name` and its prepared statements (for `SHOW CLIENTS`).
    pub application_name: Mutex<Arc<str>>,
    /// The TLS session's protocol and cipher suite (`SHOW CLIENTS`' `tls`), empty without.
    pub tls: Box<str>,
    pub prepared_statements: AtomicU32,
    abort: Arc<OnceLock<AbortHandle>>,
}

impl ClientEntry {
    /// The server serving this client now.
    pub fn server(&self) -> Option<Arc<ServerInfo>> {
        lock(&self.server).clone()
    }

    /// From now on this client's CancelRequest reaches `server`'s backend.
    pub fn serve_with(&self, server: Option<Arc<ServerInfo>>) {
        *lock(&self.server) = server;
    }

    /// The client is about to send on a server it holds: `false` if it
    /// was marked for closing meanwhile (then it must not start anything).
    pub fn begin_transaction(&self) -> bool {
        self.in_transaction.store(true, Ordering::SeqCst);
        !self.closing.load(Ordering::SeqCst)
    }

    /// The client gave its server back.
    pub fn end_transaction(&self) {
        self.in_transaction.store(false, Ordering::SeqCst);
    }

    /// Whether the client should go at its next transaction boundary.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// What the client is told as it is closed, if it was closed from outside.
    pub fn close_message(&self) -> Option<(&'static str, String)> {
        lock(&self.close_message).clone()
    }

    /// Closes the client at once, whatever it is doing (`KILL_CLIENT`, a
    /// timeout): it is told `message` (SQLSTATE `code`).
    pub fn kill(&self, code: &'static str, message: impl Into<String>) {
        self.mark_closing(code, message);
        if let Some(abort) = self.abort.get() {
            abort.abort();
        }
    }

    /// Closes the client at its transaction boundary: now if it holds no
    /// server, else when its transaction ends.
    pub fn drain(&self, code: &'static str, message: impl Into<String>) {
        self.mark_closing(code, message);
        if !self.in_transaction.load(Ordering::SeqCst) {
            if let Some(abort) = self.abort.get() {
                abort.abort();
            }
        }
    }

    fn mark_closing(&self, code: &'static str, message: impl Into<String>) {
        let mut slot = lock(&self.close_message);
        if slot.is_none() {
            *slot = Some((code, message.into()));
        }
        drop(slot);
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Its server's last ReadyForQuery said it is inside a transaction
    /// block (for `idle_transaction_timeout`).
    pub fn set_in_transaction_block(&self, in_block: bool) {
        self.in_block.store(in_block, Ordering::Relaxed);
    }

    pub fn in_transaction_block(&self) -> bool {
        self.in_block.load(Ordering::Relaxed)
    }

    /// Whether it holds a server now.
    pub fn holds_server(&self) -> bool {
        self.in_transaction.load(Ordering::Relaxed)
    }

    /// `SHOW CLIENTS`'s `ptr`: a stable identity for linking to servers.
    pub fn ptr(&self) -> String {
        format!("{:#x}", self as *const ClientEntry as usize)
    }
}

/// What a new client tells the registry about itself.
pub struct NewClient {
    pub peer: Peer,
    pub connect_time: SystemTime,
    pub user: String,
    pub database: String,
    pub pool: Option<Arc<Pool>>,
    pub application_name: Arc<str>,
    pub tls: Box<str>,
    /// Set by the accept loop once the client's task is spawned.
    pub abort: Arc<OnceLock<AbortHandle>>,
}

/// Every logged-in client.
#[derive(Default)]
pub struct Clients {
    by_pid: Mutex<HashMap<i32, Arc<ClientEntry>>>,
    next_id: AtomicU64,
}

/// A client's registration; unregisters on drop.
pub struct Registration {
    pub entry: Arc<ClientEntry>,
    clients: Arc<Clients>,
}

impl std::ops::Deref for Registration {
    type Target = ClientEntry;
    fn deref(&self) -> &ClientEntry {
        &self.entry
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.clients.by_pid).remove(&self.entry.pid);
    }
}

impl Clients {
    /// Registers a client that logged in, with a new unique cancel key.
    pub fn register(self: &Arc<Self>, client: NewClient) -> Registration {
        let mut rng = rand::thread_rng();
        let secret: i32 = rng.gen();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut by_pid = lock(&self.by_pid);
        let pid = loop {
            let pid = rng.gen_range(1..i32::MAX);
            if !by_pid.contains_key(&pid) {
                break pid;
            }
        };
        let now = clock::now_us();
        let entry = Arc::new(ClientEntry {
            id,
            pid,
            secret,
            peer: client.peer,
            connect_time: client.connect_time,
            user: client.user,
            database: client.database,
            pool: client.pool,
            wait_slot: Arc::default(),
            server: Mutex::new(None),
            in_transaction: AtomicBool::new(false),
            in_block: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            close_message: Mutex::new(None),
            last_request_us: AtomicU64::new(now),
            last_ready_us: AtomicU64::new(now),
            application_name: Mutex::new(client.application_name),
            tls: client.tls,
            prepared_statements: AtomicU32::new(0),
            abort: client.abort,
        });
        by_pid.insert(pid, entry.clone());
        Registration {
            entry,
            clients: self.clone(),
        }
    }

    /// Every logged-in client, by id.
    pub fn all(&self) -> Vec<Arc<ClientEntry>> {
        let mut all: Vec<_> = lock(&self.by_pid).values().cloned().collect();
        all.sort_by_key(|client| client.id);
        all
    }

    pub fn count(&self) -> usize {
        lock(&self.by_pid).len()
    }

    /// How many pool clients are logged in to `database`, and as `user`
    /// (for `max_db_client_connections` and `max_user_client_connections`).
    pub fn count_of(&self, database: &str, user: &str) -> (u32, u32) {
        let by_pid = lock(&self.by_pid);
        let pool_clients = || by_pid.values().filter(|c| c.pool.is_some());
        let of_database = pool_clients().filter(|c| c.database == database).count();
        let of_user = pool_clients().filter(|c| c.user == user).count();
        (of_database as u32, of_user as u32)
    }

    /// Forwards a CancelRequest to the backend serving the client with this key
    /// (nothing happens for an unknown key or an idle client, as in PostgreSQL).
    pub async fn cancel(&self, pid: i32, secret: i32) {
        let client = match lock(&self.by_pid).get(&pid) {
            Some(client) if client.secret == secret => client.clone(),
            _ => {
                tracing::debug!(pid, "cancel request with an unknown key ignored");
                return;
            }
        };
        if let Some(server) = client.server() {
            if let Err(e) = send_cancel(&server.target, server.pid, server.secret).await {
                tracing::warn!(server = %server.target.addr(), error = %e, "could not forward cancel request");
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves nothing half-done.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
