//! Reports: the result model and one module per output format.
//!
//! | format        | for                                   |
//! |---------------|---------------------------------------|
//! | `text`        | people: the layout data teams know    |
//! | `json`        | scripts                               |
//! | `junit`       | CI test tabs (GitLab, Jenkins)        |
//! | `sarif`       | code scanning (SARIF 2.1.0)           |
//! | `codequality` | GitLab Code Quality merge request widget |

pub mod codequality;
pub mod json;
pub mod junit;
pub mod sarif;
pub mod text;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::baseline::Baseline;
use crate::config::Severity;
use crate::rules::{RequiredFile, RuleKind, Violation};

/// The outcome of `check`.
#[derive(Debug)]
pub struct Report {
    pub generated_at: SystemTime,
    pub duration: Duration,
    /// Python and SQL files parsed in the checked apps.
    pub files_checked: usize,
    pub apps: Vec<AppReport>,
    pub rules: Vec<RuleInfo>,
    /// Sorted by app, file, line.
    pub violations: Vec<Violation>,
    /// Violations silenced by `sluice: ignore[...]`.
    pub suppressed: Vec<Violation>,
    /// Set when a baseline was applied ([`Report::apply_baseline`]).
    pub baseline: Option<BaselineUse>,
}

/// What a baseline hid.
#[derive(Debug, Clone, Default)]
pub struct BaselineUse {
    /// Violations the baseline knows: not reported, not counted.
    pub known: Vec<Violation>,
    /// Baseline entries no violation matched any more (fixed since).
    pub fixed: usize,
}

impl Report {
    pub fn count(&self, severity: Severity) -> usize {
        self.violations
            .iter()
            .filter(|v| v.severity == severity)
            .count()
    }

    /// True when any error-severity violation remains (exit code 1).
    pub fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }

    /// Keeps only the violations `baseline` does not know (see
    /// [`crate::baseline`]) and recounts each app's errors and warnings, so
    /// the exit code and every format reflect new violations only.
    pub fn apply_baseline(&mut self, baseline: &Baseline, root: &Path) {
        // A file belongs to a checked app when it is in (or is) its folder.
        let dirs: Vec<&str> = self.apps.iter().map(|a| a.dir.as_str()).collect();
        let checked = |file: &str| {
            dirs.iter().any(|d| {
                file.strip_prefix(d)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
        };
        let split = baseline.split(root, std::mem::take(&mut self.violations), checked);
        self.violations = split.new;
        for app in &mut self.apps {
            let of_app: Vec<&Violation> = self
                .violations
                .iter()
                .filter(|v| v.app == app.name)
                .collect();
            app.count_violations(&of_app);
        }
        self.baseline = Some(BaselineUse {
            known: split.known,
            fixed: split.fixed,
        });
    }

    pub fn checks(&self) -> (usize, usize) {
        let total: usize = self.apps.iter().map(|a| a.checks).sum();
        let failed: usize = self.apps.iter().map(|a| a.checks_failed).sum();
        (total, failed)
    }
}

/// One application's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct AppReport {
    pub name: String,
    pub dir: String,
    pub files: Vec<FileSummary>,
    pub share_roles: Vec<(String, Vec<String>)>,
    pub required_files: Vec<RequiredFile>,
    /// Rules checked against the app, and how many of them it failed.
    pub checks: usize,
    pub checks_failed: usize,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

impl AppReport {
    pub fn passed(&self) -> bool {
        self.errors == 0
    }

    /// Sets the counts (errors, warnings, infos, failed rules) from the
    /// app's reported violations.
    pub fn count_violations(&mut self, violations: &[&Violation]) {
        let count = |s: Severity| violations.iter().filter(|v| v.severity == s).count();
        self.errors = count(Severity::Error);
        self.warnings = count(Severity::Warning);
        self.infos = count(Severity::Info);
        // A file that does not parse is not a rule the app failed.
        let failed_rules: std::collections::HashSet<&str> = violations
            .iter()
            .filter(|v| v.kind != RuleKind::Syntax)
            .map(|v| v.rule_id.as_str())
            .collect();
        self.checks_failed = failed_rules.len();
    }
}

/// What was found in one file (DETAILED RESULTS).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileSummary {
    pub path: String,
    pub classes: Vec<String>,
    pub functions: Vec<String>,
    pub imports: Vec<String>,
    pub sql_statements: usize,
    pub syntax_error: Option<String>,
}

/// A rule as listed under RULES CHECKED.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    pub id: String,
    pub name: String,
    pub kind: RuleKind,
    pub severity: Severity,
    pub description: String,
    pub summary: String,
}

/// Output formats of `sluice check --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Junit,
    Sarif,
    CodeQuality,
}

impl Format {
    pub const NAMES: &'static [&'static str] = &["text", "json", "junit", "sarif", "codequality"];
}

/// A `--format` that is not one of [`Format::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{0}` (one of {names})", names = Format::NAMES.join(", "))]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Ok(match s {
            "text" => Format::Text,
            "json" => Format::Json,
            "junit" => Format::Junit,
            "sarif" => Format::Sarif,
            "codequality" => Format::CodeQuality,
            _ => return Err(UnknownFormat(s.to_string())),
        })
    }
}

/// How to render.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    /// ANSI colour and emoji (only on a terminal, never with NO_COLOR).
    pub color: bool,
    /// Also list suppressed violations.
    pub show_suppressed: bool,
}

/// Renders the report in `format`.
pub fn render(report: &Report, format: Format, options: RenderOptions) -> String {
    match format {
        Format::Text => text::render(report, options),
        Format::Json => json::render(report, options),
        Format::Junit => junit::render(report, options),
        Format::Sarif => sarif::render(report, options),
        Format::CodeQuality => codequality::render(report, options),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` without a date crate (civil-from-days).
pub fn format_utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `file:line` or just `file` when there is no line.
pub fn location(v: &Violation) -> String {
    match v.line {
        Some(line) => format!("{}:{line}", v.file),
        None => v.file.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(format_utc(t), "2026-11-18 11:06:40 UTC");
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn formats_parse() {
        for name in Format::NAMES {
            assert!(name.parse::<Format>().is_ok());
        }
        assert!("xml".parse::<Format>().is_err());
    }
}
