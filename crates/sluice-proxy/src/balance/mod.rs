//! Read load balancing and sticky read-your-writes (issue 5): the building
//! blocks the gateway wires into its request loop.
//!
//! # Layout
//! - [`classify`]: may a replica run this SQL? (pg_query, cached by text)
//! - [`config`]: the `[load_balancing]` section and `replicas` lists.
//! - [`hosts`]: host health, replica choice and the health checker.
//! - [`lsn`]: WAL positions (`X/Y`), ordering and byte distance.
//! - [`sticky`]: the newest write position per sticky key (memory or Redis).
pub mod classify;
pub mod config;
pub mod hosts;
pub mod lsn;
pub mod sticky;

pub use lsn::Lsn;
