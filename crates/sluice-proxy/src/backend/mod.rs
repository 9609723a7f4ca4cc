//! One server connection (pgbouncer's `server.c`): its stream and buffers,
//! the state the pool and the relay need, and the gateway's own small
//! exchanges on it (parameter `SET`s, `ROLLBACK`, a one-value query).
//!
//! # Layout
//! - this file: [`ServerConn`], [`ServerTarget`] (where a pool's servers
//!   are and who logs in), [`BackendError`];
//! - [`login`]: connecting and logging in (SCRAM-SHA-256 with the password
//!   or by pass-through, md5, cleartext, trust);
//! - [`lookup`]: a query of the gateway's own with one bound parameter
//!   (`auth_query`);
//! - [`outstanding`]: what the server still owes for requests sent;
//! - [`params`]: server parameters and the one decoder of ParameterStatus.
//!
//! The connection owns one read buffer and one write buffer for its whole
//! life; server connections are few, so they keep them (client connections
//! are many and do not).

pub mod login;
pub mod lookup;
pub mod outstanding;
pub mod params;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::auth::ScramPassThrough;
use crate::net::{Connector, ServerStream};
use crate::protocol::{self, client_tag, server_tag, sqlstate, ErrorFields, TxStatus};
use crate::statements::PreparedSet;

pub use outstanding::Outstanding;
pub use params::{param, set_param, Params};

/// Why a server connection could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("could not connect to server {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("timed out connecting to server {addr}")]
    ConnectTimeout { addr: String },
    #[error("server {addr}: {}", .fields.message)]
    Server { addr: String, fields: ErrorFields },
    #[error("server {addr} asks for a password for user {user:?}, but the auth_file has no plain password for it")]
    NoPassword { addr: String, user: String },
    #[error("server {addr} asks for SCRAM authentication for user {user:?}, whose auth_file entry is only a SCRAM secret: the gateway can log in as that user only after a client has logged in with SCRAM (pass-through), or with the plain password in the auth_file")]
    NoClientKey { addr: String, user: String },
    #[error("server {addr} stores a different SCRAM secret for user {user:?} than the auth_file ({detail}); SCRAM pass-through needs the secret copied from this server's pg_authid, or put the plain password in the auth_file")]
    ScramSecretMismatch {
        addr: String,
        user: String,
        detail: String,
    },
    #[error("server {addr}: unsupported authentication request {code}")]
    UnsupportedAuth { addr: String, code: i32 },
    #[error("server {addr}: authentication failed: {message}")]
    Auth { addr: String, message: String },
    #[error("server {addr}: protocol violation: {message}")]
    Protocol { addr: String, message: String },
    #[error("server {addr} closed the connection")]
    Closed { addr: String },
    #[error("server {addr}: {source}")]
    Io { addr: String, source: io::Error },
    #[error("server {addr}: {source}")]
    Tls {
        addr: String,
        source: crate::tls::server::ServerTlsError,
    },
}

impl BackendError {
    /// The server could not be reached or is going away (as opposed to,
    /// say, refusing the password): another host may do, or a retry later.
    pub fn is_connection_failure(&self) -> bool {
        match self {
            BackendError::Connect { .. }
            | BackendError::ConnectTimeout { .. }
            | BackendError::Closed { .. }
            | BackendError::Io { .. } => true,
            BackendError::Server { fields, .. } => sqlstate::means_server_gone(&fields.code),
            _ => false,
        }
    }

    /// The SQLSTATE a client should see for this failure.
    pub fn sqlstate(&self) -> &str {
        match self {
            BackendError::Server { fields, .. } if !fields.code.is_empty() => &fields.code,
            BackendError::NoPassword { .. }
            | BackendError::NoClientKey { .. }
            | BackendError::ScramSecretMismatch { .. }
            | BackendError::Auth { .. } => sqlstate::INVALID_PASSWORD,
            _ => sqlstate::CONNECTION_FAILURE,
        }
    }
}

/// Where a pool's servers live and who logs in to them.
#[derive(Clone)]
pub struct ServerTarget {
    pub host: Arc<str>,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    /// The plain password from the auth_file, if it has one.
    pub password: Option<String>,
    /// Without a password: the user's SCRAM secret and the ClientKey learned
    /// from its clients (shared by all of the user's pools).
    pub pass_through: Option<ScramPassThrough>,
    /// Without a password: `md5(password || user)` as hex, all a server
    /// asking for md5 needs.
    pub md5: Option<String>,
    pub connect_timeout: Duration,
    /// How streams to the server are opened.
    pub connector: Arc<dyn Connector>,
    /// `server_tls_*`: TLS on those streams.
    pub tls: crate::tls::ServerTls,
}

impl std::fmt::Debug for ServerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTarget")
            .field("addr", &self.addr())
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ServerTarget {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// What others may know of a server connection while a client holds it:
/// the key for forwarding cancel requests, and what the console shows.
#[derive(Debug)]
pub struct ServerInfo {
    /// The console's `id` for it.
    pub id: u64,
    pub target: Arc<ServerTarget>,
    /// The server's BackendKeyData.
    pub pid: i32,
    pub secret: i32,
    /// The gateway's end of the connection.
    pub local: Option<SocketAddr>,
    pub connect_time: SystemTime,
    /// When it was opened ([`clock::now_us`]), for `server_lifetime`.
    pub opened_us: u64,
    /// Close it when it is released (`RECONNECT`, a reload that changed
    /// where the pool's servers are).
    pub close_needed: AtomicBool,
    /// The gateway's prepared statements it holds.
    pub prepared_statements: AtomicU32,
}

impl ServerInfo {
    /// `SHOW SERVERS`'s `ptr`: a stable identity for linking to clients.
    pub fn ptr(&self) -> String {
        format!("{:#x}", self as *const ServerInfo as usize)
    }
}

/// The server connections of one pool, as the console lists them. Each
/// connection removes itself when it closes.
#[derive(Debug, Default)]
pub struct ServerList {
    servers: std::sync::Mutex<std::collections::BTreeMap<u64, Arc<ServerInfo>>>,
}

impl ServerList {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Arc<ServerInfo>>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every open connection, by id.
    pub fn all(&self) -> Vec<Arc<ServerInfo>> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Gateway-wide server connection ids.
static NEXT_SERVER_ID: AtomicU64 = AtomicU64::new(1);

/// A logged-in server connection.
pub struct ServerConn {
    pub stream: ServerStream,
    /// Bytes read from the server and not yet relayed.
    pub rbuf: BytesMut,
    /// A request being assembled for the server.
    pub wbuf: BytesMut,
    /// Its key and what the console shows of it.
    pub info: Arc<ServerInfo>,
    pub target: Arc<ServerTarget>,
    /// Parameters the server session runs with (as far as the gateway knows).
    pub params: Params,
    /// The last ReadyForQuery's transaction status.
    pub status: TxStatus,
    pub outstanding: Outstanding,
    /// The gateway's prepared statements this server session holds.
    pub prepared: PreparedSet,
    /// The server sent CopyInResponse/CopyBothResponse and the copy has not ended.
    pub copy_in: bool,
    /// Bytes of a message being streamed through without being buffered whole.
    pub streaming: usize,
    /// Something went wrong mid-exchange: never reuse.
    pub broken: bool,
    pub last_used: Instant,
    /// The pool's list this connection is on, if any.
    listed: Option<Arc<ServerList>>,
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        if let Some(list) = self.listed.take() {
            list.lock().remove(&self.info.id);
        }
    }
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn")
            .field("addr", &self.target.addr())
            .field("pid", &self.info.pid)
            .field("status", &self.status)
            .finish()
    }
}

impl ServerConn {
    /// Puts the connection on `list` (its pool's), for as long as it is open.
    pub fn list_on(&mut self, list: &Arc<ServerList>) {
        list.lock().insert(self.info.id, self.info.clone());
        self.listed = Some(list.clone());
    }

    /// The server's backend process id.
    pub fn pid(&self) -> i32 {
        self.info.pid
    }

    fn protocol_error(&self, message: &str) -> BackendError {
        BackendError::Protocol {
            addr: self.target.addr(),
            message: message.into(),
        }
    }

    fn io_error(&self, source: io::Error) -> BackendError {
        BackendError::Io {
            addr: self.target.addr(),
            source,
        }
    }

    /// Writes and clears the write buffer.
    pub async fn flush_wbuf(&mut self) -> Result<(), BackendError> {
        let result = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        result.map_err(|e| {
            self.broken = true;
            self.io_error(e)
        })
    }

    /// Reads one whole message (for login and housekeeping, not the relay).
    async fn read_message(&mut self) -> Result<(u8, BytesMut), BackendError> {
        loop {
            match protocol::frame_len(&self.rbuf, usize::MAX) {
                Err(e) => {
                    self.broken = true;
                    return Err(self.protocol_error(&e.to_string()));
                }
                Ok(Some(len)) => {
                    let mut msg = self.rbuf.split_to(len);
                    let tag = msg[0];
                    msg.advance(5);
                    return Ok((tag, msg));
                }
                Ok(None) => {
                    let n = self.stream.read_buf(&mut self.rbuf).await.map_err(|e| {
                        self.broken = true;
                        self.io_error(e)
                    })?;
                    if n == 0 {
                        self.broken = true;
                        return Err(BackendError::Closed {
                            addr: self.target.addr(),
                        });
                    }
                }
            }
        }
    }

    /// Runs gateway housekeeping SQL (SET, ROLLBACK, DISCARD ALL) and drops
    /// its results; fails on the first ErrorResponse. The connection must be idle.
    pub async fn run_housekeeping(&mut self, sql: &str) -> Result<(), BackendError> {
        self.query_value(sql).await.map(drop)
    }

    /// Runs a query of the gateway's own (such as `SELECT
    /// pg_current_wal_insert_lsn()`) and returns the first column of its
    /// first row as text, if any; fails on the first ErrorResponse. The
    /// connection must be idle; nothing reaches a client, and the
    /// parameters the server reports are kept.
    pub async fn query_value(&mut self, sql: &str) -> Result<Option<String>, BackendError> {
        protocol::query(&mut self.wbuf, sql);
        self.flush_wbuf().await?;
        let mut error = None;
        let mut value = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                server_tag::ERROR_RESPONSE => error = Some(protocol::decode_error_fields(&body)),
                server_tag::PARAMETER_STATUS => {
                    params::apply_parameter_status(&mut self.params, &body);
                }
                server_tag::DATA_ROW if value.is_none() => {
                    value = protocol::data_row_first_column(&body)
                        .map(|text| String::from_utf8_lossy(text).into_owned());
                }
                server_tag::READY_FOR_QUERY => {
                    self.status = TxStatus::from_body(&body);
                    return match error {
                        None => Ok(value),
                        Some(fields) => Err(BackendError::Server {
                            addr: self.target.addr(),
                            fields,
                        }),
                    };
                }
                server_tag::COPY_IN_RESPONSE
                | server_tag::COPY_OUT_RESPONSE
                | server_tag::COPY_BOTH_RESPONSE => {
                    // the gateway's queries never copy; give up on this connection
                    self.broken = true;
                    return Err(self.protocol_error("unexpected COPY in a gateway query"));
                }
                _ => {}
            }
        }
    }

    /// True if the connection can take a new request: idle, nothing
    /// outstanding, and the server has not closed it or sent anything while
    /// it sat in the pool (a restarting server says FATAL then closes).
    pub fn usable(&mut self) -> bool {
        self.clean() && self.stream.is_quiet()
    }

    /// Ready to go back to the pool as-is.
    pub fn clean(&self) -> bool {
        !self.broken
            && self.status == TxStatus::Idle
            && self.outstanding.idle()
            && !self.copy_in
            && self.streaming == 0
            && self.rbuf.is_empty()
    }

    /// In a transaction but otherwise between exchanges: a ROLLBACK makes it clean.
    pub fn needs_rollback_only(&self) -> bool {
        !self.broken
            && self.status != TxStatus::Idle
            && self.outstanding.idle()
            && !self.copy_in
            && self.streaming == 0
            && self.rbuf.is_empty()
    }

    /// Says goodbye without waiting (used when closing idle connections).
    pub fn terminate(mut self) {
        self.stream.write_now(&[client_tag::TERMINATE, 0, 0, 0, 4]);
    }

    /// Notes what the server owes for the client's whole messages in
    /// `request`, sent as they are. With `track_statements` (transaction
    /// pooling renames prepared statements), unnamed Parse and Close are
    /// queued too, as their answers come in order with the gateway's own.
    pub fn note_sent_request(&mut self, request: &[u8], track_statements: bool) -> Sent {
        let mut sent = Sent::default();
        for message in protocol::Messages::new(request) {
            match message.tag() {
                client_tag::PARSE => {
                    sent.client_parses += 1;
                    sent.server_parses += 1;
                    if track_statements {
                        self.outstanding.sent_parse(None, false);
                    } else {
                        self.outstanding.sent(client_tag::PARSE);
                    }
                }
                client_tag::CLOSE if track_statements => self.outstanding.sent_close(false),
                tag => {
                    self.outstanding.sent(tag);
                    sent.batches += u64::from(matches!(tag, client_tag::QUERY | client_tag::SYNC));
                    sent.binds += u64::from(tag == client_tag::BIND);
                }
            }
        }
        sent
    }

    /// Takes note of a server message the relay must look at (see
    /// [`must_observe`]): the transaction status, what the server still
    /// owes, its parameters, a COPY starting. `body` is where the message's
    /// body is in the read buffer.
    pub fn observe(&mut self, tag: u8, body: std::ops::Range<usize>) -> Observed {
        match tag {
            server_tag::READY_FOR_QUERY => {
                let status = TxStatus::from_body(&self.rbuf[body]);
                self.ready_for_query(status);
                Observed::Ready
            }
            server_tag::PARSE_COMPLETE if self.outstanding.parse_complete() => Observed::Injected,
            server_tag::CLOSE_COMPLETE if self.outstanding.close_complete() => Observed::Injected,
            server_tag::PARAMETER_STATUS => {
                match params::apply_parameter_status(&mut self.params, &self.rbuf[body]) {
                    Some((name, value)) => Observed::Parameter { name, value },
                    None => Observed::Other,
                }
            }
            server_tag::COPY_IN_RESPONSE | server_tag::COPY_BOTH_RESPONSE => {
                self.copy_in = true;
                Observed::Other
            }
            _ => Observed::Other,
        }
    }

    /// A ReadyForQuery arrived with `status`: the oldest batch is answered
    /// (statements its failed Parses would have created are forgotten), and
    /// any COPY has ended.
    pub fn ready_for_query(&mut self, status: TxStatus) {
        self.status = status;
        self.copy_in = false;
        let prepared = &mut self.prepared;
        self.outstanding
            .ready_for_query(|statement| prepared.remove(statement));
    }
}

/// Whether the relay must look at a server message with `tag` (everything
/// else passes through unread, and may be streamed before it is whole).
#[inline]
pub fn must_observe(tag: u8) -> bool {
    matches!(
        tag,
        server_tag::READY_FOR_QUERY
            | server_tag::PARSE_COMPLETE
            | server_tag::CLOSE_COMPLETE
            | server_tag::PARAMETER_STATUS
            | server_tag::COPY_IN_RESPONSE
            | server_tag::COPY_OUT_RESPONSE
            | server_tag::COPY_BOTH_RESPONSE
    )
}

/// What a request sent to a server held, for the pool's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Batches (Query, Sync).
    pub batches: u64,
    /// Parse messages the client sent, and Parse messages the server got
    /// (the gateway's re-prepares included).
    pub client_parses: u64,
    pub server_parses: u64,
    pub binds: u64,
}

/// What [`ServerConn::observe`] made of a server message.
#[derive(Debug, PartialEq, Eq)]
pub enum Observed {
    /// A ReadyForQuery: the oldest batch is answered.
    Ready,
    /// The answer to a message the gateway injected: not for the client.
    Injected,
    /// The server reports a parameter's new value.
    Parameter { name: String, value: String },
    /// Nothing the relay needs to act on.
    Other,
}

/// Sends a CancelRequest for backend `pid` to `target`'s server.
pub async fn send_cancel(target: &ServerTarget, pid: i32, secret: i32) -> io::Result<()> {
    let mut stream = target.connector.connect(&target.host, target.port).await?;
    let mut buf = BytesMut::with_capacity(16);
    protocol::cancel_request(&mut buf, pid, secret);
    stream.write_all(&buf).await?;
    // The server closes the connection when done; wait for that briefly.
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
    Ok(())
}
