//! Checking a client's password with the method its login decided
//! ([`Method`]: from `auth_type`, or the matching `auth_hba_file` line;
//! pgbouncer's client-side auth): the server side of SCRAM-SHA-256 (whose
//! proof also teaches the user's pools the ClientKey for SCRAM
//! pass-through), offered with SCRAM-SHA-256-PLUS (`tls-server-end-point`
//! channel binding) over TLS; md5; a cleartext password; a TLS client
//! certificate whose CN is the user (`cert`); trust; or a refusal with
//! pgbouncer's words.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::startup::read_login_message;
use super::ClientError;
use crate::auth::{
    decode_sasl_initial, md5_verify, verify_cleartext, Method, ScramServer, UserSecret,
};
use crate::config::Config;
use crate::net::ClientStream;
use crate::protocol::{self, client_tag, sqlstate};
use crate::tls::TlsInfo;

/// Checks that the client is `user` by `method`, against `secret`: the
/// user's auth_file entry or what auth_query found (see
/// [`crate::auth::query`]).
pub(super) async fn authenticate<S: ClientStream>(
    stream: &mut S,
    buf: &mut BytesMut,
    config: &Config,
    user: &str,
    method: Method,
    secret: Option<&UserSecret>,
    tls: Option<&TlsInfo>,
) -> Result<(), ClientError> {
    let failed = || {
        ClientError::fatal(
            sqlstate::INVALID_PASSWORD,
            format!("password authentication failed for user \"{user}\""),
        )
    };
    // pgbouncer's texts (client.c), all FATAL 08P01.
    let refused = |message: &str| ClientError::fatal(sqlstate::PROTOCOL_VIOLATION, message);
    match method {
        Method::Trust => {
            return if secret.is_some() || config.auth.is_empty() {
                Ok(())
            } else {
                Err(failed())
            };
        }
        Method::Reject => return Err(refused("login rejected")),
        Method::Cert => return check_certificate(tls, user),
        // Only local (Unix socket) HBA lines have it, and the gateway
        // listens on TCP only.
        Method::Peer => return Err(refused("unix socket login rejected")),
        Method::Password | Method::Md5 | Method::ScramSha256 => {}
    }
    let secret = secret.ok_or_else(failed)?;
    let mut out = BytesMut::with_capacity(256);
    if method == Method::Password {
        protocol::authentication(&mut out, protocol::AUTH_CLEARTEXT, &[]);
        stream.write_all(&out).await?;
        let (tag, body) = read_login_message(stream, buf).await?;
        let password = body.strip_suffix(&[0]).unwrap_or(&body);
        if tag != client_tag::PASSWORD || !verify_cleartext(secret, user, password) {
            return Err(failed());
        }
        return Ok(());
    }
    // Like pgbouncer, md5 for a user whose entry is only a SCRAM secret is SCRAM.
    if method == Method::Md5 && secret.md5.is_some() {
        let salt: [u8; 4] = rand::random();
        protocol::authentication(&mut out, protocol::AUTH_MD5, &salt);
        stream.write_all(&out).await?;
        let (tag, body) = read_login_message(stream, buf).await?;
        let stored = secret.md5.as_deref().expect("checked above");
        if tag != client_tag::PASSWORD || !md5_verify(stored, salt, &body) {
            return Err(failed());
        }
        return Ok(());
    }
    let scram = secret.scram.as_ref().ok_or_else(failed)?;
    let mechanisms: &[u8] = match tls {
        Some(_) => b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0",
        None => b"SCRAM-SHA-256\0\0",
    };
    protocol::authentication(&mut out, protocol::AUTH_SASL, mechanisms);
    stream.write_all(&out).await?;
    out.clear();
    let (tag, body) = read_login_message(stream, buf).await?;
    let (mechanism, first) = match (tag, decode_sasl_initial(&body)) {
        (client_tag::PASSWORD, Some(parts)) => parts,
        _ => {
            return Err(ClientError::fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "expected SASLInitialResponse",
            ))
        }
    };
    let plus = match mechanism {
        b"SCRAM-SHA-256" => false,
        b"SCRAM-SHA-256-PLUS" if tls.is_some() => true,
        _ => {
            return Err(ClientError::fatal(
                sqlstate::INVALID_AUTHORIZATION,
                "unsupported SASL mechanism",
            ))
        }
    };
    let binding = tls.map(|tls| &*tls.end_point);
    let (server, server_first) =
        ScramServer::start_bound(scram, first, binding, plus).map_err(|_| failed())?;
    protocol::authentication(
        &mut out,
        protocol::AUTH_SASL_CONTINUE,
        server_first.as_bytes(),
    );
    stream.write_all(&out).await?;
    out.clear();
    let (tag, body) = read_login_message(stream, buf).await?;
    if tag != client_tag::PASSWORD {
        return Err(ClientError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            "expected SASLResponse",
        ));
    }
    let verified = server.finish(&body).map_err(|_| failed())?;
    // SCRAM pass-through: the user's pools may now log in to servers with it.
    secret.client_key.learn(verified.client_key);
    protocol::authentication(
        &mut out,
        protocol::AUTH_SASL_FINAL,
        verified.server_final.as_bytes(),
    );
    stream.write_all(&out).await?;
    Ok(())
}

/// `auth_type = "cert"`: a verified client certificate whose CN is the
/// user. As in pgbouncer, the client hears only `certificate authentication
/// failed`; the log says why.
fn check_certificate(tls: Option<&TlsInfo>, user: &str) -> Result<(), ClientError> {
    let why = match tls.map(|tls| tls.peer_common_name.as_deref()) {
        None => "TLS connection required",
        Some(None) => "TLS client certificate required",
        Some(Some(name)) if name == user => return Ok(()),
        Some(Some(_)) => "TLS certificate name mismatch",
    };
    tracing::info!(user, "certificate login refused: {why}");
    Err(ClientError::fatal(
        sqlstate::PROTOCOL_VIOLATION,
        "certificate authentication failed",
    ))
}
