//! One client connection (pgbouncer's `client.c`): startup, authentication,
//! then the session loop, which reads top to bottom:
//!
//! 1. **read** client bytes until a whole request is pending (`Query`,
//!    `Sync`, `Flush`, `FunctionCall`; [`request`]);
//! 2. **intercept** what the gateway answers itself: SQL `PREPARE` in
//!    transaction pooling, a deferred `Parse`, `SET`/`SHOW sluice.*`
//!    ([`local`]); everything else gets a verdict on where it may run;
//! 3. **check out** a server connection with this client's parameters
//!    ([`checkout`]), with load balancing on the host the verdict and the
//!    sticky position choose ([`crate::balance::session`]), retrying a
//!    failed replica elsewhere and the primary with backoff;
//! 4. **exchange** ([`relay`]): send the request with one write (prepared
//!    statements renamed per server, [`crate::statements`]), relay the
//!    answer without decoding bodies, record a write's WAL position before
//!    the client hears `ReadyForQuery`;
//! 5. **release** the server explicitly at `ReadyForQuery` with the server
//!    idle (transaction pooling), or when the client leaves (session
//!    pooling; the pool's guard resets it).
//!
//! Login is in [`startup`] and [`auth`].
//!
//! A session is generic over its stream ([`ClientStream`]): TCP in
//! production, `tokio::io::duplex` in the scenario tests.

pub mod auth;
pub mod checkout;
pub mod local;
pub mod negotiate;
pub mod relay;
pub mod request;
pub mod startup;

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};

use tokio::task::AbortHandle;

use bytes::BytesMut;

use crate::backend::{BackendError, Params};
use crate::balance::session::Balancing;
use crate::clients::{Peer, Registration};
use crate::config::PoolMode;
use crate::net::ClientStream;
use crate::pool::{Pool, PoolError};
use crate::protocol::{self, sqlstate, ProtocolError, TxStatus};
use crate::recycle::Recycled;
use crate::server::Shared;
use crate::statements::ClientStatements;

use local::Intercept;
use relay::Step;
use request::ClientConn;
use startup::LoggedIn;

/// Why a client session ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("client sent an invalid message: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("client connection: {0}")]
    Io(#[from] io::Error),
    /// What the client is told before it is closed.
    #[error("{message}")]
    Fatal { code: &'static str, message: String },
    #[error("server connection lost: {0}")]
    ServerLost(BackendError),
}

impl ClientError {
    pub fn fatal(code: &'static str, message: impl Into<String>) -> ClientError {
        ClientError::Fatal {
            code,
            message: message.into(),
        }
    }
}

/// What the accept loop knows of a client before it logs in.
#[derive(Default)]
pub struct Accepted {
    pub peer: Peer,
    /// The client's TLS session, when it asked for one.
    pub tls: Option<crate::tls::TlsInfo>,
    /// Bytes of the startup packet already read (by [`negotiate`]).
    pub early: BytesMut,
    /// How the registry closes the client's task from outside (set by the
    /// accept loop once the task is spawned).
    pub abort: Arc<OnceLock<AbortHandle>>,
}

impl Accepted {
    /// A client accepted over TCP from `addr`.
    pub fn over_tcp(addr: std::net::SocketAddr, stream: &tokio::net::TcpStream) -> Accepted {
        Accepted {
            peer: Peer {
                addr: Some(addr),
                local: stream.local_addr().ok(),
            },
            abort: Arc::default(),
            tls: None,
            early: BytesMut::new(),
        }
    }
}

/// Serves a client accepted over TCP: TLS first if it asks, then [`serve`].
pub async fn serve_tcp(stream: tokio::net::TcpStream, shared: Arc<Shared>, mut accepted: Accepted) {
    let timeout = shared.config().proxy.client_login_timeout.0;
    let negotiated = tokio::time::timeout(timeout, negotiate::negotiate(stream, &shared)).await;
    match negotiated {
        Ok(Ok(negotiate::Negotiated::Plain(stream, early))) => {
            accepted.early = early;
            serve(stream, shared, accepted).await;
        }
        Ok(Ok(negotiate::Negotiated::Tls(stream, info))) => {
            accepted.tls = Some(info);
            serve(*stream, shared, accepted).await;
        }
        Ok(Ok(negotiate::Negotiated::Done)) | Ok(Err(_)) => {}
        Err(_) => tracing::debug!("client_login_timeout during the TLS handshake"),
    }
}

/// Serves one accepted client until it leaves.
pub async fn serve<S: ClientStream>(stream: S, shared: Arc<Shared>, accepted: Accepted) {
    // The login runs in a boxed future of its own, freed when done, so that
    // its state does not stay in every idle client's task: inline here it
    // made the task's future 1,136 bytes instead of 608.
    let login = Box::pin(startup::log_in(stream, shared, accepted));
    let Some(mut session) = login.await else {
        return;
    };
    session.pool.stats.clients.fetch_add(1, Relaxed);
    let result = session.run().await;
    session.pool.stats.clients.fetch_sub(1, Relaxed);
    if let Err(error) = result {
        tracing::debug!(pool = ?session.pool.key, %error, "client session ended");
        Box::pin(report_fatal(&mut session.conn.stream, &error)).await;
    }
}

/// Sends a FATAL ErrorResponse where the client can still hear it.
async fn report_fatal<S: ClientStream>(stream: &mut S, error: &ClientError) {
    use tokio::io::AsyncWriteExt;
    let (code, message) = match error {
        ClientError::Io(_) => return,
        ClientError::Fatal { code, message } => (*code, message.clone()),
        ClientError::Protocol(e) => (sqlstate::PROTOCOL_VIOLATION, e.to_string()),
        ClientError::ServerLost(e) => (
            sqlstate::CONNECTION_FAILURE,
            format!("server connection lost: {e}"),
        ),
    };
    let mut buf = BytesMut::new();
    protocol::error_response(&mut buf, "FATAL", code, &message);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(&buf)).await;
}

/// A logged-in client.
struct Session<S: ClientStream> {
    conn: ClientConn<S>,
    shared: Arc<Shared>,
    pool: Arc<Pool>,
    /// The pool mode this session logged in with.
    mode: PoolMode,
    /// Track and rename prepared statements (transaction mode), keeping at
    /// most this many per server connection.
    rename_statements: bool,
    max_prepared: usize,
    /// The server parameters this client wants.
    params: Params,
    statements: ClientStatements,
    /// This client in the gateway's registry: its cancel key, the server
    /// serving it, what the console shows, and a closing mark.
    client: Registration,
    /// Bytes for the client that the gateway writes itself, or relayed
    /// bytes when some must be dropped.
    scratch: BytesMut,
    /// Load balancing, for databases with replicas.
    balancing: Option<Box<Balancing>>,
    /// When the running batch and transaction started (for the counters).
    timing: Timing,
}

/// When a session's running batch and transaction started
/// ([`crate::clock::now_us`]; 0: none running).
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    batch_started_us: u64,
    xact_started_us: u64,
}

impl<S: ClientStream> Drop for Session<S> {
    /// A client closed from outside (its task aborted) hears why, if its
    /// stream takes the message at once.
    fn drop(&mut self) {
        if let Some((code, message)) = self.client.close_message() {
            let mut buf = BytesMut::new();
            protocol::error_response(&mut buf, "FATAL", code, &message);
            self.conn.write_now(&buf);
        }
    }
}

impl<S: ClientStream> Session<S> {
    fn new(stream: S, shared: Arc<Shared>, login: LoggedIn) -> Session<S> {
        let mode = login.pool.mode();
        let config = shared.config();
        let max_prepared = config.proxy.max_prepared_statements as usize;
        let rename_statements = mode == PoolMode::Transaction && max_prepared > 0;
        let max_packet = config.max_packet_size();
        Session {
            conn: ClientConn::new(stream, max_packet),
            shared,
            pool: login.pool,
            mode,
            rename_statements,
            max_prepared,
            params: login.params,
            statements: ClientStatements::default(),
            client: login.client,
            scratch: BytesMut::new(),
            balancing: login.balancing,
            timing: Timing::default(),
        }
    }

    async fn run(&mut self) -> Result<(), ClientError> {
        loop {
            // 1. Read until a whole request is pending.
            if self.conn.request_end == 0 {
                if self.conn.terminating {
                    return Ok(());
                }
                if self.conn.release_idle_buffer() {
                    // Idle: hold no buffer while waiting.
                    self.scratch = BytesMut::new();
                }
                if self.conn.read().await? == 0 {
                    return Ok(());
                }
                self.conn.scan()?;
                continue;
            }

            // 2. Intercept what the gateway answers itself.
            let verdict = match self.intercept()? {
                Intercept::Answered { consumed } => {
                    self.conn.write_all(&self.scratch).await?;
                    self.scratch.clear();
                    self.consume(consumed);
                    continue;
                }
                Intercept::Forward(verdict) => verdict,
            };

            // 3. Check out a server (routed with load balancing); nothing
            // starts while the database is paused.
            if self.shared.state.must_ask() {
                let database = self.pool.key.database.clone();
                if Box::pin(self.shared.state.may_start(&database))
                    .await
                    .is_err()
                {
                    return Err(ClientError::fatal(
                        sqlstate::PROTOCOL_VIOLATION,
                        "server shutting down",
                    ));
                }
            }
            let checked_out = match verdict {
                // The common case needs no boxed future (see `checkout`).
                None => self.check_out().await,
                // Boxed (here and below): a rarely taken path must not
                // grow every idle client's task.
                Some(verdict) => Recycled::new(self.check_out_balanced(verdict)).await,
            };
            let mut server = match checked_out {
                Ok(server) => server,
                Err(error) => {
                    self.refuse_request(&error);
                    self.conn.write_all(&self.scratch).await?;
                    self.scratch.clear();
                    let end = self.conn.request_end;
                    self.consume(end);
                    continue;
                }
            };

            // Announce the server before sending on it; a client marked
            // for closing meanwhile gives it back untouched and goes.
            if !self.client.begin_transaction() {
                self.client.serve_with(None);
                self.client.end_transaction();
                return Ok(());
            }

            // 4. Exchange. Boxed, though taken once per transaction:
            // inline, its ~330 bytes would stay in every idle client's task.
            let step = Recycled::new(self.exchange(&mut server)).await;

            // 5. Release.
            self.client.serve_with(None);
            match step {
                Ok(Step::Release) => {
                    if let Some(lb) = self.balancing.as_mut() {
                        lb.released();
                    }
                    drop(server);
                    self.client.end_transaction();
                    if self.client.is_closing() {
                        return Ok(());
                    }
                }
                Ok(Step::Reroute(reason)) => {
                    server.broken = true;
                    drop(server);
                    self.client.end_transaction();
                    self.reroute(&reason);
                }
                Ok(Step::ClientGone) => return Ok(()),
                Err(error) => {
                    if let ClientError::ServerLost(_) = &error {
                        server.broken = true;
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Drops the first `len` pending client bytes (forwarded or answered).
    fn consume(&mut self, len: usize) {
        self.conn.consume(len);
        if let Some(lb) = self.balancing.as_mut() {
            lb.consumed(len);
        }
    }

    /// No server for this request: answer it with an error (in `scratch`).
    fn refuse_request(&mut self, error: &PoolError) {
        tracing::warn!(pool = ?self.pool.key, %error, "request refused");
        protocol::error_response(
            &mut self.scratch,
            "ERROR",
            error.sqlstate(),
            &error.to_string(),
        );
        protocol::ready_for_query(&mut self.scratch, TxStatus::Idle);
    }

    /// A replica failed before answering: mark it down and put the request
    /// back in front of anything the client sent since, to be routed again.
    fn reroute(&mut self, reason: &str) {
        let Some(lb) = self.balancing.as_mut() else {
            return;
        };
        if let Some(resend) = lb.replica_failed(reason) {
            self.conn
                .put_back(resend.bytes, resend.request_end, resend.has_named);
        }
    }
}

/// The gateway's record of a statement a client Parses under a name: a
/// fresh gateway-wide id, and with load balancing its classification
/// (made once, cached by text).
fn new_statement(
    shared: &Shared,
    balanced: bool,
    query: &[u8],
    param_types: &[u8],
) -> crate::statements::Statement {
    let verdict = if balanced {
        std::str::from_utf8(query)
            .ok()
            .map(|sql| shared.router.classifier.classify(sql))
    } else {
        None
    };
    crate::statements::Statement {
        id: shared.next_statement_id(),
        query: query.into(),
        param_types: param_types.into(),
        verdict,
    }
}
