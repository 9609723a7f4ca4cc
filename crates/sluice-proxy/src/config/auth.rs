//! Who may log in, as the configuration says: the `auth_file` it names,
//! and the settings of `auth_query` lookups (`auth_user`, `auth_query`,
//! `auth_dbname`, globally and per database) resolved for one database;
//! the lookups themselves are [`crate::auth::query`]'s.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::{AuthType, Config, ConfigError, DatabaseConfig, ProxySettings};
use crate::auth::AuthFile;

/// pgbouncer 1.25's `auth_query` (older pgbouncers read `pg_shadow`:
/// `SELECT usename, passwd FROM pg_shadow WHERE usename=$1`): no secret for
/// a role whose password has expired, and only roles that may log in.
pub const DEFAULT_AUTH_QUERY: &str = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin";

/// How users missing from the auth_file are looked up for one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthLookup {
    /// Who runs the query.
    pub auth_user: String,
    pub query: String,
    /// The `[databases]` entry whose server (its primary) runs it.
    pub database: String,
}

impl Config {
    /// How a user that is not in the auth_file logs in to `database`: with
    /// the secret `auth_query` finds (`None` without an `auth_user`). The
    /// database's own settings win over `[proxy]`'s.
    pub fn auth_lookup(&self, database: &str) -> Option<AuthLookup> {
        let db = self.databases.get(database)?;
        let p = &self.proxy;
        let auth_dbname = db.auth_dbname.as_ref().or(p.auth_dbname.as_ref());
        Some(AuthLookup {
            auth_user: db.auth_user.clone().or_else(|| p.auth_user.clone())?,
            query: db
                .auth_query
                .clone()
                .unwrap_or_else(|| p.auth_query.clone()),
            database: auth_dbname
                .map_or(database, |name| name.get_ref())
                .to_string(),
        })
    }
}

/// Every `auth_dbname` must name a `[databases]` entry (pgbouncer finds
/// out at a client's login; here the file is refused at that line).
pub(super) fn check_auth_dbnames(
    proxy: &ProxySettings,
    databases: &BTreeMap<String, DatabaseConfig>,
) -> Result<(), (Range<usize>, String)> {
    let per_database = databases.values().map(|db| &db.auth_dbname);
    for name in std::iter::once(&proxy.auth_dbname).chain(per_database) {
        let Some(name) = name else { continue };
        if !databases.contains_key(name.get_ref()) {
            return Err((
                name.span(),
                format!(
                    "authentication database \"{}\" is not configured (auth_dbname names a [databases] entry)",
                    name.get_ref()
                ),
            ));
        }
    }
    Ok(())
}

/// Loads the `auth_file` (relative to the configuration file at `path`),
/// or makes sure the gateway can do without one; `invalid` words an error
/// at a place in the configuration.
pub(super) fn load_auth_file(
    path: &Path,
    proxy: &ProxySettings,
    databases: &BTreeMap<String, DatabaseConfig>,
    invalid: impl Fn(Option<Range<usize>>, String) -> ConfigError,
) -> Result<AuthFile, ConfigError> {
    let Some(name) = &proxy.auth_file else {
        // auth_query users need no file; an auth_user without a password may not either.
        let auth_user_set =
            proxy.auth_user.is_some() || databases.values().any(|db| db.auth_user.is_some());
        if !matches!(proxy.auth_type, AuthType::Trust | AuthType::Cert) && !auth_user_set {
            return Err(invalid(
                None,
                format!(
                    "auth_type = \"{}\" needs an auth_file with the users' passwords",
                    proxy.auth_type
                ),
            ));
        }
        return Ok(AuthFile::default());
    };
    let auth_path = path.parent().unwrap_or(Path::new(".")).join(name.get_ref());
    if !auth_path.is_file() {
        return Err(invalid(
            Some(name.span()),
            format!("auth_file `{}` does not exist", auth_path.display()),
        ));
    }
    Ok(AuthFile::load(&auth_path)?)
}
