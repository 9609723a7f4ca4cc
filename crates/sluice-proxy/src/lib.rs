//! `sluice-proxy`: the PostgreSQL gateway behind `sluice proxy`, a connection
//! pooler that clients cannot tell from PostgreSQL.
//!
//! # Layout
//! Following one client's request from top to bottom:
//! - [`config`]: the TOML settings (pgbouncer's names and units), validated
//!   with `file:line` errors; passed around as `Arc<Config>`, never global.
//! - [`server`]: the accept loop, `max_client_conn`, the janitor, shutdown.
//! - [`protocol`]: pure decode/encode of wire messages over byte slices
//!   (fuzzed in `fuzz/`).
//! - [`client`]: one client: startup, auth, then the request loop — buffer a
//!   request, check out a server, sync parameters, send, relay, release.
//! - [`buffers`]: client read buffers, recycled per thread.
//! - [`auth`]: the `auth_file`, and the server side of SCRAM-SHA-256 and md5.
//! - [`pool`]: pools per (database, user): FIFO waiters, reserve pool,
//!   timeouts, idle reaping, and the [`pool::Checkout`] guard.
//! - [`backend`]: one server connection: login (SCRAM/md5/trust) and its state.
//! - [`cancel`]: CancelRequest routing from a client's key to its backend.
//! - [`balance`]: load balancing building blocks (statement classification,
//!   WAL positions, sticky store, replica health and choice).
//!
//! - [`router`]: load balancing wired in: per database with replicas the
//!   host table and health checker, the classifier cache, the sticky store.
//!
//! The request router sits between `client` (which asks for "a server for
//! this request", `Session::checkout`) and `pool` (one pool per
//! (database, user, host): the primary's and each replica's).

pub mod auth;
pub mod backend;
pub mod balance;
pub mod buffers;
pub mod cancel;
pub mod client;
pub mod config;
pub mod pool;
pub mod protocol;
pub mod router;
pub mod server;

pub use config::Config;
pub use server::Gateway;
