//! The default rules (`DEFAULT_RULES`, written by `sluice init`) against a
//! fixture workspace that mirrors the shared contract exactly
//! (`tests/fixtures/contract/`): it passes, and a `DELETE` added to a page
//! fails it.

use std::path::Path;

use sluice_rules::config::RulesFile;
use sluice_rules::{check, parse_rules, CheckOptions, Severity, Workspace, DEFAULT_RULES};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn contract_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contract");
    copy_dir(&fixture, dir.path());
    dir
}

#[test]
fn default_rules_use_every_rule_kind() {
    let file = RulesFile::parse(DEFAULT_RULES, "default-rules.yml").unwrap();
    assert!(!file.class_rules.is_empty());
    assert!(!file.function_rules.is_empty());
    assert!(file.import_rules.len() >= 2);
    assert!(file.file_rules.len() >= 5);
    assert!(file.sql_rules.iter().any(|r| r.select_only));
    assert!(file
        .share_rules
        .iter()
        .any(|r| !r.valid_roles.is_empty() && r.min_roles >= 1));
    let class = &file.class_rules[0];
    assert_eq!(class.class_name, "*Page");
    assert_eq!(class.required_base_classes, ["BasePage"]);
    assert_eq!(
        class.required_methods,
        ["__init__", "set_page_layout", "setup_ui", "run"]
    );
}

#[test]
fn contract_app_passes_default_rules() {
    let dir = contract_workspace();
    let rules = parse_rules(DEFAULT_RULES, "compliance/rules.yml").unwrap();
    let ws = Workspace::discover(dir.path(), "applications").unwrap();
    let report = check(&ws, &rules, &CheckOptions::default()).unwrap();
    assert_eq!(report.apps.len(), 1);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(report.files_checked >= 2);
}

#[test]
fn delete_added_to_a_page_fails_default_rules() {
    let dir = contract_workspace();
    let page = dir
        .path()
        .join("applications/main_app/pages/regional_sales.py");
    let text = std::fs::read_to_string(&page).unwrap();
    let text = text.replace(
        "        st.dataframe(df)\n",
        "        st.dataframe(df)\n        self.query(\"DELETE FROM sales WHERE region = 'EMEA'\")\n",
    );
    std::fs::write(&page, text).unwrap();
    let rules = parse_rules(DEFAULT_RULES, "compliance/rules.yml").unwrap();
    let ws = Workspace::discover(dir.path(), "applications").unwrap();
    let report = check(&ws, &rules, &CheckOptions::default()).unwrap();
    assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    let v = &report.violations[0];
    assert_eq!(v.rule_id, "select-only-sql");
    assert_eq!(v.severity, Severity::Error);
    assert_eq!(v.file, "applications/main_app/pages/regional_sales.py");
    assert_eq!(v.line, Some(20));
    assert!(report.has_errors());
}
