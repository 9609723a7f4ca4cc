//! The `[proxy]` settings as data (ripgrep's "flags are data"): one line
//! each in [`SETTINGS`], from which the console's `SHOW CONFIG` (key, value,
//! default, changeable) and `SET key = value` are served, so that a setting
//! cannot be shown one way and set another.

use std::fmt;
use std::time::Duration;

use toml::Spanned;

use super::{split_user_list, AuthType, PoolMode, ProxySettings, Seconds};
use crate::tls::SslMode;

/// One `[proxy]` setting.
pub struct Setting {
    pub name: &'static str,
    /// Whether `SET` (and a reload) may change it while running; the
    /// others take effect at the next start.
    pub changeable: bool,
    show: fn(&ProxySettings) -> String,
    set: fn(&mut ProxySettings, &str) -> Result<(), InvalidValue>,
}

impl Setting {
    /// The setting's value in `settings`, as `SHOW CONFIG` prints it.
    pub fn value(&self, settings: &ProxySettings) -> String {
        (self.show)(settings)
    }

    /// Its default, as `SHOW CONFIG` prints it.
    pub fn default_value(&self) -> String {
        (self.show)(&ProxySettings::default())
    }

    /// Sets it from `SET`'s text.
    pub fn set(&self, settings: &mut ProxySettings, text: &str) -> Result<(), InvalidValue> {
        (self.set)(settings, text)
    }
}

/// A `SET` value that does not fit the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for {name}: {text:?} ({expected})")]
pub struct InvalidValue {
    pub name: &'static str,
    pub text: String,
    pub expected: &'static str,
}

/// How a setting's value is shown and read back.
trait SettingValue: Sized {
    /// What a value must look like, for the error message.
    const EXPECTED: &'static str;
    fn show(&self) -> String;
    fn read(text: &str) -> Option<Self>;
}

impl SettingValue for bool {
    const EXPECTED: &'static str = "true or false";
    fn show(&self) -> String {
        if *self { "1" } else { "0" }.to_string()
    }
    fn read(text: &str) -> Option<bool> {
        match text.to_ascii_lowercase().as_str() {
            "1" | "on" | "true" | "yes" => Some(true),
            "0" | "off" | "false" | "no" => Some(false),
            _ => None,
        }
    }
}

impl SettingValue for u32 {
    const EXPECTED: &'static str = "a whole number";
    fn show(&self) -> String {
        self.to_string()
    }
    fn read(text: &str) -> Option<u32> {
        text.parse().ok()
    }
}

impl SettingValue for u16 {
    const EXPECTED: &'static str = "a port number";
    fn show(&self) -> String {
        self.to_string()
    }
    fn read(text: &str) -> Option<u16> {
        text.parse().ok()
    }
}

impl SettingValue for Seconds {
    const EXPECTED: &'static str = "a number of seconds";
    fn show(&self) -> String {
        self.to_string()
    }
    fn read(text: &str) -> Option<Seconds> {
        let value: f64 = text.parse().ok()?;
        (value.is_finite() && (0.0..=1e9).contains(&value))
            .then(|| Seconds(Duration::from_secs_f64(value)))
    }
}

impl SettingValue for String {
    const EXPECTED: &'static str = "text";
    fn show(&self) -> String {
        self.clone()
    }
    fn read(text: &str) -> Option<String> {
        Some(text.to_string())
    }
}

impl SettingValue for Vec<String> {
    const EXPECTED: &'static str = "a comma-separated list of user names";
    fn show(&self) -> String {
        self.join(",")
    }
    fn read(text: &str) -> Option<Vec<String>> {
        Some(split_user_list(text))
    }
}

impl SettingValue for PoolMode {
    const EXPECTED: &'static str = "session or transaction";
    fn show(&self) -> String {
        self.to_string()
    }
    fn read(text: &str) -> Option<PoolMode> {
        match text {
            "session" => Some(PoolMode::Session),
            "transaction" => Some(PoolMode::Transaction),
            _ => None,
        }
    }
}

impl SettingValue for AuthType {
    const EXPECTED: &'static str = "scram-sha-256, md5, cert, trust or hba";
    fn show(&self) -> String {
        self.to_string()
    }
    fn read(text: &str) -> Option<AuthType> {
        match text {
            "scram-sha-256" => Some(AuthType::ScramSha256),
            "md5" => Some(AuthType::Md5),
            "trust" => Some(AuthType::Trust),
            "hba" => Some(AuthType::Hba),
            "cert" => Some(AuthType::Cert),
            _ => None,
        }
    }
}

impl SettingValue for SslMode {
    const EXPECTED: &'static str = "disable, allow, prefer, require, verify-ca or verify-full";
    fn show(&self) -> String {
        self.to_string()
    }
    fn read(text: &str) -> Option<SslMode> {
        SslMode::parse(text)
    }
}

impl<T: SettingValue> SettingValue for Spanned<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn show(&self) -> String {
        self.get_ref().show()
    }
    fn read(text: &str) -> Option<Spanned<T>> {
        T::read(text).map(|value| Spanned::new(0..0, value))
    }
}

impl<T: SettingValue> SettingValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn show(&self) -> String {
        self.as_ref().map_or_else(String::new, T::show)
    }
    fn read(text: &str) -> Option<Option<T>> {
        if text.is_empty() {
            return Some(None);
        }
        T::read(text).map(Some)
    }
}

/// A table line: `setting!(name, changeable)`.
macro_rules! setting {
    ($field:ident, $changeable:expr) => {
        Setting {
            name: stringify!($field),
            changeable: $changeable,
            show: |settings| SettingValue::show(&settings.$field),
            set: |settings, text| {
                settings.$field = SettingValue::read(text).ok_or_else(|| InvalidValue {
                    name: stringify!($field),
                    text: text.to_string(),
                    expected: expected_of(&settings.$field),
                })?;
                Ok(())
            },
        }
    };
}

/// The `EXPECTED` text of a value's type (the macro cannot name the type).
fn expected_of<T: SettingValue>(_: &T) -> &'static str {
    T::EXPECTED
}

/// Every `[proxy]` setting, in pgbouncer's order (alphabetical).
pub const SETTINGS: &[Setting] = &[
    setting!(admin_users, true),
    setting!(auth_dbname, true),
    setting!(auth_file, true),
    setting!(auth_hba_file, true),
    setting!(auth_query, true),
    setting!(auth_type, true),
    setting!(auth_user, true),
    setting!(client_idle_timeout, true),
    setting!(client_login_timeout, true),
    setting!(client_tls_ca_file, true),
    setting!(client_tls_cert_file, true),
    setting!(client_tls_ciphers, true),
    setting!(client_tls_key_file, true),
    setting!(client_tls_protocols, true),
    setting!(client_tls_sslmode, true),
    setting!(console_legacy_columns, true),
    setting!(default_pool_size, true),
    setting!(idle_transaction_timeout, true),
    setting!(listen_addr, false),
    setting!(listen_port, false),
    setting!(max_client_conn, true),
    setting!(max_db_client_connections, true),
    setting!(max_db_connections, true),
    setting!(max_packet_size, true),
    setting!(max_prepared_statements, true),
    setting!(max_user_client_connections, true),
    setting!(max_user_connections, true),
    setting!(metrics_listen_addr, false),
    setting!(metrics_port, false),
    setting!(min_pool_size, true),
    setting!(pool_mode, true),
    setting!(query_timeout, true),
    setting!(query_wait_timeout, true),
    setting!(reserve_pool_size, true),
    setting!(reserve_pool_timeout, true),
    setting!(server_check_delay, true),
    setting!(server_check_query, true),
    setting!(server_connect_timeout, true),
    setting!(server_idle_timeout, true),
    setting!(server_lifetime, true),
    setting!(server_reset_query, true),
    setting!(server_tls_ca_file, true),
    setting!(server_tls_cert_file, true),
    setting!(server_tls_ciphers, true),
    setting!(server_tls_key_file, true),
    setting!(server_tls_protocols, true),
    setting!(server_tls_sslmode, true),
    setting!(shutdown_timeout, true),
    setting!(stats_period, true),
    setting!(stats_users, true),
    setting!(worker_threads, false),
];

/// The setting called `name`.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|setting| setting.name == name)
}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setting")
            .field("name", &self.name)
            .field("changeable", &self.changeable)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_shows_its_default_and_reads_it_back() {
        for setting in SETTINGS {
            let mut settings = ProxySettings::default();
            let default = setting.default_value();
            setting
                .set(&mut settings, &default)
                .unwrap_or_else(|e| panic!("{}: {e}", setting.name));
            assert_eq!(setting.value(&settings), default, "{}", setting.name);
        }
        let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "kept in alphabetical order");
    }

    #[test]
    fn set_checks_the_value() {
        let mut settings = ProxySettings::default();
        let pool = find("default_pool_size").unwrap();
        pool.set(&mut settings, "30").unwrap();
        assert_eq!(*settings.default_pool_size.get_ref(), 30);
        let error = pool.set(&mut settings, "lots").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid value for default_pool_size: \"lots\" (a whole number)"
        );
        find("query_timeout")
            .unwrap()
            .set(&mut settings, "2.5")
            .unwrap();
        assert_eq!(settings.query_timeout.0, Duration::from_millis(2500));
        find("admin_users")
            .unwrap()
            .set(&mut settings, "a, b")
            .unwrap();
        assert_eq!(settings.admin_users, ["a", "b"]);
        assert!(find("listen_port").is_some_and(|s| !s.changeable));
        assert!(find("nope").is_none());
    }
}
