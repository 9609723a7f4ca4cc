//! One client connection: startup, authentication, then the request loop.
//!
//! The loop follows pgbouncer's `client.c` and the pgdog lessons:
//! 1. read client bytes into one buffer (freed while the client is idle, so an
//!    idle client costs only its socket and a few small fields);
//! 2. once a whole request is there (up to `Query`, `Sync`, `Flush` or
//!    `FunctionCall`), check a server connection out of the pool;
//! 3. bring that server's parameters in line with the client's
//!    (`application_name`, `TimeZone`, ... follow the client);
//! 4. send the request with one write, renaming prepared statements per
//!    server connection in transaction mode (re-preparing on demand);
//! 5. relay the server's answer without decoding bodies — only message
//!    headers are read, plus the few messages the gateway must see
//!    (`ReadyForQuery`, `ParameterStatus`, `ParseComplete`/`CloseComplete`
//!    for statements it injected, COPY starts);
//! 6. at `ReadyForQuery` with the server idle, return the server to the pool
//!    (transaction mode), or keep it (session mode, and inside transactions).
//!
//! With load balancing (a database with `replicas`), step 2 first decides
//! where the request goes (see [`Balancing`] and `Session::checkout`): the
//! gateway answers `SET`/`SHOW sluice.*` itself, reads go to a replica that
//! has replayed the client's sticky position, everything else to the
//! primary; and at step 6, after a transaction that wrote, the primary's WAL
//! position is recorded before the client hears `ReadyForQuery` — read by a
//! query the gateway appends to the request that ends the transaction when
//! it can tell that request apart (see `Session::lsn_probe_fits`), else by a
//! separate round trip after it.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::auth::{decode_sasl_initial, md5_verify, ScramServer};
use crate::backend::{
    param, set_param, statement_name, BackendError, Params, PendingParse, ServerConn,
};
use crate::balance::classify::{
    Classification, Effect, PrimaryReason, Route, RouteSetting, SluiceCommand, SluiceSetting,
};
use crate::balance::config::StickyMode;
use crate::balance::hosts::{Choice, InFlight, Limits};
use crate::balance::route::{self, SessionRouting, Target};
use crate::balance::sticky::{StickyStore, UNKNOWN_POSITION};
use crate::balance::Lsn;
use crate::buffers;
use crate::cancel::CancelKey;
use crate::config::{AuthType, PoolMode};
use crate::pool::{Checkout, NoConn, Pool, PoolError, WaitSlot};
use crate::protocol::{self, Frontend, ProtocolError, Startup};
use crate::router::{self, BalancedDatabase};
use crate::server::Shared;

/// Why a client session ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("client sent an invalid message: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("client connection: {0}")]
    Io(#[from] io::Error),
    #[error("{message}")]
    Fatal { code: &'static str, message: String },
    #[error("server connection lost: {0}")]
    ServerLost(BackendError),
    /// A replica failed before any of its answer reached the client: send
    /// the request elsewhere (never leaves the session).
    #[error("replica failed before answering: {0}")]
    Reroute(String),
}

fn fatal(code: &'static str, message: impl Into<String>) -> ClientError {
    ClientError::Fatal {
        code,
        message: message.into(),
    }
}

/// Server parameters a client can never set (so never SET for it).
const READ_ONLY_PARAMS: &[&str] = &[
    "server_version",
    "server_encoding",
    "integer_datetimes",
    "is_superuser",
    "session_authorization",
    "in_hot_standby",
    "scram_iterations",
];

/// Startup parameters that are not server settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "replication", "options"];

/// A statement a client prepared under its own name, as the gateway knows it.
struct Statement {
    /// Gateway-wide id; the server-side name is `sluice_<id>`.
    id: u64,
    query: Box<[u8]>,
    param_types: Box<[u8]>,
    /// Where the statement may run (with load balancing; classified once, at Parse).
    verdict: Option<Arc<Classification>>,
}

/// Serves one accepted client until it leaves.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    // The login runs in a boxed future of its own, freed when done, so that
    // its state does not stay in every idle client's task: inline here it
    // made the task's future 1,136 bytes instead of 608.
    let login = Box::pin(log_in(stream, shared));
    let Some(mut session) = login.await else {
        return;
    };
    session.pool.stats.clients.fetch_add(1, Relaxed);
    let result = session.run().await;
    session.pool.stats.clients.fetch_sub(1, Relaxed);
    if let Err(error) = result {
        tracing::debug!(pool = ?session.pool.key, %error, "client session ended");
        Box::pin(report_fatal(&mut session.stream, &error)).await;
    }
}

/// Startup and authentication, within client_login_timeout; `None` when
/// the client is done (refused, a cancel request, or gone).
async fn log_in(mut stream: TcpStream, shared: Arc<Shared>) -> Option<Box<Session>> {
    let _ = stream.set_nodelay(true);
    let timeout = shared.config.proxy.client_login_timeout.0;
    let error = match tokio::time::timeout(timeout, login(&mut stream, &shared)).await {
        Ok(Ok(Some(login))) => return Some(Box::new(Session::new(stream, shared, login))),
        Ok(Ok(None)) => return None, // SSL refused then closed, or a cancel request
        Ok(Err(error)) => error,
        Err(_) => fatal("08P01", "client_login_timeout: login took too long"),
    };
    report_fatal(&mut stream, &error).await;
    None
}

/// Sends a FATAL ErrorResponse where the client can still hear it.
async fn report_fatal(stream: &mut TcpStream, error: &ClientError) {
    let (code, message) = match error {
        ClientError::Io(_) => return,
        ClientError::Fatal { code, message } => (*code, message.clone()),
        ClientError::Protocol(e) => ("08P01", e.to_string()),
        ClientError::ServerLost(e) => ("08006", format!("server connection lost: {e}")),
        ClientError::Reroute(e) => ("08006", format!("server connection lost: {e}")),
    };
    let mut buf = BytesMut::new();
    protocol::error_response(&mut buf, "FATAL", code, &message);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(&buf)).await;
}

/// What login established.
struct LoggedIn {
    pool: Arc<Pool>,
    params: Params,
    cancel: CancelKey,
    balancing: Option<Box<Balancing>>,
}

/// Reads one whole message during login.
async fn read_login_message(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<(u8, BytesMut), ClientError> {
    loop {
        if let Some(len) = protocol::frame_len(buf, protocol::MAX_STARTUP_PACKET)? {
            let mut msg = buf.split_to(len);
            let tag = msg[0];
            msg.advance(5);
            return Ok((tag, msg));
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
    }
}

async fn login(
    stream: &mut TcpStream,
    shared: &Arc<Shared>,
) -> Result<Option<LoggedIn>, ClientError> {
    let config = &shared.config;
    let mut buf = BytesMut::with_capacity(512);
    let startup = loop {
        match protocol::decode_startup(&buf)? {
            None => {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Ok(None);
                }
            }
            Some((startup, used)) => {
                buf.advance(used);
                match startup {
                    Startup::SslRequest | Startup::GssEncRequest => stream.write_all(b"N").await?,
                    Startup::Cancel { pid, secret } => {
                        shared.cancels.cancel(pid, secret).await;
                        return Ok(None);
                    }
                    Startup::Params(params) => break params,
                }
            }
        }
    };
    let get = |name: &str| {
        startup
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let user = get("user").ok_or_else(|| {
        fatal(
            "28000",
            "no PostgreSQL user name specified in startup packet",
        )
    })?;
    let database = get("database").filter(|d| !d.is_empty()).unwrap_or(user);
    if get("replication").is_some_and(|r| r != "false" && r != "off" && r != "0") {
        return Err(fatal(
            "08P01",
            "replication connections are not supported by sluice",
        ));
    }
    let pool = shared
        .pools
        .get(config, database, user)
        .ok_or_else(|| fatal("3D000", format!("no such database: {database}")))?;

    authenticate(stream, &mut buf, shared, user).await?;

    // The server parameters clients see come from a real server connection.
    let defaults = match pool.defaults() {
        Some(defaults) => defaults,
        None => {
            let checkout = pool.checkout().await.map_err(login_error)?;
            let params = checkout.params.clone();
            drop(checkout);
            params
        }
    };
    let mut params = defaults.clone();
    // Settings for the gateway itself never reach a server.
    let mut gateway_settings = Vec::new();
    for (name, value) in &startup {
        if name == "options" {
            for (name, value) in parse_options(value)? {
                if is_gateway_setting(&name) {
                    gateway_settings.push((name, value));
                } else {
                    set_param(&mut params, &name, &value);
                }
            }
        } else if is_gateway_setting(name) {
            gateway_settings.push((name.clone(), value.clone()));
        } else if !NOT_SETTINGS.contains(&name.as_str()) {
            set_param(&mut params, name, value);
        }
    }
    let balancing = match shared.router.database(database) {
        Some(db) => Some(Box::new(Balancing::new(
            shared,
            db,
            database,
            user,
            &params,
            &gateway_settings,
        )?)),
        None => None,
    };
    let params = pool.intern(params);
    if params != defaults {
        // Apply them once now so a bad value fails the login, as in PostgreSQL.
        let mut checkout = pool.checkout().await.map_err(login_error)?;
        sync_params(&params, &mut checkout)
            .await
            .map_err(|e| match e {
                BackendError::Server { fields, .. } => fatal("22023", fields.message),
                other => login_error(other.into()),
            })?;
    }

    let cancel = shared.cancels.register();
    let mut out = BytesMut::with_capacity(512);
    protocol::authentication(&mut out, protocol::AUTH_OK, &[]);
    for (name, value) in params.iter() {
        if param(&defaults, name).is_some() {
            protocol::parameter_status(&mut out, name, value);
        }
    }
    protocol::backend_key_data(&mut out, cancel.pid, cancel.secret);
    protocol::ready_for_query(&mut out, b'I');
    stream.write_all(&out).await?;
    tracing::debug!(pool = ?pool.key, "client logged in");
    Ok(Some(LoggedIn {
        pool,
        params,
        cancel,
        balancing,
    }))
}

fn login_error(error: PoolError) -> ClientError {
    let code = match error.sqlstate() {
        "57014" => "57014",
        "28P01" => "28P01",
        _ => "08006",
    };
    fatal(code, error.to_string())
}

/// Checks the client's password per `auth_type` (SCRAM-SHA-256 or md5).
async fn authenticate(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    shared: &Shared,
    user: &str,
) -> Result<(), ClientError> {
    let config = &shared.config;
    let failed = || {
        fatal(
            "28P01",
            format!("password authentication failed for user \"{user}\""),
        )
    };
    let secret = config.auth.get(user);
    let auth_type = config.proxy.auth_type;
    if auth_type == AuthType::Trust {
        return if secret.is_some() || config.auth.is_empty() {
            Ok(())
        } else {
            Err(failed())
        };
    }
    let secret = secret.ok_or_else(failed)?;
    let mut out = BytesMut::with_capacity(256);
    let use_md5 = auth_type == AuthType::Md5 && secret.md5.is_some();
    if use_md5 {
        let salt: [u8; 4] = rand::random();
        protocol::authentication(&mut out, protocol::AUTH_MD5, &salt);
        stream.write_all(&out).await?;
        let (tag, body) = read_login_message(stream, buf).await?;
        let stored = secret.md5.as_deref().expect("checked above");
        if tag != b'p' || !md5_verify(stored, salt, &body) {
            return Err(failed());
        }
        return Ok(());
    }
    let scram = secret.scram.as_ref().ok_or_else(failed)?;
    protocol::authentication(&mut out, protocol::AUTH_SASL, b"SCRAM-SHA-256\0\0");
    stream.write_all(&out).await?;
    out.clear();
    let (tag, body) = read_login_message(stream, buf).await?;
    let (mechanism, first) = match (tag, decode_sasl_initial(&body)) {
        (b'p', Some(parts)) => parts,
        _ => return Err(fatal("08P01", "expected SASLInitialResponse")),
    };
    if mechanism != b"SCRAM-SHA-256" {
        return Err(fatal("28000", "unsupported SASL mechanism"));
    }
    let (server, server_first) = ScramServer::start(scram, first).map_err(|_| failed())?;
    protocol::authentication(
        &mut out,
        protocol::AUTH_SASL_CONTINUE,
        server_first.as_bytes(),
    );
    stream.write_all(&out).await?;
    out.clear();
    let (tag, body) = read_login_message(stream, buf).await?;
    if tag != b'p' {
        return Err(fatal("08P01", "expected SASLResponse"));
    }
    let verified = server.finish(&body).map_err(|_| failed())?;
    // SCRAM pass-through: the user's pools may now log in to servers with it.
    secret.client_key.learn(verified.client_key);
    protocol::authentication(
        &mut out,
        protocol::AUTH_SASL_FINAL,
        verified.server_final.as_bytes(),
    );
    stream.write_all(&out).await?;
    Ok(())
}

/// Brings a server connection's parameters in line with the client's, with
/// one round trip of `SET`/`RESET`, only when they differ.
async fn sync_params(wanted: &Params, server: &mut Checkout) -> Result<(), BackendError> {
    if Arc::ptr_eq(wanted, &server.params) {
        return Ok(());
    }
    let mut sql = String::new();
    for (name, value) in wanted.iter() {
        if READ_ONLY_PARAMS.contains(&&**name) || param(&server.params, name) == Some(value) {
            continue;
        }
        sql.push_str(&format!(
            "SET {} = {};",
            quote_ident(name),
            quote_literal(value)
        ));
    }
    for (name, _) in server.params.iter() {
        if param(wanted, name).is_none() && !READ_ONLY_PARAMS.contains(&&**name) {
            sql.push_str(&format!("RESET {};", quote_ident(name)));
        }
    }
    if !sql.is_empty() {
        server.run_housekeeping(&sql).await?;
    }
    server.params = wanted.clone();
    Ok(())
}

/// Reads the `options` startup parameter: `-c name=value` and
/// `--name=value` settings separated by spaces (`\\ ` is a literal space).
fn parse_options(options: &str) -> Result<Vec<(String, String)>, ClientError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let bad = || {
        fatal(
            "22023",
            format!("unsupported startup options {options:?}: only -c name=value is"),
        )
    };
    let mut settings = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next().ok_or_else(bad)?
        } else if let Some(rest) = word.strip_prefix("-c").or_else(|| word.strip_prefix("--")) {
            rest.to_string()
        } else {
            return Err(bad());
        };
        let (name, value) = setting.split_once('=').ok_or_else(bad)?;
        settings.push((name.replace('-', "_"), value.to_string()));
    }
    Ok(settings)
}

/// Startup settings that are the gateway's, not the server's.
fn is_gateway_setting(name: &str) -> bool {
    name.starts_with("sluice.") || name == "target_session_attrs"
}

/// `on`, `true`, `yes`, `1` (PostgreSQL's boolean spellings, any case).
fn is_on(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1" | "t" | "y"
    )
}

/// Connection attempts to the primary before the client gets an error.
const PRIMARY_CONNECT_TRIES: u32 = 3;
/// The first wait before retrying the primary; doubled each time.
const PRIMARY_RETRY_DELAY: Duration = Duration::from_millis(100);

/// One session's load-balancing state; exists only for databases with
/// replicas while `load_balancing.enabled` (boxed: most sessions have none).
struct Balancing {
    db: Arc<BalancedDatabase>,
    /// This (database, user)'s pool on each replica, by replica index.
    replica_pools: Box<[Arc<Pool>]>,
    user: String,
    /// Prefix of this session's application sticky keys (the database).
    database: String,
    routing: SessionRouting,
    /// `sluice.sticky_key` (used with `sticky = "key"`).
    sticky_key: Option<String>,
    /// Session pooling: the session asked to be read-only, so a replica may serve it.
    read_only_session: bool,
    /// This connection's last write: its WAL position and when it was recorded.
    last_write: Option<(Lsn, tokio::time::Instant)>,
    /// The current server: `None` for the primary, `Some(i)` for replica `i`.
    on_replica: Option<usize>,
    in_flight: Option<InFlight>,
    /// A request on the current (primary) server may have written.
    wrote: bool,
    /// `rbuf[..classified]` has been looked at for writes.
    classified: usize,
    /// `relay` held back the client's final ReadyForQuery until the write's
    /// position is recorded (with a separate round trip).
    held_ready: bool,
    /// The gateway's position query appended to the request on the server.
    probe: Option<LsnProbe>,
    /// The request sent to a replica, until the first byte of its answer:
    /// if the replica fails before that, it is sent elsewhere.
    resend: Option<Resend>,
    /// Replica failures for the pending request.
    reroutes: usize,
    /// Something was sent on the current server.
    sent_once: bool,
}

/// The gateway's `SELECT pg_current_wal_insert_lsn()`, sent in the same
/// write right behind a request that ends a writing transaction on the
/// primary, so that reading the position costs no extra round trip.
#[derive(Debug, Clone, Copy)]
struct LsnProbe {
    /// Its batch on the server connection (`Outstanding::batches_sent` when
    /// sent): the client's final ReadyForQuery ends the batch before it.
    batch: u64,
    /// The status of the client's final ReadyForQuery, held back until the
    /// position is recorded.
    client_status: Option<u8>,
    /// The position read (`None` until its DataRow, or if it failed).
    lsn: Option<Lsn>,
    /// Its own ReadyForQuery arrived: nothing more of it will come.
    answered: bool,
}

/// The gateway's query for the primary's WAL position after a write.
const WAL_POSITION_SQL: &str = "SELECT pg_current_wal_insert_lsn()";

/// A request that may still be sent to another host.
struct Resend {
    bytes: BytesMut,
    request_end: usize,
    has_named: bool,
}

impl Balancing {
    fn new(
        shared: &Shared,
        db: &Arc<BalancedDatabase>,
        database: &str,
        user: &str,
        params: &Params,
        gateway_settings: &[(String, String)],
    ) -> Result<Balancing, ClientError> {
        let replica_pools = (0..db.hosts.replicas().len())
            .map(|index| {
                shared
                    .pools
                    .get_on(&shared.config, database, user, Some(index))
                    .expect("every replica of a configured database has a pool")
            })
            .collect();
        let mut balancing = Balancing {
            db: db.clone(),
            replica_pools,
            user: user.to_owned(),
            database: database.to_owned(),
            routing: SessionRouting::default(),
            sticky_key: None,
            read_only_session: param(params, "default_transaction_read_only").is_some_and(is_on),
            last_write: None,
            on_replica: None,
            in_flight: None,
            wrote: false,
            classified: 0,
            held_ready: false,
            probe: None,
            resend: None,
            reroutes: 0,
            sent_once: false,
        };
        for (name, value) in gateway_settings {
            let bad = |what: &str| fatal("22023", format!("invalid value for {name}: {what}"));
            match name.as_str() {
                "target_session_attrs" => {
                    balancing.read_only_session |=
                        matches!(value.as_str(), "read-only" | "standby" | "prefer-standby");
                }
                "sluice.sticky_key" => {
                    balancing.sticky_key = Some(value.clone()).filter(|k| !k.is_empty())
                }
                "sluice.route" => {
                    balancing.routing.route = match value.as_str() {
                        "auto" => RouteSetting::Auto,
                        "primary" => RouteSetting::Primary,
                        "replica" => RouteSetting::Replica,
                        _ => return Err(bad("expected auto, primary or replica")),
                    }
                }
                "sluice.min_lsn" => {
                    balancing.routing.min_lsn = Some(
                        value
                            .parse()
                            .map_err(|_| bad("expected a WAL position like 0/16B3748"))?,
                    )
                }
                other => {
                    return Err(fatal(
                        "42704",
                        format!("unrecognized configuration parameter \"{other}\""),
                    ))
                }
            }
        }
        Ok(balancing)
    }

    /// The position this connection's own last write requires, within the TTL.
    fn own_position(&self, ttl: Duration) -> Option<Lsn> {
        self.last_write
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(lsn, _)| lsn)
    }

    fn store_key(&self) -> Option<String> {
        self.sticky_key
            .as_ref()
            .map(|key| format!("{}/{key}", self.database))
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// True for a simple query that is SQL-level `PREPARE` (comments and spaces skipped).
fn is_sql_prepare(sql: &[u8]) -> bool {
    let mut rest = sql;
    loop {
        while let Some((&b, after)) = rest.split_first() {
            if b.is_ascii_whitespace() {
                rest = after;
            } else {
                break;
            }
        }
        if rest.starts_with(b"--") {
            rest = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |i| &rest[i + 1..]);
        } else if rest.starts_with(b"/*") {
            rest = rest
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(&[][..], |i| &rest[i + 2..]);
        } else {
            break;
        }
    }
    if !(rest.len() > 7
        && rest[..7].eq_ignore_ascii_case(b"prepare")
        && rest[7].is_ascii_whitespace())
    {
        return false;
    }
    // PREPARE TRANSACTION (two-phase commit) ends a transaction: it is fine.
    let next = rest[8..].trim_ascii_start();
    !(next.len() >= 11 && next[..11].eq_ignore_ascii_case(b"transaction"))
}

/// A pending request after the gateway looked at it.
enum Pending {
    /// The gateway answered it (a `sluice.*` command, or a refusal).
    Answered,
    /// It needs a server; this is where it may run.
    Route(Classification),
}

/// What [`Session::classify_pending`] found.
enum Classified {
    Route(Classification),
    /// One simple query of only `sluice.*` commands.
    Gateway(Arc<Classification>),
    /// `sluice.*` commands mixed with SQL or in the extended protocol.
    Refuse(&'static str),
}

/// What one turn of the exchange loop decided.
enum Step {
    /// The server is idle and may go back to the pool.
    Release,
    /// The client left (Terminate or EOF).
    ClientGone,
}

/// A logged-in client.
struct Session {
    stream: TcpStream,
    shared: Arc<Shared>,
    pool: Arc<Pool>,
    /// Track and rename prepared statements (transaction mode).
    rename_statements: bool,
    /// Client bytes: complete messages in `rbuf[..scanned]`, then a partial one.
    rbuf: BytesMut,
    scanned: usize,
    /// `rbuf[..request_end]` ends with a request boundary (Query, Sync, ...).
    request_end: usize,
    /// The pending messages name a prepared statement (they may need renaming).
    has_named: bool,
    /// The client sent Terminate.
    terminating: bool,
    /// The server parameters this client wants.
    params: Params,
    statements: HashMap<Box<[u8]>, Statement>,
    cancel: CancelKey,
    max_packet: usize,
    /// Scratch buffer for relayed bytes when some must be dropped.
    scratch: BytesMut,
    /// Load balancing, for databases with replicas.
    balancing: Option<Box<Balancing>>,
    /// Where this client waits for a server connection (made at its first
    /// request, then reused).
    wait_slot: Option<Arc<WaitSlot>>,
}

/// Pending client bytes beyond which a request is sent without waiting for its end.
const MAX_PENDING: usize = 1 << 20;

impl Session {
    fn new(stream: TcpStream, shared: Arc<Shared>, login: LoggedIn) -> Session {
        let rename_statements = login.pool.mode == PoolMode::Transaction
            && shared.config.proxy.max_prepared_statements > 0;
        let max_packet = shared.config.max_packet_size();
        Session {
            stream,
            shared,
            pool: login.pool,
            rename_statements,
            rbuf: BytesMut::new(),
            scanned: 0,
            request_end: 0,
            has_named: false,
            terminating: false,
            params: login.params,
            statements: HashMap::new(),
            cancel: login.cancel,
            max_packet,
            scratch: BytesMut::new(),
            balancing: login.balancing,
            wait_slot: None,
        }
    }

    async fn run(&mut self) -> Result<(), ClientError> {
        let mut server: Option<Checkout> = None;
        loop {
            match server.as_mut() {
                None => {
                    if self.request_end == 0 {
                        if self.terminating {
                            return Ok(());
                        }
                        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
                            // Idle: hold no buffer while waiting.
                            buffers::give(std::mem::take(&mut self.rbuf));
                            self.scratch = BytesMut::new();
                        }
                        if read_client(&mut self.stream, &mut self.rbuf).await? == 0 {
                            return Ok(());
                        }
                        self.scan()?;
                        continue;
                    }
                    // Checked here first so that a plain request boxes no future.
                    if self.may_be_sql_prepare() {
                        let answered = Box::pin(self.answer_sql_prepare()).await?;
                        if answered {
                            continue;
                        }
                    }
                    if self.may_defer_parse() {
                        let answered = Box::pin(self.defer_parse()).await?;
                        if answered {
                            continue;
                        }
                    }
                    let verdict = match (self.balancing.is_some(), self.pool.mode) {
                        (false, _) => None,
                        (true, PoolMode::Transaction) => {
                            match Box::pin(self.gateway_commands()).await? {
                                Pending::Answered => continue,
                                Pending::Route(verdict) => Some(verdict),
                            }
                        }
                        // Session pooling routes the whole session at once.
                        (true, PoolMode::Session) => Some(Classification::read()),
                    };
                    // The common case, a server of the primary's pool that
                    // already has this client's parameters (idle or handed
                    // over after a wait), needs no boxed future.
                    let acquired = match verdict {
                        None => {
                            let slot = self.wait_slot.get_or_insert_with(Arc::default);
                            match self.pool.acquire(slot).await {
                                Ok(checkout) if Arc::ptr_eq(&checkout.params, &self.params) => {
                                    self.route_cancels_to(&checkout);
                                    server = Some(checkout);
                                    continue;
                                }
                                other => Ok(other),
                            }
                        }
                        Some(verdict) => Err(verdict),
                    };
                    // Boxed (here and below): a rarely taken path must not
                    // grow every idle client's task.
                    let checkout = match acquired {
                        Ok(acquired) => {
                            let pool = self.pool.clone();
                            Box::pin(self.finish_checkout(&pool, acquired)).await
                        }
                        Err(verdict) => Box::pin(self.checkout(verdict)).await,
                    };
                    match checkout {
                        Ok(checkout) => server = Some(checkout),
                        Err(error) => Box::pin(self.refuse_request(error)).await?,
                    }
                }
                Some(srv) => {
                    // Boxed, though taken once per transaction: inline, its
                    // ~400 bytes would stay in every idle client's task.
                    let step = Box::pin(self.exchange(srv)).await;
                    match step {
                        Ok(Step::Release) => {
                            self.cancel.slot.set(None);
                            self.pool.stats.xact_count.fetch_add(1, Relaxed);
                            server = None;
                            if let Some(lb) = self.balancing.as_mut() {
                                lb.in_flight = None;
                                lb.resend = None;
                                lb.reroutes = 0;
                            }
                        }
                        Err(ClientError::Reroute(reason)) => {
                            self.cancel.slot.set(None);
                            srv.broken = true;
                            server = None;
                            self.reroute(&reason);
                        }
                        Ok(Step::ClientGone) => {
                            self.cancel.slot.set(None);
                            return Ok(());
                        }
                        Err(error) => {
                            self.cancel.slot.set(None);
                            if let ClientError::ServerLost(_) = &error {
                                srv.broken = true;
                            }
                            return Err(error);
                        }
                    }
                }
            }
        }
    }

    /// Finds the complete messages in the read buffer and where the request ends.
    fn scan(&mut self) -> Result<(), ClientError> {
        loop {
            let rest = &self.rbuf[self.scanned..];
            let Some(len) = protocol::frame_len(rest, self.max_packet)? else {
                break;
            };
            match protocol::decode_frontend(&rest[..len])? {
                Frontend::Terminate => {
                    // Nothing after Terminate matters, and servers never see it.
                    self.terminating = true;
                    self.rbuf.truncate(self.scanned);
                    self.request_end = self.scanned;
                    return Ok(());
                }
                Frontend::Password(_) => {
                    return Err(fatal("08P01", "unexpected password message after login"))
                }
                Frontend::Query(_)
                | Frontend::Sync
                | Frontend::Flush
                | Frontend::FunctionCall(_)
                | Frontend::CopyData(_)
                | Frontend::CopyDone
                | Frontend::CopyFail(_) => {
                    self.scanned += len;
                    self.request_end = self.scanned;
                }
                Frontend::Parse { name, .. }
                | Frontend::Bind {
                    statement: name, ..
                }
                | Frontend::Describe { kind: b'S', name }
                | Frontend::Close { kind: b'S', name } => {
                    // Only named statements need renaming.
                    self.has_named |= !name.is_empty();
                    self.scanned += len;
                }
                Frontend::Describe { .. } | Frontend::Close { .. } => self.scanned += len,
                Frontend::Execute { .. } => self.scanned += len,
            }
        }
        if self.scanned >= MAX_PENDING {
            self.request_end = self.scanned;
        }
        Ok(())
    }

    /// Whether the pending request may be SQL-level PREPARE in transaction
    /// pooling (what [`Session::answer_sql_prepare`] looks at next).
    fn may_be_sql_prepare(&self) -> bool {
        self.pool.mode == PoolMode::Transaction && self.rbuf[0] == b'Q'
    }

    /// SQL-level PREPARE cannot work in transaction pooling (the statement
    /// would stay on whichever server ran it): answer it with a clear error.
    async fn answer_sql_prepare(&mut self) -> Result<bool, ClientError> {
        if !self.may_be_sql_prepare() {
            return Ok(false);
        }
        let len = protocol::frame_len(&self.rbuf, usize::MAX)?.unwrap_or(0);
        if len != self.request_end || !is_sql_prepare(&self.rbuf[5..len]) {
            return Ok(false);
        }
        let mut out = BytesMut::new();
        protocol::error_response(
            &mut out,
            "ERROR",
            "0A000",
            "SQL PREPARE is not supported in transaction pooling mode: \
             use protocol-level prepared statements (they work transparently) or pool_mode = \"session\"",
        );
        protocol::ready_for_query(&mut out, b'I');
        self.stream.write_all(&out).await?;
        self.consume(len);
        Ok(true)
    }

    /// A request of only named Parse messages and a Sync (what libpq's
    /// `PQprepare` sends) is answered by the gateway: the statements are
    /// registered and prepared on a server at their first Bind or Describe.
    /// This saves a round trip, and it keeps a client that prepares
    /// synchronously (pgbench -M prepared) from waiting for a server
    /// connection held by its own thread's other clients.
    async fn defer_parse(&mut self) -> Result<bool, ClientError> {
        if !self.may_defer_parse() {
            return Ok(false);
        }
        let mut parses = Vec::new();
        let mut offset = 0;
        while offset < self.scanned {
            let msg = &self.rbuf[offset..self.scanned];
            let total = i32::from_be_bytes([msg[1], msg[2], msg[3], msg[4]]) as usize + 1;
            match protocol::decode_frontend(&msg[..total])? {
                Frontend::Parse { name, .. } if !name.is_empty() => {
                    parses.push(offset..offset + total)
                }
                Frontend::Sync if offset + total == self.scanned => {}
                _ => return Ok(false),
            }
            offset += total;
        }
        if parses.is_empty() {
            return Ok(false);
        }
        let mut out = BytesMut::with_capacity(5 * parses.len() + 6);
        for range in parses {
            if let Frontend::Parse {
                name,
                query,
                param_types,
            } = protocol::decode_frontend(&self.rbuf[range])?
            {
                let id = self.shared.next_statement_id();
                let verdict = self.statement_verdict(query);
                self.statements.insert(
                    name.into(),
                    Statement {
                        id,
                        query: query.into(),
                        param_types: param_types.into(),
                        verdict,
                    },
                );
            }
            out.extend_from_slice(&[b'1', 0, 0, 0, 4]);
        }
        protocol::ready_for_query(&mut out, b'I');
        self.stream.write_all(&out).await?;
        let len = self.scanned;
        self.consume(len);
        Ok(true)
    }

    /// Whether the pending request may be one [`Session::defer_parse`] answers.
    fn may_defer_parse(&self) -> bool {
        self.rename_statements && self.has_named && self.request_end == self.scanned
    }

    /// A prepared statement's classification, made once at Parse (cached by text).
    fn statement_verdict(&self, query: &[u8]) -> Option<Arc<Classification>> {
        self.balancing.as_ref()?;
        let sql = std::str::from_utf8(query).ok()?;
        Some(self.shared.router.classifier.classify(sql))
    }

    fn consume(&mut self, len: usize) {
        self.rbuf.advance(len);
        self.scanned -= len;
        self.request_end = self.request_end.saturating_sub(len);
        if let Some(lb) = self.balancing.as_mut() {
            lb.classified = lb.classified.saturating_sub(len);
        }
        if self.scanned == 0 {
            self.has_named = false;
        }
    }

    /// With load balancing, gets a server connection for the pending
    /// request and makes it look like this client's own: `verdict` (the
    /// pending request's classification) and the session's routing state
    /// choose the host (see [`route::target`]):
    /// a replica that fails to connect is marked down and the request goes
    /// to another replica, then the primary; the primary is tried
    /// `PRIMARY_CONNECT_TRIES` times with exponential backoff.
    async fn checkout(&mut self, verdict: Classification) -> Result<Checkout, PoolError> {
        let mut target = self.choose_host(&verdict).await;
        let mut primary_tries = 0;
        loop {
            let lb = self.balancing.as_ref().expect("verdict implies balancing");
            let pool = match target {
                Some(index) => lb.replica_pools[index].clone(),
                None => self.pool.clone(),
            };
            match self.checkout_from(&pool).await {
                Ok(checkout) => {
                    let runs_something = self.pending_runs_something(0);
                    let lb = self.balancing.as_mut().expect("verdict implies balancing");
                    lb.on_replica = target;
                    lb.in_flight = Some(match target {
                        Some(index) => lb.db.hosts.start_on_replica(index),
                        None => lb.db.hosts.start_on_primary(),
                    });
                    lb.wrote = target.is_none() && verdict.may_write && runs_something;
                    lb.classified = self.scanned;
                    lb.held_ready = false;
                    lb.probe = None;
                    lb.sent_once = false;
                    return Ok(checkout);
                }
                Err(PoolError::Backend(error)) if error.is_connection_failure() => match target {
                    Some(index) => {
                        let lb = self.balancing.as_mut().expect("verdict implies balancing");
                        lb.db.hosts.mark_replica_down(index, &error.to_string());
                        lb.reroutes += 1;
                        tracing::info!(pool = ?pool.key, %error, "replica failed; routing again");
                        target = self.choose_host(&verdict).await;
                    }
                    None => {
                        primary_tries += 1;
                        if primary_tries >= PRIMARY_CONNECT_TRIES {
                            return Err(PoolError::Unreachable {
                                tries: primary_tries,
                                source: error,
                            });
                        }
                        let delay = PRIMARY_RETRY_DELAY * (1 << (primary_tries - 1));
                        tracing::warn!(pool = ?pool.key, %error, ?delay, "primary unreachable; retrying");
                        tokio::time::sleep(delay).await;
                    }
                },
                Err(error) => return Err(error),
            }
        }
    }

    /// From now on this client's CancelRequest reaches `checkout`'s backend.
    fn route_cancels_to(&self, checkout: &Checkout) {
        self.cancel.slot.set(Some((
            checkout.target.clone(),
            checkout.pid,
            checkout.secret,
        )));
    }

    /// Checks a server out of `pool` and brings its parameters in line.
    async fn checkout_from(&mut self, pool: &Arc<Pool>) -> Result<Checkout, PoolError> {
        let slot = self.wait_slot.get_or_insert_with(Arc::default);
        let acquired = pool.acquire(slot).await;
        self.finish_checkout(pool, acquired).await
    }

    /// Opens the connection `acquired` may be a permit for, and brings the
    /// server's parameters in line with this client's.
    async fn finish_checkout(
        &mut self,
        pool: &Arc<Pool>,
        acquired: Result<Checkout, NoConn>,
    ) -> Result<Checkout, PoolError> {
        let mut checkout = pool.complete(acquired).await?;
        if let Err(e) = sync_params(&self.params, &mut checkout).await {
            checkout.broken = true;
            return Err(e.into());
        }
        self.route_cancels_to(&checkout);
        Ok(checkout)
    }

    /// Where a request with this classification goes: `Some(i)` for
    /// replica `i`, `None` for the primary.
    async fn choose_host(&self, verdict: &Classification) -> Option<usize> {
        let lb = self.balancing.as_deref()?;
        let config = &self.shared.config.load_balancing;
        if lb.reroutes > lb.replica_pools.len() {
            return None;
        }
        if self.pool.mode == PoolMode::Session {
            if !lb.read_only_session || config.is_primary_only(&lb.user) {
                return None;
            }
            return match lb.db.hosts.choose(None, &Limits::from(config)) {
                Choice::Replica(index) => Some(index),
                Choice::Primary(_) => None,
            };
        }
        let sticky = match config.sticky {
            StickyMode::Off => None,
            StickyMode::Connection => lb.own_position(config.sticky_ttl),
            StickyMode::Key => {
                let own = lb.own_position(config.sticky_ttl);
                match (lb.store_key(), &self.shared.router.store) {
                    (Some(key), Some(store)) => store.required_lsn(&key).await.max(own),
                    _ => own,
                }
            }
        };
        let executes = request_executes(&self.rbuf[..self.request_end]);
        match route::target(
            config,
            &lb.user,
            &lb.routing,
            verdict,
            sticky,
            &lb.db.hosts,
            executes,
        ) {
            Target::Replica(index) => Some(index),
            Target::Primary(why) => {
                tracing::trace!(%why, "to the primary");
                None
            }
        }
    }

    /// A replica failed before answering: mark it down and put the request
    /// back in front of anything the client sent since, to be routed again.
    fn reroute(&mut self, reason: &str) {
        let Some(lb) = self.balancing.as_mut() else {
            return;
        };
        if let Some(index) = lb.on_replica.take() {
            lb.db.hosts.mark_replica_down(index, reason);
        }
        lb.in_flight = None;
        lb.reroutes += 1;
        tracing::info!(
            reason,
            "replica failed before answering; sending the request elsewhere"
        );
        if let Some(resend) = lb.resend.take() {
            let len = resend.bytes.len();
            let mut bytes = resend.bytes;
            bytes.extend_from_slice(&self.rbuf);
            self.rbuf = bytes;
            self.scanned += len;
            self.request_end = if self.request_end > 0 {
                self.request_end + len
            } else {
                resend.request_end
            };
            self.has_named |= resend.has_named;
        }
    }

    /// Classifies the pending request. A `SET`/`SHOW sluice.*` string is
    /// answered here (simple query protocol only); otherwise the
    /// combined verdict of every statement in the request is returned.
    async fn gateway_commands(&mut self) -> Result<Pending, ClientError> {
        let verdict = self.classify_pending(0)?;
        match verdict {
            Classified::Route(verdict) => Ok(Pending::Route(verdict)),
            Classified::Refuse(message) => {
                let mut out = BytesMut::new();
                protocol::error_response(&mut out, "ERROR", "0A000", message);
                protocol::ready_for_query(&mut out, b'I');
                self.stream.write_all(&out).await?;
                let end = self.request_end;
                self.consume(end);
                Ok(Pending::Answered)
            }
            Classified::Gateway(verdict) => {
                let out = self.answer_sluice(&verdict);
                self.stream.write_all(&out).await?;
                let end = self.request_end;
                self.consume(end);
                Ok(Pending::Answered)
            }
        }
    }

    /// Classifies the client messages in `rbuf[from..scanned]` and combines
    /// their verdicts: the request may use a replica only if every part may;
    /// anything the gateway cannot see into goes to the primary.
    fn classify_pending(&self, from: usize) -> Result<Classified, ClientError> {
        let classifier = &self.shared.router.classifier;
        let unknown = || Arc::new(Classification::unknown(PrimaryReason::Unclassified));
        let classify = |sql: &[u8]| match std::str::from_utf8(sql) {
            Ok(sql) => classifier.classify(sql),
            Err(_) => unknown(),
        };
        let mut combined = Classification::read();
        let mut unnamed_parsed = false;
        let mut offset = from;
        let mut messages = 0;
        while offset < self.scanned {
            let msg = &self.rbuf[offset..self.scanned];
            let total = i32::from_be_bytes([msg[1], msg[2], msg[3], msg[4]]) as usize + 1;
            let msg = &msg[..total];
            offset += total;
            messages += 1;
            let verdict = match protocol::decode_frontend(msg)? {
                Frontend::Query(sql) => {
                    let verdict = classify(sql);
                    if verdict
                        .effects
                        .iter()
                        .any(|e| matches!(e, Effect::Sluice(_)))
                    {
                        return Ok(
                            if verdict.gateway_only
                                && from == 0
                                && offset == self.scanned
                                && messages == 1
                            {
                                Classified::Gateway(verdict)
                            } else {
                                Classified::Refuse(
                                "sluice.* commands must be sent on their own, outside a transaction",
                            )
                            },
                        );
                    }
                    verdict
                }
                Frontend::Parse { name, query, .. } => {
                    unnamed_parsed |= name.is_empty();
                    let verdict = classify(query);
                    if verdict
                        .effects
                        .iter()
                        .any(|e| matches!(e, Effect::Sluice(_)))
                    {
                        return Ok(Classified::Refuse(
                            "sluice.* commands work with the simple query protocol only",
                        ));
                    }
                    verdict
                }
                Frontend::Bind { statement: &[], .. } => {
                    if unnamed_parsed {
                        continue;
                    }
                    unknown()
                }
                Frontend::Bind { statement, .. } => self
                    .statements
                    .get(statement)
                    .and_then(|s| s.verdict.clone())
                    .unwrap_or_else(unknown),
                Frontend::FunctionCall(_) => unknown(),
                _ => continue,
            };
            combined.may_write |= verdict.may_write;
            combined.hinted |= verdict.hinted;
            if combined.route == Route::Replica {
                combined.route = verdict.route;
            }
        }
        Ok(Classified::Route(combined))
    }

    /// The gateway's own answer to a string of `SET`/`SHOW sluice.*`.
    fn answer_sluice(&mut self, verdict: &Classification) -> BytesMut {
        let mut out = BytesMut::new();
        if let Some(message) = verdict.sluice_error() {
            protocol::error_response(&mut out, "ERROR", "22023", message);
            protocol::ready_for_query(&mut out, b'I');
            return out;
        }
        let lb = self.balancing.as_mut().expect("only with load balancing");
        for effect in &verdict.effects {
            let Effect::Sluice(command) = effect else {
                continue;
            };
            match command {
                SluiceCommand::SetRoute(setting) => lb.routing.route = *setting,
                SluiceCommand::SetStickyKey(key) => {
                    lb.sticky_key = key.clone().filter(|k| !k.is_empty())
                }
                SluiceCommand::SetMinLsn(lsn) => lb.routing.min_lsn = *lsn,
                SluiceCommand::Show(setting) => {
                    let value = match setting {
                        SluiceSetting::Route => match lb.routing.route {
                            RouteSetting::Auto => "auto".to_string(),
                            RouteSetting::Primary => "primary".to_string(),
                            RouteSetting::Replica => "replica".to_string(),
                        },
                        SluiceSetting::StickyKey => lb.sticky_key.clone().unwrap_or_default(),
                        SluiceSetting::MinLsn => lb
                            .routing
                            .min_lsn
                            .map_or_else(String::new, |lsn| lsn.to_string()),
                        SluiceSetting::LastWriteLsn => {
                            lb.last_write.map_or(Lsn(0), |(lsn, _)| lsn).to_string()
                        }
                        SluiceSetting::Hosts => {
                            let rows = router::hosts_rows(&lb.db.hosts);
                            router::text_result(&mut out, router::HOSTS_COLUMNS, &rows, "SHOW");
                            continue;
                        }
                    };
                    router::text_result(&mut out, &[setting.name()], &[vec![Some(value)]], "SHOW");
                    continue;
                }
                SluiceCommand::Invalid(_) => unreachable!("answered above"),
            }
            router::command_complete(&mut out, "SET");
        }
        protocol::ready_for_query(&mut out, b'I');
        out
    }

    /// Notes whether client messages about to go to the primary may write
    /// (so the transaction's position is recorded when it ends).
    fn note_writes(&mut self) {
        let Some(lb) = self.balancing.as_deref() else {
            return;
        };
        if lb.on_replica.is_some() || lb.wrote || lb.classified >= self.scanned {
            return;
        }
        let from = lb.classified;
        let may_write = self.pending_runs_something(from)
            && match self.classify_pending(from) {
                Ok(Classified::Route(verdict)) => verdict.may_write,
                _ => true,
            };
        let lb = self.balancing.as_mut().expect("checked above");
        lb.wrote |= may_write;
        lb.classified = self.scanned;
    }

    /// Whether client messages from `rbuf[from..]` may run a statement.
    /// Parse, Describe and Close (a client preparing a statement) run
    /// nothing; a Bind may be executed later, so it counts.
    fn pending_runs_something(&self, from: usize) -> bool {
        protocol_messages(&self.rbuf[from..self.scanned])
            .any(|tag| !matches!(tag, b'P' | b'D' | b'C' | b'S' | b'H'))
    }

    /// No server for this request: answer it with an error and drop it.
    async fn refuse_request(&mut self, error: PoolError) -> Result<(), ClientError> {
        tracing::warn!(pool = ?self.pool.key, %error, "request refused");
        let mut out = BytesMut::new();
        protocol::error_response(&mut out, "ERROR", error.sqlstate(), &error.to_string());
        protocol::ready_for_query(&mut out, b'I');
        self.stream.write_all(&out).await?;
        let end = self.request_end;
        self.consume(end);
        Ok(())
    }

    /// Relays between client and server until the server can be released or
    /// the client leaves.
    async fn exchange(&mut self, srv: &mut Checkout) -> Result<Step, ClientError> {
        let srv: &mut ServerConn = srv;
        // On a replica, requests that arrive while one is running wait for
        // it to finish and are routed on their own (they may be writes).
        let on_replica = self.pool.mode == PoolMode::Transaction
            && self
                .balancing
                .as_ref()
                .is_some_and(|lb| lb.on_replica.is_some());
        loop {
            // (The rest of an unfinished extended-protocol batch, e.g. the
            // Sync after a Flush, always follows its first part.)
            let out = &srv.outstanding;
            let may_send = !on_replica || out.unsynced || out.batches_sent == out.batches_done;
            if self.scanned > 0 && may_send {
                let mut probe = false;
                if self.balancing.is_some() && self.pool.mode == PoolMode::Transaction {
                    self.note_writes();
                    self.keep_for_resend(on_replica);
                    probe = self.lsn_probe_fits(srv);
                }
                let sent = self.send_to_server(srv, probe).await;
                if let Err(error) = sent {
                    return Err(self.replica_failed(error));
                }
            }
            if self.terminating {
                return Ok(Step::ClientGone);
            }
            if srv.rbuf.capacity() - srv.rbuf.len() < 4096 {
                srv.rbuf.reserve(16 * 1024);
            }
            tokio::select! {
                biased;
                read = srv.stream.read_buf(&mut srv.rbuf) => {
                    let lost = match read {
                        Ok(0) => Some(BackendError::Closed { addr: srv.target.addr() }),
                        Err(source) => Some(BackendError::Io { addr: srv.target.addr(), source }),
                        Ok(_) => None,
                    };
                    if let Some(error) = lost {
                        return Err(self.replica_failed(ClientError::ServerLost(error)));
                    }
                    if self.awaiting_first_answer() {
                        match first_answer(&srv.rbuf) {
                            FirstAnswer::Incomplete => continue,
                            FirstAnswer::ServerGone(message) => return Err(ClientError::Reroute(message)),
                            FirstAnswer::Answer => {
                                if let Some(lb) = self.balancing.as_mut() {
                                    lb.resend = None;
                                }
                            }
                        }
                    }
                    self.relay(srv).await?;
                    while let Some(pipelined) = self.write_to_record() {
                        Box::pin(self.record_write(srv)).await?;
                        if !pipelined || srv.rbuf.is_empty() {
                            break;
                        }
                        // More answers followed the gateway's position query.
                        self.relay(srv).await?;
                    }
                    if self.pool.mode == PoolMode::Transaction
                        && srv.clean()
                        && (self.scanned == 0 || on_replica)
                    {
                        return Ok(Step::Release);
                    }
                }
                read = read_client(&mut self.stream, &mut self.rbuf) => {
                    if read? == 0 {
                        return Ok(Step::ClientGone);
                    }
                    self.scan()?;
                }
            }
        }
    }

    /// Before the first send on a replica, keeps a copy of the request so it
    /// can go elsewhere if the replica fails before answering.
    fn keep_for_resend(&mut self, on_replica: bool) {
        let Some(lb) = self.balancing.as_mut() else {
            return;
        };
        if on_replica && lb.resend.is_none() && lb.in_flight.is_some() && !lb.sent_once {
            lb.resend = Some(Resend {
                bytes: BytesMut::from(&self.rbuf[..self.scanned]),
                request_end: self.request_end,
                has_named: self.has_named,
            });
        }
        lb.sent_once = true;
    }

    /// The request went to a replica and nothing of its answer reached the
    /// client yet.
    fn awaiting_first_answer(&self) -> bool {
        self.balancing
            .as_ref()
            .is_some_and(|lb| lb.resend.is_some())
    }

    /// Turns a lost replica connection into a reroute when the request can
    /// still be sent elsewhere; otherwise the error stands.
    fn replica_failed(&self, error: ClientError) -> ClientError {
        if self.awaiting_first_answer() {
            ClientError::Reroute(error.to_string())
        } else {
            error
        }
    }

    /// Whether a position is ready to record and the client's ReadyForQuery
    /// waits for it: `Some(true)` when the appended position query has
    /// answered, `Some(false)` when it must be read on a separate round trip.
    fn write_to_record(&self) -> Option<bool> {
        let lb = self.balancing.as_deref()?;
        if lb.probe.is_some_and(|probe| probe.answered) {
            Some(true)
        } else if lb.held_ready {
            Some(false)
        } else {
            None
        }
    }

    /// A transaction that wrote ended on the primary and `relay` held back
    /// its ReadyForQuery: record the primary's WAL insert position for the
    /// sticky key, then let the client go on. The position comes from the
    /// query appended to the request when there was one; otherwise it is
    /// read now, on the same connection. If it cannot be read, record one
    /// no replica reaches, so reads stay on the primary for the TTL rather
    /// than risk a stale read.
    ///
    /// With an appended query the client's ReadyForQuery may say the
    /// transaction is still open ('T', 'E': the request did not end it
    /// after all); then nothing is recorded, and the commit still to come
    /// records the position.
    async fn record_write(&mut self, srv: &mut ServerConn) -> Result<(), ClientError> {
        let lb = self.balancing.as_mut().expect("held only with balancing");
        let (status, lsn) = match lb.probe.take() {
            Some(probe) => (
                probe.client_status.unwrap_or(b'I'),
                probe.lsn.unwrap_or(UNKNOWN_POSITION),
            ),
            None => {
                lb.wrote = false;
                let lsn = if srv.streaming == 0 && srv.rbuf.is_empty() {
                    lb.db.lsn_reads.separate.fetch_add(1, Relaxed);
                    match srv.query_value(WAL_POSITION_SQL).await {
                        Ok(Some(text)) => text.parse().unwrap_or(UNKNOWN_POSITION),
                        Ok(None) => UNKNOWN_POSITION,
                        Err(error) => {
                            tracing::warn!(%error, "could not read the WAL position after a write");
                            srv.broken = true;
                            UNKNOWN_POSITION
                        }
                    }
                } else {
                    UNKNOWN_POSITION
                };
                (b'I', lsn)
            }
        };
        let lb = self.balancing.as_mut().expect("held only with balancing");
        lb.held_ready = false;
        if status == b'I' {
            lb.last_write = Some((lsn, tokio::time::Instant::now()));
            if let (Some(key), Some(store)) = (lb.store_key(), &self.shared.router.store) {
                store.record_write(&key, lsn).await;
            }
        } else {
            // The transaction goes on, and it wrote.
            lb.wrote = true;
        }
        let mut out = BytesMut::with_capacity(6);
        protocol::ready_for_query(&mut out, status);
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// Whether the pending request may carry the gateway's position query
    /// right behind it (so no extra round trip after it). Only when the
    /// request surely ends a transaction that wrote, and its answer is
    /// surely one batch ending in ReadyForQuery:
    /// - the server is idle, with nothing outstanding, sticky reads are on,
    ///   and this session wrote on the primary;
    /// - the request is one simple `Query`, or extended-protocol messages
    ///   with one Bind, one Execute and a final Sync, of one statement
    ///   parsed with certainty that is not `COPY` (data would follow it);
    /// - outside a transaction: the statement does not begin or end one
    ///   (it runs on its own, the server is idle after it); inside one:
    ///   it is `COMMIT`/`END`/`ROLLBACK`/`ABORT` (without `AND CHAIN`).
    ///
    /// Everything else (multi-statement strings, pipelined batches, COPY,
    /// function calls, unclassifiable text, a writing statement inside an
    /// explicit transaction) keeps the separate round trip once the server
    /// reports the transaction over: appending a query there could run it
    /// inside the client's transaction (taking its snapshot before a
    /// `SET TRANSACTION`) or in the middle of a COPY.
    ///
    /// The appended simple `Query` drops the server's unnamed prepared
    /// statement, as the client's own next simple query would. A client
    /// cannot rely on it past the end of its transaction in transaction
    /// pooling anyway: its next request may get another server connection.
    fn lsn_probe_fits(&self, srv: &ServerConn) -> bool {
        let Some(lb) = self.balancing.as_deref() else {
            return false;
        };
        let fits = self.pool.mode == PoolMode::Transaction
            && self.shared.config.load_balancing.sticky != StickyMode::Off
            && lb.on_replica.is_none()
            && lb.wrote
            && lb.probe.is_none()
            && !lb.held_ready
            && !self.terminating
            && self.request_end == self.scanned
            && srv.outstanding.idle()
            && !srv.copy_in
            && srv.streaming == 0
            && srv.rbuf.is_empty();
        if !fits {
            return false;
        }
        let Some(statement) = self.lone_request_statement() else {
            return false;
        };
        if !statement.lone_statement {
            return false;
        }
        match srv.status {
            b'I' => !statement.effects.iter().any(|effect| {
                matches!(
                    effect,
                    Effect::Begin { .. } | Effect::Commit | Effect::Rollback
                )
            }),
            b'T' | b'E' => matches!(statement.effects[..], [Effect::Commit] | [Effect::Rollback]),
            _ => false,
        }
    }

    /// The classification of the statement the pending request runs, if it
    /// is exactly one simple `Query`, or extended-protocol messages with one
    /// Bind and one Execute ending with the request's only Sync.
    fn lone_request_statement(&self) -> Option<Arc<Classification>> {
        let classifier = &self.shared.router.classifier;
        let classify = |sql: &[u8]| {
            std::str::from_utf8(sql)
                .ok()
                .map(|sql| classifier.classify(sql))
        };
        // Statements parsed in this request (not registered until sent).
        let mut parsed: Vec<(&[u8], &[u8])> = Vec::new();
        let mut bound = None;
        let (mut binds, mut executes) = (0, 0);
        let mut offset = 0;
        while offset < self.scanned {
            let msg = &self.rbuf[offset..self.scanned];
            let total = i32::from_be_bytes([msg[1], msg[2], msg[3], msg[4]]) as usize + 1;
            let first = offset == 0;
            offset += total;
            let last = offset == self.scanned;
            match protocol::decode_frontend(&msg[..total]).ok()? {
                Frontend::Query(sql) if first && last => return classify(sql),
                Frontend::Parse { name, query, .. } => parsed.push((name, query)),
                Frontend::Bind { statement, .. } => {
                    binds += 1;
                    bound = match parsed.iter().rev().find(|(name, _)| *name == statement) {
                        Some((_, query)) => classify(query),
                        None if statement.is_empty() => None,
                        None => self.statements.get(statement)?.verdict.clone(),
                    };
                }
                Frontend::Execute { .. } => executes += 1,
                Frontend::Describe { .. } | Frontend::Close { .. } | Frontend::Flush => {}
                Frontend::Sync if last => {}
                _ => return None,
            }
        }
        if binds == 1 && executes == 1 {
            bound
        } else {
            None
        }
    }

    /// Sends every complete pending client message to `srv`, renaming
    /// prepared statements when needed, and notes what the server now owes.
    /// With `probe`, the gateway's position query follows in the same write
    /// (see [`Session::lsn_probe_fits`]).
    async fn send_to_server(
        &mut self,
        srv: &mut ServerConn,
        probe: bool,
    ) -> Result<(), ClientError> {
        let len = self.scanned;
        let stats = &self.pool.stats;
        stats.bytes_received.fetch_add(len as u64, Relaxed);
        if self.rename_statements && self.has_named {
            self.rewrite_into(srv)?;
            if probe {
                self.append_lsn_probe(srv);
            }
            let result = srv.flush_wbuf().await;
            result.map_err(ClientError::ServerLost)?;
        } else {
            let mut rest = &self.rbuf[..len];
            while rest.len() >= 5 {
                let total = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize + 1;
                if self.rename_statements {
                    // Unnamed Parse/Close still answer in order with the
                    // gateway's own: keep the queues complete.
                    let batch = srv.outstanding.batches_sent;
                    if rest[0] == b'P' {
                        srv.outstanding.parses.push_back(PendingParse {
                            id: None,
                            injected: false,
                            batch,
                        });
                    } else if rest[0] == b'C' {
                        srv.outstanding.closes.push_back((false, batch));
                    }
                }
                note_sent(srv, rest[0]);
                if rest[0] == b'Q' || rest[0] == b'S' {
                    stats.query_count.fetch_add(1, Relaxed);
                }
                rest = &rest[total..];
            }
            let written = if probe {
                srv.wbuf.extend_from_slice(&self.rbuf[..len]);
                self.append_lsn_probe(srv);
                srv.stream.write_all(&srv.wbuf).await
            } else {
                srv.stream.write_all(&self.rbuf[..len]).await
            };
            srv.wbuf.clear();
            if let Err(source) = written {
                srv.broken = true;
                return Err(ClientError::ServerLost(BackendError::Io {
                    addr: srv.target.addr(),
                    source,
                }));
            }
        }
        self.consume(len);
        Ok(())
    }

    /// Puts the gateway's position query behind the request in `srv`'s
    /// write buffer; `relay` takes its answer out of the stream.
    fn append_lsn_probe(&mut self, srv: &mut ServerConn) {
        let lb = self.balancing.as_mut().expect("probes only with balancing");
        protocol::query(&mut srv.wbuf, WAL_POSITION_SQL);
        lb.probe = Some(LsnProbe {
            batch: srv.outstanding.batches_sent,
            client_status: None,
            lsn: None,
            answered: false,
        });
        note_sent(srv, b'Q');
        // Writes sent after this request belong to the next transaction.
        lb.wrote = false;
        lb.db.lsn_reads.pipelined.fetch_add(1, Relaxed);
    }

    /// Builds the request for `srv` in its write buffer: the client's
    /// messages with statement names mapped to the gateway's, Parse injected
    /// for statements this server does not have yet, and Close for ones
    /// evicted to stay within max_prepared_statements.
    fn rewrite_into(&mut self, srv: &mut ServerConn) -> Result<(), ClientError> {
        let limit = self.shared.config.proxy.max_prepared_statements as usize;
        let mut name = Vec::new();
        let mut offset = 0;
        while offset < self.scanned {
            let msg = &self.rbuf[offset..];
            let total = i32::from_be_bytes([msg[1], msg[2], msg[3], msg[4]]) as usize + 1;
            let msg = &msg[..total];
            offset += total;
            let batch = srv.outstanding.batches_sent;
            match protocol::decode_frontend(msg)? {
                Frontend::Parse {
                    name: client_name,
                    query,
                    param_types,
                } if !client_name.is_empty() => {
                    let id = self.shared.next_statement_id();
                    let verdict = self.statement_verdict(query);
                    self.statements.insert(
                        client_name.into(),
                        Statement {
                            id,
                            query: query.into(),
                            param_types: param_types.into(),
                            verdict,
                        },
                    );
                    make_room(srv, limit, &mut name);
                    statement_name(id, &mut name);
                    protocol::parse(&mut srv.wbuf, &name, query, param_types);
                    srv.prepared.touch(id);
                    srv.outstanding.parses.push_back(PendingParse {
                        id: Some(id),
                        injected: false,
                        batch,
                    });
                    srv.outstanding.unsynced = true;
                }
                Frontend::Bind {
                    portal,
                    statement,
                    rest,
                } if !statement.is_empty() && self.statements.contains_key(statement) => {
                    let stmt = &self.statements[statement];
                    ensure_prepared(srv, stmt, limit, &mut name);
                    protocol::bind(&mut srv.wbuf, portal, &name, rest);
                    srv.outstanding.unsynced = true;
                }
                Frontend::Describe {
                    kind: b'S',
                    name: client_name,
                } if !client_name.is_empty() && self.statements.contains_key(client_name) => {
                    let stmt = &self.statements[client_name];
                    ensure_prepared(srv, stmt, limit, &mut name);
                    protocol::describe_or_close(&mut srv.wbuf, b'D', b'S', &name);
                    srv.outstanding.unsynced = true;
                }
                Frontend::Close {
                    kind: b'S',
                    name: client_name,
                } if !client_name.is_empty() => {
                    match self.statements.remove(client_name) {
                        Some(stmt) => {
                            statement_name(stmt.id, &mut name);
                            protocol::describe_or_close(&mut srv.wbuf, b'C', b'S', &name);
                            srv.prepared.remove(stmt.id);
                        }
                        None => srv.wbuf.extend_from_slice(msg),
                    }
                    srv.outstanding.closes.push_back((false, batch));
                    srv.outstanding.unsynced = true;
                }
                Frontend::Parse { .. } => {
                    srv.wbuf.extend_from_slice(msg);
                    srv.outstanding.parses.push_back(PendingParse {
                        id: None,
                        injected: false,
                        batch,
                    });
                    srv.outstanding.unsynced = true;
                }
                Frontend::Close { .. } => {
                    srv.wbuf.extend_from_slice(msg);
                    srv.outstanding.closes.push_back((false, batch));
                    srv.outstanding.unsynced = true;
                }
                _ => {
                    srv.wbuf.extend_from_slice(msg);
                    note_sent(srv, msg[0]);
                    if msg[0] == b'Q' || msg[0] == b'S' {
                        self.pool.stats.query_count.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        Ok(())
    }

    /// Forwards every complete (or streamable) server message in `srv.rbuf`
    /// to the client, watching the few message types that matter.
    async fn relay(&mut self, srv: &mut ServerConn) -> Result<(), ClientError> {
        let buf_len = srv.rbuf.len();
        let mut pos = 0;
        let mut start = 0; // first byte not yet copied to `scratch`
        let mut dropped = false;
        if srv.streaming > 0 {
            pos = srv.streaming.min(buf_len);
            srv.streaming -= pos;
        }
        let mut probe = self.balancing.as_mut().and_then(|lb| lb.probe.take());
        while buf_len - pos >= 5 {
            let header = &srv.rbuf[pos..pos + 5];
            let tag = header[0];
            let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            if len < 4 {
                srv.broken = true;
                return Err(ClientError::ServerLost(BackendError::Protocol {
                    addr: srv.target.addr(),
                    message: format!("invalid message length {len}"),
                }));
            }
            let total = len as usize + 1;
            let complete = buf_len - pos >= total;
            if let Some(probe) = probe.as_mut().filter(|p| p.client_status.is_some()) {
                // The answer to the gateway's position query (small, so
                // taken whole): none of it reaches the client, except an
                // asynchronous notification that happens to arrive now.
                if !complete {
                    break;
                }
                let body = &srv.rbuf[pos + 5..pos + total];
                match tag {
                    b'D' => {
                        probe.lsn = protocol::data_row_first_column(body)
                            .and_then(|text| std::str::from_utf8(text).ok())
                            .and_then(|text| text.parse().ok());
                    }
                    b'E' => probe.lsn = None,
                    b'Z' => {
                        srv.status = body.first().copied().unwrap_or(b'I');
                        finish_batch(srv);
                        probe.answered = true;
                    }
                    _ => {}
                }
                if tag != b'A' {
                    self.scratch.extend_from_slice(&srv.rbuf[start..pos]);
                    start = pos + total;
                    dropped = true;
                }
                pos += total;
                if probe.answered {
                    // The client's ReadyForQuery goes out before anything
                    // after this, once the position is recorded.
                    break;
                }
                continue;
            }
            if !matches!(tag, b'Z' | b'1' | b'3' | b'S' | b'G' | b'H' | b'W') {
                if !complete {
                    // Stream the rest of a large row or copy chunk as it comes.
                    srv.streaming = total - (buf_len - pos);
                    pos = buf_len;
                    break;
                }
                pos += total;
                continue;
            }
            if !complete {
                break;
            }
            if tag == b'Z' && total != 6 {
                srv.broken = true;
                return Err(ClientError::ServerLost(BackendError::Protocol {
                    addr: srv.target.addr(),
                    message: format!("ReadyForQuery of length {len}"),
                }));
            }
            let mut drop_message = false;
            match tag {
                b'Z' => {
                    srv.status = srv.rbuf[pos + 5];
                    srv.copy_in = false;
                    finish_batch(srv);
                    match probe.as_mut() {
                        // The client's final ReadyForQuery, before the
                        // answer to the gateway's position query.
                        Some(probe) if probe.batch == srv.outstanding.batches_done => {
                            probe.client_status = Some(srv.status);
                            drop_message = true;
                        }
                        _ => drop_message = self.hold_ready(srv),
                    }
                }
                b'1' => {
                    if let Some(parse) = srv.outstanding.parses.pop_front() {
                        drop_message = parse.injected;
                    }
                }
                b'3' => {
                    if let Some((injected, _)) = srv.outstanding.closes.pop_front() {
                        drop_message = injected;
                    }
                }
                b'S' => {
                    let body = &srv.rbuf[pos + 5..pos + total];
                    if let Some((name, rest)) = protocol::cstr(body) {
                        if let Some((value, _)) = protocol::cstr(rest) {
                            let name = String::from_utf8_lossy(name).into_owned();
                            let value = String::from_utf8_lossy(value).into_owned();
                            set_param(&mut srv.params, &name, &value);
                            if !READ_ONLY_PARAMS.contains(&&*name) {
                                set_param(&mut self.params, &name, &value);
                                // Keep the shared Arc so the next checkout of
                                // this server needs no SET.
                                srv.params = self.params.clone();
                            }
                        }
                    }
                }
                b'G' | b'W' => srv.copy_in = true,
                _ => {}
            }
            if drop_message {
                self.scratch.extend_from_slice(&srv.rbuf[start..pos]);
                start = pos + total;
                dropped = true;
            }
            pos += total;
        }
        if let Some(lb) = self.balancing.as_mut() {
            lb.probe = probe;
        }
        let result = if dropped {
            self.scratch.extend_from_slice(&srv.rbuf[start..pos]);
            let r = self.stream.write_all(&self.scratch).await;
            self.scratch.clear();
            r
        } else if pos > 0 {
            self.stream.write_all(&srv.rbuf[..pos]).await
        } else {
            Ok(())
        };
        self.pool.stats.bytes_sent.fetch_add(pos as u64, Relaxed);
        srv.rbuf.advance(pos);
        if srv.rbuf.is_empty() && srv.rbuf.capacity() > 1 << 20 {
            // A huge result passed through: do not keep its buffer.
            srv.rbuf = BytesMut::with_capacity(16 * 1024);
        }
        result.map_err(ClientError::Io)
    }
}

impl Session {
    /// At a ReadyForQuery: is this the end of a transaction that wrote on
    /// the primary (idle, nothing else owed, sticky on)? Then the client
    /// must not see it before the write's position is recorded.
    fn hold_ready(&mut self, srv: &ServerConn) -> bool {
        let sticky = self.shared.config.load_balancing.sticky;
        let transaction_mode = self.pool.mode == PoolMode::Transaction;
        let Some(lb) = self.balancing.as_mut() else {
            return false;
        };
        let hold = transaction_mode
            && sticky != StickyMode::Off
            && lb.wrote
            && lb.on_replica.is_none()
            && srv.status == b'I'
            && srv.outstanding.idle();
        lb.held_ready |= hold;
        hold
    }
}

/// The tags of the whole messages in `buf` (client messages, as scanned).
fn protocol_messages(mut buf: &[u8]) -> impl Iterator<Item = u8> + '_ {
    std::iter::from_fn(move || {
        let header = buf.get(..5)?;
        let total = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize + 1;
        let tag = header[0];
        buf = buf.get(total..).unwrap_or_default();
        Some(tag)
    })
}

/// How a replica's answer to a resendable request begins.
enum FirstAnswer {
    /// Not one whole message yet.
    Incomplete,
    /// The server is shutting down or cannot serve (SQLSTATE class 57P or
    /// 08): nothing ran, so the request may go elsewhere.
    ServerGone(String),
    /// A real answer: relay it.
    Answer,
}

fn first_answer(buf: &[u8]) -> FirstAnswer {
    if buf.len() < 5 {
        return FirstAnswer::Incomplete;
    }
    let total = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]).max(4) as usize + 1;
    if buf.len() < total {
        return FirstAnswer::Incomplete;
    }
    if buf[0] == b'E' {
        let fields = protocol::decode_error_fields(&buf[5..total]);
        if fields.code.starts_with("57P") || fields.code.starts_with("08") {
            return FirstAnswer::ServerGone(fields.message);
        }
    }
    FirstAnswer::Answer
}

/// Records that a message with `tag` went to the server.
#[inline]
fn note_sent(srv: &mut ServerConn, tag: u8) {
    match tag {
        b'Q' | b'S' | b'F' => {
            srv.outstanding.batches_sent += 1;
            srv.outstanding.unsynced = false;
        }
        b'P' | b'B' | b'D' | b'C' | b'E' | b'H' => srv.outstanding.unsynced = true,
        _ => {}
    }
}

/// A ReadyForQuery arrived: the oldest request is answered. Parses of that
/// request that never completed (skipped after an error) did not create
/// their statements, so forget them.
fn finish_batch(srv: &mut ServerConn) {
    let out = &mut srv.outstanding;
    out.batches_done += 1;
    let done = out.batches_done;
    while out.parses.front().is_some_and(|p| p.batch < done) {
        let parse = out.parses.pop_front().expect("front exists");
        if let Some(id) = parse.id {
            srv.prepared.remove(id);
        }
    }
    let out = &mut srv.outstanding;
    while out.closes.front().is_some_and(|c| c.1 < done) {
        out.closes.pop_front();
    }
}

/// Closes least recently used statements until one more fits.
fn make_room(srv: &mut ServerConn, limit: usize, name: &mut Vec<u8>) {
    while let Some(victim) = srv.prepared.evict_candidate(limit) {
        statement_name(victim, name);
        protocol::describe_or_close(&mut srv.wbuf, b'C', b'S', name);
        srv.prepared.remove(victim);
        let batch = srv.outstanding.batches_sent;
        srv.outstanding.closes.push_back((true, batch));
    }
}

/// Makes sure `srv` has `stmt` prepared (injecting a Parse whose
/// ParseComplete the client will not see); leaves its server name in `name`.
fn ensure_prepared(srv: &mut ServerConn, stmt: &Statement, limit: usize, name: &mut Vec<u8>) {
    if !srv.prepared.contains(stmt.id) {
        make_room(srv, limit, name);
        statement_name(stmt.id, name);
        protocol::parse(&mut srv.wbuf, name, &stmt.query, &stmt.param_types);
        let batch = srv.outstanding.batches_sent;
        srv.outstanding.parses.push_back(PendingParse {
            id: Some(stmt.id),
            injected: true,
            batch,
        });
    }
    srv.prepared.touch(stmt.id);
    statement_name(stmt.id, name);
}

/// Reads client bytes. An idle client holds no buffer: wait until the
/// socket is readable, then allocate.
async fn read_client(stream: &mut TcpStream, rbuf: &mut BytesMut) -> io::Result<usize> {
    if rbuf.capacity() == 0 {
        stream.readable().await?;
        *rbuf = buffers::take();
    } else if rbuf.capacity() - rbuf.len() < 1024 {
        rbuf.reserve(buffers::SIZE);
    }
    stream.read_buf(rbuf).await
}

/// Whether a request runs anything (a Query, an Execute or a FunctionCall),
/// as opposed to only preparing or describing statements. Reads message
/// headers only.
fn request_executes(mut request: &[u8]) -> bool {
    while request.len() >= 5 {
        if matches!(request[0], b'Q' | b'E' | b'F') {
            return true;
        }
        let len = u32::from_be_bytes([request[1], request[2], request[3], request[4]]) as usize;
        let Some(rest) = request.get(1 + len..) else {
            break;
        };
        request = rest;
    }
    false
}

#[cfg(test)]
mod tests {
    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn only_requests_that_run_something_execute() {
        let prepare = [
            message(b'P', b"\0SELECT 1\0\0\0"),
            message(b'D', b"S\0"),
            message(b'S', b""),
        ]
        .concat();
        assert!(!request_executes(&prepare));
        let execute = [
            message(b'B', b"\0\0\0\0\0\0\0\0"),
            message(b'E', b"\0\0\0\0\0"),
            message(b'S', b""),
        ]
        .concat();
        assert!(request_executes(&execute));
        assert!(request_executes(&message(b'Q', b"SELECT 1\0")));
        // A truncated header or body is not read past.
        assert!(!request_executes(&prepare[..3]));
        assert!(!request_executes(&[b'P', 0, 0, 0, 200, b'x']));
    }

    use super::*;

    #[test]
    fn recognises_sql_prepare() {
        assert!(is_sql_prepare(b"PREPARE q AS SELECT 1"));
        assert!(is_sql_prepare(
            b"  -- hi\n /* x */ prepare\tq(int) AS SELECT $1"
        ));
        assert!(!is_sql_prepare(b"SELECT 'PREPARE x'"));
        assert!(!is_sql_prepare(b"prepared"));
        assert!(!is_sql_prepare(b"PREPARE TRANSACTION 'x'"));
        assert!(!is_sql_prepare(b"/* unterminated"));
    }

    #[test]
    fn startup_options() {
        let parsed =
            parse_options("-c TimeZone=Asia/Tokyo --search-path=a,b -cstatement_timeout=5s")
                .unwrap();
        assert_eq!(
            parsed,
            vec![
                ("TimeZone".to_string(), "Asia/Tokyo".to_string()),
                ("search_path".to_string(), "a,b".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
            ]
        );
        assert_eq!(
            parse_options(r"-c application_name=a\ b").unwrap()[0].1,
            "a b"
        );
        assert!(parse_options("-x").is_err());
        assert!(parse_options("-c").is_err());
    }

    #[test]
    fn message_tags() {
        let mut buf = BytesMut::new();
        protocol::query(&mut buf, "SELECT 1");
        buf.extend_from_slice(&[b'S', 0, 0, 0, 4]);
        let tags: Vec<u8> = protocol_messages(&buf).collect();
        assert_eq!(tags, b"QS");
        assert_eq!(protocol_messages(&[]).count(), 0);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("Time\"Zone"), "\"Time\"\"Zone\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
