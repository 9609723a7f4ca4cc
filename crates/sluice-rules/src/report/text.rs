//! `--format text`: the compliance report layout data teams know.
//!
//! Sections: `CODE COMPLIANCE REPORT` (with the time), `SUMMARY`,
//! `APPLICATION COMPLIANCE SUMMARY`, `DETAILED RESULTS BY APPLICATION`,
//! `RULES CHECKED`, then `VIOLATIONS` as `file:line: [severity] rule: message`
//! lines (greppable, clickable in editors). Colour and emoji only when
//! [`RenderOptions::color`] is set (the binary sets it on a terminal
//! without `NO_COLOR`).

use std::fmt::Write;

use super::{format_utc, location, RenderOptions, Report};
use crate::config::Severity;
use crate::rules::{Violation, KINDS};

const RULE: &str =
    "================================================================================";
const THIN: &str =
    "--------------------------------------------------------------------------------";

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    fn severity(&self, s: Severity) -> String {
        let code = match s {
            Severity::Error => "31",
            Severity::Warning => "33",
            Severity::Info => "36",
        };
        self.paint(code, &format!("[{s}]"))
    }
    fn status(&self, passed: bool) -> String {
        match (passed, self.color) {
            (true, true) => self.paint("32", "✅ PASS"),
            (false, true) => self.paint("31", "❌ FAIL"),
            (true, false) => "PASS".into(),
            (false, false) => "FAIL".into(),
        }
    }
    fn heading(&self, out: &mut String, title: &str) {
        let _ = writeln!(out, "\n{}\n{THIN}", self.bold(title));
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn violation_line(v: &Violation, style_color: bool) -> String {
    let style = Style { color: style_color };
    format!(
        "{}: {} {}: {}",
        location(v),
        style.severity(v.severity),
        v.rule_id,
        v.message
    )
}

pub fn render(report: &Report, options: RenderOptions) -> String {
    let style = Style {
        color: options.color,
    };
    let mut out = String::new();
    let _ = writeln!(out, "{RULE}");
    let _ = writeln!(out, "{}", style.bold("CODE COMPLIANCE REPORT"));
    let _ = writeln!(
        out,
        "Generated: {} (checked in {:.2} s)",
        format_utc(report.generated_at),
        report.duration.as_secs_f64()
    );
    let _ = writeln!(out, "{RULE}");

    // SUMMARY
    style.heading(&mut out, "SUMMARY");
    let apps_passed = report.apps.iter().filter(|a| a.passed()).count();
    let (checks, failed) = report.checks();
    let rate = if checks == 0 {
        100.0
    } else {
        (checks - failed) as f64 * 100.0 / checks as f64
    };
    let _ = writeln!(
        out,
        "Applications checked: {} (passed {apps_passed}, failed {})",
        report.apps.len(),
        report.apps.len() - apps_passed
    );
    let _ = writeln!(out, "Files checked:        {}", report.files_checked);
    let _ = writeln!(
        out,
        "Checks:               {checks} (passed {}, failed {failed})",
        checks - failed
    );
    let _ = writeln!(out, "Success rate:         {rate:.1}%");
    let _ = writeln!(
        out,
        "Violations:           {}, {}, {} ({} suppressed)",
        plural(report.count(Severity::Error), "error"),
        plural(report.count(Severity::Warning), "warning"),
        plural(report.count(Severity::Info), "info"),
        report.suppressed.len()
    );
    if let Some(baseline) = &report.baseline {
        let fixed = match baseline.fixed {
            0 => String::new(),
            1 => "; 1 entry fixed since (`--write-baseline` drops it)".to_string(),
            n => format!("; {n} entries fixed since (`--write-baseline` drops them)"),
        };
        let _ = writeln!(
            out,
            "Baseline:             {} known and not reported, {} new{fixed}",
            baseline.known.len(),
            report.violations.len()
        );
    }

    // APPLICATION COMPLIANCE SUMMARY
    style.heading(&mut out, "APPLICATION COMPLIANCE SUMMARY");
    let width = report
        .apps
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(0)
        .max(11);
    for app in &report.apps {
        let _ = writeln!(
            out,
            "{:<width$}  {}  {}/{} checks passed, {}, {}",
            app.name,
            style.status(app.passed()),
            app.checks - app.checks_failed,
            app.checks,
            plural(app.errors, "error"),
            plural(app.warnings, "warning"),
        );
    }

    // DETAILED RESULTS BY APPLICATION
    style.heading(&mut out, "DETAILED RESULTS BY APPLICATION");
    for app in &report.apps {
        let _ = writeln!(out, "{} ({})", style.bold(&app.name), app.dir);
        for f in &app.files {
            let _ = writeln!(out, "  {}", app_relative(&f.path, &app.dir));
            if let Some(err) = &f.syntax_error {
                let _ = writeln!(out, "    does not parse: {err}");
                continue;
            }
            if f.path.ends_with(".py") {
                let _ = writeln!(out, "    classes:   {}", list(&f.classes));
                let _ = writeln!(out, "    functions: {}", list(&f.functions));
                let _ = writeln!(out, "    imports:   {}", list(&f.imports));
            }
            if f.sql_statements > 0 {
                let _ = writeln!(
                    out,
                    "    sql:       {}",
                    plural(f.sql_statements, "statement")
                );
            }
        }
        if !app.share_roles.is_empty() {
            for (env, roles) in &app.share_roles {
                let scope = if env == "*" {
                    String::new()
                } else {
                    format!(" ({env})")
                };
                let _ = writeln!(out, "  share roles{scope}: {}", list(roles));
            }
        }
        if !app.required_files.is_empty() {
            let _ = writeln!(out, "  required files:");
            for rf in &app.required_files {
                match &rf.found {
                    Some(path) => {
                        let _ = writeln!(out, "    found    {}", app_relative(path, &app.dir));
                    }
                    None => {
                        let _ = writeln!(out, "    missing  {}", rf.pattern);
                    }
                }
            }
        }
        out.push('\n');
    }

    // RULES CHECKED
    style.heading(&mut out, "RULES CHECKED");
    for kind in KINDS {
        let rules: Vec<_> = report
            .rules
            .iter()
            .filter(|r| r.kind == kind.kind)
            .collect();
        if rules.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{} ({})", kind.title, rules.len());
        for r in rules {
            let _ = writeln!(
                out,
                "  {} {} — {}",
                style.severity(r.severity),
                r.id,
                r.name
            );
            let _ = writeln!(out, "      {}", r.summary);
        }
    }

    // VIOLATIONS
    style.heading(
        &mut out,
        &format!("VIOLATIONS ({})", report.violations.len()),
    );
    if report.violations.is_empty() {
        let _ = writeln!(out, "{}", if options.color { "✅ none" } else { "none" });
    }
    for v in &report.violations {
        let _ = writeln!(out, "{}", violation_line(v, options.color));
    }
    if options.show_suppressed {
        style.heading(
            &mut out,
            &format!("SUPPRESSED ({})", report.suppressed.len()),
        );
        for v in &report.suppressed {
            let _ = writeln!(out, "{}", violation_line(v, options.color));
        }
    }
    out
}

fn app_relative<'a>(path: &'a str, dir: &str) -> &'a str {
    path.strip_prefix(dir)
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or(path)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}
