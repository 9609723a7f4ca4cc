//! `sluice test` and `sluice run`: pages run with the workspace's Python, the
//! apps folder on `sys.path` and `SLUICE_POSTGRES_URL` from the `local`
//! environment.
//!
//! `test` starts ONE Python process for all pages (importing Streamlit is
//! most of the cost): the runner script
//! (`python/sluice_runner/apptest_runner.py`) reads the list of pages on
//! stdin, runs each through `streamlit.testing.v1.AppTest`, and prints one
//! `@sluice {json}` line per page, which is read here as it arrives.
//!
//! Each app reads its local data from PostgreSQL or from a local Snowpark
//! session ([`crate::local_data`]); `run` starts Streamlit through
//! `streamlit_launcher.py`, which makes that session first. The runner
//! scripts ship inside the binary and are written once per version to
//! `.sluice/runner/<digest>/` (they import each other, which `python -c`
//! cannot do; a content-named folder is never rewritten, so concurrent runs
//! and older binaries never see a half-written or different script).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::ConfigError;
use crate::local_data::{local_data, local_postgres_url, LocalData};
use crate::python::{Python, PythonError};
use crate::workspace::{App, Workspace};
use crate::write_once::write_folder_once;

/// The runner scripts, shipped inside the binary: (file name, contents).
const RUNNER_SCRIPTS: [(&str, &str); 3] = [
    (
        APPTEST_RUNNER,
        include_str!("../../../python/sluice_runner/apptest_runner.py"),
    ),
    (
        "local_snowpark.py",
        include_str!("../../../python/sluice_runner/local_snowpark.py"),
    ),
    (
        STREAMLIT_LAUNCHER,
        include_str!("../../../python/sluice_runner/streamlit_launcher.py"),
    ),
];
const APPTEST_RUNNER: &str = "apptest_runner.py";
const STREAMLIT_LAUNCHER: &str = "streamlit_launcher.py";
/// Where the runner scripts are written, relative to the workspace root.
pub const RUNNER_DIR: &str = ".sluice/runner";
/// Tells `streamlit_launcher.py` to make the app's local Snowpark session.
const LOCAL_SNOWPARK_VARIABLE: &str = "SLUICE_LOCAL_SNOWPARK";
const RESULT_PREFIX: &str = "@sluice ";
/// The runner's exit status when Streamlit cannot be imported.
const NO_STREAMLIT_STATUS: i32 = 3;

/// Seconds a page may take before AppTest gives up on it.
pub const DEFAULT_PAGE_TIMEOUT: u32 = 30;

/// One page's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageOutcome {
    /// The app the page belongs to.
    pub app: String,
    /// The page file, relative to the app's folder (`dashboard.py`, `pages/x.py`).
    pub page: PathBuf,
    /// `None` when the page ran without an exception.
    pub error: Option<PageError>,
}

/// Why a page failed: the exception (`Type: message`) and its traceback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    pub message: String,
    pub traceback: String,
}

impl PageOutcome {
    pub fn passed(&self) -> bool {
        self.error.is_none()
    }
}

/// Why pages could not be run at all (as opposed to a page failing).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Python(#[from] PythonError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the page runner stopped unexpectedly ({status}){}", stderr_tail(.stderr))]
    RunnerCrashed { status: String, stderr: String },
    #[error("the page runner printed an unreadable result line: {0}")]
    BadResult(String),
    #[error("cannot talk to the page runner: {0}")]
    Io(std::io::Error),
    #[error("cannot write the page runner to {}: {error}", .path.display())]
    WriteRunner {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The folder holding this binary's runner scripts, written if missing.
fn runner_scripts(workspace: &Workspace) -> Result<PathBuf, RunError> {
    let mut digest = Sha256::new();
    for (name, text) in RUNNER_SCRIPTS {
        digest.update(name.as_bytes());
        digest.update([0]);
        digest.update(text.as_bytes());
    }
    let hex: String = digest.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = workspace.root().join(RUNNER_DIR).join(hex);
    let files: Vec<(PathBuf, Vec<u8>)> = RUNNER_SCRIPTS
        .iter()
        .map(|(name, text)| (PathBuf::from(name), text.as_bytes().to_vec()))
        .collect();
    write_folder_once(&dir, &files)
        .map_err(|(path, error)| RunError::WriteRunner { path, error })?;
    Ok(dir)
}

fn stderr_tail(stderr: &str) -> String {
    let last: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    match last.last() {
        Some(line) => format!(": {}", line.trim()),
        None => String::new(),
    }
}

#[derive(Debug, Deserialize)]
struct RunnerLine {
    file: Option<PathBuf>,
    ok: Option<bool>,
    error: Option<String>,
    traceback: Option<String>,
    fatal: Option<String>,
}

/// The environment variables pages run with: the apps folder on
/// `PYTHONPATH` and the `local` environment's PostgreSQL URL.
pub fn page_environment(workspace: &Workspace) -> Result<Vec<(String, OsString)>, ConfigError> {
    let mut path = workspace.apps_dir().into_os_string();
    if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(existing);
    }
    let mut vars = vec![
        ("PYTHONPATH".to_string(), path),
        (
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS".to_string(),
            "false".into(),
        ),
    ];
    // A workspace without a `local` environment simply has no local database.
    if let Some(url) = local_postgres_url(workspace)? {
        vars.push(("SLUICE_POSTGRES_URL".to_string(), url.into()));
    }
    Ok(vars)
}

/// Runs every page of `apps` headlessly, calling `on_page` as each finishes;
/// with `require_data`, a page that cannot reach its database fails.
pub fn test_pages(
    workspace: &Workspace,
    apps: &[App],
    python: &Python,
    timeout_seconds: u32,
    require_data: bool,
    mut on_page: impl FnMut(&PageOutcome),
) -> Result<Vec<PageOutcome>, RunError> {
    let mut pages = Vec::new();
    let mut owners: Vec<(&App, &Path)> = Vec::new();
    for app in apps {
        let snowpark = matches!(local_data(workspace, app)?, LocalData::Snowpark { .. });
        for page in &app.pages {
            pages.push(serde_json::json!({
                "app": app.name,
                "dir": app.dir,
                "file": page,
                "snowpark": snowpark,
            }));
            owners.push((app, page));
        }
    }
    let spec = serde_json::json!({
        "apps_dir": workspace.apps_dir(),
        "timeout": timeout_seconds,
        "pages": pages,
    });

    let mut command = python.command();
    command
        .arg(runner_scripts(workspace)?.join(APPTEST_RUNNER))
        .envs(page_environment(workspace)?);
    if require_data {
        // The base page class then fails a page that cannot reach its data
        // instead of letting it show its fallback.
        command.env("SLUICE_REQUIRE_DATA", "1");
    }
    let mut child = command
        .current_dir(workspace.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| PythonError::CannotRun {
            python: python.clone(),
            error: source,
        })?;

    // Read stderr on a thread so a chatty page cannot fill the pipe and stall.
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A runner that died at once closes the pipe; its status says why.
        let _ = stdin.write_all(spec.to_string().as_bytes());
    }

    let mut outcomes = Vec::new();
    let mut fatal = None;
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(RunError::Io)?;
        let Some(json) = line.strip_prefix(RESULT_PREFIX) else {
            continue;
        };
        let parsed: RunnerLine =
            serde_json::from_str(json).map_err(|_| RunError::BadResult(line.clone()))?;
        if let Some(message) = parsed.fatal {
            fatal = Some(message);
            continue;
        }
        let file = parsed
            .file
            .ok_or_else(|| RunError::BadResult(line.clone()))?;
        let Some((app, page)) = owners.iter().find(|(_, p)| *p == file) else {
            return Err(RunError::BadResult(line));
        };
        let outcome = PageOutcome {
            app: app.name.clone(),
            page: page.strip_prefix(&app.dir).unwrap_or(page).to_path_buf(),
            error: (parsed.ok != Some(true)).then(|| PageError {
                message: parsed.error.unwrap_or_else(|| "the page failed".into()),
                traceback: parsed.traceback.unwrap_or_default(),
            }),
        };
        on_page(&outcome);
        outcomes.push(outcome);
    }
    let status = child.wait().map_err(RunError::Io)?;
    let stderr = stderr_reader.join().unwrap_or_default();
    if status.code() == Some(NO_STREAMLIT_STATUS) || fatal.is_some() {
        return Err(PythonError::NoStreamlit(python.clone()).into());
    }
    if !status.success() || outcomes.len() != owners.len() {
        return Err(RunError::RunnerCrashed {
            status: describe(status),
            stderr,
        });
    }
    Ok(outcomes)
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    }
}

/// The `streamlit run` command for `app` (its `dashboard.py`, with `pages/`
/// as Streamlit's multi-page folder), run from the app's folder, with the
/// app's local data source ([`crate::local_data`]).
pub fn streamlit_command(
    workspace: &Workspace,
    app: &App,
    python: &Python,
    extra_args: &[String],
) -> Result<Command, RunError> {
    let mut command = python.command();
    command
        .arg(runner_scripts(workspace)?.join(STREAMLIT_LAUNCHER))
        .arg(sluice_rules::workspace::MAIN_FILE)
        .args(extra_args)
        .envs(page_environment(workspace)?)
        .current_dir(&app.dir);
    if let LocalData::Snowpark { .. } = local_data(workspace, app)? {
        command
            .env_remove("SLUICE_POSTGRES_URL")
            .env(LOCAL_SNOWPARK_VARIABLE, "1");
    }
    Ok(command)
}
