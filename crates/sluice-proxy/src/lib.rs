//! `sluice-proxy`: the PostgreSQL gateway behind `sluice proxy`, a connection
//! pooler that clients cannot tell from PostgreSQL.
//!
//! # Layout
//! Following one client's request from top to bottom:
//! - [`config`]: the TOML settings (pgbouncer's names and units), validated
//!   with `file:line` errors; passed around as `Arc<Config>`, never global.
//!   [`config::ini`] reads pgbouncer's INI file as it is, converted to that TOML.
//! - [`server`]: the accept loop, `max_client_conn`, signals, reload,
//!   shutdown, and [`server::Shared`], what every session shares.
//! - [`state`]: what the operator changes at runtime (pause, disable, shutdown).
//! - [`janitor`]: periodic upkeep: pools, client timeouts, stats averages.
//! - [`admin`]: the pgbouncer-compatible admin console (`psql -d pgbouncer`).
//! - [`metrics`]: `/metrics` for Prometheus, read from the same counters.
//! - [`net`]: the streams sessions and server connections run over (TCP,
//!   or in-memory pipes in scenario tests) and how server streams open.
//! - [`protocol`]: pure decode/encode of wire messages over byte slices
//!   (fuzzed in `fuzz/`), message tags, SQLSTATEs.
//! - [`frontend`]: one client: startup, auth, then the session loop (read
//!   a request, intercept what the gateway answers itself, check out,
//!   exchange, release).
//! - [`statements`]: prepared statements in transaction pooling, renamed
//!   per server connection.
//! - [`buffers`]: client read buffers, recycled per thread; [`recycle`]: the
//!   same for the boxed per-transaction futures.
//! - [`auth`]: the `auth_file`, the `auth_hba_file` rules ([`auth::hba`]),
//!   the per-login [`auth::Method`], and the SCRAM-SHA-256 and md5 primitives.
//! - [`tls`]: TLS to clients and to servers (rustls), rebuilt at every reload.
//! - [`pool`]: pools per (database, user, host): FIFO waiters, reserve pool,
//!   timeouts, idle reaping, and the [`pool::Checkout`] guard.
//! - [`backend`]: one server connection: login, parameters, what it owes.
//! - [`clients`]: every logged-in client: cancel keys and CancelRequest
//!   routing, what the console shows, closing a client from outside.
//! - [`clock`]: microseconds since start, for counters and timeouts.
//! - [`balance`]: load balancing (statement classification, WAL positions,
//!   sticky store, replica health and choice, per-session routing).
//! - [`router`]: load balancing's gateway-wide state: per database with
//!   replicas the host table and health checker, the classifier cache, the
//!   sticky store.

pub mod admin;
pub mod auth;
pub mod backend;
pub mod balance;
pub mod buffers;
pub mod clients;
pub mod clock;
pub mod config;
pub mod frontend;
pub mod janitor;
pub mod metrics;
pub mod net;
pub mod pool;
pub mod protocol;
pub mod recycle;
pub mod router;
pub mod server;
pub mod state;
pub mod statements;
pub mod tls;

pub use config::Config;
pub use server::{Gateway, Shared};
