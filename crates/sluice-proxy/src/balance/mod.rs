//! Read load balancing and sticky read-your-writes (issue 5): the building
//! blocks the gateway wires into its request loop.
//!
//! # Layout
//! - [`lsn`]: WAL positions (`X/Y`), ordering and byte distance.
pub mod lsn;

pub use lsn::Lsn;
