//! Which Python runs pages, and `sluice setup`, which prepares the
//! workspace's virtualenv.
//!
//! Resolution order: `$SLUICE_PYTHON`, then `<workspace>/.venv/bin/python`,
//! then `python3` on `PATH`. The chosen interpreter must import Streamlit;
//! when it cannot, the error says which interpreter was tried and suggests
//! `sluice setup`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::workspace::Workspace;

/// Environment variable naming the Python to use (wins over the virtualenv).
pub const PYTHON_VARIABLE: &str = "SLUICE_PYTHON";
/// Extra `pip install` arguments for `sluice setup` (whitespace-separated),
/// e.g. `--no-index --find-links /wheels` on a machine without network.
pub const PIP_ARGS_VARIABLE: &str = "SLUICE_PIP_ARGS";
/// The workspace's virtualenv folder.
pub const VENV_DIR: &str = ".venv";
/// The file listing the packages `sluice setup` installs.
pub const REQUIREMENTS_FILE: &str = "requirements.txt";
/// Packages installed when the workspace has no `requirements.txt`.
pub const DEFAULT_REQUIREMENTS: &str =
    "streamlit==1.50.0\npytest==8.4.2\npsycopg[binary]==3.2.10\n\
     snowflake-snowpark-python==1.53.0\nduckdb==1.4.5\n";
/// Inside the virtualenv: the digest of the requirements last installed.
const STAMP_FILE: &str = ".sluice-requirements";

/// A Python interpreter and why it was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Python {
    /// The program to run.
    pub program: PathBuf,
    /// Where it came from, for messages: `SLUICE_PYTHON`, `the workspace's .venv`, `python3 on PATH`.
    pub origin: &'static str,
}

/// Why no usable Python was found, or setup failed.
#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error("cannot run {} ({}): {error}", .python.program.display(), .python.origin)]
    CannotRun {
        python: Python,
        error: std::io::Error,
    },
    #[error(
        "{} ({}) cannot import streamlit; run `sluice setup` to create the workspace's virtualenv, or set SLUICE_PYTHON",
        .0.program.display(), .0.origin
    )]
    NoStreamlit(Python),
    #[error("{what} failed ({status}); see the output above")]
    SetupStep { what: String, status: String },
    #[error("{}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl Python {
    /// Picks the interpreter for `workspace` (see the module doc).
    pub fn resolve(workspace: &Workspace) -> Python {
        Python::resolve_with(workspace.root(), std::env::var_os(PYTHON_VARIABLE))
    }

    fn resolve_with(root: &Path, variable: Option<std::ffi::OsString>) -> Python {
        if let Some(program) = variable.filter(|v| !v.is_empty()) {
            return Python {
                program: program.into(),
                origin: PYTHON_VARIABLE,
            };
        }
        let venv = venv_python(root);
        if venv.is_file() {
            return Python {
                program: venv,
                origin: "the workspace's .venv",
            };
        }
        Python {
            program: PathBuf::from("python3"),
            origin: "python3 on PATH",
        }
    }

    /// A command running this interpreter.
    pub fn command(&self) -> Command {
        Command::new(&self.program)
    }

    /// Succeeds when this interpreter can import Streamlit.
    pub fn require_streamlit(&self) -> Result<(), PythonError> {
        let status = self
            .command()
            .args(["-c", "import streamlit"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|source| PythonError::CannotRun {
                python: self.clone(),
                error: source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(PythonError::NoStreamlit(self.clone()))
        }
    }
}

/// `<root>/.venv/bin/python`.
pub fn venv_python(root: &Path) -> PathBuf {
    root.join(VENV_DIR).join("bin").join("python")
}

/// What `sluice setup` did, one line per step, for printing.
#[derive(Debug, Default)]
pub struct SetupReport {
    pub steps: Vec<String>,
}

/// Creates `<workspace>/.venv` if missing and installs `requirements.txt`
/// into it unless the same requirements were already installed. Safe to run
/// again: a second run changes nothing and says so.
///
/// `base` is the Python that creates the virtualenv (`python3` by default).
/// Output of `venv` and `pip` goes to the terminal (`pip -q`).
pub fn setup(workspace: &Workspace, base: &Path) -> Result<SetupReport, PythonError> {
    let mut report = SetupReport::default();
    let root = workspace.root();
    let venv = root.join(VENV_DIR);
    let python = venv_python(root);
    if python.is_file() {
        report.steps.push(format!(
            "virtualenv {} exists",
            workspace.relative(&venv).display()
        ));
    } else {
        run_step(
            Command::new(base).arg("-m").arg("venv").arg(&venv),
            &format!("{} -m venv {}", base.display(), venv.display()),
        )?;
        report.steps.push(format!(
            "created virtualenv {} with {}",
            workspace.relative(&venv).display(),
            base.display()
        ));
    }

    let requirements_path = root.join(REQUIREMENTS_FILE);
    let (requirements, shown) = if requirements_path.is_file() {
        let text =
            std::fs::read_to_string(&requirements_path).map_err(|source| PythonError::Io {
                path: requirements_path.clone(),
                error: source,
            })?;
        (text, REQUIREMENTS_FILE.to_string())
    } else {
        (
            DEFAULT_REQUIREMENTS.to_string(),
            "the default packages".to_string(),
        )
    };
    let digest = format!("{:016x}", fnv1a(requirements.as_bytes()));
    let stamp = venv.join(STAMP_FILE);
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == digest) {
        report
            .steps
            .push(format!("packages from {shown} already installed"));
        return Ok(report);
    }

    let packages: Vec<&str> = requirements
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    if !packages.is_empty() {
        let listed = venv.join(".sluice-requirements.txt");
        std::fs::write(&listed, packages.join("\n") + "\n").map_err(|source| PythonError::Io {
            path: listed.clone(),
            error: source,
        })?;
        let mut pip = Command::new(&python);
        pip.args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&listed);
        let extra = std::env::var(PIP_ARGS_VARIABLE).unwrap_or_default();
        pip.args(extra.split_whitespace());
        run_step(&mut pip, "pip install")?;
    }
    std::fs::write(&stamp, format!("{digest}\n")).map_err(|source| PythonError::Io {
        path: stamp.clone(),
        error: source,
    })?;
    report.steps.push(if packages.is_empty() {
        format!("no packages listed in {shown}")
    } else {
        format!("installed from {shown}: {}", packages.join(", "))
    });
    Ok(report)
}

fn run_step(command: &mut Command, what: &str) -> Result<(), PythonError> {
    let status = command
        .stdin(Stdio::null())
        .status()
        .map_err(|source| PythonError::Io {
            path: PathBuf::from(command.get_program()),
            error: source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(PythonError::SetupStep {
            what: what.to_string(),
            status: status.to_string(),
        })
    }
}

/// A stable digest (FNV-1a, 64 bits) of the requirements: enough to notice
/// an edit, without a hashing dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let chosen = Python::resolve_with(root, Some("/opt/py".into()));
        assert_eq!(chosen.program, PathBuf::from("/opt/py"));
        assert_eq!(chosen.origin, "SLUICE_PYTHON");

        let chosen = Python::resolve_with(root, None);
        assert_eq!(chosen.program, PathBuf::from("python3"));

        std::fs::create_dir_all(root.join(".venv/bin")).unwrap();
        std::fs::write(root.join(".venv/bin/python"), "").unwrap();
        let chosen = Python::resolve_with(root, Some("".into()));
        assert_eq!(chosen.program, root.join(".venv/bin/python"));
    }

    #[test]
    fn digest_changes_with_text() {
        assert_ne!(fnv1a(b"streamlit==1.50.0"), fnv1a(b"streamlit==1.49.0"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
