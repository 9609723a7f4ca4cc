//! What the binary's integration tests share: running `sluice` with a clean environment and the
//! repository's virtualenv, and asserting one-line errors.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's virtualenv Python (Streamlit, pytest, psycopg, the Snowflake CLI).
pub fn repo_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `bash scripts/setup.sh` first",
        python.display()
    );
    python
}

/// `sluice` run in `dir`, with no `SLUICE_*` or GitLab variables from the caller, and the
/// repository's Python for pages.
pub fn sluice(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("SLUICE_") || key.starts_with("GITLAB_") {
            command.env_remove(key);
        }
    }
    command.env("SLUICE_PYTHON", repo_python());
    command
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(command: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("sluice runs");
    Run {
        code: status.code().expect("exit code"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Runs `command` and asserts it succeeded.
#[track_caller]
pub fn ok(command: &mut Command) -> Run {
    let result = run(command);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    result
}

/// Asserts a one-line error: exit `code`, stderr exactly `sluice: message`.
#[track_caller]
pub fn assert_error(result: &Run, code: i32, message: &str) {
    assert_eq!(
        (result.code, result.stderr.as_str()),
        (code, format!("sluice: {message}\n").as_str()),
        "stdout: {}",
        result.stdout
    );
}
