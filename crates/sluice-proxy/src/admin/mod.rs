//! The admin console (pgbouncer's `admin.c`): the virtual database
//! `pgbouncer` (and `sluice`), where `admin_users` run every command and
//! `stats_users` the `SHOW` commands, in pgbouncer 1.25's exact words and
//! columns, so that its tooling works unchanged.
//!
//! # Layout
//! - this file: the console session (simple query protocol only, one
//!   command per query, every answer ends with `ReadyForQuery`);
//! - [`command`]: the command language;
//! - [`columns`]: every `SHOW`'s columns, as pgbouncer 1.25.2 sends them;
//! - [`show`]: the `SHOW` commands;
//! - [`control`]: the commands that change things (`PAUSE`, `RELOAD`, ...).

pub mod columns;
pub mod command;
pub mod control;
pub mod show;

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::clients::Registration;
use crate::net::ClientStream;
use crate::protocol::{self, client_tag, sqlstate, TxStatus};
use crate::server::Shared;

use command::{Command, ParseError};

/// The names clients use for the console database.
pub const DATABASES: &[&str] = &["pgbouncer", "sluice"];

/// Whether `database` is the console.
pub fn is_console(database: &str) -> bool {
    DATABASES.contains(&database)
}

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `admin_users`: everything.
    Admin,
    /// `stats_users`: `SHOW` only.
    Stats,
}

/// An answer to a console command: bytes for the client, or an error.
pub type Answer = Result<(), ConsoleError>;

/// A console command that failed (pgbouncer answers `ERROR` with SQLSTATE
/// 08P01, except a failed `RELOAD`: F0000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleError {
    pub code: &'static str,
    pub message: String,
}

impl ConsoleError {
    pub fn new(message: impl Into<String>) -> ConsoleError {
        ConsoleError {
            code: sqlstate::PROTOCOL_VIOLATION,
            message: message.into(),
        }
    }
}

/// A console session after login: answers queries until the client leaves.
pub async fn serve<S: ClientStream>(
    mut stream: S,
    shared: Arc<Shared>,
    client: Registration,
    role: Role,
) {
    let mut buf = BytesMut::with_capacity(1024);
    let mut out = BytesMut::with_capacity(4096);
    let console = Console {
        shared,
        role,
        client: &client,
    };
    loop {
        let message = loop {
            match protocol::frame_len(&buf, 1 << 20) {
                Ok(Some(len)) => break Some(buf.split_to(len)),
                Ok(None) => {}
                Err(_) => break None,
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let Some(mut message) = message else {
            bad_packet(&mut stream, &mut out, None).await;
            return;
        };
        let tag = message[0];
        message.advance(5);
        match tag {
            client_tag::QUERY => {
                let text = match protocol::cstr(&message) {
                    Some((sql, _)) => String::from_utf8_lossy(sql).into_owned(),
                    None => String::new(),
                };
                let outcome = console.run(&text, &mut out).await;
                if let Err(error) = outcome {
                    protocol::short_error(&mut out, "ERROR", error.code, &error.message);
                }
                if console.shutting_down_now() {
                    // `SHUTDOWN`: pgbouncer's console hears nothing more.
                    return;
                }
                protocol::ready_for_query(&mut out, TxStatus::Idle);
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
            client_tag::TERMINATE => return,
            client_tag::PARSE | client_tag::BIND | client_tag::EXECUTE => {
                let message = "extended query protocol not supported by admin console";
                bad_packet(&mut stream, &mut out, Some(message.to_string())).await;
                return;
            }
            other => {
                let message = format!("unsupported packet type for admin console: {other}");
                bad_packet(&mut stream, &mut out, Some(message)).await;
                return;
            }
        }
    }
}

/// pgbouncer's answer to a message the console cannot take: an error (if
/// any) and ReadyForQuery, then `FATAL bad packet`, then the end.
async fn bad_packet<S: ClientStream>(stream: &mut S, out: &mut BytesMut, error: Option<String>) {
    out.clear();
    if let Some(message) = error {
        protocol::short_error(out, "ERROR", sqlstate::PROTOCOL_VIOLATION, &message);
        protocol::ready_for_query(out, TxStatus::Idle);
    }
    protocol::short_error(out, "FATAL", sqlstate::PROTOCOL_VIOLATION, "bad packet");
    let _ = stream.write_all(out).await;
}

/// One console user's view of the gateway.
pub struct Console<'a> {
    pub shared: Arc<Shared>,
    pub role: Role,
    pub client: &'a Registration,
}

impl Console<'_> {
    /// Runs one query: its answer goes to `out` (without ReadyForQuery).
    pub async fn run(&self, text: &str, out: &mut BytesMut) -> Answer {
        let invalid = || ConsoleError::new(format!("invalid command '{text}', use SHOW HELP;"));
        let command = match command::parse(text) {
            Ok(command) => command,
            Err(ParseError::Unknown | ParseError::Usage(_)) => return Err(invalid()),
            Err(ParseError::TooLong) => return Err(ConsoleError::new("bad arguments")),
        };
        match command {
            Command::Show(item) => {
                if item == "fds" && self.role != Role::Admin {
                    return Err(ConsoleError::new("admin access needed"));
                }
                show::show(self, &item, out).ok_or_else(invalid)
            }
            Command::Set { key, .. } if show::is_fake_parameter(&key) => {
                protocol::notice(out, "SET ignored", None);
                protocol::command_complete(out, "SET");
                Ok(())
            }
            command if self.role != Role::Admin => {
                let _ = command;
                Err(ConsoleError::new("admin access needed"))
            }
            command => control::run(self, command, out).await,
        }
    }

    /// The console's `SHUTDOWN` (immediate) just ran.
    fn shutting_down_now(&self) -> bool {
        self.shared.state.shutdown() == crate::state::Shutdown::Immediate
    }
}
