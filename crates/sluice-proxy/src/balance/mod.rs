//! Read load balancing and sticky read-your-writes (issue 5): the building
//! blocks the gateway wires into its request loop.
//!
//! # Layout
//! - [`classify`]: may a replica run this SQL? (pg_query, cached by text)
//! - [`config`]: the `[load_balancing]` section and `replicas` lists.
//! - [`lsn`]: WAL positions (`X/Y`), ordering and byte distance.
pub mod classify;
pub mod config;
pub mod lsn;

pub use lsn::Lsn;
