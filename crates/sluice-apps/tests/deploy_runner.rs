//! Executing a plan, against a stand-in `snow` (a shell script that logs its
//! arguments and fails on demand): each step printed with its result, the
//! summary, and a failing command stopping the plan and being recorded in
//! the audit log as failed. (What the real `snow` does with the folder is
//! deploy_plans.rs's business.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sluice_apps::audit;
use sluice_apps::deploy::run::{execute, summary_line};
use sluice_apps::deploy::{Action, Plan, Step, StepKind};

/// A `snow` that appends its arguments to `calls.log` and exits 3 when an
/// argument equals `fail_on`.
fn fake_snow(dir: &Path, fail_on: &str) -> PathBuf {
    let script = dir.join("snow");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             echo \"$*\" >> '{log}'\n\
             for arg in \"$@\"; do\n  \
               if [ \"$arg\" = '{fail_on}' ]; then echo \"error: cannot share with $arg\" >&2; exit 3; fi\n\
             done\n\
             echo \"done: $2\"\n",
            log = dir.join("calls.log").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn step(kind: StepKind, description: &str, args: &[&str]) -> Step {
    Step {
        kind,
        description: description.to_string(),
        argv: std::iter::once("snow")
            .chain(args.iter().copied())
            .map(str::to_string)
            .collect(),
    }
}

fn plan() -> Plan {
    Plan {
        action: Action::Deploy,
        app: "sales_dashboard".into(),
        env: "test".into(),
        object: "DB.APPS.SALES_DASHBOARD".into(),
        folder: Some(".sluice/build/test/sales_dashboard".into()),
        files: vec!["snowflake.yml".into()],
        roles: vec!["DATA_ANALYST".into(), "FINANCE_VIEWER".into()],
        revoked: vec![],
        steps: vec![
            step(
                StepKind::Deploy,
                "deploy sales_dashboard",
                &["streamlit", "deploy", "sales_dashboard", "--replace"],
            ),
            step(
                StepKind::Share,
                "share with role DATA_ANALYST",
                &[
                    "streamlit",
                    "share",
                    "DB.APPS.SALES_DASHBOARD",
                    "DATA_ANALYST",
                ],
            ),
            step(
                StepKind::Share,
                "share with role FINANCE_VIEWER",
                &[
                    "streamlit",
                    "share",
                    "DB.APPS.SALES_DASHBOARD",
                    "FINANCE_VIEWER",
                ],
            ),
        ],
        digest: "sha256:00aa".into(),
        previous: None,
        commit: None,
    }
}

#[test]
fn every_step_runs_and_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let snow = fake_snow(dir.path(), "NEVER");
    let mut out = Vec::new();
    let execution = execute(&plan(), dir.path(), snow.as_os_str(), &mut out).unwrap();
    assert_eq!((execution.succeeded(), execution.total()), (3, 3));
    assert!(execution.all_succeeded());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "[1/3] deploy sales_dashboard\n  \
           $ snow streamlit deploy sales_dashboard --replace\n  \
           | done: deploy\n  \
           ok\n\
         [2/3] share with role DATA_ANALYST\n  \
           $ snow streamlit share DB.APPS.SALES_DASHBOARD DATA_ANALYST\n  \
           | done: share\n  \
           ok\n\
         [3/3] share with role FINANCE_VIEWER\n  \
           $ snow streamlit share DB.APPS.SALES_DASHBOARD FINANCE_VIEWER\n  \
           | done: share\n  \
           ok\n"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("calls.log")).unwrap(),
        "streamlit deploy sales_dashboard --replace\n\
         streamlit share DB.APPS.SALES_DASHBOARD DATA_ANALYST\n\
         streamlit share DB.APPS.SALES_DASHBOARD FINANCE_VIEWER\n"
    );
    assert_eq!(
        summary_line(execution.succeeded(), execution.total()),
        "Execution Summary: 3/3 commands succeeded"
    );
}

#[test]
fn a_failing_command_stops_the_plan_and_is_recorded_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let snow = fake_snow(dir.path(), "DATA_ANALYST");
    let plan = plan();
    let mut out = Vec::new();
    let execution = execute(&plan, dir.path(), snow.as_os_str(), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(
            "[2/3] share with role DATA_ANALYST\n  \
               $ snow streamlit share DB.APPS.SALES_DASHBOARD DATA_ANALYST\n  \
               | error: cannot share with DATA_ANALYST\n  \
               failed: exit code 3\n\
             [3/3] share with role FINANCE_VIEWER\n  \
               $ snow streamlit share DB.APPS.SALES_DASHBOARD FINANCE_VIEWER\n  \
               skipped: an earlier command failed\n"
        ),
        "{out}"
    );
    // The third command never ran.
    assert_eq!(
        fs::read_to_string(dir.path().join("calls.log"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert_eq!(
        summary_line(execution.succeeded(), execution.total()),
        "Execution Summary: 1/3 commands succeeded"
    );
    let statuses: Vec<(&str, Option<i32>)> = execution
        .outcomes
        .iter()
        .map(|o| (o.status.as_str(), o.exit_code))
        .collect();
    assert_eq!(
        statuses,
        [("ok", Some(0)), ("failed", Some(3)), ("skipped", None)]
    );

    // Recorded as failed, with each command's outcome.
    let log = dir.path().join("audit.jsonl");
    let entry = execution.audit_entry(&plan, "jane", "abc123", "2026-12-01T10:00:00Z");
    audit::append(&log, &entry).unwrap();
    let read = audit::read(&log, "audit.jsonl").unwrap();
    assert!(read.problems.is_empty());
    assert_eq!(read.entries, [entry]);
    let recorded = &read.entries[0];
    assert_eq!(recorded.result, "failed");
    assert_eq!(recorded.digest, "sha256:00aa");
    assert_eq!(
        recorded.outcomes[1].command,
        "snow streamlit share DB.APPS.SALES_DASHBOARD DATA_ANALYST"
    );
    // A failed deploy is not the "last success" a later plan compares with.
    assert!(audit::last_success(&read.entries, "sales_dashboard", "test").is_none());
}

#[test]
fn a_missing_program_fails_the_first_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let missing = dir.path().join("no-snow-here");
    let execution = execute(&plan(), dir.path(), missing.as_os_str(), &mut out).unwrap();
    assert_eq!(execution.succeeded(), 0);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(&format!("  failed: cannot run {}: ", missing.display())),
        "{out}"
    );
    assert_eq!(out.matches("skipped: an earlier command failed").count(), 2);
}
