//! `sluice doctor`: is this machine ready to run, test and deploy the
//! workspace's apps? Each check is one [`Finding`], printed as one line that
//! says what is wrong and how to fix it.
//!
//! Checks, in order:
//! - **python**: the Python that runs pages ([`Python::resolve`]) against the
//!   Snowflake runtime each app uses: the warehouse runtime runs Python
//!   3.9–3.11; a container runtime (`runtime_name:
//!   SYSTEM$ST_CONTAINER_RUNTIME_PY3_11`, or a `compute_pool`, in the app's
//!   `snowflake.yml`, read with the one model of that file,
//!   `sluice_rules::project_file`) the version its name says.
//! - **streamlit**: the Streamlit installed in that Python against the
//!   version each app pins in `environment.yml` (or `requirements.txt`).
//! - **snow**: the Snowflake CLI deploy runs, and its version.
//! - **connection**: each environment's `connection` in the Snowflake CLI's
//!   configuration, found as `snow` finds it: the folder `$SNOWFLAKE_HOME`
//!   (default `~/.snowflake`) when it exists, else `~/.config/snowflake`;
//!   there `connections.toml` (top-level `[name]` tables) when it exists,
//!   else `config.toml`'s `[connections.name]`. `SNOWFLAKE_CONNECTIONS_<NAME>_<KEY>`
//!   variables fill in keys, but `snow` 3 only reads them into a section
//!   that exists, so variables alone are reported as a failure.
//! - with `--online`, `snow connection test -c NAME` for each connection.
//!
//! The Python and Streamlit checks are here; [`snowflake`] has `snow` and
//! the connections. The Snowflake files are TOML and read with the `toml` crate (the
//! workspace's TOML parser, also behind the gateway's configuration). The
//! process environment is passed in as a map, so tests never change it.

mod snowflake;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;

use sluice_rules::project_file::{
    self, container_python, ProjectFile, CONDA_FILE, PIP_FILES, PROJECT_FILE,
};

use crate::python::Python;
use crate::workspace::{App, Workspace};

/// The warehouse runtime's Python versions (Streamlit in Snowflake), inclusive.
pub const WAREHOUSE_PYTHON: ((u32, u32), (u32, u32)) = ((3, 9), (3, 11));
/// How many app names a line lists before "and N more".
const NAMES_SHOWN: usize = 3;

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    /// Works, but worth fixing (not counted as a failure).
    Warn,
    /// Broken: `sluice doctor` exits 1.
    Fail,
}

/// One checked thing: one line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    /// What was checked: `python`, `streamlit`, `snow`, `connection test`, ...
    pub subject: String,
    pub message: String,
    /// How to fix it (every warning and failure has one).
    pub fix: Option<String>,
}

impl Finding {
    pub(super) fn ok(subject: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            status: Status::Ok,
            subject: subject.into(),
            message: message.into(),
            fix: None,
        }
    }

    pub(super) fn problem(
        status: Status,
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status,
            subject: subject.into(),
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.status {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        // One line, whatever a tool's message held.
        let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        write!(
            f,
            "{label:<5} {}: {}",
            self.subject,
            one_line(&self.message)
        )?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {}", one_line(fix))?;
        }
        Ok(())
    }
}

/// What the doctor runs and reads.
#[derive(Debug, Clone)]
pub struct Doctor {
    /// The Python pages run with.
    pub python: Python,
    /// The `snow` program deploy runs, and where that choice came from.
    pub snow: PathBuf,
    pub snow_origin: String,
    /// Also run `snow connection test` for each connection.
    pub online: bool,
    /// The process environment (`HOME`, `SNOWFLAKE_HOME`, `SNOWFLAKE_CONNECTIONS_*`, `SLUICE_*`).
    pub vars: BTreeMap<String, String>,
}

/// Every finding for `workspace`, in the order of the module doc.
pub fn diagnose(workspace: &Workspace, doctor: &Doctor) -> Vec<Finding> {
    let apps = workspace.apps();
    let mut findings = Vec::new();
    match probe_python(&doctor.python) {
        Err(finding) => findings.push(finding),
        Ok(found) => {
            let shown = shown_program(workspace, &doctor.python.program);
            findings.extend(python_findings(&shown, found.version, &apps));
            findings.extend(streamlit_findings(
                &shown,
                found.streamlit.as_deref(),
                &apps,
            ));
        }
    }
    findings.push(snowflake::snow_finding(workspace, doctor));
    findings.extend(snowflake::connection_findings(workspace, doctor));
    findings
}

/// The interpreter's path relative to the workspace when inside it.
fn shown_program(workspace: &Workspace, program: &Path) -> String {
    workspace.relative(program).display().to_string()
}

/// What the page Python reports about itself.
#[derive(Debug, Deserialize)]
struct PythonFacts {
    version: (u32, u32, u32),
    streamlit: Option<String>,
}

/// Asks the interpreter for its version and its Streamlit's (from package
/// metadata, so nothing heavy is imported).
const PYTHON_PROBE: &str = "import json, sys\n\
try:\n    from importlib.metadata import version\n    streamlit = version('streamlit')\n\
except Exception:\n    streamlit = None\n\
print(json.dumps({'version': list(sys.version_info[:3]), 'streamlit': streamlit}))\n";

fn probe_python(python: &Python) -> Result<PythonFacts, Finding> {
    let fix = "run `sluice setup` to create the workspace's .venv, or set SLUICE_PYTHON";
    let output = python
        .command()
        .args(["-c", PYTHON_PROBE])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| {
            Finding::problem(
                Status::Fail,
                "python",
                format!(
                    "cannot run {} ({}): {error}",
                    python.program.display(),
                    python.origin
                ),
                fix,
            )
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).map_err(|_| {
        Finding::problem(
            Status::Fail,
            "python",
            format!(
                "{} ({}) did not answer like a Python 3 interpreter ({})",
                python.program.display(),
                python.origin,
                first_line(&String::from_utf8_lossy(&output.stderr)).unwrap_or("no output")
            ),
            fix,
        )
    })
}

/// The Python an app's Snowflake runtime runs: an inclusive (major, minor) range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Runtime {
    Warehouse,
    /// A container runtime and its one Python.
    Container {
        python: (u32, u32),
    },
}

impl Runtime {
    fn python_range(self) -> ((u32, u32), (u32, u32)) {
        match self {
            Runtime::Warehouse => WAREHOUSE_PYTHON,
            Runtime::Container { python } => (python, python),
        }
    }

    fn describe(self) -> String {
        let ((a, b), (c, d)) = self.python_range();
        match self {
            Runtime::Warehouse => format!("the warehouse runtime's Python {a}.{b}-{c}.{d}"),
            Runtime::Container { .. } => format!("the container runtime's Python {a}.{b}"),
        }
    }
}

/// The runtime of `app`, as its `snowflake.yml` decides it
/// ([`ProjectFile::runtime`]); warehouse when the file is missing or broken
/// (the compliance check reports broken files).
pub fn app_runtime(app: &App) -> Runtime {
    let project = std::fs::read_to_string(app.dir.join(PROJECT_FILE))
        .ok()
        .and_then(|text| ProjectFile::parse(&text).ok());
    match project.map(|p| p.runtime()) {
        Some(project_file::Runtime::Container(name)) => Runtime::Container {
            python: container_python(&name),
        },
        _ => Runtime::Warehouse,
    }
}

fn python_findings(shown: &str, version: (u32, u32, u32), apps: &[App]) -> Vec<Finding> {
    let mut by_runtime: BTreeMap<Runtime, Vec<&str>> = BTreeMap::new();
    for app in apps {
        by_runtime
            .entry(app_runtime(app))
            .or_default()
            .push(&app.name);
    }
    if by_runtime.is_empty() {
        by_runtime.insert(Runtime::Warehouse, Vec::new());
    }
    let (major, minor, patch) = version;
    by_runtime
        .into_iter()
        .map(|(runtime, names)| {
            let (low, high) = runtime.python_range();
            let who = if names.is_empty() {
                "no apps yet".to_string()
            } else {
                format!("apps: {}", name_list(&names))
            };
            if (low..=high).contains(&(major, minor)) {
                Finding::ok(
                    "python",
                    format!(
                        "{shown} is Python {major}.{minor}.{patch}, within {} ({who})",
                        runtime.describe()
                    ),
                )
            } else {
                let want = format!("{}.{}", high.0, high.1);
                Finding::problem(
                    Status::Fail,
                    "python",
                    format!(
                        "{shown} is Python {major}.{minor}.{patch}, but Snowflake runs these apps with {} ({who}), so local runs are no evidence",
                        runtime.describe()
                    ),
                    format!(
                        "recreate the virtualenv with Python {want}: rm -rf .venv && python{want} -m venv .venv && sluice setup (or set SLUICE_PYTHON)"
                    ),
                )
            }
        })
        .collect()
}

/// How an app names Streamlit in its packages file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamlitPin {
    /// `environment.yml` or `requirements.txt`.
    pub file: &'static str,
    /// The entry as written (`streamlit=1.50.0`).
    pub entry: String,
    /// The version it pins exactly (`=` is a conda prefix pin, `==` exact);
    /// `None` for no version or a range.
    pub version: Option<String>,
}

/// The app's Streamlit entry: `environment.yml`'s `dependencies` (warehouse
/// runtime) or else `requirements.txt` (container runtime). `None` when the
/// app lists no Streamlit or has neither file.
pub fn streamlit_pin(app_dir: &Path) -> Option<StreamlitPin> {
    if let Ok(text) = std::fs::read_to_string(app_dir.join(CONDA_FILE)) {
        #[derive(Deserialize)]
        struct CondaEnvironment {
            #[serde(default)]
            dependencies: Vec<serde_norway::Value>,
        }
        let environment: CondaEnvironment = serde_norway::from_str(&text).ok()?;
        return environment
            .dependencies
            .iter()
            .filter_map(|d| d.as_str())
            .find_map(|entry| parse_pin(CONDA_FILE, entry));
    }
    let [requirements, _] = PIP_FILES;
    let text = std::fs::read_to_string(app_dir.join(requirements)).ok()?;
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .find_map(|entry| parse_pin(requirements, entry))
}

fn parse_pin(file: &'static str, entry: &str) -> Option<StreamlitPin> {
    let entry = entry.trim();
    let name_end = entry
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .unwrap_or(entry.len());
    if !entry[..name_end].eq_ignore_ascii_case("streamlit") {
        return None;
    }
    let spec = entry[name_end..].trim();
    let version = spec
        .strip_prefix("==")
        .or_else(|| spec.strip_prefix('='))
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_string);
    Some(StreamlitPin {
        file,
        entry: entry.to_string(),
        version,
    })
}

/// Whether `installed` satisfies the pin `wanted` (`1.50` pins 1.50.*).
fn version_matches(installed: &str, wanted: &str) -> bool {
    let have: Vec<&str> = installed.split('.').collect();
    let want: Vec<&str> = wanted.split('.').collect();
    want.len() <= have.len() && want.iter().zip(&have).all(|(w, h)| w == h)
}

fn streamlit_findings(shown: &str, installed: Option<&str>, apps: &[App]) -> Vec<Finding> {
    let Some(installed) = installed else {
        return vec![Finding::problem(
            Status::Fail,
            "streamlit",
            format!("{shown} has no Streamlit, so pages cannot run"),
            "run `sluice setup` (it installs requirements.txt into .venv)",
        )];
    };
    let mut by_pin: BTreeMap<StreamlitPin, Vec<&str>> = BTreeMap::new();
    for app in apps {
        if let Some(pin) = streamlit_pin(&app.dir) {
            by_pin.entry(pin).or_default().push(&app.name);
        }
    }
    if by_pin.is_empty() {
        return vec![Finding::ok(
            "streamlit",
            format!("{shown} has Streamlit {installed} (no app pins a version)"),
        )];
    }
    by_pin
        .into_iter()
        .map(|(pin, names)| {
            let who = name_list(&names);
            match &pin.version {
                Some(wanted) if version_matches(installed, wanted) => Finding::ok(
                    "streamlit",
                    format!(
                        "{shown} has Streamlit {installed}, as {who} pin{} in {} ({})",
                        verb_s(names.len()),
                        pin.file,
                        pin.entry
                    ),
                ),
                Some(wanted) => Finding::problem(
                    Status::Fail,
                    "streamlit",
                    format!(
                        "{who} pin{} {} in {}, but {shown} has Streamlit {installed}: local tests run another Streamlit than Snowflake",
                        verb_s(names.len()),
                        pin.entry,
                        pin.file
                    ),
                    format!(
                        "install streamlit=={wanted} (requirements.txt, then `sluice setup`) or pin {installed} in {}",
                        pin.file
                    ),
                ),
                None => Finding::problem(
                    Status::Warn,
                    "streamlit",
                    format!(
                        "{who} list{} `{}` in {} without an exact version, so Snowflake chooses one",
                        verb_s(names.len()),
                        pin.entry,
                        pin.file
                    ),
                    format!("pin the version tested here: streamlit{}{installed}", if pin.file == "environment.yml" { "=" } else { "==" }),
                ),
            }
        })
        .collect()
}

/// "pins" for one app, "pin" for several.
fn verb_s(count: usize) -> &'static str {
    if count == 1 {
        "s"
    } else {
        ""
    }
}

/// `a, b, c and 4 more`.
fn name_list(names: &[&str]) -> String {
    let mut shown = names
        .iter()
        .take(NAMES_SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMES_SHOWN {
        shown.push_str(&format!(" and {} more", names.len() - NAMES_SHOWN));
    }
    shown
}

pub(super) fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

/// How many findings are warnings and how many failures.
pub fn summary(findings: &[Finding]) -> (usize, usize) {
    let count = |s| findings.iter().filter(|f| f.status == s).count();
    (count(Status::Warn), count(Status::Fail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_from_conda_and_pip_entries() {
        let pin = parse_pin("environment.yml", "streamlit=1.50.0").unwrap();
        assert_eq!(pin.version.as_deref(), Some("1.50.0"));
        let pin = parse_pin("requirements.txt", "streamlit == 1.49").unwrap();
        assert_eq!(pin.version.as_deref(), Some("1.49"));
        assert_eq!(
            parse_pin("requirements.txt", "streamlit>=1.40")
                .unwrap()
                .version,
            None
        );
        assert_eq!(
            parse_pin("environment.yml", "streamlit").unwrap().version,
            None
        );
        assert!(parse_pin("environment.yml", "streamlit-aggrid=1.0").is_none());
        assert!(parse_pin("environment.yml", "pandas").is_none());
    }

    #[test]
    fn a_conda_pin_is_a_prefix() {
        assert!(version_matches("1.50.0", "1.50.0"));
        assert!(version_matches("1.50.0", "1.50"));
        assert!(!version_matches("1.5.0", "1.50"));
        assert!(!version_matches("1.50", "1.50.0"));
    }

    #[test]
    fn python_is_judged_against_each_apps_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let app = |name: &str, snowflake_yml: &str| {
            let app_dir = dir.path().join(name);
            std::fs::create_dir_all(&app_dir).unwrap();
            std::fs::write(app_dir.join("snowflake.yml"), snowflake_yml).unwrap();
            App {
                name: name.into(),
                dir: app_dir,
                pages: Vec::new(),
                files: Vec::new(),
            }
        };
        let apps = [
            app("classic", "definition_version: '2'\nentities:\n  classic:\n    type: streamlit\n"),
            app(
                "boxed",
                "definition_version: '2'\nentities:\n  boxed:\n    type: streamlit\n    runtime_name: SYSTEM$ST_CONTAINER_RUNTIME_PY3_11\n",
            ),
        ];
        assert_eq!(
            app_runtime(&apps[1]),
            Runtime::Container { python: (3, 11) }
        );
        // A compute pool alone means the default container runtime, as `snow` has it.
        let pooled = app(
            "pooled",
            "definition_version: '2'\nentities:\n  pooled:\n    type: streamlit\n    compute_pool: POOL\n",
        );
        assert_eq!(app_runtime(&pooled), Runtime::Container { python: (3, 11) });
        let statuses = |version| {
            python_findings(".venv/bin/python", version, &apps)
                .into_iter()
                .map(|f| f.status)
                .collect::<Vec<_>>()
        };
        assert_eq!(statuses((3, 11, 7)), [Status::Ok, Status::Ok]);
        assert_eq!(statuses((3, 10, 2)), [Status::Ok, Status::Fail]);
        let findings = python_findings(".venv/bin/python", (3, 12, 1), &apps);
        assert_eq!(findings[0].to_string(),
            "FAIL  python: .venv/bin/python is Python 3.12.1, but Snowflake runs these apps with the warehouse runtime's Python 3.9-3.11 (apps: classic), so local runs are no evidence; \
             fix: recreate the virtualenv with Python 3.11: rm -rf .venv && python3.11 -m venv .venv && sluice setup (or set SLUICE_PYTHON)");
    }
}
