//! Who an app is shared with: its `share.yml`'s roles for one environment
//! (read with the one model of the file, `sluice_rules::share_file`, which
//! the share rules check too), and the roles to revoke because they were
//! removed since the last deploy.
//!
//! An environment a per-environment map does not name is shared with no
//! role. `sluice check` validates the file against the rules; here a file
//! that cannot be read is a located error.

use std::path::Path;

use sluice_rules::ShareFile;

use super::PlanError;
use crate::workspace::App;

pub use sluice_rules::share_file::SHARE_FILE;

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
    ShareFile::parse(text)
        .and_then(|file| file.roles_for(env))
        .map_err(|error| PlanError::Share {
            path: path.to_path_buf(),
            error,
        })
}

/// Roles in `before` that `now` no longer lists, in `before`'s order.
pub fn removed_roles(before: &[String], now: &[String]) -> Vec<String> {
    before
        .iter()
        .filter(|r| !now.iter().any(|n| n.eq_ignore_ascii_case(r)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // What the file says is `sluice_rules::share_file`'s (and tested there);
    // here, that errors name the file and line.
    #[test]
    fn bad_files_are_located() {
        let err = parse_roles(
            "restricted_data: false\nshare: DATA_ANALYST\n",
            "test",
            Path::new("applications/x/share.yml"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "applications/x/share.yml:2: `share` must be a list of roles or a map environment -> roles"
        );
        let roles = parse_roles("share: [a, A]\n", "test", Path::new("share.yml")).unwrap();
        assert_eq!(roles, ["A"]);
    }

    #[test]
    fn removed_roles_ignore_case() {
        let before = vec!["A".to_string(), "B".to_string()];
        assert_eq!(removed_roles(&before, &["b".to_string()]), ["A"]);
    }
}
