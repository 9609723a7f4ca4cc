//! Adopting Sluice with existing apps and debt: `sluice import` of an
//! existing Streamlit-in-Snowflake app folder (`tests/fixtures/legacy_sales_report`),
//! and the generated pipeline's `check` job with a committed baseline.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{assert_error, copy_dir, ok, run, sluice};

const LEGACY_APP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/legacy_sales_report"
);

fn workspace() -> (tempfile::TempDir, PathBuf) {
    common::init_workspace()
}

/// A copy of the fixture app with a Python cache in it, as a real folder would have.
fn legacy_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("legacy/sales_report");
    copy_dir(Path::new(LEGACY_APP), &copy);
    fs::create_dir_all(copy.join("__pycache__")).unwrap();
    fs::write(
        copy.join("__pycache__/streamlit_app.cpython-311.pyc"),
        "cache",
    )
    .unwrap();
    copy
}

#[test]
fn import_keeps_the_apps_files_adds_the_missing_ones_and_reports_the_check() {
    let (dir, root) = workspace();
    let legacy = legacy_copy(dir.path());
    let result = ok(sluice(&root).arg("import").arg(&legacy).arg("sales_report"));
    let app = root.join("applications/sales_report");
    assert_eq!(
        result.stdout,
        format!(
            "Imported {} as app `sales_report` in applications/sales_report/:\n\
             Kept 4 file(s) of the app:\n\
             \x20 applications/sales_report/dashboard.py (was streamlit_app.py: Sluice apps start at dashboard.py)\n\
             \x20 applications/sales_report/environment.yml\n\
             \x20 applications/sales_report/pages/cleanup.py\n\
             \x20 applications/sales_report/snowflake.yml\n\
             Updated snowflake.yml: streamlit_app.py is now dashboard.py\n\
             Skipped {} (secrets never go into the repository)\n\
             Added from templates/app/:\n\
             \x20 applications/sales_report/README.md\n\
             \x20 applications/sales_report/share.yml\n\
             Recorded the template version in applications/sales_report/.sluice-app.yml (for `sluice upgrade`)\n\
             sluice check --app sales_report: 8 error(s), 0 warning(s)\n\
             \x20 applications/sales_report/dashboard.py:1: [error] import-base-page: page file does not import `components.base_page`\n\
             \x20 applications/sales_report/dashboard.py:1: [error] page-class: page file defines no class matching `*Page`\n\
             \x20 applications/sales_report/dashboard.py:1: [error] page-main: page file does not define function `main()`\n\
             \x20 applications/sales_report/pages/cleanup.py:1: [error] import-base-page: page file does not import `components.base_page`\n\
             \x20 applications/sales_report/pages/cleanup.py:1: [error] page-class: page file defines no class matching `*Page`\n\
             \x20 applications/sales_report/pages/cleanup.py:1: [error] page-main: page file does not define function `main()`\n\
             \x20 applications/sales_report/pages/cleanup.py:6: [error] select-only-sql: DELETE statement is not allowed: SQL must be read-only (SELECT)\n\
             \x20 applications/sales_report/snowflake.yml:1: [error] runtime-packages: sluice deploy reads a `definition_version: '2'` project with one streamlit entity under `entities:`; `snow helpers v1-to-v2` in the app's folder converts this version 1 file\n\
             Next: fix them, or record them as known debt with `sluice check --write-baseline compliance/baseline.json` (CI then fails only on new ones)\n",
            legacy.display(),
            legacy.join(".streamlit/secrets.toml").display()
        )
    );
    // The app's own files, byte for byte; secrets and caches stay behind.
    let original = Path::new(LEGACY_APP);
    assert_eq!(
        fs::read(app.join("dashboard.py")).unwrap(),
        fs::read(original.join("streamlit_app.py")).unwrap()
    );
    for same in ["environment.yml", "pages/cleanup.py"] {
        assert_eq!(
            fs::read(app.join(same)).unwrap(),
            fs::read(original.join(same)).unwrap()
        );
    }
    assert_eq!(
        fs::read_to_string(app.join("snowflake.yml")).unwrap(),
        fs::read_to_string(original.join("snowflake.yml"))
            .unwrap()
            .replace("main_file: streamlit_app.py", "main_file: dashboard.py")
    );
    assert!(!app.join(".streamlit").exists());
    assert!(!app.join("__pycache__").exists());
    assert!(app.join("pages").is_dir());
    assert!(fs::read_to_string(app.join("README.md"))
        .unwrap()
        .starts_with("# Sales Report\n"));
    // The source folder is untouched.
    assert!(legacy.join("streamlit_app.py").is_file());
    assert!(!legacy.join("dashboard.py").exists());

    // The imported app is an app like any other: listed, and refused a second time.
    let listed = ok(sluice(&root).args(["apps", "--format", "json"]));
    assert!(
        listed.stdout.contains("\"sales_report\""),
        "{}",
        listed.stdout
    );
    let again = run(sluice(&root).arg("import").arg(&legacy).arg("sales_report"));
    assert_error(
        &again,
        1,
        "app `sales_report` already exists at applications/sales_report",
    );
}

#[test]
fn import_in_place_and_refusals() {
    let (dir, root) = workspace();
    // A folder already under applications/ is completed where it is.
    let app = root.join("applications/dropped_in");
    copy_dir(Path::new(LEGACY_APP), &app);
    let result = ok(sluice(&root).args(["import", "applications/dropped_in", "dropped_in"]));
    assert!(
        result
            .stdout
            .starts_with("Completed app `dropped_in` in place in applications/dropped_in/:\n"),
        "{}",
        result.stdout
    );
    assert!(app.join("dashboard.py").is_file());
    assert!(!app.join("streamlit_app.py").exists());
    assert!(app.join("share.yml").is_file());

    let empty = dir.path().join("notes");
    fs::create_dir_all(&empty).unwrap();
    fs::write(empty.join("README.md"), "notes\n").unwrap();
    let result = run(sluice(&root).arg("import").arg(&empty).arg("notes"));
    assert_error(
        &result,
        1,
        &format!(
            "cannot import {}: it has no Python files, so no Streamlit app",
            empty.display()
        ),
    );
    let result = run(sluice(&root).args(["import", "nowhere", "x"]));
    assert_error(&result, 1, "cannot import nowhere: it is not a folder");
    let result = run(sluice(&root).arg("import").arg(LEGACY_APP).arg("Bad-Name"));
    assert_error(
        &result,
        1,
        "invalid app name `Bad-Name`: use a lowercase snake_case identifier (a-z, 0-9 and _, starting with a letter)",
    );
    assert!(!root.join("applications/notes").exists());
}

/// The generated pipeline's `check` job script, run by `sh -e` as GitLab's runner does.
fn run_check_job(root: &Path) -> common::Run {
    let text = fs::read_to_string(root.join(".gitlab-ci.yml")).unwrap();
    let ci: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let script: Vec<&str> = ci["check"]["script"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let sluice_dir = Path::new(env!("CARGO_BIN_EXE_sluice")).parent().unwrap();
    let path = format!(
        "{}:{}",
        sluice_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new("sh")
        .args(["-e", "-c", &script.join("\n")])
        .current_dir(root)
        .env("PATH", path)
        .env("NO_COLOR", "1"))
}

#[test]
fn the_check_job_fails_only_on_violations_missing_from_a_committed_baseline() {
    let (dir, root) = workspace();
    ok(sluice(&root)
        .arg("import")
        .arg(legacy_copy(dir.path()))
        .arg("sales_report"));
    let first = run_check_job(&root);
    assert_ne!(first.code, 0, "{}", first.stdout);
    assert!(root.join("gl-code-quality-report.json").is_file());

    ok(sluice(&root).args(["check", "--write-baseline", "compliance/baseline.json"]));
    let known = run_check_job(&root);
    assert_eq!(known.code, 0, "{}\n{}", known.stdout, known.stderr);
    assert!(
        known
            .stdout
            .contains("Baseline:             8 known and not reported, 0 new\n"),
        "{}",
        known.stdout
    );
    let quality = fs::read_to_string(root.join("gl-code-quality-report.json")).unwrap();
    assert_eq!(quality.trim(), "[]");
    // Checking another app alone does not count this app's debt as fixed.
    let other = ok(sluice(&root).args([
        "check",
        "--app",
        "main_app",
        "--baseline",
        "compliance/baseline.json",
    ]));
    assert!(
        other
            .stdout
            .contains("Baseline:             0 known and not reported, 0 new\n"),
        "{}",
        other.stdout
    );

    // New debt fails the job, and only it is reported.
    let cleanup = root.join("applications/sales_report/pages/cleanup.py");
    let text = fs::read_to_string(&cleanup).unwrap();
    fs::write(
        &cleanup,
        text + "    get_active_session().sql(\"DROP TABLE ORDERS\").collect()\n",
    )
    .unwrap();
    let new = run_check_job(&root);
    assert_eq!(new.code, 1, "{}", new.stdout);
    let reported: Vec<&str> = new
        .stdout
        .lines()
        .filter(|l| l.contains(": [error] "))
        .collect();
    assert_eq!(
        reported,
        ["applications/sales_report/pages/cleanup.py:7: [error] select-only-sql: DROP TABLE statement is not allowed: SQL must be read-only (SELECT)"]
    );
}
