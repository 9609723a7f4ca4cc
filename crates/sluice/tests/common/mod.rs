//! What the binary's integration tests share: running `sluice` with a clean environment and the
//! repository's virtualenv, and asserting one-line errors.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's virtualenv Python (Streamlit, pytest, psycopg, the Snowflake CLI).
pub fn repo_python() -> PathBuf {
    repo_venv_program("python")
}

/// A program of the repository's virtualenv (`python`, `snow`), which must exist.
pub fn repo_venv_program(name: &str) -> PathBuf {
    let program = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.venv/bin")
        .join(name);
    assert!(
        program.is_file(),
        "{} is missing: run `bash scripts/setup.sh` first",
        program.display()
    );
    program
}

/// Replaces `from` by `to` in the file `path`, which must contain it (an
/// edit that changes nothing would make the test prove nothing).
pub fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// Writes the executable script `text` to `path`: a stand-in `snow` or
/// Python for the commands a test drives.
pub fn write_script(path: &Path, text: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// A fresh workspace made by `sluice init ws` in a temporary folder: the
/// folder (kept alive by the guard) and the workspace root.
pub fn init_workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    ok(sluice(dir.path()).args(["init", "ws"]));
    let root = dir.path().join("ws").canonicalize().unwrap();
    (dir, root)
}

/// Copies the folder `from` to `to`, recursively (fixture apps into workspaces).
pub fn copy_dir(from: &Path, to: &Path) {
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
