//! Fixture workspaces, one per rule kind (`tests/fixtures/<kind>/`): apps
//! named `pass_*` must have no violation, apps named `fail_*` at least one,
//! and the full output must match `expected.txt` beside the rules
//! (`UPDATE_EXPECT=1 cargo test -p sluice-rules` rewrites it after review).

use std::path::{Path, PathBuf};

use sluice_rules::{check, load_rules, CheckOptions, Workspace};

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
}

/// Violation lines (`file:line: [severity] rule: message`), then suppressed ones.
fn run_fixture(kind: &str) -> (sluice_rules::Report, String) {
    let dir = fixture(kind);
    let rules = load_rules(&dir.join("rules.yml"), "rules.yml").expect("fixture rules load");
    let ws = Workspace::discover(&dir, "applications").expect("fixture workspace");
    let report = check(&ws, &rules, &CheckOptions::default()).expect("check runs");
    let mut text = String::new();
    for v in &report.violations {
        text.push_str(&sluice_rules::report::text::violation_line(v, false));
        text.push('\n');
    }
    for v in &report.suppressed {
        text.push_str("suppressed: ");
        text.push_str(&sluice_rules::report::text::violation_line(v, false));
        text.push('\n');
    }
    (report, text)
}

fn assert_fixture(kind: &str) {
    let (report, actual) = run_fixture(kind);
    for app in &report.apps {
        let count = report
            .violations
            .iter()
            .filter(|v| v.app == app.name)
            .count();
        if app.name.starts_with("pass_") {
            assert_eq!(
                count, 0,
                "{kind}/{}: expected no violation:\n{actual}",
                app.name
            );
        } else if app.name.starts_with("fail_") {
            assert!(
                count > 0,
                "{kind}/{}: expected violations:\n{actual}",
                app.name
            );
        }
    }
    let expected_path = fixture(kind).join("expected.txt");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
    assert_eq!(actual, expected, "{kind}: output differs from expected.txt");
}

#[test]
fn class_rules() {
    assert_fixture("class");
}

#[test]
fn function_rules() {
    assert_fixture("function");
}

#[test]
fn import_rules() {
    assert_fixture("import");
}

#[test]
fn file_rules() {
    assert_fixture("file");
}

#[test]
fn sql_rules() {
    assert_fixture("sql");
}

#[test]
fn share_rules() {
    assert_fixture("share");
}

#[test]
fn suppressed_violations_are_kept_apart() {
    let (report, _) = run_fixture("class");
    assert!(report.violations.iter().all(|v| v.app != "suppressed"));
    assert_eq!(
        report
            .suppressed
            .iter()
            .filter(|v| v.app == "suppressed")
            .count(),
        2,
        "base and methods findings on the suppressed class"
    );
}

#[test]
fn app_option_limits_to_one_app() {
    let dir = fixture("share");
    let rules = load_rules(&dir.join("rules.yml"), "rules.yml").unwrap();
    let ws = Workspace::discover(&dir, "applications").unwrap();
    let report = check(
        &ws,
        &rules,
        &CheckOptions {
            app: Some("fail_empty".into()),
        },
    )
    .unwrap();
    assert_eq!(report.apps.len(), 1);
    assert!(report.violations.iter().all(|v| v.app == "fail_empty"));
    let err = check(
        &ws,
        &rules,
        &CheckOptions {
            app: Some("nope".into()),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown app `nope`"), "{err}");
}

#[test]
fn runtime_rules() {
    assert_fixture("runtime");
}
