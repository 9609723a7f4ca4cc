//! The client-authentication part of the configuration: the `auth_file`
//! and `auth_hba_file` it names (read at every load, so a reload re-reads
//! both), and the method each login must use.

use std::ops::Range;
use std::path::Path;

use super::{AuthType, Config, ConfigError, ProxySettings};
use crate::auth::hba::{Connection, Hba};
use crate::auth::{AuthFile, Method};

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
    let auth = match &proxy.auth_file {
        Some(name) => AuthFile::load(&existing("auth_file", name)?)?,
        None => {
            if let Some(message) = needs_secret {
                return Err(invalid(None, message));
            }
            AuthFile::default()
        }
    };
    Ok((auth, hba))
}

impl Config {
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
