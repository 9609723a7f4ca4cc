//! Read load balancing and sticky read-your-writes: the building blocks the
//! gateway wires into its request loop. Nothing here touches a client
//! socket; each piece is usable and tested on its own.
//!
//! # Layout
//! - [`classify`]: may a replica run this SQL? (pg_query, cached by text)
//! - [`config`]: the `[load_balancing]` section and `replicas` lists.
//! - [`hosts`]: the host table (health, in-flight counts) and replica choice.
//! - [`health`]: the health checker that keeps the host table current.
//! - [`lsn`]: WAL positions (`X/Y`), ordering and byte distance.
//! - [`request`]: what a pending client request may do (its combined verdict).
//! - [`retry`]: resending a replica's failed request elsewhere; primary backoff.
//! - [`route`]: the routing decision, combining all of the above in order.
//! - [`session`]: one client session's routing state and write phase.
//! - [`sticky`]: the newest write position per sticky key (memory or Redis).
//!
//! # Wiring (what the gateway does)
//! At startup, per database with `replicas`: build an `Arc<Hosts>` and call
//! [`health::spawn_health_checker`]; build one [`classify::Classifier`] and
//! one [`sticky::AnyStore`] from the config (inside the runtime).
//!
//! Per query string (simple `Query`, or the `Parse` text of a prepared
//! statement), outside a transaction:
//! 1. `let verdict = classifier.classify(sql)`. If `verdict.sluice_error()`,
//!    answer that error; if `verdict.gateway_only`, apply its
//!    [`classify::Effect::Sluice`] commands to the session and answer
//!    without a server.
//! 2. `required = store.required_lsn(key)` (skip with `sticky = "off"`),
//!    then [`route::target`] gives primary or replica `i`; hold
//!    `hosts.start_on_replica(i)` while it runs.
//! 3. A connection error to a replica before anything reached the client:
//!    `hosts.mark_replica_down(i, ..)` and decide again.
//!
//! Inside a transaction every statement stays on the transaction's server.
//! When a transaction on the primary in which some statement had
//! `verdict.may_write` ends with `ReadyForQuery` idle (not failed), read
//! `pg_current_wal_insert_lsn()` on that same server connection (it can be
//! pipelined right after the `COMMIT`) and `store.record_write(key, lsn)`;
//! remember it as the session's `sluice.last_write_lsn`.
pub mod classify;
pub mod config;
pub mod health;
pub mod hosts;
pub mod lsn;
pub mod request;
pub mod retry;
pub mod route;
pub mod session;
pub mod sticky;

pub use lsn::Lsn;
