//! Share rules (`share_rules`).
//!
//! ## What it does
//! Each application's `share.yml` (files matching `file_pattern`) must be
//! valid YAML holding a mapping with every key of `required_keys`. `share`
//! is either a list of roles (for every environment) or a map
//! environment → list of roles; each list must have `min_roles` to
//! `max_roles` roles, and each role must be in `valid_roles` (when the rule
//! lists any; compared case-insensitively, as Snowflake does for unquoted
//! names). With `required: true` (default) an app without a share file
//! fails.
//!
//! `safe_data_roles`: roles cleared for restricted data. An app whose
//! `share.yml` says `restricted_data: true` may only be shared with roles
//! in `safe_data_roles`; every other role it lists is a violation. Apps
//! without `restricted_data: true` are not affected, and a rule without
//! `safe_data_roles` does not check this. `restricted_data` must be a
//! boolean.
//!
//! ## Why
//! Sharing is access control: a typo in a role, or a restricted app shared
//! with a broad role, is a data leak that review must catch before deploy.
//!
//! ## Example
//! ```yaml
//! share_rules:
//!   - name: Valid share roles
//!     severity: error
//!     file_pattern: "**/applications/*/share.yml"
//!     valid_roles: [DATA_ANALYST, FINANCE_VIEWER, HR_ANALYST]
//!     safe_data_roles: [FINANCE_VIEWER]
//!     min_roles: 1
//! ```
//! `share: [DATA_ANALYST]` with `restricted_data: true` fails:
//! "role `DATA_ANALYST` is not cleared for restricted data".

use globset::GlobMatcher;
use serde_norway::Value;

use super::{compile_glob, AppContext, Findings, RuleMeta};
use crate::config::ShareRuleEntry;

#[derive(Debug, Clone)]
pub struct ShareRule {
    pattern: String,
    matcher: GlobMatcher,
    valid_roles: Vec<String>,
    safe_data_roles: Vec<String>,
    required_keys: Vec<String>,
    min_roles: usize,
    max_roles: Option<usize>,
}

fn contains_role(list: &[String], role: &str) -> bool {
    list.iter().any(|r| r.eq_ignore_ascii_case(role))
}

/// Line of the first line mentioning `needle` as a word, for messages.
fn line_of(text: &str, needle: &str) -> u32 {
    text.lines()
        .position(|l| {
            let l = l.split('#').next().unwrap_or("");
            l.match_indices(needle).any(|(i, _)| {
                let before = l[..i].chars().next_back();
                let after = l[i + needle.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
        .map_or(1, |i| i as u32 + 1)
}

impl ShareRule {
    pub fn new(e: ShareRuleEntry) -> Result<ShareRule, String> {
        if let Some(max) = e.max_roles {
            if max < e.min_roles {
                return Err(format!(
                    "max_roles ({max}) is less than min_roles ({})",
                    e.min_roles
                ));
            }
        }
        Ok(ShareRule {
            matcher: compile_glob(&e.file_pattern)?.compile_matcher(),
            pattern: e.file_pattern,
            valid_roles: e.valid_roles,
            safe_data_roles: e.safe_data_roles,
            required_keys: e.required_keys,
            min_roles: e.min_roles,
            max_roles: e.max_roles,
        })
    }

    pub fn summary(&self) -> String {
        let mut s = format!("`{}` shares with {}", self.pattern, self.min_roles);
        match self.max_roles {
            Some(max) => s.push_str(&format!("..{max} roles")),
            None => s.push_str("+ roles"),
        }
        if !self.valid_roles.is_empty() {
            s.push_str(&format!(" from {}", self.valid_roles.join(", ")));
        }
        if !self.safe_data_roles.is_empty() {
            s.push_str(&format!(
                "; restricted data only to {}",
                self.safe_data_roles.join(", ")
            ));
        }
        s
    }

    pub fn check(&self, meta: &RuleMeta, ctx: &AppContext, out: &mut Findings) {
        let files: Vec<&String> = ctx
            .app
            .files
            .iter()
            .filter(|f| meta.applies_to(f) && self.matcher.is_match(f.as_str()))
            .collect();
        if files.is_empty() {
            if meta.required {
                out.push(
                    meta,
                    ctx.app,
                    &ctx.app.dir,
                    None,
                    format!("missing share file matching `{}`", self.pattern),
                );
            }
            return;
        }
        for file in files {
            let path = ctx.root.join(file);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    out.push(meta, ctx.app, file, None, format!("cannot read: {e}"));
                    continue;
                }
            };
            self.check_file(meta, ctx, file, &text, out);
        }
    }

    fn check_file(
        &self,
        meta: &RuleMeta,
        ctx: &AppContext,
        file: &str,
        text: &str,
        out: &mut Findings,
    ) {
        let report = |line: u32, message: String, out: &mut Findings| {
            out.push(meta, ctx.app, file, Some((line, line)), message);
        };
        let doc: Value = match serde_norway::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let line = e.location().map_or(1, |l| l.line() as u32);
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                report(line, format!("invalid YAML: {msg}"), out);
                return;
            }
        };
        let Value::Mapping(map) = doc else {
            report(
                1,
                "share file must be a YAML mapping with a `share` key".into(),
                out,
            );
            return;
        };
        for key in &self.required_keys {
            if !map.contains_key(key.as_str()) {
                report(1, format!("missing required key `{key}`"), out);
            }
        }
        let restricted = match map.get("restricted_data") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                report(
                    line_of(text, "restricted_data"),
                    "`restricted_data` must be true or false".into(),
                    out,
                );
                false
            }
        };
        let Some(share) = map.get("share") else {
            return;
        };
        // (environment, roles) pairs; `*` for a plain list.
        let mut lists: Vec<(String, Vec<String>)> = Vec::new();
        let role_list = |v: &Value| -> Option<Vec<String>> {
            match v {
                Value::Sequence(seq) => seq
                    .iter()
                    .map(|r| match r {
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
                Value::Null => Some(Vec::new()),
                _ => None,
            }
        };
        match share {
            Value::Mapping(envs) => {
                for (env, roles) in envs {
                    let env = match env {
                        Value::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    match role_list(roles) {
                        Some(r) => lists.push((env, r)),
                        None => report(
                            line_of(text, &env),
                            format!("`share.{env}` must be a list of role names"),
                            out,
                        ),
                    }
                }
            }
            other => match role_list(other) {
                Some(r) => lists.push(("*".into(), r)),
                None => {
                    report(
                        line_of(text, "share"),
                        "`share` must be a list of roles or a map environment -> roles".into(),
                        out,
                    );
                }
            },
        }
        for (env, roles) in &lists {
            let scope = if env == "*" {
                String::new()
            } else {
                format!(" in `{env}`")
            };
            let count_line = if env == "*" {
                line_of(text, "share")
            } else {
                line_of(text, env)
            };
            if roles.len() < self.min_roles {
                report(
                    count_line,
                    format!(
                        "shared with {} role(s){scope}, at least {} required",
                        roles.len(),
                        self.min_roles
                    ),
                    out,
                );
            }
            if let Some(max) = self.max_roles.filter(|m| roles.len() > *m) {
                report(
                    count_line,
                    format!(
                        "shared with {} roles{scope}, at most {max} allowed",
                        roles.len()
                    ),
                    out,
                );
            }
            for role in roles {
                if !self.valid_roles.is_empty() && !contains_role(&self.valid_roles, role) {
                    report(
                        line_of(text, role),
                        format!("role `{role}`{scope} is not a valid role"),
                        out,
                    );
                } else if restricted
                    && !self.safe_data_roles.is_empty()
                    && !contains_role(&self.safe_data_roles, role)
                {
                    report(
                        line_of(text, role),
                        format!("role `{role}`{scope} is not cleared for restricted data (restricted_data: true)"),
                        out,
                    );
                }
            }
        }
        out.share_roles.extend(lists);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_finds_whole_words() {
        let text = "share:\n  - DATA_ANALYST_X\n  - DATA_ANALYST # main\n";
        assert_eq!(line_of(text, "DATA_ANALYST"), 3);
        assert_eq!(line_of(text, "missing"), 1);
    }
}
