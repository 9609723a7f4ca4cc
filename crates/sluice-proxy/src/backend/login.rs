//! Opening a server connection and logging in: the startup message, then
//! whatever authentication the server asks for (SCRAM-SHA-256 with
//! `postgres-protocol`'s client and the password, or by pass-through with
//! the ClientKey a client revealed, see `auth`; md5; cleartext; trust),
//! collecting the server's parameters and BackendKeyData until
//! ReadyForQuery.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use super::NEXT_SERVER_ID;
use super::{params, BackendError, Outstanding, Params, ServerConn, ServerInfo, ServerTarget};
use crate::auth::{md5_hex, ScramClient, ScramClientError};
use crate::clock;
use crate::net::ServerStream;
use crate::protocol::{self, server_tag, TxStatus};
use crate::statements::PreparedSet;

impl ServerConn {
    /// Connects and logs in; returns once the server said ReadyForQuery.
    pub async fn connect(target: Arc<ServerTarget>) -> Result<ServerConn, BackendError> {
        let addr = target.addr();
        let stream = match tokio::time::timeout(
            target.connect_timeout,
            target.connector.connect(&target.host, target.port),
        )
        .await
        {
            Err(_) => return Err(BackendError::ConnectTimeout { addr }),
            Ok(Err(source)) => return Err(BackendError::Connect { addr, source }),
            Ok(Ok(stream)) => stream,
        };
        let local = stream_local_addr(&stream);
        let secured = crate::tls::server::secure(stream, &target.tls, &target.host);
        let stream = match tokio::time::timeout(target.connect_timeout, secured).await {
            Err(_) => return Err(BackendError::ConnectTimeout { addr }),
            Ok(Err(source)) => return Err(BackendError::Tls { addr, source }),
            Ok(Ok(stream)) => stream,
        };
        let mut conn = ServerConn {
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: BytesMut::with_capacity(4 * 1024),
            info: Arc::new(ServerInfo {
                id: 0,
                target: target.clone(),
                pid: 0,
                secret: 0,
                local,
                connect_time: SystemTime::now(),
                opened_us: clock::now_us(),
                close_needed: AtomicBool::new(false),
                prepared_statements: AtomicU32::new(0),
            }),
            target: target.clone(),
            params: Params::default(),
            status: TxStatus::Idle,
            outstanding: Outstanding::default(),
            prepared: PreparedSet::default(),
            copy_in: false,
            streaming: 0,
            broken: false,
            last_used: Instant::now(),
            listed: None,
        };
        match tokio::time::timeout(target.connect_timeout, conn.log_in()).await {
            Err(_) => Err(BackendError::ConnectTimeout { addr }),
            Ok(result) => result.map(|()| conn),
        }
    }

    async fn log_in(&mut self) -> Result<(), BackendError> {
        let target = self.target.clone();
        let addr = || target.addr();
        protocol::startup_message(
            &mut self.wbuf,
            &[
                ("user", &target.user),
                ("database", &target.dbname),
                ("application_name", "sluice"),
            ],
        );
        self.flush_wbuf().await?;
        let mut scram: Option<ServerScram> = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                server_tag::AUTHENTICATION => {
                    if body.len() < 4 {
                        return Err(self.protocol_error("short Authentication message"));
                    }
                    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let data = &body[4..];
                    let password = || {
                        target.password.as_deref().ok_or(BackendError::NoPassword {
                            addr: addr(),
                            user: target.user.clone(),
                        })
                    };
                    match code {
                        protocol::AUTH_OK => {}
                        protocol::AUTH_CLEARTEXT => {
                            let mut payload = password()?.as_bytes().to_vec();
                            payload.push(0);
                            protocol::password_message(&mut self.wbuf, &payload);
                        }
                        protocol::AUTH_MD5 => {
                            let salt: [u8; 4] = data
                                .try_into()
                                .map_err(|_| self.protocol_error("bad md5 salt"))?;
                            // The stored md5 hash answers as well as the password.
                            let hash = match (&target.password, &target.md5) {
                                (None, Some(md5)) => {
                                    format!("md5{}", md5_hex(&[md5.as_bytes(), &salt]))
                                }
                                _ => postgres_protocol::authentication::md5_hash(
                                    target.user.as_bytes(),
                                    password()?.as_bytes(),
                                    salt,
                                ),
                            };
                            let mut payload = hash.into_bytes();
                            payload.push(0);
                            protocol::password_message(&mut self.wbuf, &payload);
                        }
                        protocol::AUTH_SASL => {
                            let offers_scram =
                                data.split(|&b| b == 0).any(|m| m == b"SCRAM-SHA-256");
                            if !offers_scram {
                                return Err(BackendError::UnsupportedAuth { addr: addr(), code });
                            }
                            let client = match (&target.password, &target.pass_through) {
                                (Some(password), _) => ServerScram::Password(ScramSha256::new(
                                    password.as_bytes(),
                                    ChannelBinding::unsupported(),
                                )),
                                (None, Some(pass_through)) => match pass_through.keys() {
                                    Some(keys) => ServerScram::Keys(ScramClient::new(keys)),
                                    None => {
                                        return Err(BackendError::NoClientKey {
                                            addr: addr(),
                                            user: target.user.clone(),
                                        })
                                    }
                                },
                                (None, None) => {
                                    return Err(BackendError::NoPassword {
                                        addr: addr(),
                                        user: target.user.clone(),
                                    })
                                }
                            };
                            protocol::sasl_initial_response(
                                &mut self.wbuf,
                                "SCRAM-SHA-256",
                                client.message(),
                            );
                            scram = Some(client);
                        }
                        protocol::AUTH_SASL_CONTINUE => {
                            let client = scram
                                .as_mut()
                                .ok_or_else(|| self.protocol_error("unexpected SASLContinue"))?;
                            client.update(data).map_err(|e| e.into_backend(&target))?;
                            protocol::password_message(&mut self.wbuf, client.message());
                        }
                        protocol::AUTH_SASL_FINAL => {
                            let client = scram
                                .as_mut()
                                .ok_or_else(|| self.protocol_error("unexpected SASLFinal"))?;
                            client.finish(data).map_err(|e| e.into_backend(&target))?;
                        }
                        code => return Err(BackendError::UnsupportedAuth { addr: addr(), code }),
                    }
                    if !self.wbuf.is_empty() {
                        self.flush_wbuf().await?;
                    }
                }
                server_tag::PARAMETER_STATUS => {
                    params::apply_parameter_status(&mut self.params, &body);
                }
                server_tag::BACKEND_KEY_DATA if body.len() == 8 => {
                    // Nobody shares the info yet: it is rebuilt with the key.
                    let info = &self.info;
                    self.info = Arc::new(ServerInfo {
                        id: NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
                        target: info.target.clone(),
                        pid: i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                        secret: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                        local: info.local,
                        connect_time: info.connect_time,
                        opened_us: info.opened_us,
                        close_needed: AtomicBool::new(false),
                        prepared_statements: AtomicU32::new(0),
                    });
                }
                server_tag::ERROR_RESPONSE => {
                    return Err(BackendError::Server {
                        addr: addr(),
                        fields: protocol::decode_error_fields(&body),
                    })
                }
                server_tag::READY_FOR_QUERY => {
                    self.status = TxStatus::from_body(&body);
                    return Ok(());
                }
                _ => {} // NoticeResponse, NegotiateProtocolVersion: nothing to do
            }
        }
    }
}

/// The gateway's end of a server connection (`None` when not over TCP).
fn stream_local_addr(stream: &ServerStream) -> Option<SocketAddr> {
    match stream {
        ServerStream::Tcp(tcp) => tcp.local_addr().ok(),
        ServerStream::Other(_) => None,
    }
}

/// The client side of a SCRAM login to a server: with the password, or
/// with the keys of SCRAM pass-through.
enum ServerScram {
    Password(ScramSha256),
    Keys(ScramClient),
}

/// A failed step of [`ServerScram`].
enum ServerScramError {
    Password(io::Error),
    Keys(ScramClientError),
}

impl ServerScramError {
    fn into_backend(self, target: &ServerTarget) -> BackendError {
        match self {
            ServerScramError::Keys(e @ ScramClientError::SecretMismatch { .. }) => {
                BackendError::ScramSecretMismatch {
                    addr: target.addr(),
                    user: target.user.clone(),
                    detail: e.to_string(),
                }
            }
            ServerScramError::Keys(e) => BackendError::Auth {
                addr: target.addr(),
                message: e.to_string(),
            },
            ServerScramError::Password(e) => BackendError::Auth {
                addr: target.addr(),
                message: e.to_string(),
            },
        }
    }
}

impl ServerScram {
    fn message(&self) -> &[u8] {
        match self {
            ServerScram::Password(client) => client.message(),
            ServerScram::Keys(client) => client.message(),
        }
    }

    fn update(&mut self, server_first: &[u8]) -> Result<(), ServerScramError> {
        match self {
            ServerScram::Password(client) => client
                .update(server_first)
                .map_err(ServerScramError::Password),
            ServerScram::Keys(client) => {
                client.update(server_first).map_err(ServerScramError::Keys)
            }
        }
    }

    fn finish(&mut self, server_final: &[u8]) -> Result<(), ServerScramError> {
        match self {
            ServerScram::Password(client) => client
                .finish(server_final)
                .map_err(ServerScramError::Password),
            ServerScram::Keys(client) => {
                client.finish(server_final).map_err(ServerScramError::Keys)
            }
        }
    }
}
