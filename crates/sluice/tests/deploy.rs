//! `sluice deploy / share / audit / apps` through the built binary: the
//! dry-run plan of the issue's "done when" sequence (accepted by the real
//! Snowflake CLI), refusals with their one-line errors, execution against a
//! stand-in `snow` on PATH (failures and the audit log), and the inventory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{ok, run, sluice, Run};

/// Asserts a refusal: exit 1 and the one-line error `sluice: message`.
#[track_caller]
fn assert_error(result: &Run, message: &str) {
    common::assert_error(result, 1, message)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `sluice init analytics && sluice new-app sales_dashboard && sluice
/// new-page sales_dashboard analytics`, in a temporary folder.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    ok(sluice(dir.path()).args(["init", "analytics"]));
    let root = dir.path().join("analytics").canonicalize().unwrap();
    ok(sluice(&root).args(["new-app", "sales_dashboard"]));
    ok(sluice(&root).args(["new-page", "sales_dashboard", "analytics"]));
    (dir, root)
}

/// The `(digest XXXXXXXXXXXX)` of a plan heading, replaced for comparison.
fn mask_digests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("digest ") {
        out.push_str(&rest[..i + 7]);
        rest = &rest[i + 7..];
        let end = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        out.push_str(if end == 12 { "<digest>" } else { &rest[..end] });
        rest = &rest[end..];
    }
    out + rest
}

/// The repository's virtualenv `snow`; missing: skipped with a message,
/// except under CI (`CI=true`), which installs it.
fn snow() -> Option<PathBuf> {
    let snow = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/snow");
    if snow.is_file() {
        return Some(snow);
    }
    let message = format!("{} is missing: run `bash scripts/setup.sh`", snow.display());
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("skipping the Snowflake CLI check: {message}");
    None
}

#[test]
fn the_dry_run_plan_is_what_a_snowflake_user_would_run_and_snow_accepts_it() {
    let (dir, root) = workspace();
    let dry = ok(sluice(&root).args(["deploy", "sales_dashboard", "--env", "test", "--dry-run"]));
    assert_eq!(
        mask_digests(&dry.stdout),
        "Plan: deploy sales_dashboard to test as ANALYTICS_TEST.APPS.SALES_DASHBOARD (digest <digest>)\n\
         Last success: none (first deploy to test)\n\
         Deployment folder: .sluice/build/test/sales_dashboard/\n  \
           snowflake.yml\n  README.md\n  components/__init__.py\n  components/base_page.py\n  \
           dashboard.py\n  environment.yml\n  pages/analytics.py\n\
         Shared with: DATA_ANALYST\n\
         Commands:\n  \
           1. snow streamlit deploy sales_dashboard --replace --prune -p .sluice/build/test/sales_dashboard -c test --database ANALYTICS_TEST --schema APPS --role STREAMLIT_DEPLOYER --warehouse COMPUTE_WH\n  \
           2. snow streamlit share ANALYTICS_TEST.APPS.SALES_DASHBOARD DATA_ANALYST -c test --role STREAMLIT_DEPLOYER\n\
         \n\
         Dry run: nothing was run and nothing recorded (deployment folders are kept for inspection).\n"
    );
    assert!(root
        .join(".sluice/build/test/sales_dashboard/snowflake.yml")
        .is_file());
    assert!(!root.join(".sluice/audit.jsonl").exists());

    // The plan's own deploy command, run by the real `snow` from the
    // workspace root, with the connection set up as the CI pipeline does: an
    // empty section filled from SNOWFLAKE_CONNECTIONS_TEST_* variables,
    // pointing at a closed loopback port.
    let Some(snow) = snow() else { return };
    let home = dir.path().join("home");
    fs::create_dir_all(home.join(".snowflake")).unwrap();
    let config = home.join(".snowflake/config.toml");
    fs::write(&config, "[connections.test]\n").unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    let port = common::free_port();
    let command = dry
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("  1. snow "))
        .unwrap();
    let output = Command::new(&snow)
        .args(command.split(' '))
        .current_dir(&root)
        .env("HOME", &home)
        .env("SNOWFLAKE_HOME", home.join(".snowflake"))
        .env("SNOWFLAKE_CONNECTIONS_TEST_ACCOUNT", "sluice")
        .env("SNOWFLAKE_CONNECTIONS_TEST_USER", "ci")
        .env("SNOWFLAKE_CONNECTIONS_TEST_PASSWORD", "p")
        .env("SNOWFLAKE_CONNECTIONS_TEST_HOST", "127.0.0.1")
        .env("SNOWFLAKE_CONNECTIONS_TEST_PORT", port.to_string())
        .env("SNOWFLAKE_CONNECTIONS_TEST_PROTOCOL", "http")
        .output()
        .expect("snow runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("Could not connect to Snowflake"),
        "snow rejected the deployment folder or the command:\n{text}"
    );

    // ...and the inventory shows the app.
    let apps = ok(sluice(&root).arg("apps"));
    assert!(apps.stdout.starts_with("APP "), "{}", apps.stdout);
    let line = apps
        .stdout
        .lines()
        .find(|l| l.starts_with("sales_dashboard "))
        .unwrap();
    assert!(
        line.contains("prod: DATA_ANALYST; test: DATA_ANALYST"),
        "{line}"
    );
    assert!(line.ends_with("never"), "{line}");
}

#[test]
fn refusals_are_one_line_errors() {
    let (_dir, root) = workspace();
    assert_error(
        &run(sluice(&root).args(["deploy", "sales_dashboard", "--env", "staging"])),
        "unknown environment `staging` in sluice.yml (environments: local, prod, test)",
    );
    assert_error(
        &run(sluice(&root).args(["deploy", "nope", "--env", "test", "--dry-run"])),
        "unknown app `nope` (apps: main_app, sales_dashboard)",
    );
    assert_error(
        &run(sluice(&root).args(["share", "sales_dashboard", "--env", "local"])),
        "environment `local` in sluice.yml has no `connection`, which deploying needs (set it there or with SLUICE_CONNECTION)",
    );
    // An app failing `sluice check` is refused, prod included, even in a dry run.
    let page = root.join("applications/sales_dashboard/pages/analytics.py");
    let text = fs::read_to_string(&page).unwrap();
    fs::write(&page, format!("{text}\nWIPE = \"DELETE FROM sales\"\n")).unwrap();
    for env in ["test", "prod"] {
        assert_error(
            &run(sluice(&root).args(["deploy", "sales_dashboard", "--env", env, "--dry-run"])),
            &format!("refusing to deploy `sales_dashboard` to `{env}`: `sluice check` reports 1 error(s) for it; run `sluice check --app sales_dashboard` and fix them"),
        );
    }
    // --all refuses before anything runs.
    assert_error(
        &run(sluice(&root).args(["deploy", "--all", "--env", "prod"])),
        "refusing to deploy `sales_dashboard` to `prod`: `sluice check` reports 1 error(s) for it; run `sluice check --app sales_dashboard` and fix them",
    );
    assert!(!root.join(".sluice/audit.jsonl").exists());
}

/// The deploy gate reads the committed `compliance/baseline.json` as the
/// generated CI check does: debt recorded there does not block a deploy,
/// a violation added since does, and `sluice apps` agrees.
#[test]
fn the_deploy_gate_counts_only_violations_not_in_the_committed_baseline() {
    let (_dir, root) = workspace();
    let page = root.join("applications/sales_dashboard/pages/analytics.py");
    let text = fs::read_to_string(&page).unwrap();
    fs::write(&page, format!("{text}\nWIPE = \"DELETE FROM sales\"\n")).unwrap();
    let dry_run = ["deploy", "sales_dashboard", "--env", "test", "--dry-run"];
    assert_error(
        &run(sluice(&root).args(dry_run)),
        "refusing to deploy `sales_dashboard` to `test`: `sluice check` reports 1 error(s) for it; run `sluice check --app sales_dashboard` and fix them",
    );

    ok(sluice(&root).args(["check", "--write-baseline", "compliance/baseline.json"]));
    ok(sluice(&root).args(dry_run));
    let apps = ok(sluice(&root).args(["apps", "--format", "json"]));
    let json: serde_json::Value = serde_json::from_str(&apps.stdout).unwrap();
    assert_eq!(json[1]["name"], "sales_dashboard");
    assert_eq!(json[1]["compliance"]["status"], "passed");

    let text = fs::read_to_string(&page).unwrap();
    fs::write(&page, format!("{text}PURGE = \"DROP TABLE sales\"\n")).unwrap();
    assert_error(
        &run(sluice(&root).args(dry_run)),
        "refusing to deploy `sales_dashboard` to `test`: `sluice check` reports 1 error(s) for it; run `sluice check --app sales_dashboard` and fix them",
    );

    fs::write(root.join("compliance/baseline.json"), "{").unwrap();
    let broken = run(sluice(&root).args(dry_run));
    assert!(
        broken
            .stderr
            .starts_with("sluice: cannot check `sales_dashboard`: compliance/baseline.json"),
        "{}",
        broken.stderr
    );
}

/// `sluice apps | head -0`: the reader is gone before sluice prints, and
/// sluice dies of SIGPIPE as Unix tools do, without a panic message.
#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let (_dir, root) = workspace();
    let mut child = sluice(&root)
        .arg("apps")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

/// A `snow` on PATH that logs its arguments and fails when one equals `fail_on`.
fn fake_snow_dir(dir: &Path, fail_on: &str) -> PathBuf {
    let bin = dir.join(format!("bin-{fail_on}"));
    fs::create_dir_all(&bin).unwrap();
    let script = bin.join("snow");
    common::write_script(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nfor a in \"$@\"; do [ \"$a\" = '{fail_on}' ] && {{ echo \"refused: $a\" >&2; exit 1; }}; done\necho ok\n",
            dir.join("snow-calls.log").display()
        ),
    );
    bin
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn deploys_run_each_command_and_are_audited() {
    let (dir, root) = workspace();
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "workspace"]);
    let first_commit = git(&root, &["rev-parse", "HEAD"]);

    // The share is refused: the deploy succeeded, the run fails and is recorded.
    let failing = fake_snow_dir(dir.path(), "DATA_ANALYST");
    let result = run(sluice(&root)
        .args(["deploy", "sales_dashboard", "--env", "test"])
        .env("PATH", path_with(&failing))
        .env("GITLAB_USER_LOGIN", "ci-bot"));
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    assert!(result
        .stdout
        .starts_with("Deploying sales_dashboard to test (2 commands, digest "));
    assert!(
        result.stdout.contains(
            "[2/2] share with role DATA_ANALYST\n  \
               $ snow streamlit share ANALYTICS_TEST.APPS.SALES_DASHBOARD DATA_ANALYST -c test --role STREAMLIT_DEPLOYER\n  \
               | refused: DATA_ANALYST\n  \
               failed: exit code 1\n\
             Execution Summary: 1/2 commands succeeded; recorded in .sluice/audit.jsonl\n"
        ),
        "{}",
        result.stdout
    );
    // Nothing deployed successfully yet: CI would deploy every app.
    let last = ok(sluice(&root).args(["audit", "--last-commit", "--env", "test"]));
    assert_eq!(last.stdout, "");

    // Then every command succeeds.
    let passing = fake_snow_dir(dir.path(), "NO_SUCH_ARG");
    let result = ok(sluice(&root)
        .args(["deploy", "sales_dashboard", "--env", "test"])
        .env("PATH", path_with(&passing))
        .env("GITLAB_USER_LOGIN", "ci-bot"));
    assert!(result
        .stdout
        .ends_with("Execution Summary: 2/2 commands succeeded; recorded in .sluice/audit.jsonl\n"));
    let calls = fs::read_to_string(dir.path().join("snow-calls.log")).unwrap();
    assert_eq!(
        calls.lines().last().unwrap(),
        "streamlit share ANALYTICS_TEST.APPS.SALES_DASHBOARD DATA_ANALYST -c test --role STREAMLIT_DEPLOYER"
    );

    let audit = ok(sluice(&root).args(["audit", "--env", "test"]));
    let lines: Vec<&str> = audit.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", audit.stdout);
    assert!(lines[0].starts_with("TIME "));
    let short = &first_commit[..10];
    for (line, result, commands) in [(lines[1], "failed", "1/2"), (lines[2], "succeeded", "2/2")] {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells[1..8],
            [
                "ci-bot",
                short,
                "test",
                "sales_dashboard",
                "deploy",
                result,
                commands
            ],
            "{line}"
        );
    }
    let last = ok(sluice(&root).args(["audit", "--last-commit", "--env", "test"]));
    assert_eq!(last.stdout, format!("{first_commit}\n"));
    let none = ok(sluice(&root).args(["audit", "--app", "main_app"]));
    assert_eq!(
        none.stdout,
        "No deploys or shares recorded in .sluice/audit.jsonl.\n"
    );

    // A corrupt line is reported with its number and skipped.
    let log = root.join(".sluice/audit.jsonl");
    let mut text = fs::read_to_string(&log).unwrap();
    text.push_str("not json\n");
    fs::write(&log, &text).unwrap();
    let audit = ok(sluice(&root).arg("audit"));
    assert_eq!(audit.stdout.lines().count(), 3);
    assert!(
        audit
            .stderr
            .starts_with("sluice: warning: .sluice/audit.jsonl:3: corrupt audit entry skipped ("),
        "{}",
        audit.stderr
    );

    // The inventory shows the last deploy per environment.
    let apps = ok(sluice(&root).args(["apps", "--format", "json"]));
    let json: serde_json::Value = serde_json::from_str(&apps.stdout).unwrap();
    let sales = json
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "sales_dashboard")
        .unwrap();
    assert_eq!(
        sales["pages"],
        serde_json::json!(["dashboard.py", "pages/analytics.py"])
    );
    assert_eq!(
        sales["owners"],
        serde_json::json!(["@data-platform/maintainers"])
    );
    assert_eq!(
        sales["shared"],
        serde_json::json!({"prod": ["DATA_ANALYST"], "test": ["DATA_ANALYST"]})
    );
    assert_eq!(sales["compliance"]["status"], "passed");
    assert_eq!(sales["last_deploy"]["test"]["actor"], "ci-bot");
    assert_eq!(sales["last_deploy"]["test"]["result"], "succeeded");
    assert_eq!(sales["last_deploy"]["test"]["commit"], first_commit);
    assert!(sales["last_deploy"].get("prod").is_none());

    // CI's next run: only what changed since the last deployed commit.
    fs::write(
        root.join("applications/main_app/README.md"),
        "# Main app\n\nUpdated.\n",
    )
    .unwrap();
    git(&root, &["commit", "-q", "-am", "main_app docs"]);
    let changed = ok(sluice(&root).args([
        "deploy",
        "--env",
        "test",
        "--changed-since",
        &first_commit,
        "--dry-run",
    ]));
    assert!(changed.stdout.starts_with("Changed since "));
    assert!(changed
        .stdout
        .contains(": main_app\nPlan: deploy main_app to test"));
    assert!(!changed.stdout.contains("sales_dashboard"));
    let nothing = ok(sluice(&root).args(["deploy", "--env", "test", "--changed-since", "HEAD"]));
    assert_eq!(
        nothing.stdout,
        "No app changed since HEAD; nothing to deploy to test.\n"
    );
}

#[test]
fn apps_lists_owners_and_compliance() {
    let (_dir, root) = workspace();
    let owners = root.join("CODEOWNERS");
    let mut text = fs::read_to_string(&owners).unwrap();
    text.push_str("/applications/sales_dashboard/  @sales-analytics @jane\n");
    fs::write(&owners, text).unwrap();
    fs::remove_file(root.join("applications/main_app/share.yml")).unwrap();
    // A package marker is not a page (for `sluice check` and the inventory alike).
    fs::write(
        root.join("applications/sales_dashboard/pages/__init__.py"),
        "",
    )
    .unwrap();
    let apps = ok(sluice(&root).args(["apps", "--format", "json"]));
    let json: serde_json::Value = serde_json::from_str(&apps.stdout).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main_app", "sales_dashboard"]);
    assert_eq!(
        json[1]["owners"],
        serde_json::json!(["@sales-analytics", "@jane"])
    );
    assert_eq!(
        json[1]["pages"],
        serde_json::json!(["dashboard.py", "pages/analytics.py"])
    );
    assert_eq!(json[1]["compliance"]["status"], "passed");
    assert_eq!(json[0]["compliance"]["status"], "failed");
    assert_eq!(json[0]["shared"]["test"], serde_json::json!([]));
    let table = ok(sluice(&root).arg("apps"));
    let main = table
        .stdout
        .lines()
        .find(|l| l.starts_with("main_app "))
        .unwrap();
    assert!(main.contains("failed ("), "{main}");
    assert!(main.contains("prod: -; test: -"), "{main}");
}

/// The `script` lines of a job in the `.gitlab-ci.yml` that `sluice init` wrote.
fn job_script(root: &Path, job: &str) -> Vec<String> {
    let text = fs::read_to_string(root.join(".gitlab-ci.yml")).unwrap();
    let ci: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    ci[job]["script"]
        .as_sequence()
        .unwrap_or_else(|| panic!("job {job} has no script"))
        .iter()
        .map(|line| line.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_pipelines_deploy_test_job_deploys_every_app_then_only_changed_ones() {
    let (dir, root) = workspace();
    let ci: serde_norway::Value =
        serde_norway::from_str(&fs::read_to_string(root.join(".gitlab-ci.yml")).unwrap()).unwrap();
    assert_eq!(
        ci["stages"],
        serde_norway::from_str::<serde_norway::Value>("[check, test, deploy-test, deploy-prod]")
            .unwrap()
    );
    assert_eq!(
        ci["deploy-prod"]["script"][0].as_str(),
        Some("sluice deploy --env prod --all")
    );
    assert_eq!(
        ci["check"]["artifacts"]["reports"]["codequality"].as_str(),
        Some("gl-code-quality-report.json")
    );
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "workspace"]);

    // The job's script, run by sh as the CI runner does, with `sluice` on
    // PATH and a stand-in `snow` named by SLUICE_SNOW.
    let script = job_script(&root, "deploy-test").join("\n");
    let snow = fake_snow_dir(dir.path(), "NO_SUCH_ARG").join("snow");
    let sluice_dir = Path::new(env!("CARGO_BIN_EXE_sluice")).parent().unwrap();
    let run_job = || {
        let mut command = Command::new("sh");
        command
            .args(["-e", "-c", &script])
            .current_dir(&root)
            .env("PATH", path_with(sluice_dir))
            .env("SLUICE_SNOW", &snow)
            .env("GITLAB_USER_LOGIN", "ci-bot");
        for (key, _) in std::env::vars() {
            if key.starts_with("SLUICE_") && key != "SLUICE_SNOW" {
                command.env_remove(key);
            }
        }
        ok(&mut command)
    };
    // Nothing deployed to test yet: every app.
    let first = run_job();
    assert!(
        first.stdout.contains("Deploying main_app to test"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("Deploying sales_dashboard to test"));
    assert!(first
        .stdout
        .ends_with("Execution Summary: 4/4 commands succeeded; recorded in .sluice/audit.jsonl\n"));

    // Next merge: only the app that changed.
    let dashboard = root.join("applications/sales_dashboard/dashboard.py");
    common::replace_in(&dashboard, "Sample data", "Sample revenue");
    git(&root, &["commit", "-q", "-am", "sales wording"]);
    let second = run_job();
    assert!(
        second.stdout.starts_with("Changed since "),
        "{}",
        second.stdout
    );
    assert!(!second.stdout.contains("main_app"), "{}", second.stdout);
    assert!(second
        .stdout
        .ends_with("Execution Summary: 2/2 commands succeeded; recorded in .sluice/audit.jsonl\n"));
    let head = git(&root, &["rev-parse", "HEAD"]);
    let last = ok(sluice(&root).args(["audit", "--last-commit", "--env", "test"]));
    assert_eq!(last.stdout, format!("{head}\n"));
}

#[test]
fn a_deleted_app_is_revoked_and_dropped_by_changed_since_and_audited() {
    let (dir, root) = workspace();
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "workspace"]);
    let snow = fake_snow_dir(dir.path(), "NO_SUCH_ARG").join("snow");
    ok(sluice(&root)
        .args(["deploy", "--all", "--env", "test"])
        .env("SLUICE_SNOW", &snow)
        .env("GITLAB_USER_LOGIN", "ci-bot"));
    let deployed = git(&root, &["rev-parse", "HEAD"]);

    // main_app is deleted in the repository.
    fs::remove_dir_all(root.join("applications/main_app")).unwrap();
    git(&root, &["commit", "-q", "-am", "retire main_app"]);
    let dry = ok(sluice(&root).args([
        "deploy",
        "--env",
        "test",
        "--changed-since",
        &deployed,
        "--dry-run",
    ]));
    assert_eq!(
        mask_digests(&dry.stdout),
        format!(
            "Removed since {deployed}: main_app\n\
             Plan: drop main_app from test as ANALYTICS_TEST.APPS.MAIN_APP (digest <digest>, removed from the repository)\n\
             Last success: {} by ci-bot at commit {} (digest <digest>, changed since)\n\
             Shared with: none\n\
             Revoked from: DATA_ANALYST\n\
             Commands:\n  \
               1. snow sql -q 'REVOKE USAGE ON STREAMLIT ANALYTICS_TEST.APPS.MAIN_APP FROM ROLE DATA_ANALYST' -c test --role STREAMLIT_DEPLOYER\n  \
               2. snow sql -q 'DROP STREAMLIT IF EXISTS ANALYTICS_TEST.APPS.MAIN_APP' -c test --role STREAMLIT_DEPLOYER\n\
             \n\
             Dry run: nothing was run and nothing recorded.\n",
            dry.stdout
                .lines()
                .find_map(|l| l.strip_prefix("Last success: "))
                .and_then(|l| l.split(' ').next())
                .unwrap(),
            &deployed[..10]
        )
    );

    let run = ok(sluice(&root)
        .args(["deploy", "--env", "test", "--changed-since", &deployed])
        .env("SLUICE_SNOW", &snow)
        .env("GITLAB_USER_LOGIN", "ci-bot"));
    assert!(
        run.stdout
            .contains("Dropping main_app from test (2 commands, digest "),
        "{}",
        run.stdout
    );
    assert!(run
        .stdout
        .ends_with("Execution Summary: 2/2 commands succeeded; recorded in .sluice/audit.jsonl\n"));
    let calls = fs::read_to_string(dir.path().join("snow-calls.log")).unwrap();
    assert!(calls.ends_with(
        "sql -q REVOKE USAGE ON STREAMLIT ANALYTICS_TEST.APPS.MAIN_APP FROM ROLE DATA_ANALYST -c test --role STREAMLIT_DEPLOYER\n\
         sql -q DROP STREAMLIT IF EXISTS ANALYTICS_TEST.APPS.MAIN_APP -c test --role STREAMLIT_DEPLOYER\n"
    ));
    let audit = ok(sluice(&root).args(["audit", "--app", "main_app"]));
    let last = last_row(&audit.stdout);
    assert_eq!(last[3..8], ["test", "main_app", "drop", "succeeded", "2/2"]);
    let log = fs::read_to_string(root.join(".sluice/audit.jsonl")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(entry["action"], "drop");
    assert_eq!(entry["roles"], serde_json::json!([]));
    // CI's next run starts after the drop, which is not planned again.
    let head = git(&root, &["rev-parse", "HEAD"]);
    let last = ok(sluice(&root).args(["audit", "--last-commit", "--env", "test"]));
    assert_eq!(last.stdout, format!("{head}\n"));
}

/// The cells of a table's last line.
fn last_row(table: &str) -> Vec<&str> {
    table.lines().last().unwrap().split_whitespace().collect()
}

/// A `snow` that answers `streamlit list ... --format json` as the real one
/// prints `SHOW STREAMLITS` (snowflake-cli's JSON printer: a list of rows,
/// four-space indent, timestamps in ISO format), and logs its arguments.
fn listing_snow(dir: &Path) -> PathBuf {
    let script = dir.join("snow-list");
    let listing = r#"[
    {
        "created_on": "2026-11-30T09:12:44.513000-08:00",
        "name": "SALES_DASHBOARD",
        "database_name": "ANALYTICS_TEST",
        "schema_name": "APPS",
        "title": "Sales Dashboard",
        "owner": "STREAMLIT_DEPLOYER",
        "comment": null,
        "query_warehouse": "COMPUTE_WH",
        "url_id": "f2ah6qbxmdqsf3byjxoy",
        "owner_role_type": "ROLE"
    },
    {
        "created_on": "2025-06-02T14:01:09.027000-07:00",
        "name": "OLD_REVENUE_REPORT",
        "database_name": "ANALYTICS_TEST",
        "schema_name": "APPS",
        "title": "Old revenue report",
        "owner": "ACCOUNTADMIN",
        "comment": "made by hand",
        "query_warehouse": "COMPUTE_WH",
        "url_id": "3m5vbpkgqypwyqaj7j2s",
        "owner_role_type": "ROLE"
    }
]"#;
    common::write_script(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\ncat <<'JSON'\n{listing}\nJSON\n",
            dir.join("snow-list.log").display()
        ),
    );
    script
}

#[test]
fn apps_live_compares_the_repository_with_snow_streamlit_list() {
    let (dir, root) = workspace();
    let snow = listing_snow(dir.path());
    let live = ok(sluice(&root)
        .args(["apps", "--live", "--env", "test"])
        .env("SLUICE_SNOW", &snow));
    assert_eq!(
        live.stdout,
        "Live in test (ANALYTICS_TEST.APPS), per `snow streamlit list`:\n\
         APP              OBJECT                                  STATUS\n\
         main_app         ANALYTICS_TEST.APPS.MAIN_APP            known but not live\n\
         sales_dashboard  ANALYTICS_TEST.APPS.SALES_DASHBOARD     live\n\
         -                ANALYTICS_TEST.APPS.OLD_REVENUE_REPORT  live but unknown\n\
         3 apps: 1 live, 1 known but not live, 1 live but unknown\n"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("snow-list.log")).unwrap(),
        "streamlit list --in schema ANALYTICS_TEST.APPS --format json -c test --role STREAMLIT_DEPLOYER\n"
    );
    let json = ok(sluice(&root)
        .args(["apps", "--live", "--env", "test", "--format", "json"])
        .env("SLUICE_SNOW", &snow));
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        json[2],
        serde_json::json!({"app": null, "object": "ANALYTICS_TEST.APPS.OLD_REVENUE_REPORT", "status": "live_unknown"})
    );
    // A failing `snow` is one line with its last words.
    let failing = fake_snow_dir(dir.path(), "list");
    assert_error(
        &run(sluice(&root)
            .args(["apps", "--live", "--env", "test"])
            .env("SLUICE_SNOW", failing.join("snow"))),
        "`snow streamlit list --in schema ANALYTICS_TEST.APPS --format json -c test --role STREAMLIT_DEPLOYER` failed (exit status: 1): refused: list",
    );
}

/// A `snow` that copies the folder each `streamlit deploy -p FOLDER` uploads
/// to `captures/<n>/` (what the stage would hold), and answers `ok`.
fn capturing_snow(dir: &Path) -> PathBuf {
    let script = dir.join("snow-capture");
    let captures = dir.join("captures");
    fs::create_dir_all(&captures).unwrap();
    common::write_script(
        &script,
        format!(
            "#!/bin/sh\nprev=''\nfor a in \"$@\"; do\n  if [ \"$prev\" = '-p' ]; then\n    n=$(ls '{c}' | wc -l)\n    cp -R \"$a\" '{c}'/$n\n  fi\n  prev=\"$a\"\ndone\necho ok\n",
            c = captures.display()
        ),
    );
    script
}

/// Every file below `dir`, relative, with its bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.push((rel, fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn rollback_of_a_two_commit_history_deploys_the_first_commits_files_byte_for_byte() {
    let (dir, root) = workspace();
    let snow = capturing_snow(dir.path());
    let deploy = |args: &[&str]| {
        ok(sluice(&root)
            .args(args)
            .env("SLUICE_SNOW", &snow)
            .env("GITLAB_USER_LOGIN", "ci-bot"))
    };
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "first"]);
    let first = git(&root, &["rev-parse", "HEAD"]);
    deploy(&["deploy", "sales_dashboard", "--env", "test"]);

    // Second commit: a page changed, a page added, the shared base page changed.
    let page = root.join("applications/sales_dashboard/pages/analytics.py");
    common::replace_in(&page, "title=\"Analytics\"", "title=\"Regional analytics\"");
    ok(sluice(&root).args(["new-page", "sales_dashboard", "forecast"]));
    let base = root.join("applications/components/base_page.py");
    fs::write(&base, fs::read_to_string(&base).unwrap() + "\n# second\n").unwrap();
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "second"]);
    let second = git(&root, &["rev-parse", "HEAD"]);
    deploy(&["deploy", "sales_dashboard", "--env", "test"]);
    let audit = ok(sluice(&root).args(["audit", "--app", "sales_dashboard"]));
    assert_eq!(audit.stdout.lines().count(), 3, "{}", audit.stdout);

    let result = deploy(&["rollback", "sales_dashboard", "--env", "test"]);
    assert!(
        result.stdout.starts_with(&format!(
            "Rolling back sales_dashboard in test to commit {} (deployed ",
            &first[..10]
        )),
        "{}",
        result.stdout
    );
    let captures = dir.path().join("captures");
    // What the rollback uploaded is what the first deploy uploaded, byte for byte...
    assert_eq!(tree(&captures.join("2")), tree(&captures.join("0")));
    assert_ne!(tree(&captures.join("1")), tree(&captures.join("0")));
    // ...which is the first commit's files.
    let at_first = |path: &str| {
        Command::new("git")
            .args(["show", &format!("{first}:{path}")])
            .current_dir(&root)
            .output()
            .unwrap()
            .stdout
    };
    let uploaded = tree(&captures.join("2"));
    for (rel, bytes) in &uploaded {
        let source = if rel.starts_with("components/") {
            format!("applications/{rel}")
        } else if rel == "snowflake.yml" {
            continue; // generated
        } else {
            format!("applications/sales_dashboard/{rel}")
        };
        assert_eq!(bytes, &at_first(&source), "{rel}");
    }
    assert!(!uploaded.iter().any(|(rel, _)| rel == "pages/forecast.py"));

    // The work tree and index are untouched.
    assert_eq!(git(&root, &["status", "--porcelain"]), "");
    assert_eq!(git(&root, &["rev-parse", "HEAD"]), second);
    assert!(fs::read_to_string(&page)
        .unwrap()
        .contains("Regional analytics"));

    // The audit log says so, with the commit that is live now.
    let audit = ok(sluice(&root).args(["audit", "--app", "sales_dashboard", "--env", "test"]));
    let last = last_row(&audit.stdout);
    assert_eq!(
        last[1..8],
        [
            "ci-bot",
            &first[..10],
            "test",
            "sales_dashboard",
            "rollback",
            "succeeded",
            "2/2"
        ]
    );
    // CI's next run still starts from the last deploy of HEAD.
    let ci = ok(sluice(&root).args(["audit", "--last-commit", "--env", "test"]));
    assert_eq!(ci.stdout, format!("{second}\n"));
    // Rolling "back" once more goes forward again, to the second commit.
    let again = deploy(&["rollback", "sales_dashboard", "--env", "test", "--dry-run"]);
    assert!(
        again
            .stdout
            .contains(&format!("to commit {}", &second[..10])),
        "{}",
        again.stdout
    );
    // Unknown targets are one line.
    assert_error(
        &run(sluice(&root).args(["rollback", "sales_dashboard", "--env", "test", "--to", "feedface"])),
        &format!(
            "cannot roll back `sales_dashboard` in `test`: commit `feedface` was never deployed there (deployed: {}, {})",
            &first[..10],
            &second[..10]
        ),
    );
}
