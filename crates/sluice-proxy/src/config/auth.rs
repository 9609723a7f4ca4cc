//! The client-authentication part of the configuration: the `auth_file`
//! and `auth_hba_file` it names (read at every load, so a reload re-reads
//! both), the method each login must use, and the settings of `auth_query`
//! lookups (`auth_user`, `auth_query`, `auth_dbname`, globally and per
//! database) resolved for one database; the lookups themselves are
//! [`crate::auth::query`]'s.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::{AuthType, Config, ConfigError, DatabaseConfig, ProxySettings};
use crate::auth::hba::{Connection, Hba};
use crate::auth::{AuthFile, Method};

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

/// The method one login must use, and the HBA line that chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginMethod {
    pub method: Method,
    /// With `auth_type = "hba"`: the matching line of the auth_hba_file.
    pub hba_line: Option<usize>,
}

/// Reads the `auth_file` and `auth_hba_file` that `proxy` names (relative
/// to the configuration file at `path`). `invalid` makes an error at a
/// span of the configuration text.
pub(super) fn load(
    path: &Path,
    proxy: &ProxySettings,
    databases: &BTreeMap<String, DatabaseConfig>,
    invalid: &dyn Fn(Option<Range<usize>>, String) -> ConfigError,
) -> Result<(AuthFile, Option<Hba>), ConfigError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let existing = |setting: &str, name: &toml::Spanned<String>| {
        let file = folder.join(name.get_ref());
        if file.is_file() {
            Ok(file)
        } else {
            Err(invalid(
                Some(name.span()),
                format!("{setting} `{}` does not exist", file.display()),
            ))
        }
    };
    // Read whenever it is set, not only with auth_type = "hba": a broken
    // file is reported before a `SET auth_type = hba` would rely on it.
    let hba = match &proxy.auth_hba_file {
        Some(name) => Some(Hba::load(&existing("auth_hba_file", name)?)?),
        None if proxy.auth_type == AuthType::Hba => {
            return Err(invalid(
                None,
                "auth_type = \"hba\" needs an auth_hba_file with the rules".into(),
            ))
        }
        None => None,
    };
    // Why an auth_file is needed: the first method that checks a password.
    let needs_secret = match (&hba, proxy.auth_type) {
        (Some(hba), AuthType::Hba) => hba
            .rules()
            .iter()
            .find(|rule| rule.method.needs_secret())
            .map(|rule| {
                format!(
                    "{}:{} uses {}, which needs an auth_file with the users' passwords",
                    hba.path().display(),
                    rule.line,
                    rule.method
                )
            }),
        (_, AuthType::Trust | AuthType::Hba | AuthType::Cert) => None,
        (_, auth_type) => Some(format!(
            "auth_type = \"{auth_type}\" needs an auth_file with the users' passwords"
        )),
    };
    // auth_query users need no file; an auth_user without a password may not either.
    let auth_user_set =
        proxy.auth_user.is_some() || databases.values().any(|db| db.auth_user.is_some());
    let auth = match &proxy.auth_file {
        Some(name) => AuthFile::load(&existing("auth_file", name)?)?,
        None => {
            if let Some(message) = needs_secret.filter(|_| !auth_user_set) {
                return Err(invalid(None, message));
            }
            AuthFile::default()
        }
    };
    Ok((auth, hba))
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

    /// The method a login must use: `auth_type`'s, or with `auth_type =
    /// "hba"` the first auth_hba_file line the connection matches (`None`:
    /// no line does, and the login is refused).
    pub fn login_method(&self, connection: &Connection) -> Option<LoginMethod> {
        let method = match self.proxy.auth_type {
            AuthType::Trust => Method::Trust,
            AuthType::Md5 => Method::Md5,
            AuthType::ScramSha256 => Method::ScramSha256,
            AuthType::Cert => Method::Cert,
            AuthType::Hba => {
                let rule = self.hba.as_ref()?.find(connection)?;
                return Some(LoginMethod {
                    method: rule.method,
                    hba_line: Some(rule.line),
                });
            }
        };
        Some(LoginMethod {
            method,
            hba_line: None,
        })
    }
}
