//! File rules (`file_rules`).
//!
//! ## What it does
//! Each application must contain a file matching `file_pattern`. The
//! pattern is a glob matched against workspace-relative paths (`/`
//! separators; `**` spans folders), or against paths relative to
//! `base_path` when it is set. It is satisfied per application:
//! `**/applications/**/README.md` means every app has a README.md
//! somewhere in its folder. With `required: false` a missing file is
//! listed in the report but is not a violation.
//!
//! ## Why
//! Deployment reads `snowflake.yml` and `environment.yml`, sharing reads
//! `share.yml`, people read `README.md`, Streamlit runs `dashboard.py`.
//!
//! ## Example
//! ```yaml
//! file_rules:
//!   - name: App has a README
//!     severity: warning
//!     file_pattern: "**/applications/*/README.md"
//! ```
//! An app folder without README.md gets
//! "missing required file matching `**/applications/*/README.md`".

use globset::GlobMatcher;

use super::{compile_glob, AppContext, Findings, RequiredFile, RuleError, RuleMeta};
use crate::config::FileRuleEntry;

#[derive(Debug, Clone)]
pub struct FileRule {
    pattern: String,
    matcher: GlobMatcher,
    base_path: String,
}

impl FileRule {
    pub fn new(e: FileRuleEntry) -> Result<FileRule, RuleError> {
        Ok(FileRule {
            matcher: compile_glob(&e.file_pattern)?.compile_matcher(),
            pattern: e.file_pattern,
            base_path: e.base_path.trim_matches('/').to_string(),
        })
    }

    pub fn summary(&self) -> String {
        format!("each app has `{}`", self.pattern)
    }

    fn matches(&self, path: &str) -> bool {
        if self.base_path.is_empty() {
            return self.matcher.is_match(path);
        }
        path.strip_prefix(&self.base_path)
            .and_then(|p| p.strip_prefix('/'))
            .is_some_and(|p| self.matcher.is_match(p))
    }

    pub fn check(&self, meta: &RuleMeta, ctx: &AppContext, out: &mut Findings) {
        let found = ctx
            .app
            .files
            .iter()
            .find(|f| meta.applies_to(f) && self.matches(f))
            .cloned();
        if found.is_none() && meta.required {
            out.push(
                meta,
                ctx.app,
                &ctx.app.dir,
                None,
                format!("missing required file matching `{}`", self.pattern),
            );
        }
        out.required_files.push(RequiredFile {
            rule: meta.name.clone(),
            pattern: self.pattern.clone(),
            found,
        });
    }
}
