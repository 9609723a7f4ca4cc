//! `--format sarif`: SARIF 2.1.0, one run, the rules as the driver's rules.
//! Suppressed violations are included (with `suppressions`) when
//! `--show-suppressed` is given.

use serde_json::{json, Value};

use super::{RenderOptions, Report};
use crate::config::Severity;
use crate::rules::Violation;

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn result(v: &Violation, suppressed: bool) -> Value {
    let mut r = json!({
        "ruleId": v.rule_id,
        "level": level(v.severity),
        "message": { "text": v.message },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": { "uri": v.file },
                "region": { "startLine": v.line.unwrap_or(1) },
            }
        }],
        "properties": { "app": v.app, "kind": v.kind },
    });
    if suppressed {
        r["suppressions"] = json!([{ "kind": "inSource" }]);
    }
    r
}

pub fn render(report: &Report, options: RenderOptions) -> String {
    let mut rules: Vec<Value> = report
        .rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": if r.description.is_empty() { &r.name } else { &r.description } },
                "fullDescription": { "text": r.summary },
                "defaultConfiguration": { "level": level(r.severity) },
                "properties": { "kind": r.kind },
            })
        })
        .collect();
    rules.push(json!({
        "id": crate::rules::SYNTAX_RULE_ID,
        "name": "Python files parse",
        "shortDescription": { "text": "Every Python file of an app must parse" },
        "defaultConfiguration": { "level": "error" },
    }));
    let mut results: Vec<Value> = report.violations.iter().map(|v| result(v, false)).collect();
    if options.show_suppressed {
        results.extend(report.suppressed.iter().map(|v| result(v, true)));
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "sluice",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/sluice",
                "rules": rules,
            }},
            "results": results,
        }],
    });
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}
