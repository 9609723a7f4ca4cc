//! A client's startup, within `client_login_timeout`: the startup packet
//! (over TCP, TLS was settled before: [`super::negotiate`]; on other
//! streams SSLRequest and GSSENCRequest are refused with `N`; a CancelRequest
//! forwarded), the user's pool, authentication ([`super::auth`]), and the
//! server parameters the client starts with: a real server's, overlaid
//! with the client's startup parameters (`options` included), applied once
//! so that a bad value fails the login as in PostgreSQL. Settings for the
//! gateway itself (`sluice.*`, `target_session_attrs`) never reach a server.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::checkout::sync_params;
use super::{report_fatal, Accepted, ClientError, Session};
use crate::admin::{self, Role};
use crate::auth::hba::Connection;
use crate::auth::query::Secret;
use crate::auth::Method;
use crate::backend::{param, set_param, BackendError, Params};
use crate::balance::session::Balancing;
use crate::clients::{NewClient, Registration};
use crate::net::ClientStream;
use crate::pool::{Pool, PoolError};
use crate::protocol::{self, sqlstate, Startup, TxStatus};
use crate::server::Shared;
use crate::state::Shutdown;

/// What a console login is told, as pgbouncer's console says it.
const CONSOLE_PARAMETERS: &[(&str, &str)] = &[
    ("server_version", "1.25.2/sluice"),
    ("client_encoding", "UTF8"),
    ("server_encoding", "UTF8"),
    ("DateStyle", "ISO"),
    ("TimeZone", "GMT"),
    ("standard_conforming_strings", "on"),
    ("is_superuser", "on"),
];

/// Startup parameters that are not server settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "replication", "options"];

/// Who logged in: a client of a pool, or a console user.
pub(super) enum Login {
    Pool(LoggedIn),
    Console(Registration, Role),
}

/// What a pool client's login established.
pub(super) struct LoggedIn {
    pub pool: Arc<Pool>,
    pub params: Params,
    pub client: Registration,
    pub balancing: Option<Box<Balancing>>,
}

/// Startup and authentication, within client_login_timeout; `None` when
/// the client is done (refused, a cancel request, or gone).
pub(super) async fn log_in<S: ClientStream>(
    mut stream: S,
    shared: Arc<Shared>,
    accepted: Accepted,
) -> Option<Box<Session<S>>> {
    let timeout = shared.config().proxy.client_login_timeout.0;
    shared.logging_in.fetch_add(1, Relaxed);
    let login = login(&mut stream, &shared, accepted);
    let logged_in = tokio::time::timeout(timeout, login).await;
    shared.logging_in.fetch_sub(1, Relaxed);
    let error = match logged_in {
        Ok(Ok(Some(Login::Pool(login)))) => {
            return Some(Box::new(Session::new(stream, shared, login)))
        }
        Ok(Ok(Some(Login::Console(client, role)))) => {
            crate::admin::serve(stream, shared, client, role).await;
            return None;
        }
        Ok(Ok(None)) => return None, // SSL refused then closed, or a cancel request
        Ok(Err(error)) => error,
        Err(_) => ClientError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            "client_login_timeout: login took too long",
        ),
    };
    report_fatal(&mut stream, &error).await;
    None
}

fn tls_description(accepted: &Accepted) -> Box<str> {
    accepted
        .tls
        .as_ref()
        .map_or_else(Box::default, |tls| tls.description.as_str().into())
}

/// Reads one whole message during login.
pub(super) async fn read_login_message<S: ClientStream>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<(u8, BytesMut), ClientError> {
    loop {
        if let Some(len) = protocol::frame_len(buf, protocol::MAX_STARTUP_PACKET)? {
            let mut msg = buf.split_to(len);
            let tag = msg[0];
            msg.advance(5);
            return Ok((tag, msg));
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
    }
}

async fn login<S: ClientStream>(
    stream: &mut S,
    shared: &Arc<Shared>,
    mut accepted: Accepted,
) -> Result<Option<Login>, ClientError> {
    let config = &shared.config();
    let connect_time = std::time::SystemTime::now();
    let mut buf = std::mem::take(&mut accepted.early);
    buf.reserve(super::negotiate::EARLY_CAPACITY.saturating_sub(buf.len()));
    let startup = loop {
        match protocol::decode_startup(&buf)? {
            None => {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Ok(None);
                }
            }
            Some((startup, used)) => {
                buf.advance(used);
                match startup {
                    Startup::SslRequest | Startup::GssEncRequest => stream.write_all(b"N").await?,
                    Startup::Cancel { pid, secret } => {
                        shared.clients.cancel(pid, secret).await;
                        return Ok(None);
                    }
                    Startup::Params(params) => break params,
                }
            }
        }
    };
    let get = |name: &str| {
        startup
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let user = get("user").ok_or_else(|| {
        ClientError::fatal(
            sqlstate::INVALID_AUTHORIZATION,
            "no PostgreSQL user name specified in startup packet",
        )
    })?;
    let database = get("database").filter(|d| !d.is_empty()).unwrap_or(user);
    if get("replication").is_some_and(|r| r != "false" && r != "off" && r != "0") {
        return Err(ClientError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            "replication connections are not supported by sluice",
        ));
    }
    // pgbouncer decides the method before it looks at the database, so a
    // console login goes through the same decision.
    let connection = Connection {
        tls: accepted.tls.is_some(),
        addr: accepted.peer.addr.map(|addr| addr.ip()),
        database,
        user,
        replication: false, // refused above
    };
    let Some(decided) = config.login_method(&connection) else {
        tracing::debug!(user, database, "no auth_hba_file line matches");
        return Err(ClientError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            "no authentication method is found",
        ));
    };
    if let Some(line) = decided.hba_line {
        tracing::debug!(user, database, method = %decided.method, "HBA line {line} is matched");
    }
    let method = decided.method;
    if admin::is_console(database) {
        let secret = config.auth.get(user);
        let tls = accepted.tls.as_ref();
        super::auth::authenticate(stream, &mut buf, config, user, method, secret, tls).await?;
        let role = if config.proxy.admin_users.iter().any(|u| u == user) {
            Role::Admin
        } else if config.proxy.stats_users.iter().any(|u| u == user) {
            Role::Stats
        } else {
            return Err(ClientError::fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "not allowed",
            ));
        };
        let client = shared.clients.register(NewClient {
            peer: accepted.peer,
            connect_time,
            user: user.to_owned(),
            database: database.to_owned(),
            pool: None,
            application_name: get("application_name").unwrap_or("").into(),
            tls: tls_description(&accepted),
            abort: accepted.abort,
        });
        let mut out = BytesMut::with_capacity(256);
        protocol::authentication(&mut out, protocol::AUTH_OK, &[]);
        for (name, value) in CONSOLE_PARAMETERS {
            protocol::parameter_status(&mut out, name, value);
        }
        protocol::backend_key_data(&mut out, client.pid, client.secret);
        protocol::ready_for_query(&mut out, TxStatus::Idle);
        stream.write_all(&out).await?;
        return Ok(Some(Login::Console(client, role)));
    }
    let pool = shared.pools.get(config, database, user).ok_or_else(|| {
        ClientError::fatal(
            sqlstate::INVALID_CATALOG_NAME,
            format!("no such database: {database}"),
        )
    })?;

    // The auth_file's entry, else what auth_query finds on the server
    // (asked only when the method checks a password or, with trust, that
    // the user exists).
    let secret = if method.needs_secret() || method == Method::Trust {
        let connector = shared.pools.connector();
        let lookup = shared
            .auth_queries
            .secret_of(config, connector, database, user);
        lookup.await.map_err(|error| {
            tracing::warn!(database, user, %error, "login failed");
            ClientError::fatal(sqlstate::CONNECTION_FAILURE, error.to_string())
        })?
    } else {
        Secret::from_file(config.auth.get(user))
    };
    let tls = accepted.tls.as_ref();
    super::auth::authenticate(stream, &mut buf, config, user, method, secret.get(), tls).await?;
    if let Some(found) = secret.found() {
        pool.use_found_secret(found);
    }

    if shared.state.shutdown() != Shutdown::No {
        return Err(ClientError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            "pooler is shutting down",
        ));
    }
    if shared.state.database(database).disabled {
        return Err(ClientError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            format!("database \"{database}\" is disabled"),
        ));
    }
    let (of_database, of_user) = shared.clients.count_of(database, user);
    let max = config.max_db_client_connections(database);
    if max > 0 && of_database >= max {
        return Err(ClientError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            "client connections exceeded (max_db_client_connections)",
        ));
    }
    let max = config.max_user_client_connections(user);
    if max > 0 && of_user >= max {
        return Err(ClientError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            "client connections exceeded (max_user_client_connections)",
        ));
    }

    // The server parameters clients see come from a real server connection.
    let defaults = match pool.defaults() {
        Some(defaults) => defaults,
        None => {
            let checkout = pool.checkout().await.map_err(login_error)?;
            let params = checkout.params.clone();
            drop(checkout);
            params
        }
    };
    let mut params = defaults.clone();
    // Settings for the gateway itself never reach a server.
    let mut gateway_settings = Vec::new();
    for (name, value) in &startup {
        if name == "options" {
            for (name, value) in parse_options(value)? {
                if is_gateway_setting(&name) {
                    gateway_settings.push((name, value));
                } else {
                    set_param(&mut params, &name, &value);
                }
            }
        } else if is_gateway_setting(name) {
            gateway_settings.push((name.clone(), value.clone()));
        } else if !NOT_SETTINGS.contains(&name.as_str()) {
            set_param(&mut params, name, value);
        }
    }
    let balancing = match shared.router.database(database) {
        Some(db) => {
            let replica_pools = (0..db.hosts.replicas().len())
                .map(|index| {
                    let pool = shared
                        .pools
                        .get_on(config, database, user, Some(index))
                        .expect("every replica of a configured database has a pool");
                    if let Some(found) = secret.found() {
                        pool.use_found_secret(found);
                    }
                    pool
                })
                .collect();
            let read_only = param(&params, "default_transaction_read_only").is_some_and(is_on);
            let balancing = Balancing::new(
                &db,
                replica_pools,
                database,
                user,
                read_only,
                &gateway_settings,
            )
            .map_err(|bad| ClientError::fatal(bad.code, bad.message))?;
            Some(Box::new(balancing))
        }
        None => None,
    };
    let params = pool.intern(params);
    if params != defaults {
        // Apply them once now so a bad value fails the login, as in PostgreSQL.
        let mut checkout = pool.checkout().await.map_err(login_error)?;
        sync_params(&params, &mut checkout)
            .await
            .map_err(|e| match e {
                BackendError::Server { fields, .. } => {
                    ClientError::fatal(sqlstate::INVALID_PARAMETER_VALUE, fields.message)
                }
                other => login_error(other.into()),
            })?;
    }

    let client = shared.clients.register(NewClient {
        peer: accepted.peer,
        connect_time,
        user: user.to_owned(),
        database: database.to_owned(),
        pool: Some(pool.clone()),
        application_name: param(&params, "application_name").unwrap_or("").into(),
        tls: tls_description(&accepted),
        abort: accepted.abort,
    });
    let mut out = BytesMut::with_capacity(512);
    protocol::authentication(&mut out, protocol::AUTH_OK, &[]);
    for (name, value) in params.iter() {
        if param(&defaults, name).is_some() {
            protocol::parameter_status(&mut out, name, value);
        }
    }
    protocol::backend_key_data(&mut out, client.pid, client.secret);
    protocol::ready_for_query(&mut out, TxStatus::Idle);
    stream.write_all(&out).await?;
    tracing::debug!(pool = ?pool.key, "client logged in");
    Ok(Some(Login::Pool(LoggedIn {
        pool,
        params,
        client,
        balancing,
    })))
}

fn login_error(error: PoolError) -> ClientError {
    let code = match error.sqlstate() {
        sqlstate::QUERY_CANCELED => sqlstate::QUERY_CANCELED,
        sqlstate::INVALID_PASSWORD => sqlstate::INVALID_PASSWORD,
        _ => sqlstate::CONNECTION_FAILURE,
    };
    ClientError::fatal(code, error.to_string())
}

/// Reads the `options` startup parameter: `-c name=value` and
/// `--name=value` settings separated by spaces (`\\ ` is a literal space).
fn parse_options(options: &str) -> Result<Vec<(String, String)>, ClientError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let bad = || {
        ClientError::fatal(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("unsupported startup options {options:?}: only -c name=value is"),
        )
    };
    let mut settings = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next().ok_or_else(bad)?
        } else if let Some(rest) = word.strip_prefix("-c").or_else(|| word.strip_prefix("--")) {
            rest.to_string()
        } else {
            return Err(bad());
        };
        let (name, value) = setting.split_once('=').ok_or_else(bad)?;
        settings.push((name.replace('-', "_"), value.to_string()));
    }
    Ok(settings)
}

/// Startup settings that are the gateway's, not the server's.
fn is_gateway_setting(name: &str) -> bool {
    name.starts_with("sluice.") || name == "target_session_attrs"
}

/// `on`, `true`, `yes`, `1` (PostgreSQL's boolean spellings, any case).
fn is_on(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1" | "t" | "y"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_options() {
        let parsed =
            parse_options("-c TimeZone=Asia/Tokyo --search-path=a,b -cstatement_timeout=5s")
                .unwrap();
        assert_eq!(
            parsed,
            vec![
                ("TimeZone".to_string(), "Asia/Tokyo".to_string()),
                ("search_path".to_string(), "a,b".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
            ]
        );
        assert_eq!(
            parse_options(r"-c application_name=a\ b").unwrap()[0].1,
            "a b"
        );
        assert!(parse_options("-x").is_err());
        assert!(parse_options("-c").is_err());
    }

    #[test]
    fn booleans_and_gateway_settings() {
        assert!(is_on("ON") && is_on("1") && !is_on("off"));
        assert!(is_gateway_setting("sluice.route") && !is_gateway_setting("TimeZone"));
    }
}
