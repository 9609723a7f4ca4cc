//! Shared by the deploy tests: a workspace made by `sluice init`'s code,
//! git in a temporary repository, and the real Snowflake CLI's verdict on a
//! deployment folder.
#![allow(dead_code)] // each test file uses its own part

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_apps::scaffold::{self, InitOutcome};
use sluice_apps::Workspace;

/// A fresh workspace (`init` of project `analytics`, so databases are
/// `ANALYTICS_TEST` / `ANALYTICS_PROD`) with `sales_dashboard` and its page
/// `analytics`, next to `main_app`.
pub fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("analytics");
    let ws = match scaffold::init(&root).unwrap() {
        InitOutcome::Created { workspace, .. } => workspace,
        other => panic!("{other:?}"),
    };
    scaffold::new_app(&ws, "sales_dashboard").unwrap();
    scaffold::new_page(&ws, "sales_dashboard", "analytics").unwrap();
    (dir, ws)
}

/// Writes `text` to `path` (relative to the workspace root), creating folders.
pub fn write(ws: &Workspace, path: &str, text: &str) {
    let path = ws.root().join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Runs git in `dir` with a fixed identity; panics with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The repository's virtualenv `snow` (snowflake-cli, installed by
/// `scripts/setup.sh`). Missing: the test is skipped with a message, except
/// under CI (`CI=true`), which installs it, where that is a failure.
pub fn snow() -> Option<PathBuf> {
    let snow = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/snow");
    if snow.is_file() {
        return Some(snow);
    }
    let message = format!(
        "{} is missing: run `bash scripts/setup.sh` first",
        snow.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("skipping the Snowflake CLI check: {message}");
    None
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Asserts that the real `snow streamlit deploy --replace -p <folder>`
/// accepts `folder`: with a connection to a closed loopback port it
/// evaluates the project definition and bundles every artifact before it
/// connects, so a good folder ends in "Could not connect to Snowflake" and
/// a bad one in a definition or "No match was found" error.
#[track_caller]
pub fn assert_snow_accepts(folder: &Path) {
    let Some(snow) = snow() else { return };
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[connections.test]\naccount = \"sluice\"\nuser = \"u\"\npassword = \"p\"\n\
             host = \"127.0.0.1\"\nport = {}\nprotocol = \"http\"\n",
            closed_port()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let output = Command::new(&snow)
        .arg("--config-file")
        .arg(&config)
        .args(["streamlit", "deploy", "--replace", "-p"])
        .arg(folder)
        .args(["-c", "test"])
        .env("HOME", home.path())
        .env("SNOWFLAKE_HOME", home.path().join(".snowflake"))
        .output()
        .expect("snow runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("Could not connect to Snowflake"),
        "snow rejected {}:\n{text}",
        folder.display()
    );
}
