//! Checking a client's password, per `auth_type` (pgbouncer's client-side
//! auth): the server side of SCRAM-SHA-256 (whose proof also teaches the
//! user's pools the ClientKey for SCRAM pass-through), md5, or trust.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::startup::read_login_message;
use super::ClientError;
use crate::auth::{decode_sasl_initial, md5_verify, ScramServer};
use crate::config::{AuthType, Config};
use crate::net::ClientStream;
use crate::protocol::{self, client_tag, sqlstate};

/// Checks the client's password per `auth_type` (SCRAM-SHA-256 or md5).
pub(super) async fn authenticate<S: ClientStream>(
    stream: &mut S,
    buf: &mut BytesMut,
    config: &Config,
    user: &str,
) -> Result<(), ClientError> {
    let failed = || {
        ClientError::fatal(
            sqlstate::INVALID_PASSWORD,
            format!("password authentication failed for user \"{user}\""),
        )
    };
    let secret = config.auth.get(user);
    let auth_type = config.proxy.auth_type;
    if auth_type == AuthType::Trust {
        return if secret.is_some() || config.auth.is_empty() {
            Ok(())
        } else {
            Err(failed())
        };
    }
    let secret = secret.ok_or_else(failed)?;
    let mut out = BytesMut::with_capacity(256);
    let use_md5 = auth_type == AuthType::Md5 && secret.md5.is_some();
    if use_md5 {
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
    protocol::authentication(&mut out, protocol::AUTH_SASL, b"SCRAM-SHA-256\0\0");
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
    if mechanism != b"SCRAM-SHA-256" {
        return Err(ClientError::fatal(
            sqlstate::INVALID_AUTHORIZATION,
            "unsupported SASL mechanism",
        ));
    }
    let (server, server_first) = ScramServer::start(scram, first).map_err(|_| failed())?;
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
