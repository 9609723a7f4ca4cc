//! `--format junit`: one `<testsuite>` per application, one `<testcase>`
//! per rule. Error-severity violations are `<failure>`s; warnings and info
//! go to the test case's `<system-out>` so they are visible without
//! failing the pipeline's test tab.

use std::fmt::Write;

use super::{location, RenderOptions, Report};
use crate::config::Severity;
use crate::rules::{Violation, SYNTAX_RULE_ID};

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

pub fn render(report: &Report, _options: RenderOptions) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (total, _) = report.checks();
    let failures = report.count(Severity::Error);
    let _ = writeln!(
        out,
        "<testsuites name=\"sluice check\" tests=\"{total}\" failures=\"{failures}\" time=\"{:.3}\">",
        report.duration.as_secs_f64()
    );
    for app in &report.apps {
        let app_violations: Vec<&Violation> = report
            .violations
            .iter()
            .filter(|v| v.app == app.name)
            .collect();
        let mut cases: Vec<(String, String, Vec<&Violation>)> = report
            .rules
            .iter()
            .map(|r| {
                let vs = app_violations
                    .iter()
                    .copied()
                    .filter(|v| v.rule_id == r.id)
                    .collect();
                (r.id.clone(), r.name.clone(), vs)
            })
            .collect();
        let syntax: Vec<&Violation> = app_violations
            .iter()
            .copied()
            .filter(|v| v.rule_id == SYNTAX_RULE_ID)
            .collect();
        if !syntax.is_empty() {
            cases.push((SYNTAX_RULE_ID.into(), "Python files parse".into(), syntax));
        }
        let app_failures = cases
            .iter()
            .filter(|(_, _, vs)| vs.iter().any(|v| v.severity == Severity::Error))
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{app_failures}\" errors=\"0\">",
            escape(&app.name),
            cases.len()
        );
        for (id, name, vs) in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"sluice.{}\" name=\"{}: {}\"",
                escape(&app.name),
                escape(&id),
                escape(&name)
            );
            if vs.is_empty() {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            let errors: Vec<&&Violation> = vs
                .iter()
                .filter(|v| v.severity == Severity::Error)
                .collect();
            if let Some(first) = errors.first() {
                let body: Vec<String> = errors
                    .iter()
                    .map(|v| format!("{}: {}", location(v), v.message))
                    .collect();
                let _ = writeln!(
                    out,
                    "      <failure type=\"error\" message=\"{}\">{}</failure>",
                    escape(&first.message),
                    escape(&body.join("\n"))
                );
            }
            let notes: Vec<String> = vs
                .iter()
                .filter(|v| v.severity != Severity::Error)
                .map(|v| format!("{}: [{}] {}", location(v), v.severity, v.message))
                .collect();
            if !notes.is_empty() {
                let _ = writeln!(
                    out,
                    "      <system-out>{}</system-out>",
                    escape(&notes.join("\n"))
                );
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
