//! The walker: parse every file once (in parallel), then run every rule
//! over every application (in parallel), then apply suppressions.
//!
//! Parsing dominates the cost, so it is one pass over all files with
//! `rayon`; each Python file becomes a small [`PyModule`](crate::python::PyModule)
//! and its AST is dropped at once. Rules only read those summaries.

use std::path::Path;
use std::time::{Instant, SystemTime};

use rayon::prelude::*;

use crate::config::Severity;
use crate::python;
use crate::report::{AppReport, FileSummary, Report, RuleInfo};
use crate::rules::{
    Analysis, AnalyzedFile, AppContext, ClassIndex, Findings, RuleKind, RuleSet, Violation,
    SYNTAX_RULE_ID,
};
use crate::source::Suppressions;
use crate::sql;
use crate::workspace::{App, Workspace};

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Only this application (`--app NAME`).
    pub app: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("unknown app `{name}` (apps: {known})")]
    UnknownApp { name: String, known: String },
}

/// Reads and parses one file.
fn analyze(root: &Path, path: &str) -> AnalyzedFile {
    let analysis = if path.ends_with(".py") {
        match std::fs::read_to_string(root.join(path)) {
            Ok(text) => match python::parse(&text) {
                Ok(module) => Analysis::Python(module),
                Err(err) => Analysis::PythonError(err),
            },
            Err(err) => Analysis::PythonError(python::SyntaxError {
                line: 1,
                column: 1,
                message: format!("cannot read: {err}"),
            }),
        }
    } else if path.ends_with(".sql") {
        match std::fs::read_to_string(root.join(path)) {
            Ok(text) => Analysis::Sql {
                statements: sql::statements(&text),
                suppressions: Suppressions::scan_lines(&text),
            },
            Err(_) => Analysis::Other,
        }
    } else {
        Analysis::Other
    };
    AnalyzedFile {
        path: path.to_string(),
        analysis,
    }
}

/// Checks the workspace's apps against `rules`.
pub fn check(
    ws: &Workspace,
    rules: &RuleSet,
    options: &CheckOptions,
) -> Result<Report, CheckError> {
    let started = Instant::now();
    let generated_at = SystemTime::now();
    let apps: Vec<&App> = match &options.app {
        Some(name) => vec![ws.app(name).ok_or_else(|| CheckError::UnknownApp {
            name: name.clone(),
            known: ws
                .apps
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?],
        None => ws.apps.iter().collect(),
    };

    // Parse phase: every app file, then the shared components (for inheritance).
    let mut paths: Vec<&str> = Vec::new();
    let mut app_ranges = Vec::with_capacity(apps.len());
    for app in &apps {
        let start = paths.len();
        paths.extend(app.files.iter().map(String::as_str));
        app_ranges.push(start..paths.len());
    }
    let app_file_count = paths.len();
    paths.extend(ws.component_files.iter().map(String::as_str));
    let analyzed: Vec<AnalyzedFile> = paths.par_iter().map(|p| analyze(&ws.root, p)).collect();
    let classes = ClassIndex::build(analyzed.iter());

    // Rule phase: per app.
    let per_app: Vec<(AppReport, Vec<Violation>, Vec<Violation>)> = apps
        .par_iter()
        .zip(app_ranges.par_iter())
        .map(|(app, range)| {
            let files: Vec<&AnalyzedFile> = analyzed[range.clone()].iter().collect();
            let ctx = AppContext {
                app,
                root: &ws.root,
                files,
                classes: &classes,
            };
            check_app(&ctx, rules)
        })
        .collect();

    let files_checked = analyzed[..app_file_count]
        .iter()
        .filter(|f| !matches!(f.analysis, Analysis::Other))
        .count();
    let mut violations = Vec::new();
    let mut suppressed = Vec::new();
    let mut app_reports = Vec::with_capacity(per_app.len());
    for (report, kept, silenced) in per_app {
        violations.extend(kept);
        suppressed.extend(silenced);
        app_reports.push(report);
    }
    Ok(Report {
        generated_at,
        duration: started.elapsed(),
        files_checked,
        apps: app_reports,
        rules: rules
            .rules
            .iter()
            .map(|r| RuleInfo {
                id: r.meta.id.clone(),
                name: r.meta.name.clone(),
                kind: r.meta.kind,
                severity: r.meta.severity,
                description: r.meta.description.clone(),
                summary: r.summary(),
            })
            .collect(),
        violations,
        suppressed,
        baseline: None,
    })
}

fn check_app(ctx: &AppContext, rules: &RuleSet) -> (AppReport, Vec<Violation>, Vec<Violation>) {
    let mut findings = Findings::default();
    for rule in &rules.rules {
        rule.check(ctx, &mut findings);
    }
    // Files that do not parse are errors of their own.
    let mut syntax = Vec::new();
    for file in &ctx.files {
        if let Analysis::PythonError(err) = &file.analysis {
            syntax.push(Violation {
                rule_id: SYNTAX_RULE_ID.to_string(),
                rule: "Python files parse".to_string(),
                kind: RuleKind::Syntax,
                severity: Severity::Error,
                app: ctx.app.name.clone(),
                file: file.path.clone(),
                line: Some(err.line),
                end_line: Some(err.line),
                message: format!("syntax error at column {}: {}", err.column, err.message),
                whole_file: false,
            });
        }
    }
    let (mut kept, mut silenced): (Vec<Violation>, Vec<Violation>) = findings
        .violations
        .into_iter()
        .partition(|v| !is_suppressed(v, ctx));
    kept.extend(syntax);
    let order = |a: &Violation, b: &Violation| {
        (a.file.as_str(), a.line, a.rule_id.as_str()).cmp(&(
            b.file.as_str(),
            b.line,
            b.rule_id.as_str(),
        ))
    };
    kept.sort_by(order);
    silenced.sort_by(order);

    let files = ctx
        .files
        .iter()
        .filter_map(|f| match &f.analysis {
            Analysis::Python(m) => Some(FileSummary {
                path: f.path.clone(),
                classes: m.classes.iter().map(|c| c.name.clone()).collect(),
                functions: m.functions.iter().map(|c| c.name.clone()).collect(),
                imports: m.imports.iter().map(|i| i.module.clone()).collect(),
                sql_statements: m.sql.iter().map(|s| s.statements.len()).sum(),
                syntax_error: None,
            }),
            Analysis::PythonError(e) => Some(FileSummary {
                path: f.path.clone(),
                syntax_error: Some(format!("line {}: {}", e.line, e.message)),
                ..FileSummary::default()
            }),
            Analysis::Sql { statements, .. } => Some(FileSummary {
                path: f.path.clone(),
                sql_statements: statements.len(),
                ..FileSummary::default()
            }),
            Analysis::Other => None,
        })
        .collect();
    let mut report = AppReport {
        name: ctx.app.name.clone(),
        dir: ctx.app.dir.clone(),
        files,
        share_roles: findings.share_roles,
        required_files: findings.required_files,
        checks: rules.rules.len(),
        checks_failed: 0,
        errors: 0,
        warnings: 0,
        infos: 0,
    };
    report.count_violations(&kept.iter().collect::<Vec<_>>());
    (report, kept, silenced)
}

fn is_suppressed(v: &Violation, ctx: &AppContext) -> bool {
    let (Some(first), Some(last)) = (v.line, v.end_line) else {
        return false;
    };
    ctx.files
        .iter()
        .find(|f| f.path == v.file)
        .and_then(|f| f.suppressions())
        .is_some_and(|s| s.silences(&v.rule_id, first, last))
}
