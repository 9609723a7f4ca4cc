//! Every output format over the SQL fixture: shape checks, not snapshots
//! (the time and duration vary).

use std::path::Path;

use sluice_rules::{check, load_rules, render, CheckOptions, Format, RenderOptions, Workspace};

fn sql_report() -> sluice_rules::Report {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sql");
    let rules = load_rules(&dir.join("rules.yml"), "rules.yml").unwrap();
    let ws = Workspace::discover(&dir, "applications").unwrap();
    check(&ws, &rules, &CheckOptions::default()).unwrap()
}

fn plain() -> RenderOptions {
    RenderOptions::default()
}

#[test]
fn json_has_the_documented_shape() {
    let report = sql_report();
    let doc: serde_json::Value =
        serde_json::from_str(&render(&report, Format::Json, plain())).unwrap();
    let summary = &doc["summary"];
    assert_eq!(summary["apps_checked"], 4);
    assert_eq!(
        summary["errors"],
        report.count(sluice_rules::Severity::Error)
    );
    assert!(summary["files_checked"].as_u64().unwrap() >= 8);
    assert!(summary["warnings"].as_u64().unwrap() >= 2);
    let v = &doc["violations"][0];
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["app", "file", "kind", "line", "message", "rule", "rule_id", "severity"]
    );
    assert!(doc.get("suppressed").is_none());
    let with = render(
        &report,
        Format::Json,
        RenderOptions {
            show_suppressed: true,
            ..plain()
        },
    );
    let with: serde_json::Value = serde_json::from_str(&with).unwrap();
    assert_eq!(with["suppressed"].as_array().unwrap().len(), 1);
}

#[test]
fn text_has_every_section_and_no_colour_when_plain() {
    let out = render(&sql_report(), Format::Text, plain());
    let mut last = 0;
    for section in [
        "CODE COMPLIANCE REPORT",
        "Generated: ",
        "SUMMARY",
        "Success rate:",
        "APPLICATION COMPLIANCE SUMMARY",
        "DETAILED RESULTS BY APPLICATION",
        "RULES CHECKED",
        "VIOLATIONS (",
    ] {
        let at = out[last..]
            .find(section)
            .unwrap_or_else(|| panic!("{section} missing or out of order:\n{out}"));
        last += at;
    }
    assert!(out.contains("applications/fail_writes/dashboard.py:19: [error] select-only: DELETE"));
    assert!(out.contains("fail_writes") && out.contains("FAIL") && out.contains("PASS"));
    assert!(!out.contains('\x1b') && !out.contains('✅'));
    let coloured = render(
        &sql_report(),
        Format::Text,
        RenderOptions {
            color: true,
            ..plain()
        },
    );
    assert!(coloured.contains("\x1b[31m[error]\x1b[0m"));
}

#[test]
fn junit_is_one_suite_per_app() {
    let out = render(&sql_report(), Format::Junit, plain());
    assert!(out.starts_with("<?xml"));
    assert_eq!(out.matches("<testsuite ").count(), 4);
    assert!(out.contains("<failure type=\"error\""));
    assert!(out.contains("DELETE FROM") || out.contains("DELETE statement"));
    // 4 apps x 3 rules, plus the syntax case of the app with a broken file.
    assert_eq!(out.matches("<testcase ").count(), 13);
    assert!(out.trim_end().ends_with("</testsuites>"));
}

#[test]
fn sarif_is_2_1_0_with_rules_and_results() {
    let report = sql_report();
    let doc: serde_json::Value =
        serde_json::from_str(&render(&report, Format::Sarif, plain())).unwrap();
    assert_eq!(doc["version"], "2.1.0");
    let run = &doc["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "sluice");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), report.violations.len());
    let r = &results[0];
    assert!(
        r["locations"][0]["physicalLocation"]["region"]["startLine"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
}

#[test]
fn codequality_issues_have_gitlab_fields() {
    let report = sql_report();
    let doc: serde_json::Value =
        serde_json::from_str(&render(&report, Format::CodeQuality, plain())).unwrap();
    let issues = doc.as_array().unwrap();
    assert_eq!(issues.len(), report.violations.len());
    let mut prints = std::collections::HashSet::new();
    for issue in issues {
        for key in ["description", "check_name", "fingerprint", "severity"] {
            assert!(issue[key].is_string(), "{key} in {issue}");
        }
        assert!(issue["location"]["lines"]["begin"].as_u64().unwrap() >= 1);
        assert!(
            prints.insert(issue["fingerprint"].as_str().unwrap().to_string()),
            "duplicate fingerprint"
        );
    }
}
