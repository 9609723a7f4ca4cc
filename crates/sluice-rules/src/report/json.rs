//! `--format json`: `{"summary": {...}, "violations": [...]}`.
//!
//! Shape (stable, for scripts): `summary` has `files_checked`,
//! `apps_checked`, `errors`, `warnings`; each violation has `rule_id`,
//! `rule`, `kind`, `severity`, `app`, `file`, `line` (null when the finding
//! is about something missing) and `message`. With `--show-suppressed` a
//! `suppressed` list of the same objects is added; with `--baseline`,
//! `summary` also has `baseline_known` (hidden) and `baseline_fixed`.

use serde_json::{json, Value};

use super::{RenderOptions, Report};
use crate::config::Severity;

pub fn render(report: &Report, options: RenderOptions) -> String {
    let mut doc = json!({
        "summary": {
            "files_checked": report.files_checked,
            "apps_checked": report.apps.len(),
            "errors": report.count(Severity::Error),
            "warnings": report.count(Severity::Warning),
        },
        "violations": report.violations,
    });
    if let Some(baseline) = &report.baseline {
        doc["summary"]["baseline_known"] = baseline.known.len().into();
        doc["summary"]["baseline_fixed"] = baseline.fixed.into();
    }
    if options.show_suppressed {
        doc["suppressed"] = serde_json::to_value(&report.suppressed).unwrap_or(Value::Null);
    }
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}
