//! `sluice doctor` through the built binary: the real Python of the
//! repository's virtualenv, the real `snow --version`, the Snowflake CLI's
//! configuration in a temporary `SNOWFLAKE_HOME`, and a stand-in `snow` for
//! `--online` (Snowflake itself is unreachable from tests).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{assert_error, ok, run, sluice};

fn workspace() -> (tempfile::TempDir, PathBuf) {
    common::init_workspace()
}

fn repo_snow() -> PathBuf {
    common::repo_venv_program("snow")
}

/// `sluice doctor` with `home` as SNOWFLAKE_HOME and no Snowflake variables
/// from the caller.
fn doctor(root: &Path, home: &Path, snow: &Path) -> Command {
    let mut command = sluice(root);
    command.arg("doctor");
    for (key, _) in std::env::vars() {
        if key.starts_with("SNOWFLAKE_") {
            command.env_remove(key);
        }
    }
    command.env("SNOWFLAKE_HOME", home).env("SLUICE_SNOW", snow);
    command
}

fn snowflake_home(dir: &Path, config: &str) -> PathBuf {
    let home = dir.join("snowflake-home");
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join("config.toml"), config).unwrap();
    home
}

fn failures(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("FAIL")).collect()
}

#[test]
fn a_missing_connection_is_one_line_with_its_fix() {
    let (dir, root) = workspace();
    let home = snowflake_home(dir.path(), "[connections.prod]\naccount = \"acme-prod\"\n");
    let result = run(&mut doctor(&root, &home, &repo_snow()));
    let config = home.join("config.toml");
    assert_eq!(
        failures(&result.stdout),
        [format!(
            "FAIL  connection \"test\": environment test needs it, but {} has no [connections.test] and no SNOWFLAKE_CONNECTIONS_TEST_* variables are set; \
             fix: snow connection add --connection-name test --account ACCOUNT --user USER (in CI: an empty [connections.test] section and SNOWFLAKE_CONNECTIONS_TEST_* variables)",
            config.display()
        )],
        "{}",
        result.stdout
    );
    assert!(
        result.stdout.contains(&format!(
            "ok    connection \"prod\": environment prod uses [connections.prod] in {}\n",
            config.display()
        )),
        "{}",
        result.stdout
    );
    let python = common::repo_python();
    assert!(
        result.stdout.contains(&format!(
            "ok    python: {} is Python 3.11.",
            python.display()
        )),
        "{}",
        result.stdout
    );
    assert!(
        result
            .stdout
            .contains(", within the warehouse runtime's Python 3.9-3.11 (apps: main_app)\n"),
        "{}",
        result.stdout
    );
    assert!(
        result.stdout.contains(
            "has Streamlit 1.50.0, as main_app pins in environment.yml (streamlit=1.50.0)\n"
        ),
        "{}",
        result.stdout
    );
    assert!(
        result
            .stdout
            .contains("ok    snow: Snowflake CLI 3.30.0 (SLUICE_SNOW)\n"),
        "{}",
        result.stdout
    );
    assert_error(
        &result,
        1,
        "1 of 5 checks failed; each FAIL line says how to fix it",
    );

    // The CI way: an empty section filled in by variables passes ...
    fs::write(
        &config,
        "[connections.prod]\naccount = \"acme-prod\"\n[connections.test]\n",
    )
    .unwrap();
    let result =
        ok(doctor(&root, &home, &repo_snow())
            .env("SNOWFLAKE_CONNECTIONS_TEST_ACCOUNT", "acme-test"));
    assert!(
        result.stdout.contains(&format!(
            "ok    connection \"test\": environment test uses [connections.test] in {}, filled in by SNOWFLAKE_CONNECTIONS_TEST_ACCOUNT\n",
            config.display()
        )),
        "{}",
        result.stdout
    );
    assert!(result.stdout.ends_with(
        "5 checks: 5 ok, 0 warnings, 0 failed (connections not tested: add --online to run `snow connection test`)\n"
    ), "{}", result.stdout);

    // ... but variables without the section are not a connection to snow.
    fs::write(&config, "[connections.prod]\naccount = \"acme-prod\"\n").unwrap();
    let result =
        run(doctor(&root, &home, &repo_snow())
            .env("SNOWFLAKE_CONNECTIONS_TEST_ACCOUNT", "acme-test"));
    assert_eq!(result.code, 1);
    assert_eq!(
        failures(&result.stdout),
        [format!(
            "FAIL  connection \"test\": environment test: SNOWFLAKE_CONNECTIONS_TEST_* variables are set, but snow reads them only into an existing [connections.test] section, and {0} has none; \
             fix: add an empty section: printf '[connections.test]\\n' >> {0}",
            config.display()
        )]
    );
}

#[test]
fn the_real_snow_agrees_that_variables_need_a_section() {
    // What the doctor reports above is what `snow` does: without the section
    // the connection does not exist for it, with it the variables fill it in.
    let dir = tempfile::tempdir().unwrap();
    let home = snowflake_home(dir.path(), "");
    fs::set_permissions(home.join("config.toml"), fs::Permissions::from_mode(0o600)).unwrap();
    let list = |home: &Path| {
        let output = Command::new(repo_snow())
            .args(["connection", "list", "--format", "json"])
            .env("SNOWFLAKE_HOME", home)
            .env("SNOWFLAKE_CONNECTIONS_TEST_ACCOUNT", "acme-test")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(!list(&home).contains("\"test\""));
    fs::write(home.join("config.toml"), "[connections.test]\n").unwrap();
    assert!(list(&home).contains("\"acme-test\""));
}

/// A stand-in `snow`: `--version` like 3.30.0, and `connection test` that
/// passes for `test` and fails for anything else the way snow prints errors.
fn fake_snow(dir: &Path) -> PathBuf {
    let path = dir.join("snow");
    common::write_script(
        &path,
        "#!/bin/sh\n\
         if [ \"$1\" = --version ]; then echo 'Snowflake CLI version: 3.30.0'; exit 0; fi\n\
         if [ \"$1 $2 $3 $4\" = 'connection test -c test' ]; then echo 'Status: OK'; exit 0; fi\n\
         printf '%s\\n' '╭─ Error ─────────────────────────────╮' \
         '│ 250001: Incorrect username or password was specified. │' \
         '╰─────────────────────────────────────╯' >&2\n\
         exit 1\n",
    );
    path
}

#[test]
fn online_runs_snow_connection_test_for_each_connection() {
    let (dir, root) = workspace();
    let home = snowflake_home(
        dir.path(),
        "[connections.prod]\naccount = \"a\"\n[connections.test]\naccount = \"b\"\n",
    );
    let snow = fake_snow(dir.path());
    let result = run(doctor(&root, &home, &snow).arg("--online"));
    assert!(
        result.stdout.contains(
            "ok    connection \"test\" online: `snow connection test -c test` succeeded (environment test)\n"
        ),
        "{}",
        result.stdout
    );
    assert_eq!(
        failures(&result.stdout),
        ["FAIL  connection \"prod\" online: `snow connection test -c prod` failed: 250001: Incorrect username or password was specified.; \
          fix: check the account, user and credentials of connection prod (snow connection test -c prod shows the details)"]
    );
    assert!(!result.stdout.contains("not tested"), "{}", result.stdout);
    assert_error(
        &result,
        1,
        "1 of 7 checks failed; each FAIL line says how to fix it",
    );
}

#[test]
fn broken_snowflake_config_and_python_mismatches_are_findings() {
    let (dir, root) = workspace();
    let home = snowflake_home(dir.path(), "[connections.test\n");
    // An app pinning another Streamlit than the virtualenv has.
    let env_file = root.join("applications/main_app/environment.yml");
    common::replace_in(&env_file, "streamlit=1.50.0", "streamlit=1.49.1");
    let result = run(&mut doctor(&root, &home, &repo_snow()));
    let fails = failures(&result.stdout);
    assert_eq!(fails.len(), 2, "{}", result.stdout);
    assert!(
        fails[0].starts_with(
            "FAIL  streamlit: main_app pins streamlit=1.49.1 in environment.yml, but "
        ),
        "{}",
        fails[0]
    );
    assert!(
        fails[0].ends_with("; fix: install streamlit==1.49.1 (requirements.txt, then `sluice setup`) or pin 1.50.0 in environment.yml"),
        "{}",
        fails[0]
    );
    assert!(
        fails[1].starts_with(&format!(
            "FAIL  snowflake config: {}:1: invalid TOML: ",
            home.join("config.toml").display()
        )),
        "{}",
        fails[1]
    );
}
