//! TLS to a server, per `server_tls_sslmode`: PostgreSQL's SSLRequest,
//! then rustls' handshake when the server answers `S`. `prefer` (the
//! default, as in pgbouncer) goes on in plain text when the server answers
//! `N`; `require` and the verify modes do not. `allow` starts in plain text
//! (libpq would retry with TLS only when the server refuses plain text).
//! Streams that are not TCP (a test's in-memory pipe) are left alone.

use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::{ServerTls, SslMode};
use crate::net::ServerStream;
use crate::protocol::SSL_REQUEST_CODE;

/// Why TLS to a server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    #[error("server does not support TLS (server_tls_sslmode = {0})")]
    Refused(SslMode),
    #[error("unexpected answer to SSLRequest: {0:?}")]
    Unexpected(u8),
    #[error("`{0}` is not a host name or address a certificate can be checked against")]
    BadName(String),
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `stream` with TLS on it, as `tls` asks.
pub async fn secure(
    stream: ServerStream,
    tls: &ServerTls,
    host: &str,
) -> Result<ServerStream, ServerTlsError> {
    let config = match &tls.config {
        Some(config) if tls.mode != SslMode::Allow => config,
        _ => return Ok(stream),
    };
    let mut tcp = match stream {
        ServerStream::Tcp(tcp) => tcp,
        other => return Ok(other),
    };
    let mut request = [0u8; 8];
    request[..4].copy_from_slice(&8i32.to_be_bytes());
    request[4..].copy_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
    tcp.write_all(&request).await?;
    match tcp.read_u8().await? {
        b'S' => {
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| ServerTlsError::BadName(host.to_string()))?;
            let stream = TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(ServerTlsError::Handshake)?;
            Ok(ServerStream::other(stream))
        }
        b'N' if !tls.mode.requires_tls() => Ok(ServerStream::Tcp(tcp)),
        b'N' => Err(ServerTlsError::Refused(tls.mode)),
        other => Err(ServerTlsError::Unexpected(other)),
    }
}
