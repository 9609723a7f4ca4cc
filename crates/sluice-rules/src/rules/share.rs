//! Share rules (`share_rules`).
//!
//! ## What it does
//! Each application's `share.yml` (files matching `file_pattern`, read with
//! the one model of the file, [`crate::share_file`]) must be valid YAML holding a mapping with every key of `required_keys`. `share`
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

use super::{compile_glob, AppContext, Findings, RuleError, RuleMeta};
use crate::config::ShareRuleEntry;
use crate::share_file::{RoleList, Share, ShareFile};

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

impl ShareRule {
    pub fn new(e: ShareRuleEntry) -> Result<ShareRule, RuleError> {
        if let Some(max) = e.max_roles {
            if max < e.min_roles {
                return Err(RuleError::RoleRange {
                    min: e.min_roles,
                    max,
                });
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
        let share = match ShareFile::parse(text) {
            Ok(share) => share,
            Err(e) => return report(e.line, e.message, out),
        };
        for key in &self.required_keys {
            if !share.has_key(key) {
                report(1, format!("missing required key `{key}`"), out);
            }
        }
        let restricted = share.restricted_data.unwrap_or_else(|e| {
            report(e.line, e.message, out);
            false
        });
        // (environment, list) pairs; `*` for a list for every environment.
        let lists: Vec<(&str, &RoleList)> = match &share.share {
            Share::Missing => return,
            Share::Invalid(e) => return report(e.line, e.message.clone(), out),
            Share::Everywhere(list) => vec![("*", list)],
            Share::PerEnvironment(envs) => envs.iter().map(|(e, l)| (e.as_str(), l)).collect(),
        };
        for (env, list) in lists {
            let roles = match &list.roles {
                Ok(roles) => roles,
                Err(e) => {
                    report(e.line, e.message.clone(), out);
                    continue;
                }
            };
            let scope = if env == "*" {
                String::new()
            } else {
                format!(" in `{env}`")
            };
            if roles.len() < self.min_roles {
                report(
                    list.line,
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
                    list.line,
                    format!(
                        "shared with {} roles{scope}, at most {max} allowed",
                        roles.len()
                    ),
                    out,
                );
            }
            for role in roles {
                let name = role.name.as_str();
                if !self.valid_roles.is_empty() && !contains_role(&self.valid_roles, name) {
                    report(
                        role.line,
                        format!("role `{name}`{scope} is not a valid role"),
                        out,
                    );
                } else if restricted
                    && !self.safe_data_roles.is_empty()
                    && !contains_role(&self.safe_data_roles, name)
                {
                    report(
                        role.line,
                        format!("role `{name}`{scope} is not cleared for restricted data (restricted_data: true)"),
                        out,
                    );
                }
            }
            out.share_roles.push((
                env.to_string(),
                roles.iter().map(|r| r.name.clone()).collect(),
            ));
        }
    }
}
