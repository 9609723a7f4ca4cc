//! `sluice check` end to end: the real binary on a temporary copy of the
//! contract fixture workspace with the default rules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::copy_dir;

/// A workspace like `sluice init` makes: the contract app and the default rules.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sluice-rules/tests/fixtures/contract");
    copy_dir(&fixture, dir.path());
    std::fs::create_dir_all(dir.path().join("compliance")).unwrap();
    std::fs::write(
        dir.path().join("compliance/rules.yml"),
        sluice_rules::DEFAULT_RULES,
    )
    .unwrap();
    dir
}

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn page(dir: &Path) -> PathBuf {
    dir.join("applications/main_app/pages/regional_sales.py")
}

fn add_line_to_page(dir: &Path, line: &str) {
    let text = std::fs::read_to_string(page(dir)).unwrap();
    let text = text.replace(
        "        st.dataframe(df)\n",
        &format!("        st.dataframe(df)\n        {line}\n"),
    );
    std::fs::write(page(dir), text).unwrap();
}

#[test]
fn clean_workspace_exits_0_with_the_text_report() {
    let ws = workspace();
    let out = sluice(ws.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("CODE COMPLIANCE REPORT"), "{text}");
    assert!(text.contains("main_app"), "{text}");
    assert!(text.contains("VIOLATIONS (0)"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn delete_in_a_page_exits_1_and_names_file_and_line() {
    let ws = workspace();
    add_line_to_page(ws.path(), "self.query(\"DELETE FROM sales\")");
    let out = sluice(ws.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "applications/main_app/pages/regional_sales.py:20: [error] select-only-sql: DELETE statement"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn suppression_comment_silences_and_show_suppressed_lists_it() {
    let ws = workspace();
    add_line_to_page(
        ws.path(),
        "self.query(\"DELETE FROM t\")  # sluice: ignore[select-only-sql]",
    );
    let out = sluice(ws.path(), &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = sluice(ws.path(), &["--show-suppressed"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("SUPPRESSED (1)"), "{}", stdout(&out));
}

#[test]
fn json_format_has_summary_and_violations() {
    let ws = workspace();
    std::fs::remove_file(ws.path().join("applications/main_app/README.md")).unwrap();
    let out = sluice(ws.path(), &["--format", "json"]);
    // README is a warning: exit 0.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["summary"]["apps_checked"], 1);
    assert_eq!(doc["summary"]["warnings"], 1);
    assert_eq!(doc["violations"][0]["rule_id"], "file-readme");
    assert_eq!(doc["violations"][0]["line"], serde_json::Value::Null);
}

#[test]
fn output_file_gets_the_codequality_report() {
    let ws = workspace();
    add_line_to_page(ws.path(), "self.query(\"UPDATE sales SET amount = 0\")");
    let out = sluice(
        ws.path(),
        &[
            "--format",
            "codequality",
            "--output",
            "gl-code-quality.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("report written to gl-code-quality.json"));
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.path().join("gl-code-quality.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(doc[0]["check_name"], "select-only-sql");
    assert_eq!(doc[0]["location"]["lines"]["begin"], 20);
}

#[test]
fn junit_and_sarif_formats_render() {
    let ws = workspace();
    let junit = sluice(ws.path(), &["--format", "junit"]);
    assert_eq!(junit.status.code(), Some(0));
    assert!(stdout(&junit).contains("<testsuite name=\"main_app\""));
    let sarif = sluice(ws.path(), &["--format", "sarif"]);
    assert!(stdout(&sarif).contains("\"version\": \"2.1.0\""));
    let bad = sluice(ws.path(), &["--format", "xml"]);
    assert_eq!(bad.status.code(), Some(2), "clap usage error");
}

#[test]
fn broken_rules_file_exits_2_with_file_line_col() {
    let ws = workspace();
    std::fs::write(
        ws.path().join("compliance/rules.yml"),
        "file_rules:\n  - name: readme\n    file_pattern: README.md\n    severty: error\n",
    )
    .unwrap();
    let out = sluice(ws.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("sluice: compliance/rules.yml:4:5: "),
        "{err}"
    );
    assert!(err.contains("unknown field `severty`"), "{err}");
}

#[test]
fn a_missing_rules_file_or_apps_folder_exits_2_with_one_line() {
    let ws = workspace();
    std::fs::remove_file(ws.path().join("compliance/rules.yml")).unwrap();
    let out = sluice(ws.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "sluice: compliance/rules.yml: No such file or directory (os error 2)\n"
    );
    std::fs::write(
        ws.path().join("compliance/rules.yml"),
        sluice_rules::DEFAULT_RULES,
    )
    .unwrap();
    std::fs::remove_dir_all(ws.path().join("applications")).unwrap();
    let out = sluice(ws.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "sluice: {}: No such file or directory (os error 2)\n",
            ws.path().join("applications").display()
        )
    );
}

#[test]
fn unknown_severity_exits_2() {
    let ws = workspace();
    let rules = sluice_rules::DEFAULT_RULES.replacen("severity: error", "severity: critical", 1);
    std::fs::write(ws.path().join("compliance/rules.yml"), rules).unwrap();
    let out = sluice(ws.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("critical"), "{}", stderr(&out));
}

#[test]
fn app_flag_limits_and_rejects_unknown_apps() {
    let ws = workspace();
    let out = sluice(ws.path(), &["--app", "main_app", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let out = sluice(ws.path(), &["--app", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown app `nope` (apps: main_app)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn runs_from_a_subfolder_and_takes_a_rules_flag() {
    let ws = workspace();
    std::fs::write(
        ws.path().join("strict.yml"),
        "file_rules:\n  - {name: Changelog, file_pattern: \"**/CHANGELOG.md\"}\n",
    )
    .unwrap();
    let sub = ws.path().join("applications/main_app/pages");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--rules"])
        .arg(ws.path().join("strict.yml"))
        .current_dir(&sub)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("[error] changelog: missing required file"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn outside_a_workspace_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = sluice(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no sluice.yml"), "{}", stderr(&out));
}

#[test]
fn custom_apps_dir_from_sluice_yml() {
    let ws = workspace();
    std::fs::rename(ws.path().join("applications"), ws.path().join("apps")).unwrap();
    std::fs::write(ws.path().join("sluice.yml"), "project: x\napps_dir: apps\n").unwrap();
    std::fs::write(
        ws.path().join("compliance/rules.yml"),
        "function_rules:\n  - {name: main, function_name: main}\n",
    )
    .unwrap();
    let out = sluice(ws.path(), &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["summary"]["apps_checked"], 1);
}

/// The real scaffolding, not a fixture: what `sluice init` and `sluice new-app` write passes the
/// default rules, and a `DELETE` added to a generated page fails them at its line.
#[test]
fn generated_workspace_passes_until_a_page_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("w");
    let bin = env!("CARGO_BIN_EXE_sluice");
    let init = Command::new(bin).arg("init").arg(&root).output().unwrap();
    assert!(init.status.success(), "{}", stderr(&init));
    let new_app = Command::new(bin)
        .args(["new-app", "sales_dashboard"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(new_app.status.success(), "{}", stderr(&new_app));
    let new_page = Command::new(bin)
        .args(["new-page", "sales_dashboard", "analytics"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(new_page.status.success(), "{}", stderr(&new_page));

    let clean = sluice(&root, &["--format", "json"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    let report: serde_json::Value = serde_json::from_slice(&clean.stdout).unwrap();
    assert_eq!(report["summary"]["errors"], 0);
    assert_eq!(report["summary"]["apps_checked"], 2);

    let page = root.join("applications/sales_dashboard/pages/analytics.py");
    let mut text = std::fs::read_to_string(&page).unwrap();
    let line = text.lines().count() + 1;
    text.push_str("PURGE = \"DELETE FROM sales WHERE region = 'EU'\"\n");
    std::fs::write(&page, text).unwrap();
    let dirty = sluice(&root, &["--format", "json"]);
    assert_eq!(dirty.status.code(), Some(1), "{}", stdout(&dirty));
    let report: serde_json::Value = serde_json::from_slice(&dirty.stdout).unwrap();
    let violations = report["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0]["rule_id"], "select-only-sql");
    assert_eq!(violations[0]["app"], "sales_dashboard");
    assert_eq!(violations[0]["line"], line);
}

/// The five old violations of the baseline tests: four different writes and
/// one repeated (`DELETE FROM sales` twice).
const OLD_DEBT: [&str; 5] = [
    "self.query(\"DELETE FROM sales\")",
    "self.query(\"UPDATE sales SET total = 0\")",
    "self.query(\"INSERT INTO sales VALUES (1)\")",
    "self.query(\"DROP TABLE sales\")",
    "self.query(\"DELETE FROM sales\")",
];

fn violation_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains(": [error] ")).collect()
}

#[test]
fn a_baseline_hides_old_violations_and_reports_the_new_one_after_lines_move() {
    let ws = workspace();
    add_line_to_page(ws.path(), &OLD_DEBT.join("\n        "));
    let before = sluice(ws.path(), &[]);
    assert_eq!(before.status.code(), Some(1));
    assert_eq!(
        violation_lines(&stdout(&before)).len(),
        5,
        "{}",
        stdout(&before)
    );

    let written = sluice(ws.path(), &["--write-baseline", "compliance/baseline.json"]);
    assert_eq!(written.status.code(), Some(0), "{}", stderr(&written));
    assert_eq!(
        stdout(&written),
        "sluice check: recorded 5 violation(s) in 1 file(s) in compliance/baseline.json; \
         `sluice check --baseline compliance/baseline.json` reports only new ones\n"
    );
    let known = sluice(ws.path(), &["--baseline", "compliance/baseline.json"]);
    assert_eq!(known.status.code(), Some(0), "{}", stdout(&known));
    assert!(stdout(&known).contains("VIOLATIONS (0)"));

    // An unrelated first line moves every old violation down by one; a third copy of the repeated DELETE is the one new violation.
    let text = std::fs::read_to_string(page(ws.path())).unwrap();
    let text = format!("import os  # unrelated\n{text}");
    std::fs::write(page(ws.path()), text).unwrap();
    add_line_to_page(ws.path(), "self.query(\"DELETE FROM sales\")");
    let all = sluice(ws.path(), &[]);
    assert_eq!(violation_lines(&stdout(&all)).len(), 6, "{}", stdout(&all));

    let out = sluice(ws.path(), &["--baseline", "compliance/baseline.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = stdout(&out);
    // Identical violations cannot be told apart: the last copy in the file is the new one.
    let new_line = std::fs::read_to_string(page(ws.path()))
        .unwrap()
        .lines()
        .collect::<Vec<_>>()
        .iter()
        .rposition(|l| l.trim() == "self.query(\"DELETE FROM sales\")")
        .unwrap()
        + 1;
    assert_eq!(
        violation_lines(&report),
        [format!(
            "applications/main_app/pages/regional_sales.py:{new_line}: [error] select-only-sql: DELETE statement is not allowed: SQL must be read-only (SELECT)"
        )],
        "{report}"
    );
    assert!(
        report.contains("Baseline:             5 known and not reported, 1 new\n"),
        "{report}"
    );
    let json = sluice(
        ws.path(),
        &["--baseline", "compliance/baseline.json", "--format", "json"],
    );
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["summary"]["errors"], 1);
    assert_eq!(doc["summary"]["baseline_known"], 5);
    assert_eq!(doc["violations"][0]["line"], new_line);
}

#[test]
fn fixed_debt_is_counted_and_a_broken_baseline_exits_2() {
    let ws = workspace();
    add_line_to_page(ws.path(), &OLD_DEBT.join("\n        "));
    let written = sluice(ws.path(), &["--write-baseline", "baseline.json"]);
    assert_eq!(written.status.code(), Some(0), "{}", stderr(&written));
    let text = std::fs::read_to_string(page(ws.path())).unwrap();
    std::fs::write(page(ws.path()), text.replace(OLD_DEBT[3], "pass")).unwrap();
    let out = sluice(ws.path(), &["--baseline", "baseline.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "Baseline:             4 known and not reported, 0 new; 1 entry fixed since (`--write-baseline` drops it)\n"
        ),
        "{}",
        stdout(&out)
    );

    std::fs::write(
        ws.path().join("baseline.json"),
        "{\"sluice_baseline\": 1,\n \"violations\": [{}]}",
    )
    .unwrap();
    let out = sluice(ws.path(), &["--baseline", "baseline.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "sluice: baseline.json:2:18: missing field `rule_id`\n"
    );
    let out = sluice(ws.path(), &["--baseline", "missing.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "sluice: cannot read the baseline missing.json: No such file or directory (os error 2)\n"
    );
}
