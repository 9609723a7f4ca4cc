//! The SQLSTATE codes the gateway answers with itself (PostgreSQL's
//! Appendix A), named so that a reader need not look them up.

/// `08P01`: the client broke the protocol.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// `08006`: the server connection failed or was lost.
pub const CONNECTION_FAILURE: &str = "08006";
/// `0A000`: something the gateway cannot do in this mode.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// `22023`: a setting's value is invalid.
pub const INVALID_PARAMETER_VALUE: &str = "22023";
/// `28000`: the login is refused (no user, unsupported mechanism).
pub const INVALID_AUTHORIZATION: &str = "28000";
/// `28P01`: wrong password.
pub const INVALID_PASSWORD: &str = "28P01";
/// `3D000`: no such database.
pub const INVALID_CATALOG_NAME: &str = "3D000";
/// `42704`: an unknown setting.
pub const UNDEFINED_OBJECT: &str = "42704";
/// `53300`: too many connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// `57014`: canceled (query_wait_timeout, client_login_timeout).
pub const QUERY_CANCELED: &str = "57014";
/// `57P01`: the server is shutting down.
pub const ADMIN_SHUTDOWN: &str = "57P01";

/// A server error that means the server cannot serve at all (shutting
/// down, or a connection failure): nothing ran, so the request may go to
/// another host.
pub fn means_server_gone(code: &str) -> bool {
    code.starts_with("57P") || code.starts_with("08")
}
