//! `auth_query`: the secret of a user that is not in the auth_file, looked
//! up on the server (pgbouncer's `auth_user`, `auth_query`, `auth_dbname`).
//!
//! The query runs on a connection of its own per server and auth_user (the
//! primary of the `[databases]` entry `auth_dbname` names, else of the
//! client's database), opened by the ordinary server login as `auth_user`
//! with its auth_file entry and kept for the next lookup (the janitor
//! closes it after `server_idle_timeout`). The user name is bound as `$1`
//! over the extended protocol, never pasted into the SQL.
//!
//! Answers are cached briefly ([`FOUND_TTL`], [`NOT_FOUND_TTL`]) so a burst
//! of logins runs one query: lookups on one server take turns on its
//! connection, and each looks at the cache again when its turn comes. A
//! lookup that has not finished within `server_connect_timeout` fails the
//! login with an error naming the server.
//!
//! The client is then checked against the secret exactly as against an
//! auth_file entry, and its pools log in to servers with it
//! ([`crate::pool::Pool::use_found_secret`]): SCRAM pass-through with the
//! ClientKey the client's proof revealed, md5 with the stored hash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::UserSecret;
use crate::backend::lookup::LookupRows;
use crate::backend::{BackendError, ServerConn, ServerTarget};
use crate::config::Config;
use crate::net::Connector;
use crate::pool::server_target;

/// How long a found secret is used before the server is asked again.
pub const FOUND_TTL: Duration = Duration::from_secs(5);
/// How long "no such user" (or no usable secret) is believed.
pub const NOT_FOUND_TTL: Duration = Duration::from_secs(2);
/// Past this many cached answers, expired ones are dropped.
const PRUNE_AT: usize = 4096;

/// A user's secret, as the login found it.
pub enum Secret<'a> {
    /// The auth_file's entry.
    File(&'a UserSecret),
    /// What `auth_query` returned.
    Found(Arc<UserSecret>),
    /// Neither knows the user (or its secret is NULL): the login fails.
    Unknown,
}

impl<'a> Secret<'a> {
    /// The auth_file's entry alone (no lookup).
    pub fn from_file(entry: Option<&'a UserSecret>) -> Secret<'a> {
        entry.map_or(Secret::Unknown, Secret::File)
    }

    pub fn get(&self) -> Option<&UserSecret> {
        match self {
            Secret::File(secret) => Some(secret),
            Secret::Found(secret) => Some(secret),
            Secret::Unknown => None,
        }
    }

    /// The secret if `auth_query` found it (the pools must be told).
    pub fn found(&self) -> Option<&UserSecret> {
        match self {
            Secret::Found(secret) => Some(secret),
            _ => None,
        }
    }
}

/// Why a lookup gave no answer (the login fails with this message).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("auth_query failed: {0}")]
    Server(BackendError),
    #[error(
        "auth_query failed: no answer from server {addr} within {after:?} (server_connect_timeout)"
    )]
    Timeout { addr: String, after: Duration },
    #[error("auth_query failed on server {addr}: {message}")]
    Answer { addr: String, message: String },
}

/// Where lookups run: one connection per server, database and auth_user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    host: String,
    port: u16,
    dbname: String,
    auth_user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    server: ServerKey,
    query: String,
    user: String,
}

struct Cached {
    at: Instant,
    secret: Option<Arc<UserSecret>>,
}

impl Cached {
    fn fresh(&self) -> bool {
        let ttl = if self.secret.is_some() {
            FOUND_TTL
        } else {
            NOT_FOUND_TTL
        };
        self.at.elapsed() < ttl
    }
}

/// A server's lookup connection, while idle; its lock is a lookup's turn.
type Slot = Arc<tokio::sync::Mutex<Option<Box<ServerConn>>>>;

/// The gateway's auth_query lookups: the answer cache and the connections.
#[derive(Default)]
pub struct AuthQueries {
    cache: Mutex<HashMap<CacheKey, Cached>>,
    servers: Mutex<HashMap<ServerKey, Slot>>,
}

impl AuthQueries {
    /// The secret `user` logs in to `database` with: its auth_file entry,
    /// else (with an `auth_user` for the database) what `auth_query` finds.
    pub async fn secret_of<'c>(
        &self,
        config: &'c Config,
        connector: Arc<dyn Connector>,
        database: &str,
        user: &str,
    ) -> Result<Secret<'c>, LookupError> {
        if let Some(secret) = config.auth.get(user) {
            return Ok(Secret::File(secret));
        }
        let Some(lookup) = config.auth_lookup(database) else {
            return Ok(Secret::Unknown);
        };
        // Loading checked that auth_dbname names a configured database.
        let Some(settings) = config.pool_settings(&lookup.database, &lookup.auth_user) else {
            return Ok(Secret::Unknown);
        };
        let key = CacheKey {
            server: ServerKey {
                host: settings.host.clone(),
                port: settings.port,
                dbname: settings.dbname.clone(),
                auth_user: lookup.auth_user.clone(),
            },
            query: lookup.query,
            user: user.to_string(),
        };
        let found = match self.cached(&key) {
            Some(found) => found,
            None => {
                let auth_user_secret = config.auth.get(&lookup.auth_user);
                let target = server_target(
                    &settings,
                    &lookup.auth_user,
                    auth_user_secret,
                    config,
                    connector,
                );
                let addr = target.addr();
                let after = config.proxy.server_connect_timeout.0;
                let looked_up = self.look_up(&key, Arc::new(target));
                match tokio::time::timeout(after, looked_up).await {
                    Ok(found) => found?,
                    Err(_) => return Err(LookupError::Timeout { addr, after }),
                }
            }
        };
        tracing::debug!(database, user, found = found.is_some(), "auth_query");
        Ok(found.map_or(Secret::Unknown, Secret::Found))
    }

    /// A fresh cached answer for `key`, if there is one.
    fn cached(&self, key: &CacheKey) -> Option<Option<Arc<UserSecret>>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|cached| cached.fresh())
            .map(|cached| cached.secret.clone())
    }

    /// Asks the server, on its lookup connection (opening one if needed).
    async fn look_up(
        &self,
        key: &CacheKey,
        target: Arc<ServerTarget>,
    ) -> Result<Option<Arc<UserSecret>>, LookupError> {
        let slot = self.slot(&key.server);
        let mut idle = slot.lock().await;
        // Another login may have asked while this one waited its turn.
        if let Some(found) = self.cached(key) {
            return Ok(found);
        }
        let addr = target.addr();
        // An idle connection that the server closed meanwhile is dropped.
        let usable = idle
            .take()
            .and_then(|mut conn| conn.usable().then_some(conn));
        let reused = match usable {
            Some(mut conn) => match conn.query_with_param(&key.query, &key.user).await {
                // It went away while idle: open another.
                Err(error) if error.is_connection_failure() => None,
                answer => Some((conn, answer)),
            },
            None => None,
        };
        let (mut conn, answer) = match reused {
            Some(reused) => reused,
            None => {
                let mut conn = Box::new(
                    ServerConn::connect(target)
                        .await
                        .map_err(LookupError::Server)?,
                );
                let answer = conn.query_with_param(&key.query, &key.user).await;
                (conn, answer)
            }
        };
        if conn.clean() {
            conn.last_used = Instant::now();
            *idle = Some(conn);
        }
        let answer = answer.map_err(LookupError::Server)?;
        let found = read_answer(&addr, &key.user, answer)?;
        Ok(self.store(key, found))
    }

    /// The lookup connection slot of `server`.
    fn slot(&self, server: &ServerKey) -> Slot {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers.entry(server.clone()).or_default().clone()
    }

    /// Caches an answer; a secret the same as the one cached before is
    /// kept as it was, with the ClientKey its clients already revealed.
    fn store(&self, key: &CacheKey, found: Option<UserSecret>) -> Option<Arc<UserSecret>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= PRUNE_AT {
            cache.retain(|_, cached| cached.fresh());
        }
        let previous = cache.get(key).and_then(|cached| cached.secret.clone());
        let secret = match (found, previous) {
            (Some(found), Some(previous)) if previous.same_as(&found) => Some(previous),
            (found, _) => found.map(Arc::new),
        };
        let at = Instant::now();
        let cached = Cached {
            at,
            secret: secret.clone(),
        };
        cache.insert(key.clone(), cached);
        secret
    }

    /// After a reload: answers are asked again, connections opened again
    /// (the auth_user's password or the query may have changed).
    pub fn reconfigure(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Closes lookup connections idle longer than `idle_timeout` (0: never).
    pub fn close_idle(&self, idle_timeout: Duration) {
        if idle_timeout.is_zero() {
            return;
        }
        let slots: Vec<Slot> = {
            let servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
            servers.values().cloned().collect()
        };
        for slot in slots {
            // A slot in use is not idle.
            let Ok(mut idle) = slot.try_lock() else {
                continue;
            };
            if idle
                .as_ref()
                .is_some_and(|conn| conn.last_used.elapsed() >= idle_timeout)
            {
                if let Some(conn) = idle.take() {
                    conn.terminate();
                }
            }
        }
    }

    /// Lookup connections open and idle (for tests and the curious).
    pub fn idle_connections(&self) -> usize {
        let servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers
            .values()
            .filter(|slot| slot.try_lock().is_ok_and(|idle| idle.is_some()))
            .count()
    }
}

/// Reads auth_query's answer as pgbouncer does: two columns, name and
/// secret; no row is no such user; a NULL secret (no password, or expired)
/// and an empty one never match.
fn read_answer(
    addr: &str,
    user: &str,
    answer: LookupRows,
) -> Result<Option<UserSecret>, LookupError> {
    let wrong = |message: String| LookupError::Answer {
        addr: addr.to_string(),
        message,
    };
    if answer.columns != 2 {
        return Err(wrong(format!(
            "expected 2 columns from auth_query, not {}",
            answer.columns
        )));
    }
    let Some(row) = answer.first_row else {
        return Ok(None);
    };
    let mut values = row.into_iter();
    let (Some(name), Some(secret)) = (values.next(), values.next()) else {
        return Err(wrong("expected 2 columns from auth_query".into()));
    };
    if name.is_none() {
        return Err(wrong("auth_query response contained null user name".into()));
    }
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    match UserSecret::parse(user, secret) {
        Ok(secret) => Ok(Some(secret)),
        Err(why) => {
            tracing::warn!(
                user,
                server = addr,
                "auth_query returned a {why}; the login fails"
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(columns: usize, row: Option<Vec<Option<&str>>>) -> LookupRows {
        LookupRows {
            columns,
            first_row: row.map(|r| r.into_iter().map(|v| v.map(str::to_string)).collect()),
        }
    }

    #[test]
    fn answers_read_as_pgbouncer_reads_them() {
        let read = |a| read_answer("h:5432", "u", a);
        assert!(read(answer(2, None)).unwrap().is_none(), "no row: no user");
        assert!(read(answer(2, Some(vec![Some("u"), None])))
            .unwrap()
            .is_none());
        assert!(read(answer(2, Some(vec![Some("u"), Some("")])))
            .unwrap()
            .is_none());
        let md5 = read(answer(
            2,
            Some(vec![Some("u"), Some("md5ABCDEF0123456789abcdef0123456789")]),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(md5.md5.as_deref(), Some("abcdef0123456789abcdef0123456789"));
        let plain = read(answer(2, Some(vec![Some("u"), Some("pw")])))
            .unwrap()
            .unwrap();
        assert_eq!(plain.password.as_deref(), Some("pw"));
        assert!(
            read(answer(2, Some(vec![Some("u"), Some("SCRAM-SHA-256$junk")])))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            read(answer(1, Some(vec![Some("u")])))
                .unwrap_err()
                .to_string(),
            "auth_query failed on server h:5432: expected 2 columns from auth_query, not 1"
        );
        assert_eq!(
            read(answer(2, Some(vec![None, Some("pw")])))
                .unwrap_err()
                .to_string(),
            "auth_query failed on server h:5432: auth_query response contained null user name"
        );
    }

    #[test]
    fn a_secret_found_again_keeps_its_learned_client_key() {
        let queries = AuthQueries::default();
        let key = CacheKey {
            server: ServerKey {
                host: "h".into(),
                port: 5432,
                dbname: "app".into(),
                auth_user: "auth".into(),
            },
            query: "q".into(),
            user: "u".into(),
        };
        let secret = postgres_protocol::password::scram_sha_256(b"pw");
        let parse = |s: &str| UserSecret::parse("u", s.to_string()).unwrap();
        let first = queries.store(&key, Some(parse(&secret))).unwrap();
        first.client_key.learn([7; 32]);
        assert!(queries.cached(&key).unwrap().is_some(), "fresh");
        let again = queries.store(&key, Some(parse(&secret))).unwrap();
        assert_eq!(again.client_key.get(), Some([7; 32]));
        let other = postgres_protocol::password::scram_sha_256(b"new");
        let changed = queries.store(&key, Some(parse(&other))).unwrap();
        assert_eq!(changed.client_key.get(), None, "a new secret, a new key");
        assert!(queries.store(&key, None).is_none());
        assert_eq!(queries.cached(&key).map(|s| s.is_none()), Some(true));
        queries.reconfigure();
        assert!(queries.cached(&key).is_none(), "a reload asks again");
    }
}
