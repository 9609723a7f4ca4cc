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
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::clients::Clients;
use crate::config::Config;
use crate::net::{Connector, TcpConnector};
use crate::pool::Pools;
use crate::protocol::{self, sqlstate, Startup};
use crate::router::{HealthChecks, Router};

/// What every client task shares, passed explicitly (no globals).
pub struct Shared {
    pub config: Arc<Config>,
    pub pools: Pools,
    /// Every logged-in client.
    pub clients: Arc<Clients>,
    /// Load balancing: host tables, health checkers, classifier, sticky store.
    pub router: Router,
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
            config,
            pools: Pools::new(connector),
            clients: Arc::default(),
            router,
            next_statement: AtomicU64::new(1),
        })
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

/// Runs the gateway for `sluice proxy` until Ctrl-C or SIGTERM.
pub async fn run_until_ctrl_c(config: Arc<Config>) -> io::Result<()> {
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
    raise_fd_limit(&config);
    tracing::info!(addr = %listener.local_addr()?, config = %config.path.display(), "sluice proxy listening");
    let shared = Arc::new(Shared::new(config)?);
    serve(listener, shared, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    })
    .await
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

/// Accepts clients until `shutdown` completes, then ends every session.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limit = Arc::new(Semaphore::new(shared.config.proxy.max_client_conn as usize));
    let mut clients = JoinSet::new();
    let janitor = tokio::spawn(janitor(shared.clone()));
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(10);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
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
                match limit.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let shared = shared.clone();
                        let accepted = crate::frontend::Accepted::over_tcp(peer, &stream);
                        let abort = accepted.abort.clone();
                        let task = clients.spawn(async move {
                            crate::frontend::serve(stream, shared, accepted).await;
                            drop(permit);
                        });
                        let _ = abort.set(task);
                    }
                    Err(_) => {
                        tokio::spawn(refuse_client(stream));
                    }
                }
            }
        }
    }
    janitor.abort();
    clients.shutdown().await;
    Ok(())
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

/// Periodic upkeep of every pool: idle reaping and min_pool_size.
async fn janitor(shared: Arc<Shared>) {
    let period = shared
        .config
        .proxy
        .server_idle_timeout
        .0
        .div_f64(4.0)
        .clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for pool in shared.pools.all() {
            let configured = shared.config.databases.contains_key(&pool.key.database);
            pool.maintain(configured).await;
        }
    }
}
