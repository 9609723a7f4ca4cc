//! `sluice-proxy`: the PostgreSQL gateway. It owns configuration, the wire
//! protocol, client sessions, pools, routing, sticky read positions and health.

pub mod balance;
