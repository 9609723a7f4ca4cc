//! Who an app is shared with: its `share.yml`, per environment, and the
//! roles to revoke because they were removed since the last deploy.
//!
//! `share` is either a list of roles (every environment) or a map
//! environment → list; an environment the map does not name is shared with
//! no role. `sluice check` validates the file against the rules; this module
//! only reads it, and a file it cannot read is a located error.

use std::path::Path;

use serde_norway::Value;

use super::PlanError;
use crate::workspace::App;

/// The share file in every app folder.
pub const SHARE_FILE: &str = "share.yml";

/// The roles `app`'s `share.yml` lists for `env` (upper-cased, as Snowflake
/// stores unquoted names; duplicates dropped, order kept). No file: no roles.
pub fn roles_for(app: &App, env: &str) -> Result<Vec<String>, PlanError> {
    let path = app.dir.join(SHARE_FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(super::io_error(&path))?;
    parse_roles(&text, env, &path)
}

/// Parses a `share.yml`'s text; `path` only names it in errors.
pub fn parse_roles(text: &str, env: &str, path: &Path) -> Result<Vec<String>, PlanError> {
    let invalid = |line: usize, message: String| PlanError::Share {
        path: path.to_path_buf(),
        line,
        message,
    };
    let doc: Value = serde_norway::from_str(text).map_err(|e| {
        invalid(
            e.location().map(|l| l.line()).unwrap_or(1),
            e.to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string(),
        )
    })?;
    let share_line = line_of_key(text, "share");
    let list = match doc.get("share") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Mapping(envs)) => match envs.get(env) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(list) => list,
        },
        Some(list) => list,
    };
    let Value::Sequence(items) = list else {
        return Err(invalid(
            share_line,
            "`share` must be a list of roles or a map environment -> roles".into(),
        ));
    };
    let mut roles: Vec<String> = Vec::new();
    for item in items {
        let Value::String(role) = item else {
            return Err(invalid(share_line, format!("role {item:?} is not a name")));
        };
        let role = role.trim().to_uppercase();
        if !is_role_name(&role) {
            return Err(invalid(
                line_of_word(text, &role).unwrap_or(share_line),
                format!("`{role}` is not a Snowflake role name (letters, digits, _ and $)"),
            ));
        }
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// Roles in `before` that `now` no longer lists, in `before`'s order.
pub fn removed_roles(before: &[String], now: &[String]) -> Vec<String> {
    before
        .iter()
        .filter(|r| !now.iter().any(|n| n.eq_ignore_ascii_case(r)))
        .cloned()
        .collect()
}

/// An unquoted Snowflake identifier: safe to put into a command and a
/// `REVOKE` statement as is.
fn is_role_name(role: &str) -> bool {
    let mut chars = role.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn line_of_key(text: &str, key: &str) -> usize {
    let prefix = format!("{key}:");
    text.lines()
        .position(|l| l.starts_with(&prefix))
        .map_or(1, |i| i + 1)
}

fn line_of_word(text: &str, word: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.to_uppercase().contains(word))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(text: &str, env: &str) -> Result<Vec<String>, String> {
        parse_roles(text, env, Path::new("share.yml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_list_applies_to_every_environment() {
        let text = "share:\n  - data_analyst\n  - FINANCE_VIEWER\n  - DATA_ANALYST\n";
        assert_eq!(
            roles(text, "prod").unwrap(),
            ["DATA_ANALYST", "FINANCE_VIEWER"]
        );
    }

    #[test]
    fn a_map_names_roles_per_environment() {
        let text = "share:\n  test: [DATA_ANALYST]\n  prod: [DATA_ANALYST, FINANCE_VIEWER]\n";
        assert_eq!(roles(text, "test").unwrap(), ["DATA_ANALYST"]);
        assert_eq!(
            roles(text, "prod").unwrap(),
            ["DATA_ANALYST", "FINANCE_VIEWER"]
        );
        assert!(roles(text, "staging").unwrap().is_empty());
    }

    #[test]
    fn bad_files_are_located() {
        assert_eq!(
            roles("restricted_data: false\nshare: DATA_ANALYST\n", "test").unwrap_err(),
            "share.yml:2: `share` must be a list of roles or a map environment -> roles"
        );
        assert_eq!(
            roles("share:\n  - \"X; DROP\"\n", "test").unwrap_err(),
            "share.yml:2: `X; DROP` is not a Snowflake role name (letters, digits, _ and $)"
        );
        assert!(roles("share: [\n", "test")
            .unwrap_err()
            .starts_with("share.yml:2: "));
    }

    #[test]
    fn removed_roles_ignore_case() {
        let before = vec!["A".to_string(), "B".to_string()];
        assert_eq!(removed_roles(&before, &["b".to_string()]), ["A"]);
    }
}
