//! The audit log: entries round-trip, corrupt lines are reported with their
//! line number and skipped (the file is never rewritten), filters, and two
//! processes appending at once lose no line.

use std::fs;
use std::process::{Command, Stdio};

use sluice_apps::audit::{self, AuditEntry, Outcome};

fn entry(app: &str, env: &str, commit: &str, result: &str) -> AuditEntry {
    AuditEntry {
        time: "2026-12-01T10:00:00Z".into(),
        actor: "jane@example.com".into(),
        commit: commit.into(),
        env: env.into(),
        app: app.into(),
        action: "deploy".into(),
        digest: "sha256:0123456789abcdef".into(),
        roles: vec!["DATA_ANALYST".into()],
        result: result.into(),
        outcomes: vec![Outcome {
            command: "snow streamlit deploy x".into(),
            status: if result == "succeeded" {
                "ok"
            } else {
                "failed"
            }
            .into(),
            exit_code: Some(if result == "succeeded" { 0 } else { 1 }),
        }],
    }
}

#[test]
fn entries_round_trip_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(".sluice/audit.jsonl"); // the folder is created
    let entries = [
        entry("sales_dashboard", "test", "c1", "succeeded"),
        entry("main_app", "test", "c2", "succeeded"),
        entry("sales_dashboard", "prod", "c1", "succeeded"),
        entry("sales_dashboard", "test", "c3", "failed"),
    ];
    for e in &entries {
        audit::append(&log, e).unwrap();
    }
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 4);
    assert!(text.starts_with(
        "{\"time\":\"2026-12-01T10:00:00Z\",\"actor\":\"jane@example.com\",\"commit\":\"c1\",\"env\":\"test\",\"app\":\"sales_dashboard\",\"action\":\"deploy\",\"digest\":\"sha256:0123456789abcdef\",\"roles\":[\"DATA_ANALYST\"],\"result\":\"succeeded\",\"outcomes\":[{\"command\":\"snow streamlit deploy x\",\"status\":\"ok\",\"exit_code\":0}]}\n"
    ));
    let read = audit::read(&log, ".sluice/audit.jsonl").unwrap();
    assert_eq!(read.entries, entries);

    let sales_test = audit::filter(&read.entries, Some("sales_dashboard"), Some("test"));
    assert_eq!(sales_test.len(), 2);
    assert_eq!(audit::filter(&read.entries, None, Some("prod")).len(), 1);
    assert_eq!(audit::filter(&read.entries, None, None).len(), 4);
    // The failed deploy is neither the last success nor where CI starts from.
    assert_eq!(
        audit::last_success(&read.entries, "sales_dashboard", "test").map(|e| e.commit.as_str()),
        Some("c1")
    );
    assert_eq!(
        audit::last_deployed_commit(&read.entries, "test"),
        Some("c2")
    );
    assert_eq!(audit::last_deployed_commit(&read.entries, "staging"), None);

    let table = audit::render_table(&sales_test);
    assert_eq!(
        table,
        "TIME                  ACTOR             COMMIT  ENV   APP              ACTION  RESULT     COMMANDS  DIGEST\n\
         2026-12-01T10:00:00Z  jane@example.com  c1      test  sales_dashboard  deploy  succeeded  1/1       0123456789ab\n\
         2026-12-01T10:00:00Z  jane@example.com  c3      test  sales_dashboard  deploy  failed     0/1       0123456789ab\n"
    );
}

#[test]
fn a_corrupt_line_is_reported_with_its_number_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    audit::append(&log, &entry("a", "test", "c1", "succeeded")).unwrap();
    // A torn write and a hand edit.
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(b"{\"time\":\"2026-12-01T\n\n{\"app\":\"b\"}\n")
        })
        .unwrap();
    audit::append(&log, &entry("c", "test", "c2", "succeeded")).unwrap();
    let before = fs::read(&log).unwrap();

    let read = audit::read(&log, ".sluice/audit.jsonl").unwrap();
    let apps: Vec<&str> = read.entries.iter().map(|e| e.app.as_str()).collect();
    assert_eq!(apps, ["a", "c"]);
    assert_eq!(read.problems.len(), 2, "{:?}", read.problems);
    assert!(
        read.problems[0].starts_with(".sluice/audit.jsonl:2: corrupt audit entry skipped ("),
        "{}",
        read.problems[0]
    );
    assert!(
        read.problems[1].starts_with(
            ".sluice/audit.jsonl:4: corrupt audit entry skipped (missing field `time`"
        ),
        "{}",
        read.problems[1]
    );
    assert_eq!(fs::read(&log).unwrap(), before, "reading rewrote the log");

    // A missing log is empty, not an error.
    let none = audit::read(&dir.path().join("none.jsonl"), "none.jsonl").unwrap();
    assert!(none.entries.is_empty() && none.problems.is_empty());
}

/// Set in the child processes of the concurrency test: where to append.
const CHILD_LOG: &str = "SLUICE_TEST_AUDIT_CHILD_LOG";
const PER_PROCESS: usize = 300;

/// In a child process (see below) appends `PER_PROCESS` entries; otherwise does nothing.
#[test]
fn child_appender() {
    let (Ok(log), Ok(tag)) = (
        std::env::var(CHILD_LOG),
        std::env::var("SLUICE_TEST_AUDIT_CHILD_TAG"),
    ) else {
        return;
    };
    for i in 0..PER_PROCESS {
        // Long lines make a torn or interleaved write visible.
        let mut e = entry(&format!("{tag}_{i}"), "test", &"f".repeat(40), "succeeded");
        e.roles = (0..50).map(|r| format!("ROLE_{tag}_{r}")).collect();
        audit::append(std::path::Path::new(&log), &e).unwrap();
    }
}

#[test]
fn two_processes_appending_at_once_lose_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["one", "two"]
        .iter()
        .map(|tag| {
            Command::new(&exe)
                .args(["--exact", "child_appender", "--test-threads=1", "--quiet"])
                .env(CHILD_LOG, &log)
                .env("SLUICE_TEST_AUDIT_CHILD_TAG", tag)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let read = audit::read(&log, "audit.jsonl").unwrap();
    assert!(read.problems.is_empty(), "{:?}", &read.problems[..1]);
    assert_eq!(read.entries.len(), 2 * PER_PROCESS);
    for tag in ["one", "two"] {
        let apps: Vec<&str> = read
            .entries
            .iter()
            .filter(|e| e.app.starts_with(tag))
            .map(|e| e.app.as_str())
            .collect();
        let expected: Vec<String> = (0..PER_PROCESS).map(|i| format!("{tag}_{i}")).collect();
        assert_eq!(apps, expected, "lines of `{tag}` lost or reordered");
    }
}
