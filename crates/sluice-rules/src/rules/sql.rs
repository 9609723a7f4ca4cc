//! SQL rules (`sql_rules`).
//!
//! ## What it does
//! Looks at every `.sql` file of an application and at SQL inside `.py`
//! files (string literals passed to `.sql(`, `execute(`, `read_sql*(`,
//! `query(`, and other literals that start with a SQL keyword and are
//! clearly SQL), for files whose extension is in `file_extensions`.
//! Each text is split into statements and comments are ignored (see
//! [`crate::sql`]). Then:
//! - `select_only: true` — every statement must be a read. DML, DDL,
//!   `MERGE`, `COPY INTO`, `GRANT`/`REVOKE`, `CALL`, `EXECUTE IMMEDIATE`,
//!   `CREATE TABLE ... AS SELECT`, a CTE ending in DML and
//!   `SELECT ... INTO` all fail.
//! - `forbidden_statements: [DROP, TRUNCATE]` — statements starting with
//!   those keywords fail (for a CTE, the statement after the `WITH` list).
//! - `required_statements: [SELECT]` — each SQL text must contain a
//!   statement starting with each of them.
//! - `case_sensitive: true` — keywords in the two lists match only when
//!   written in the same case in the SQL.
//!
//! In Python files the line reported is the line where the string starts.
//! `required` has no effect on SQL rules.
//!
//! ## Why
//! Apps are dashboards: they read. A write from an app bypasses review,
//! deployment and audit.
//!
//! ## Example
//! ```yaml
//! sql_rules:
//!   - name: SELECT only
//!     severity: error
//!     file_extensions: [".sql", ".py"]
//!     select_only: true
//! ```
//! `self.query("DELETE FROM sales")` fails:
//! "DELETE statement is not allowed: SQL must be read-only (SELECT)".

use super::{AppContext, Findings, RuleError, RuleMeta};
use crate::config::SqlRuleEntry;
use crate::rules::Analysis;
use crate::sql::Statement;

#[derive(Debug, Clone)]
pub struct SqlRule {
    extensions: Vec<String>,
    select_only: bool,
    forbidden: Vec<Vec<String>>,
    required_statements: Vec<Vec<String>>,
    case_sensitive: bool,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

impl SqlRule {
    pub fn new(e: SqlRuleEntry) -> Result<SqlRule, RuleError> {
        let extensions = e
            .file_extensions
            .iter()
            .map(|x| {
                let x = x.trim();
                if x.starts_with('.') {
                    x.to_string()
                } else {
                    format!(".{x}")
                }
            })
            .collect();
        Ok(SqlRule {
            extensions,
            select_only: e.select_only,
            forbidden: e.forbidden_statements.iter().map(|s| words(s)).collect(),
            required_statements: e.required_statements.iter().map(|s| words(s)).collect(),
            case_sensitive: e.case_sensitive,
        })
    }

    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.select_only {
            parts.push("SELECT-only".to_string());
        }
        if !self.forbidden.is_empty() {
            let f: Vec<String> = self.forbidden.iter().map(|w| w.join(" ")).collect();
            parts.push(format!("no {}", f.join(", ")));
        }
        if !self.required_statements.is_empty() {
            let r: Vec<String> = self
                .required_statements
                .iter()
                .map(|w| w.join(" "))
                .collect();
            parts.push(format!("must contain {}", r.join(", ")));
        }
        format!(
            "SQL in {}: {}",
            self.extensions.join(", "),
            parts.join("; ")
        )
    }

    fn starts_with(&self, stmt: &Statement, keywords: &[String]) -> bool {
        keywords.len() <= stmt.words.len()
            && keywords.iter().zip(&stmt.words).all(|(k, w)| {
                if self.case_sensitive {
                    k == w
                } else {
                    k.eq_ignore_ascii_case(w)
                }
            })
    }

    /// Checks one SQL text; `line_of` maps a statement to its reported lines.
    fn check_text(
        &self,
        meta: &RuleMeta,
        ctx: &AppContext,
        file: &str,
        statements: &[Statement],
        line_of: &dyn Fn(&Statement) -> (u32, u32),
        out: &mut Findings,
    ) {
        for stmt in statements {
            if self.select_only && !stmt.read {
                out.push(
                    meta,
                    ctx.app,
                    file,
                    Some(line_of(stmt)),
                    format!(
                        "{} statement is not allowed: SQL must be read-only (SELECT)",
                        stmt.label
                    ),
                );
            } else if let Some(k) = self.forbidden.iter().find(|k| self.starts_with(stmt, k)) {
                out.push(
                    meta,
                    ctx.app,
                    file,
                    Some(line_of(stmt)),
                    format!("{} statement is forbidden", k.join(" ")),
                );
            }
        }
        for k in &self.required_statements {
            if !statements.iter().any(|s| self.starts_with(s, k)) {
                let first = statements.first().map(line_of).unwrap_or((1, 1));
                out.push(
                    meta,
                    ctx.app,
                    file,
                    Some(first),
                    format!("SQL does not contain a required {} statement", k.join(" ")),
                );
            }
        }
    }

    pub fn check(&self, meta: &RuleMeta, ctx: &AppContext, out: &mut Findings) {
        for file in ctx.files.iter().copied() {
            if !self
                .extensions
                .iter()
                .any(|x| file.path.ends_with(x.as_str()))
                || !meta.applies_to(&file.path)
            {
                continue;
            }
            match &file.analysis {
                Analysis::Sql { statements, .. } => self.check_text(
                    meta,
                    ctx,
                    &file.path,
                    statements,
                    &|s| (s.line, s.line),
                    out,
                ),
                Analysis::Python(module) => {
                    for literal in &module.sql {
                        let lines = (literal.line, literal.end_line);
                        self.check_text(
                            meta,
                            ctx,
                            &file.path,
                            &literal.statements,
                            &|_| lines,
                            out,
                        );
                    }
                }
                _ => {}
            }
        }
    }
}
