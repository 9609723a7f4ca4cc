//! `share.yml`: who an application is shared with. This is the one model of
//! the file: the share rules check it (`sluice check`), and `sluice deploy`,
//! `sluice share` and `sluice apps` (in `sluice-apps`, which depends on this
//! crate) read their roles from it, so the checker and the deployer can
//! never read the same file differently.
//!
//! ```yaml
//! share: [DATA_ANALYST]          # every environment
//! # or, per environment:
//! share:
//!   test: [DATA_ANALYST]
//!   prod: [DATA_ANALYST, FINANCE_VIEWER]
//! restricted_data: false         # true: only roles cleared for restricted data
//! ```
//!
//! A file that is not YAML, or not a mapping, does not parse. Otherwise each
//! part that is wrong (a `share` that is neither a list nor a map, one
//! environment's list, a `restricted_data` that is not a boolean) holds its
//! own [`ShareError`] with its line: the check reports every problem, and a
//! deploy fails only on the part it reads.

use serde_norway::Value;

/// The share file in every app folder.
pub const SHARE_FILE: &str = "share.yml";

/// What is wrong with (part of) a share file, and the 1-based line to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ShareError {
    pub line: u32,
    pub message: String,
}

/// A parsed `share.yml`.
#[derive(Debug, Clone)]
pub struct ShareFile {
    /// The top-level keys, for `required_keys`.
    keys: Vec<String>,
    /// `restricted_data: true` (absent or `null`: false).
    pub restricted_data: Result<bool, ShareError>,
    pub share: Share,
}

/// The `share` key.
#[derive(Debug, Clone)]
pub enum Share {
    /// No `share` key.
    Missing,
    /// One list for every environment (`share:` with no value is an empty list).
    Everywhere(RoleList),
    /// A list per environment, in file order.
    PerEnvironment(Vec<(String, RoleList)>),
    /// Neither a list nor a map.
    Invalid(ShareError),
}

/// One list of roles as written, and the line it starts on (for counts).
#[derive(Debug, Clone)]
pub struct RoleList {
    pub line: u32,
    /// The roles as written; an error when an item is not a string.
    pub roles: Result<Vec<Role>, ShareError>,
}

/// A role as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub line: u32,
}

impl ShareFile {
    /// Parses a share file's text.
    pub fn parse(text: &str) -> Result<ShareFile, ShareError> {
        let doc: Value = serde_norway::from_str(text).map_err(|e| {
            let (line, message) = crate::source::yaml_error(&e);
            ShareError { line, message }
        })?;
        let Value::Mapping(map) = doc else {
            return Err(ShareError {
                line: 1,
                message: "share file must be a YAML mapping with a `share` key".into(),
            });
        };
        let keys = map
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        let restricted_data = match map.get("restricted_data") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ShareError {
                line: key_line(text, "restricted_data"),
                message: "`restricted_data` must be true or false".into(),
            }),
        };
        let share = match map.get("share") {
            None => Share::Missing,
            Some(Value::Mapping(envs)) => Share::PerEnvironment(
                envs.iter()
                    .map(|(env, roles)| {
                        let env = match env {
                            Value::String(s) => s.clone(),
                            other => format!("{other:?}"),
                        };
                        let line = line_of(text, &env);
                        let list = RoleList {
                            line,
                            roles: role_list(text, roles).ok_or_else(|| ShareError {
                                line,
                                message: format!("`share.{env}` must be a list of role names"),
                            }),
                        };
                        (env, list)
                    })
                    .collect(),
            ),
            Some(other) => {
                let line = key_line(text, "share");
                match role_list(text, other) {
                    Some(roles) => Share::Everywhere(RoleList {
                        line,
                        roles: Ok(roles),
                    }),
                    None => Share::Invalid(ShareError {
                        line,
                        message: "`share` must be a list of roles or a map environment -> roles"
                            .into(),
                    }),
                }
            }
        };
        Ok(ShareFile {
            keys,
            restricted_data,
            share,
        })
    }

    /// Whether the file has the top-level key `key`.
    pub fn has_key(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    /// The roles deploying to `env` grants: trimmed, upper-cased (Snowflake
    /// stores unquoted names so), duplicates dropped, order kept; each must
    /// be an unquoted Snowflake identifier, because it goes into commands
    /// and a `REVOKE` statement as is. No `share`, or an environment a
    /// per-environment map leaves out: no roles.
    pub fn roles_for(&self, env: &str) -> Result<Vec<String>, ShareError> {
        let list = match &self.share {
            Share::Missing => return Ok(Vec::new()),
            Share::Invalid(e) => return Err(e.clone()),
            Share::Everywhere(list) => list,
            Share::PerEnvironment(envs) => match envs.iter().find(|(name, _)| name == env) {
                Some((_, list)) => list,
                None => return Ok(Vec::new()),
            },
        };
        let mut roles: Vec<String> = Vec::new();
        for role in list.roles.as_ref().map_err(Clone::clone)? {
            let name = role.name.trim().to_uppercase();
            if !is_role_name(&name) {
                return Err(ShareError {
                    line: role.line,
                    message: format!(
                        "`{name}` is not a Snowflake role name (letters, digits, _ and $)"
                    ),
                });
            }
            if !roles.contains(&name) {
                roles.push(name);
            }
        }
        Ok(roles)
    }
}

/// A YAML list of strings (`null`: empty), each with its line; `None` for
/// anything else.
fn role_list(text: &str, value: &Value) -> Option<Vec<Role>> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .map(|item| match item {
                Value::String(name) => Some(Role {
                    name: name.clone(),
                    line: line_of(text, name),
                }),
                _ => None,
            })
            .collect(),
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

/// An unquoted Snowflake identifier.
fn is_role_name(role: &str) -> bool {
    let mut chars = role.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// The line of a top-level `key:`; else the first mention of the word.
fn key_line(text: &str, key: &str) -> u32 {
    let prefix = format!("{key}:");
    text.lines()
        .position(|l| l.starts_with(&prefix))
        .map_or_else(|| line_of(text, key), |i| i as u32 + 1)
}

/// The first line mentioning `needle` as a whole word outside a `#`
/// comment (1 when none), for messages: YAML values carry no positions.
fn line_of(text: &str, needle: &str) -> u32 {
    if needle.is_empty() {
        return 1;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.lines()
        .position(|l| {
            let l = l.split('#').next().unwrap_or("");
            l.match_indices(needle).any(|(i, _)| {
                !word(l[..i].chars().next_back()) && !word(l[i + needle.len()..].chars().next())
            })
        })
        .map_or(1, |i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(text: &str, env: &str) -> Result<Vec<String>, String> {
        ShareFile::parse(text)
            .and_then(|f| f.roles_for(env))
            .map_err(|e| format!("{}: {e}", e.line))
    }

    #[test]
    fn line_of_finds_whole_words() {
        let text = "share:\n  - DATA_ANALYST_X\n  - DATA_ANALYST # main\n";
        assert_eq!(line_of(text, "DATA_ANALYST"), 3);
        assert_eq!(line_of(text, "missing"), 1);
    }

    #[test]
    fn a_list_applies_to_every_environment() {
        let text = "share:\n  - data_analyst\n  - FINANCE_VIEWER\n  - DATA_ANALYST\n";
        assert_eq!(
            roles(text, "prod").unwrap(),
            ["DATA_ANALYST", "FINANCE_VIEWER"]
        );
        let file = ShareFile::parse(text).unwrap();
        let Share::Everywhere(list) = &file.share else {
            panic!("{:?}", file.share)
        };
        // As written, with their lines, for the checker.
        let written: Vec<(&str, u32)> = list
            .roles
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| (r.name.as_str(), r.line))
            .collect();
        assert_eq!(
            written,
            [
                ("data_analyst", 2),
                ("FINANCE_VIEWER", 3),
                ("DATA_ANALYST", 4)
            ]
        );
        assert_eq!(file.restricted_data, Ok(false));
        assert!(file.has_key("share") && !file.has_key("restricted_data"));
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
        // One broken environment does not break the others.
        let text = "share:\n  test: [DATA_ANALYST]\n  prod: EXECUTIVE\n";
        assert_eq!(roles(text, "test").unwrap(), ["DATA_ANALYST"]);
        assert_eq!(
            roles(text, "prod").unwrap_err(),
            "3: `share.prod` must be a list of role names"
        );
    }

    #[test]
    fn bad_files_are_located() {
        assert_eq!(
            roles("restricted_data: false\nshare: DATA_ANALYST\n", "test").unwrap_err(),
            "2: `share` must be a list of roles or a map environment -> roles"
        );
        assert_eq!(
            roles("share:\n  - \"X; DROP\"\n", "test").unwrap_err(),
            "2: `X; DROP` is not a Snowflake role name (letters, digits, _ and $)"
        );
        assert!(roles("share: [\n", "test")
            .unwrap_err()
            .starts_with("2: invalid YAML: "));
        assert_eq!(
            roles("- DATA_ANALYST\n", "test").unwrap_err(),
            "1: share file must be a YAML mapping with a `share` key"
        );
        let file = ShareFile::parse("share: [A]\nrestricted_data: maybe\n").unwrap();
        assert_eq!(
            file.restricted_data.unwrap_err().to_string(),
            "`restricted_data` must be true or false"
        );
    }

    #[test]
    fn no_share_key_is_no_roles() {
        let file = ShareFile::parse("roles: [A]\n").unwrap();
        assert!(matches!(file.share, Share::Missing));
        assert!(file.roles_for("test").unwrap().is_empty());
    }
}
