//! The gateway process: the accept loop, `max_client_conn`, the janitor and
//! shutdown (mini-redis's `server.rs` shape).
//!
//! The accept loop races shutdown with `select!`, backs off when `accept`
//! fails (out of file descriptors), and spawns one task per client. Clients
//! over `max_client_conn` get a proper PostgreSQL `ErrorResponse` with
//! SQLSTATE 53300 (after their startup packet, so every driver shows it)
//! while everyone else keeps being served.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Mutex;

use arc_swap::ArcSwap;

use crate::auth::query::AuthQueries;
use crate::clients::Clients;
use crate::config::{Config, ConfigError};
use crate::net::{Connector, TcpConnector};
use crate::pool::stats::{Averages, Totals};
use crate::pool::Pools;
use crate::protocol::{self, sqlstate, Startup};
use crate::router::{HealthChecks, Router};
use crate::state::{GatewayState, Shutdown};

/// What every client task shares, passed explicitly (no globals).
pub struct Shared {
    /// The configuration now; a reload (`SIGHUP`, `RELOAD`, `SET`) swaps
    /// it whole. Read it with [`Shared::config`].
    config: ArcSwap<Config>,
    pub pools: Pools,
    /// auth_query: secrets of users the auth_file does not have.
    pub auth_queries: AuthQueries,
    /// Every logged-in client.
    pub clients: Arc<Clients>,
    /// Load balancing: host tables, health checkers, classifier, sticky store.
    pub router: Router,
    /// Paused, suspended, disabled, shutting down.
    pub state: GatewayState,
    /// Clients connected and still logging in (`SHOW LISTS`' login_clients).
    pub logging_in: AtomicU32,
    /// Client connections open, logged in or not (for `max_client_conn`).
    pub connections: AtomicU32,
    /// `SHOW STATS`' averages per database over the last `stats_period`.
    averages: Mutex<HashMap<String, Averages>>,
    next_statement: AtomicU64,
}

impl Shared {
    /// Builds the shared state and starts the replica health checkers (so
    /// it must run inside the Tokio runtime).
    pub fn new(config: Arc<Config>) -> io::Result<Shared> {
        Shared::with_connector(config, Arc::new(TcpConnector), HealthChecks::Run)
    }

    /// [`Shared::new`] with servers reached through `connector`, and health
    /// checks run or left to the caller (scenario tests stage host health
    /// and serve the server side of every connection themselves).
    pub fn with_connector(
        config: Arc<Config>,
        connector: Arc<dyn Connector>,
        checks: HealthChecks,
    ) -> io::Result<Shared> {
        let router = Router::start(&config, checks).map_err(io::Error::other)?;
        Ok(Shared {
            config: ArcSwap::new(config),
            pools: Pools::new(connector),
            auth_queries: AuthQueries::default(),
            clients: Arc::default(),
            router,
            state: GatewayState::default(),
            logging_in: AtomicU32::new(0),
            connections: AtomicU32::new(0),
            averages: Mutex::default(),
            next_statement: AtomicU64::new(1),
        })
    }

    /// The configuration now.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Re-reads the configuration file (`SIGHUP`, `RELOAD`). A file that
    /// does not load is refused and logged as `file:line: message`; the
    /// settings in force keep serving.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let current = self.config();
        let mut next = match Config::load(&current.path) {
            Ok(next) => next,
            Err(error) => {
                tracing::error!("reload refused, keeping the running configuration: {error}");
                return Err(error);
            }
        };
        next.auth.keep_learned_keys(&current.auth);
        self.apply(next);
        tracing::info!(config = %current.path.display(), "configuration reloaded");
        Ok(())
    }

    /// Puts `next` in force: pools, limits, load balancing. Settings that
    /// need a restart (the listening address, threads, metrics) are logged.
    pub fn apply(&self, next: Config) {
        let current = self.config();
        let p = (&current.proxy, &next.proxy);
        if p.0.listen_addr.get_ref() != p.1.listen_addr.get_ref()
            || p.0.listen_port != p.1.listen_port
            || p.0.worker_threads != p.1.worker_threads
            || p.0.metrics_listen_addr != p.1.metrics_listen_addr
            || p.0.metrics_port != p.1.metrics_port
        {
            tracing::warn!(
                "listen address, worker threads and metrics settings change only at restart"
            );
        }
        self.pools.reconfigure(&next);
        self.auth_queries.reconfigure();
        self.router.reconfigure(&next);
        self.config.store(Arc::new(next));
    }

    /// `SHOW STATS`' averages per database, as of the last `stats_period`.
    pub fn averages(&self) -> HashMap<String, Averages> {
        self.averages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The janitor's averages of the period that just ended.
    pub fn set_averages(&self, averages: HashMap<String, Averages>) {
        *self.averages.lock().unwrap_or_else(|e| e.into_inner()) = averages;
    }

    /// The pools' counters summed per database.
    pub fn totals_by_database(&self) -> HashMap<String, Totals> {
        let mut totals: HashMap<String, Totals> = HashMap::new();
        for pool in self.pools.all() {
            pool.stats
                .add_to(totals.entry(pool.key.database.clone()).or_default());
        }
        totals
    }

    /// A fresh gateway-wide prepared statement id.
    pub fn next_statement_id(&self) -> u64 {
        self.next_statement.fetch_add(1, Relaxed)
    }
}

/// A gateway running in the background (for tests, the demo and benches).
pub struct Gateway {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl Gateway {
    /// Binds `listen_addr:listen_port` (port 0 picks a free one) and serves.
    pub async fn start(config: Arc<Config>) -> io::Result<Gateway> {
        let listener = TcpListener::bind((config.listen_ip, config.proxy.listen_port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config)?);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, shared.clone(), async {
            let _ = stopped.await;
        }));
        Ok(Gateway {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// Stops accepting, ends every client session and waits for that.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap_or(Ok(()))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the gateway for `sluice proxy` until it shuts down: `SIGTERM`
/// drains (each client closed at its next transaction boundary), `SIGINT`
/// waits for every server connection to be released, a second signal (or
/// `shutdown_timeout`) closes the rest; `SIGHUP` reloads the configuration.
pub async fn run_until_shutdown(config: Arc<Config>) -> io::Result<()> {
    let listener = TcpListener::bind((config.listen_ip, config.proxy.listen_port))
        .await
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {}:{}: {e}",
                    config.listen_ip, config.proxy.listen_port
                ),
            )
        })?;
    let metrics_listener = crate::metrics::bind(&config).await?;
    raise_fd_limit(&config);
    tracing::info!(addr = %listener.local_addr()?, config = %config.path.display(), "sluice proxy listening");
    let shared = Arc::new(Shared::new(config)?);
    let metrics = metrics_listener.map(|l| tokio::spawn(crate::metrics::serve(l, shared.clone())));
    tokio::spawn(handle_signals(shared.clone()));
    let served = serve(listener, shared, std::future::pending()).await;
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    served
}

/// Turns signals into shutdowns and reloads.
async fn handle_signals(shared: Arc<Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        let mode = tokio::select! {
            _ = term.recv() => Shutdown::Drain,
            _ = int.recv() => Shutdown::WaitForServers,
            _ = hup.recv() => {
                let _ = shared.reload();
                continue;
            }
        };
        let mode = if shared.state.shutdown() == Shutdown::No {
            mode
        } else {
            // A second signal: close the rest now.
            Shutdown::Immediate
        };
        tracing::info!(?mode, "shutting down");
        shared.state.begin_shutdown(mode);
    }
}

/// Raises the open-file soft limit towards the hard limit so that
/// `max_client_conn` clients (plus server connections) fit, and warns if
/// they still cannot.
fn raise_fd_limit(config: &Config) {
    let wanted = u64::from(config.proxy.max_client_conn) + 1024;
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < wanted {
            limit.rlim_cur = limit.rlim_max.min(wanted as libc::rlim_t);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        if limit.rlim_cur < wanted {
            tracing::warn!(
                open_files = limit.rlim_cur,
                max_client_conn = config.proxy.max_client_conn,
                "the open-file limit is below max_client_conn; raise `ulimit -n`"
            );
        }
    }
}

/// Accepts clients until the gateway shuts down (`stop` completing closes
/// everything at once), then drains as the shutdown mode says.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut clients = JoinSet::new();
    let janitor = tokio::spawn(crate::janitor::run(shared.clone()));
    let mut shutdown = shared.state.watch_shutdown();
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(10);
    loop {
        tokio::select! {
            _ = &mut stop => {
                shared.state.begin_shutdown(Shutdown::Immediate);
                break;
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() != Shutdown::No {
                    break;
                }
            }
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed; backing off");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                };
                backoff = Duration::from_millis(10);
                let _ = stream.set_nodelay(true);
                let max = shared.config().proxy.max_client_conn;
                let Some(connection) = Connection::count(&shared, max) else {
                    tokio::spawn(refuse_client(stream));
                    continue;
                };
                let shared = shared.clone();
                let accepted = crate::frontend::Accepted::over_tcp(peer, &stream);
                let abort = accepted.abort.clone();
                let task = clients.spawn(async move {
                    crate::frontend::serve_tcp(stream, shared, accepted).await;
                    drop(connection);
                });
                let _ = abort.set(task);
            }
        }
    }
    // No new client from here on.
    drop(listener);
    drain(&shared, &mut clients, &mut stop).await;
    janitor.abort();
    clients.shutdown().await;
    tracing::info!("gateway stopped");
    Ok(())
}

/// A client connection counted against `max_client_conn` while it lives.
struct Connection {
    shared: Arc<Shared>,
}

impl Connection {
    /// Counts one more connection, unless `max` are open.
    fn count(shared: &Arc<Shared>, max: u32) -> Option<Connection> {
        shared
            .connections
            .fetch_update(Relaxed, Relaxed, |open| (open < max).then_some(open + 1))
            .ok()?;
        Some(Connection {
            shared: shared.clone(),
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Relaxed);
    }
}

/// The shutdown after the listener closed: a drain closes each client at
/// its transaction boundary and waits until none is left; waiting for
/// servers waits until no client holds one; either way for at most
/// `shutdown_timeout`, after which (or after `stop`, or a second signal)
/// the caller closes the rest.
async fn drain(
    shared: &Arc<Shared>,
    clients: &mut JoinSet<()>,
    stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) {
    let mode = shared.state.shutdown();
    if mode == Shutdown::Drain {
        for client in shared.clients.all() {
            client.drain(sqlstate::PROTOCOL_VIOLATION, "server shutting down");
        }
    }
    let timeout = shared.config().proxy.shutdown_timeout.0;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut shutdown = shared.state.watch_shutdown();
    loop {
        let done = match shared.state.shutdown() {
            Shutdown::Drain => clients.is_empty(),
            Shutdown::WaitForServers => !shared.clients.all().iter().any(|c| c.holds_server()),
            Shutdown::Immediate | Shutdown::No => true,
        };
        if done {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(?timeout, clients = clients.len(), "shutdown_timeout: closing the remaining clients");
                return;
            }
            _ = &mut *stop => return,
            _ = shutdown.changed() => {}
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// Tells a client over max_client_conn why it cannot come in (SQLSTATE 53300).
async fn refuse_client(mut stream: TcpStream) {
    let answer = async {
        let mut buf = BytesMut::with_capacity(256);
        loop {
            match protocol::decode_startup(&buf) {
                Ok(None) => {
                    if stream.read_buf(&mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                Ok(Some((Startup::SslRequest | Startup::GssEncRequest, used))) => {
                    let _ = buf.split_to(used);
                    stream.write_all(b"N").await?;
                }
                Ok(Some((Startup::Cancel { .. }, _))) | Err(_) => return Ok(()),
                Ok(Some((Startup::Params(_), _))) => break,
            }
        }
        let mut out = BytesMut::new();
        protocol::error_response(
            &mut out,
            "FATAL",
            sqlstate::TOO_MANY_CONNECTIONS,
            "no more connections allowed (max_client_conn)",
        );
        stream.write_all(&out).await?;
        stream.shutdown().await
    };
    let _: Result<io::Result<()>, _> = tokio::time::timeout(Duration::from_secs(5), answer).await;
}
