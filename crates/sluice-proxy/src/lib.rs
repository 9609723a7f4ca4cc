//! `sluice-proxy`: the PostgreSQL gateway behind `sluice proxy`, a connection
//! pooler that clients cannot tell from PostgreSQL.
//!
//! # Layout
//! Following one client's request from top to bottom:
//! - [`config`]: the TOML settings (pgbouncer's names and units), validated
//!   with `file:line` errors; passed around as `Arc<Config>`.
//! - [`auth`]: the `auth_file`, and the server side of SCRAM-SHA-256 and md5.
//! - [`protocol`]: pure decode/encode of wire messages over byte slices.
pub mod auth;
pub mod config;
pub mod protocol;
