//! A TCP client's first message, before its startup packet: an SSLRequest
//! is answered `S` and the TLS handshake follows when `client_tls_sslmode`
//! is not `disable` (else `N`, and the client goes on in plain text or
//! leaves); a GSSENCRequest gets `N`; a plain-text startup where TLS is
//! required gets pgbouncer's `SSL required`. Runs within
//! `client_login_timeout`, so a handshake that stalls or fails closes only
//! that client.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::protocol::{self, sqlstate, CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE};
use crate::server::Shared;
use crate::tls::TlsInfo;

/// The capacity of a login's read buffer (a startup packet fits).
pub const EARLY_CAPACITY: usize = 512;

/// How the client goes on.
pub enum Negotiated {
    /// In plain text; the bytes already read start its startup packet.
    Plain(TcpStream, BytesMut),
    Tls(Box<TlsStream<TcpStream>>, TlsInfo),
    /// Refused (told why) or gone.
    Done,
}

/// Reads the client's first message and sets up TLS if it asks for it.
pub async fn negotiate(mut stream: TcpStream, shared: &Shared) -> io::Result<Negotiated> {
    let config = shared.config();
    loop {
        let mut head = [0u8; 8];
        if stream.read_exact(&mut head).await.is_err() {
            return Ok(Negotiated::Done);
        }
        let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let code = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        match (len, code) {
            (8, SSL_REQUEST_CODE) => match &config.client_tls {
                Some(tls) => {
                    stream.write_all(b"S").await?;
                    let acceptor = TlsAcceptor::from(Arc::clone(&tls.config));
                    let stream = match acceptor.accept(stream).await {
                        Ok(stream) => stream,
                        Err(error) => {
                            tracing::debug!(%error, "client TLS handshake failed");
                            return Ok(Negotiated::Done);
                        }
                    };
                    let info = TlsInfo::of(stream.get_ref().1, tls);
                    return Ok(Negotiated::Tls(Box::new(stream), info));
                }
                None => stream.write_all(b"N").await?,
            },
            (8, GSSENC_REQUEST_CODE) => stream.write_all(b"N").await?,
            (_, code) => {
                let required = config
                    .client_tls
                    .as_ref()
                    .is_some_and(|t| t.mode.requires_tls());
                // A cancel request carries no data and may come in plain text.
                if required && code != CANCEL_REQUEST_CODE {
                    let mut out = BytesMut::new();
                    protocol::error_response(
                        &mut out,
                        "FATAL",
                        sqlstate::PROTOCOL_VIOLATION,
                        "SSL required",
                    );
                    let _ = stream.write_all(&out).await;
                    return Ok(Negotiated::Done);
                }
                // The login's read buffer, started with what was read here.
                let mut early = BytesMut::with_capacity(EARLY_CAPACITY);
                early.extend_from_slice(&head);
                return Ok(Negotiated::Plain(stream, early));
            }
        }
    }
}
