//! Server parameters (pgbouncer's `varcache.c`): the `(name, value)` pairs a
//! server session runs with and a client wants, kept sorted and shared, and
//! the one round trip of `SET`/`RESET` that brings a server in line with a
//! client.

use std::sync::Arc;

use crate::protocol::decode_parameter_status;

/// Server parameters as `(name, value)` pairs sorted by name. Shared with
/// `Arc` so that "does this server already run with this client's
/// parameters?" is usually a pointer comparison.
pub type Params = Arc<Vec<(Box<str>, Box<str>)>>;

/// Server parameters a client can never set (so never SET for it).
pub const READ_ONLY_PARAMS: &[&str] = &[
    "server_version",
    "server_encoding",
    "integer_datetimes",
    "is_superuser",
    "session_authorization",
    "in_hot_standby",
    "scram_iterations",
];

/// Whether a client may set `name` (and so it follows the client).
pub fn is_client_settable(name: &str) -> bool {
    !READ_ONLY_PARAMS.contains(&name)
}

pub fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .binary_search_by(|(k, _)| (**k).cmp(name))
        .ok()
        .map(|i| &*params[i].1)
}

/// Sets `name` in a sorted parameter list (copy-on-write).
pub fn set_param(params: &mut Params, name: &str, value: &str) {
    let list = Arc::make_mut(params);
    match list.binary_search_by(|(k, _)| (**k).cmp(name)) {
        Ok(i) => list[i].1 = value.into(),
        Err(i) => list.insert(i, (name.into(), value.into())),
    }
}

/// Applies a ParameterStatus body to `params`; returns the parameter's name
/// and value as text (`None` for a malformed body, which changes nothing).
pub fn apply_parameter_status(params: &mut Params, body: &[u8]) -> Option<(String, String)> {
    let (name, value) = decode_parameter_status(body)?;
    let name = String::from_utf8_lossy(name).into_owned();
    let value = String::from_utf8_lossy(value).into_owned();
    set_param(params, &name, &value);
    Some((name, value))
}

/// The `SET`/`RESET` statements (one string) that turn a server session
/// running with `current` into one running with `wanted`; empty when they
/// already agree on every settable parameter.
pub fn sync_sql(wanted: &Params, current: &Params) -> String {
    let mut sql = String::new();
    for (name, value) in wanted.iter() {
        if !is_client_settable(name) || param(current, name) == Some(value) {
            continue;
        }
        sql.push_str(&format!(
            "SET {} = {};",
            quote_ident(name),
            quote_literal(value)
        ));
    }
    for (name, _) in current.iter() {
        if param(wanted, name).is_none() && is_client_settable(name) {
            sql.push_str(&format!("RESET {};", quote_ident(name)));
        }
    }
    sql
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    #[test]
    fn params_are_sorted_and_copy_on_write() {
        let mut a: Params = Arc::new(vec![]);
        set_param(&mut a, "TimeZone", "UTC");
        set_param(&mut a, "DateStyle", "ISO");
        let b = a.clone();
        set_param(&mut a, "TimeZone", "Europe/Paris");
        assert_eq!(param(&a, "TimeZone"), Some("Europe/Paris"));
        assert_eq!(param(&b, "TimeZone"), Some("UTC"));
        assert_eq!(param(&a, "DateStyle"), Some("ISO"));
        assert_eq!(param(&a, "nope"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("Time\"Zone"), "\"Time\"\"Zone\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn sync_sets_what_differs_and_resets_what_the_client_lacks() {
        let mut server: Params = Arc::default();
        set_param(&mut server, "TimeZone", "UTC");
        set_param(&mut server, "search_path", "public");
        set_param(&mut server, "server_version", "15.8");
        let mut client: Params = Arc::default();
        set_param(&mut client, "TimeZone", "Asia/Tokyo");
        set_param(&mut client, "application_name", "it's");
        set_param(&mut client, "server_version", "99");
        assert_eq!(
            sync_sql(&client, &server),
            "SET \"TimeZone\" = 'Asia/Tokyo';SET \"application_name\" = 'it''s';\
             RESET \"search_path\";"
        );
        assert_eq!(sync_sql(&server, &server), "");
    }

    #[test]
    fn parameter_status_is_applied() {
        let mut params: Params = Arc::default();
        let mut buf = BytesMut::new();
        crate::protocol::parameter_status(&mut buf, "TimeZone", "UTC");
        let applied = apply_parameter_status(&mut params, &buf[5..]);
        assert_eq!(applied, Some(("TimeZone".into(), "UTC".into())));
        assert_eq!(param(&params, "TimeZone"), Some("UTC"));
        assert_eq!(apply_parameter_status(&mut params, b"x"), None);
    }
}
