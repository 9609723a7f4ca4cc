//! One server connection: logging in to PostgreSQL (SCRAM-SHA-256, md5,
//! cleartext or trust; SCRAM with `postgres-protocol`'s client and the
//! password, or by pass-through with the ClientKey a client revealed, see
//! `auth`), and the per-connection state the pool and relay need: the last
//! `ReadyForQuery` status, the server parameters it runs with, which of the
//! gateway's prepared statements it holds, and what is outstanding in the
//! exchange.
//!
//! The connection owns one read buffer and one write buffer for its whole
//! life; server connections are few, so they keep them (client connections
//! are many and do not).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::auth::{ScramClient, ScramClientError, ScramPassThrough};
use crate::protocol::{self, ErrorFields};

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
            BackendError::Server { fields, .. } => {
                fields.code.starts_with("57P") || fields.code.starts_with("08")
            }
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
            | BackendError::Auth { .. } => "28P01",
            _ => "08006",
        }
    }
}

/// Where a pool's servers live and who logs in to them.
#[derive(Debug, Clone)]
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
    pub connect_timeout: Duration,
}

impl ServerTarget {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Server parameters as `(name, value)` pairs sorted by name. Shared with
/// `Arc` so that "does this server already run with this client's
/// parameters?" is usually a pointer comparison.
pub type Params = Arc<Vec<(Box<str>, Box<str>)>>;

pub fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .binary_search_by(|(k, _)| (**k).cmp(name))
        .ok()
        .map(|i| &*params[i].1)
}

/// Sets `name` in a sorted parameter list (copy-on-write).
pub fn set_param(params: &mut Params, name: &str, value: &str) {
    let list = Arc::make_mut(params);
    match list.binary_search_by(|(k, _)| (**k).cmp(name)) {
        Ok(i) => list[i].1 = value.into(),
        Err(i) => list.insert(i, (name.into(), value.into())),
    }
}

/// What the server still owes for requests already sent, in order.
#[derive(Debug, Default)]
pub struct Outstanding {
    /// Requests (Sync, Query, FunctionCall) sent and not yet answered by ReadyForQuery.
    pub batches_sent: u64,
    pub batches_done: u64,
    /// Messages were sent after the last Sync/Query: the exchange is not complete.
    pub unsynced: bool,
    /// One entry per Parse sent: the statement id it creates (if gateway-named),
    /// whether the gateway injected it (so its ParseComplete is swallowed), and its batch.
    pub parses: VecDeque<PendingParse>,
    /// One entry per Close sent: whether the gateway injected it, and its batch.
    pub closes: VecDeque<(bool, u64)>,
}

#[derive(Debug, Clone, Copy)]
pub struct PendingParse {
    pub id: Option<u64>,
    pub injected: bool,
    pub batch: u64,
}

impl Outstanding {
    pub fn idle(&self) -> bool {
        self.batches_sent == self.batches_done && !self.unsynced
    }
}

/// The gateway's prepared statements present on one server connection, with
/// least-recently-used eviction.
#[derive(Debug, Default)]
pub struct PreparedSet {
    used: HashMap<u64, u64>,
    tick: u64,
}

impl PreparedSet {
    pub fn contains(&self, id: u64) -> bool {
        self.used.contains_key(&id)
    }

    /// Marks `id` as used now (inserting it).
    pub fn touch(&mut self, id: u64) {
        self.tick += 1;
        self.used.insert(id, self.tick);
    }

    pub fn remove(&mut self, id: u64) {
        self.used.remove(&id);
    }

    /// The least recently used statement to close if the set holds `limit` or more.
    pub fn evict_candidate(&self, limit: usize) -> Option<u64> {
        if self.used.len() < limit {
            return None;
        }
        self.used
            .iter()
            .min_by_key(|(_, &tick)| tick)
            .map(|(&id, _)| id)
    }

    pub fn len(&self) -> usize {
        self.used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    pub fn clear(&mut self) {
        self.used.clear();
    }
}

/// The server-side name of the gateway's statement `id`.
pub fn statement_name(id: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "sluice_{id}");
}

/// A logged-in server connection.
pub struct ServerConn {
    pub stream: TcpStream,
    /// Bytes read from the server and not yet relayed.
    pub rbuf: BytesMut,
    /// A request being assembled for the server.
    pub wbuf: BytesMut,
    /// The server's BackendKeyData, for forwarding cancels.
    pub pid: i32,
    pub secret: i32,
    pub target: Arc<ServerTarget>,
    /// Parameters the server session runs with (as far as the gateway knows).
    pub params: Params,
    /// Last ReadyForQuery status: `I` idle, `T` in transaction, `E` failed transaction.
    pub status: u8,
    pub outstanding: Outstanding,
    pub prepared: PreparedSet,
    /// The server sent CopyInResponse/CopyBothResponse and the copy has not ended.
    pub copy_in: bool,
    /// Bytes of a message being streamed through without being buffered whole.
    pub streaming: usize,
    /// Something went wrong mid-exchange: never reuse.
    pub broken: bool,
    pub last_used: Instant,
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn")
            .field("addr", &self.target.addr())
            .field("pid", &self.pid)
            .field("status", &(self.status as char))
            .finish()
    }
}

impl ServerConn {
    /// Connects and logs in; returns once the server said ReadyForQuery.
    pub async fn connect(target: Arc<ServerTarget>) -> Result<ServerConn, BackendError> {
        let addr = target.addr();
        let stream = match tokio::time::timeout(
            target.connect_timeout,
            TcpStream::connect((&*target.host, target.port)),
        )
        .await
        {
            Err(_) => return Err(BackendError::ConnectTimeout { addr }),
            Ok(Err(source)) => return Err(BackendError::Connect { addr, source }),
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let mut conn = ServerConn {
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: BytesMut::with_capacity(4 * 1024),
            pid: 0,
            secret: 0,
            target: target.clone(),
            params: Params::default(),
            status: b'I',
            outstanding: Outstanding::default(),
            prepared: PreparedSet::default(),
            copy_in: false,
            streaming: 0,
            broken: false,
            last_used: Instant::now(),
        };
        match tokio::time::timeout(target.connect_timeout, conn.login()).await {
            Err(_) => Err(BackendError::ConnectTimeout { addr }),
            Ok(result) => result.map(|()| conn),
        }
    }

    async fn login(&mut self) -> Result<(), BackendError> {
        let target = self.target.clone();
        let addr = || target.addr();
        protocol::startup_message(
            &mut self.wbuf,
            &[
                ("user", &target.user),
                ("database", &target.dbname),
                ("application_name", "sluice"),
            ],
        );
        self.flush_wbuf().await?;
        let mut scram: Option<ServerScram> = None;
        let mut params = Vec::new();
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'R' => {
                    if body.len() < 4 {
                        return Err(self.protocol_error("short Authentication message"));
                    }
                    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let data = &body[4..];
                    let password = || {
                        target.password.as_deref().ok_or(BackendError::NoPassword {
                            addr: addr(),
                            user: target.user.clone(),
                        })
                    };
                    match code {
                        protocol::AUTH_OK => {}
                        protocol::AUTH_CLEARTEXT => {
                            let mut payload = password()?.as_bytes().to_vec();
                            payload.push(0);
                            protocol::password_message(&mut self.wbuf, &payload);
                        }
                        protocol::AUTH_MD5 => {
                            let salt: [u8; 4] = data
                                .try_into()
                                .map_err(|_| self.protocol_error("bad md5 salt"))?;
                            let hash = postgres_protocol::authentication::md5_hash(
                                target.user.as_bytes(),
                                password()?.as_bytes(),
                                salt,
                            );
                            let mut payload = hash.into_bytes();
                            payload.push(0);
                            protocol::password_message(&mut self.wbuf, &payload);
                        }
                        protocol::AUTH_SASL => {
                            let offers_scram =
                                data.split(|&b| b == 0).any(|m| m == b"SCRAM-SHA-256");
                            if !offers_scram {
                                return Err(BackendError::UnsupportedAuth { addr: addr(), code });
                            }
                            let client = match (&target.password, &target.pass_through) {
                                (Some(password), _) => ServerScram::Password(ScramSha256::new(
                                    password.as_bytes(),
                                    ChannelBinding::unsupported(),
                                )),
                                (None, Some(pass_through)) => match pass_through.keys() {
                                    Some(keys) => ServerScram::Keys(ScramClient::new(keys)),
                                    None => {
                                        return Err(BackendError::NoClientKey {
                                            addr: addr(),
                                            user: target.user.clone(),
                                        })
                                    }
                                },
                                (None, None) => {
                                    return Err(BackendError::NoPassword {
                                        addr: addr(),
                                        user: target.user.clone(),
                                    })
                                }
                            };
                            protocol::sasl_initial_response(
                                &mut self.wbuf,
                                "SCRAM-SHA-256",
                                client.message(),
                            );
                            scram = Some(client);
                        }
                        protocol::AUTH_SASL_CONTINUE => {
                            let client = scram
                                .as_mut()
                                .ok_or_else(|| self.protocol_error("unexpected SASLContinue"))?;
                            client.update(data).map_err(|e| e.into_backend(&target))?;
                            protocol::password_message(&mut self.wbuf, client.message());
                        }
                        protocol::AUTH_SASL_FINAL => {
                            let client = scram
                                .as_mut()
                                .ok_or_else(|| self.protocol_error("unexpected SASLFinal"))?;
                            client.finish(data).map_err(|e| e.into_backend(&target))?;
                        }
                        code => return Err(BackendError::UnsupportedAuth { addr: addr(), code }),
                    }
                    if !self.wbuf.is_empty() {
                        self.flush_wbuf().await?;
                    }
                }
                b'S' => {
                    if let Some((name, rest)) = protocol::cstr(&body) {
                        if let Some((value, _)) = protocol::cstr(rest) {
                            params.push((
                                String::from_utf8_lossy(name).into(),
                                String::from_utf8_lossy(value).into(),
                            ));
                        }
                    }
                }
                b'K' if body.len() == 8 => {
                    self.pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    self.secret = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                }
                b'E' => {
                    return Err(BackendError::Server {
                        addr: addr(),
                        fields: protocol::decode_error_fields(&body),
                    })
                }
                b'Z' => {
                    params.sort();
                    params.dedup_by(|a, b| a.0 == b.0);
                    self.params = Arc::new(params);
                    self.status = body.first().copied().unwrap_or(b'I');
                    return Ok(());
                }
                _ => {} // NoticeResponse, NegotiateProtocolVersion: nothing to do
            }
        }
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
        protocol::query(&mut self.wbuf, sql);
        self.flush_wbuf().await?;
        let mut error = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'E' => error = Some(protocol::decode_error_fields(&body)),
                b'S' => {
                    if let Some((name, rest)) = protocol::cstr(&body) {
                        if let Some((value, _)) = protocol::cstr(rest) {
                            set_param(
                                &mut self.params,
                                &String::from_utf8_lossy(name),
                                &String::from_utf8_lossy(value),
                            );
                        }
                    }
                }
                b'Z' => {
                    self.status = body.first().copied().unwrap_or(b'I');
                    return match error {
                        None => Ok(()),
                        Some(fields) => Err(BackendError::Server {
                            addr: self.target.addr(),
                            fields,
                        }),
                    };
                }
                b'G' | b'H' | b'W' => {
                    // housekeeping never copies; give up on this connection
                    self.broken = true;
                    return Err(self.protocol_error("unexpected COPY during housekeeping"));
                }
                _ => {}
            }
        }
    }

    /// Runs a one-row, one-column query of the gateway's own (such as
    /// `SELECT pg_current_wal_insert_lsn()`) and returns the value as text.
    /// The connection must be idle; nothing reaches a client.
    pub async fn query_value(&mut self, sql: &str) -> Result<Option<String>, BackendError> {
        protocol::query(&mut self.wbuf, sql);
        self.flush_wbuf().await?;
        let mut error = None;
        let mut value = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'E' => error = Some(protocol::decode_error_fields(&body)),
                b'D' if value.is_none() => {
                    value = protocol::data_row_first_column(&body)
                        .map(|text| String::from_utf8_lossy(text).into_owned());
                }
                b'Z' => {
                    self.status = body.first().copied().unwrap_or(b'I');
                    return match error {
                        None => Ok(value),
                        Some(fields) => Err(BackendError::Server {
                            addr: self.target.addr(),
                            fields,
                        }),
                    };
                }
                b'G' | b'H' | b'W' => {
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
        if self.broken || self.status != b'I' || !self.outstanding.idle() || self.copy_in {
            return false;
        }
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            _ => false, // EOF, data or an error: the server is gone or said goodbye
        }
    }

    /// Ready to go back to the pool as-is.
    pub fn clean(&self) -> bool {
        !self.broken
            && self.status == b'I'
            && self.outstanding.idle()
            && !self.copy_in
            && self.streaming == 0
            && self.rbuf.is_empty()
    }

    /// In a transaction but otherwise between exchanges: a ROLLBACK makes it clean.
    pub fn needs_rollback_only(&self) -> bool {
        !self.broken
            && self.status != b'I'
            && self.outstanding.idle()
            && !self.copy_in
            && self.streaming == 0
            && self.rbuf.is_empty()
    }

    /// Says goodbye without waiting (used when closing idle connections).
    pub fn terminate(self) {
        let _ = self.stream.try_write(&[b'X', 0, 0, 0, 4]);
    }
}

/// The client side of a SCRAM login to a server: with the password, or
/// with the keys of SCRAM pass-through.
enum ServerScram {
    Password(ScramSha256),
    Keys(ScramClient),
}

/// A failed step of [`ServerScram`].
enum ServerScramError {
    Password(io::Error),
    Keys(ScramClientError),
}

impl ServerScramError {
    fn into_backend(self, target: &ServerTarget) -> BackendError {
        match self {
            ServerScramError::Keys(e @ ScramClientError::SecretMismatch { .. }) => {
                BackendError::ScramSecretMismatch {
                    addr: target.addr(),
                    user: target.user.clone(),
                    detail: e.to_string(),
                }
            }
            ServerScramError::Keys(e) => BackendError::Auth {
                addr: target.addr(),
                message: e.to_string(),
            },
            ServerScramError::Password(e) => BackendError::Auth {
                addr: target.addr(),
                message: e.to_string(),
            },
        }
    }
}

impl ServerScram {
    fn message(&self) -> &[u8] {
        match self {
            ServerScram::Password(client) => client.message(),
            ServerScram::Keys(client) => client.message(),
        }
    }

    fn update(&mut self, server_first: &[u8]) -> Result<(), ServerScramError> {
        match self {
            ServerScram::Password(client) => client
                .update(server_first)
                .map_err(ServerScramError::Password),
            ServerScram::Keys(client) => {
                client.update(server_first).map_err(ServerScramError::Keys)
            }
        }
    }

    fn finish(&mut self, server_final: &[u8]) -> Result<(), ServerScramError> {
        match self {
            ServerScram::Password(client) => client
                .finish(server_final)
                .map_err(ServerScramError::Password),
            ServerScram::Keys(client) => {
                client.finish(server_final).map_err(ServerScramError::Keys)
            }
        }
    }
}

/// Sends a CancelRequest for backend `pid` to the server at `host:port`.
pub async fn send_cancel(host: &str, port: u16, pid: i32, secret: i32) -> io::Result<()> {
    let mut stream = TcpStream::connect((host, port)).await?;
    let mut buf = BytesMut::with_capacity(16);
    protocol::cancel_request(&mut buf, pid, secret);
    stream.write_all(&buf).await?;
    // The server closes the connection when done; wait for that briefly.
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_sorted_and_copy_on_write() {
        let mut a: Params = Arc::new(vec![]);
        set_param(&mut a, "TimeZone", "UTC");
        set_param(&mut a, "DateStyle", "ISO");
        let b = a.clone();
        set_param(&mut a, "TimeZone", "Europe/Paris");
        assert_eq!(param(&a, "TimeZone"), Some("Europe/Paris"));
        assert_eq!(param(&b, "TimeZone"), Some("UTC"));
        assert_eq!(param(&a, "DateStyle"), Some("ISO"));
        assert_eq!(param(&a, "nope"), None);
    }

    #[test]
    fn prepared_set_evicts_least_recently_used() {
        let mut set = PreparedSet::default();
        set.touch(1);
        set.touch(2);
        set.touch(3);
        assert_eq!(set.evict_candidate(4), None);
        set.touch(1);
        assert_eq!(set.evict_candidate(3), Some(2));
    }

    #[test]
    fn statement_names() {
        let mut out = Vec::new();
        statement_name(42, &mut out);
        assert_eq!(out, b"sluice_42");
    }
}
