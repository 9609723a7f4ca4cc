//! Runtime rules (`runtime_rules`).
//!
//! ## What it does
//! Reads the app's runtime from its own `snowflake.yml` (the one model of
//! the file, [`crate::project_file`]) and checks that its packages are
//! declared where that runtime reads them:
//! - the **warehouse runtime** (the default) installs conda packages from
//!   `environment.yml` only;
//! - a **container runtime** (`runtime_name: SYSTEM$ST_CONTAINER_RUNTIME_...`,
//!   or a `compute_pool` alone) installs pip packages from `requirements.txt`
//!   or `pyproject.toml` (with uv), runs Python 3.11 only, and needs
//!   Streamlit `container_min_streamlit` (default 1.50) or later, so a
//!   `streamlit` requirement that excludes every such version, or a
//!   `requires-python` that excludes the runtime's Python, is a violation.
//!
//! Requirement lines and version specifiers are read with `pep508_rs` /
//! `pep440_rs` (the parsers uv is built on), `pyproject.toml` with `toml`.
//! An app without `snowflake.yml` is the file rules' business.
//!
//! ## Why
//! A package file the runtime does not read is ignored by Snowflake without
//! a word: the app deploys and then fails on its first import.
//!
//! ## Example
//! ```yaml
//! runtime_rules:
//!   - id: runtime-packages
//!     name: Packages match the runtime
//!     severity: error
//! ```
//! An app with `compute_pool: POOL` and only an `environment.yml` gets
//! "container runtime `SYSTEM$ST_CONTAINER_RUNTIME_PY3_11` installs packages
//! from requirements.txt or pyproject.toml, and the app has neither ...".

use std::str::FromStr;

use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{Requirement, VersionOrUrl};

use super::{AppContext, Findings, RuleError, RuleMeta};
use crate::config::RuntimeRuleEntry;
use crate::project_file::{
    container_python, ProjectFile, Runtime, CONDA_FILE, PIP_FILES, PROJECT_FILE,
};

#[derive(Debug, Clone)]
pub struct RuntimeRule {
    min_streamlit: Version,
}

impl RuntimeRule {
    pub fn new(e: RuntimeRuleEntry) -> Result<RuntimeRule, RuleError> {
        let min_streamlit = Version::from_str(e.container_min_streamlit.trim()).map_err(|_| {
            RuleError::InvalidVersion {
                key: "container_min_streamlit",
                value: e.container_min_streamlit.clone(),
            }
        })?;
        Ok(RuntimeRule { min_streamlit })
    }

    pub fn summary(&self) -> String {
        format!(
            "warehouse apps have {CONDA_FILE}; container apps have {} with Streamlit >= {} and Python 3.11",
            PIP_FILES.join(" or "),
            self.min_streamlit
        )
    }

    pub fn check(&self, meta: &RuleMeta, ctx: &AppContext, out: &mut Findings) {
        let top = |name: &str| format!("{}/{name}", ctx.app.dir);
        let has = |name: &str| {
            let path = top(name);
            ctx.app.files.contains(&path) && meta.applies_to(&path)
        };
        let project_path = top(PROJECT_FILE);
        if !has(PROJECT_FILE) {
            return;
        }
        let mut report = |file: &str, line: u32, message: String| {
            out.push(meta, ctx.app, file, Some((line, line)), message);
        };
        let Ok(text) = std::fs::read_to_string(ctx.root.join(&project_path)) else {
            return report(&project_path, 1, "cannot read snowflake.yml".into());
        };
        let project = match ProjectFile::parse(&text) {
            Ok(project) => project,
            Err(e) => return report(&project_path, e.line, e.message),
        };
        let runtime_line = if project.get("runtime_name").is_some() {
            project.line_of("runtime_name")
        } else {
            project.line_of("compute_pool")
        };
        match project.runtime() {
            Runtime::Warehouse => {
                if !has(CONDA_FILE) {
                    let also = PIP_FILES
                        .iter()
                        .find(|f| has(f))
                        .map(|f| format!(" ({f} is read only by a container runtime)"))
                        .unwrap_or_default();
                    report(
                        &project_path,
                        runtime_line,
                        format!(
                            "the warehouse runtime installs packages from {CONDA_FILE} only, and the app has none{also}"
                        ),
                    );
                }
            }
            Runtime::Container(name) => {
                if !PIP_FILES.iter().any(|f| has(f)) {
                    report(
                        &project_path,
                        runtime_line,
                        format!(
                            "container runtime `{name}` installs packages from {}, and the app has neither ({CONDA_FILE} is read only by the warehouse runtime)",
                            PIP_FILES.join(" or ")
                        ),
                    );
                }
                for file in PIP_FILES.iter().filter(|f| has(f)) {
                    let path = top(file);
                    let Ok(text) = std::fs::read_to_string(ctx.root.join(&path)) else {
                        report(&path, 1, format!("cannot read {file}"));
                        continue;
                    };
                    for (line, message) in self.container_packages(file, &text, &name) {
                        report(&path, line, message);
                    }
                }
            }
        }
    }

    /// What is wrong with a container app's `requirements.txt` or
    /// `pyproject.toml` for runtime `runtime`: (line, message).
    fn container_packages(&self, file: &str, text: &str, runtime: &str) -> Vec<(u32, String)> {
        let mut problems = Vec::new();
        let requirements: Vec<(u32, String)> = if file == "pyproject.toml" {
            let doc: toml::Table = match text.parse() {
                Ok(doc) => doc,
                Err(e) => return vec![(1, format!("invalid TOML: {}", e.message()))],
            };
            let project = doc.get("project").and_then(|p| p.as_table());
            if let Some(requires) = project
                .and_then(|p| p.get("requires-python"))
                .and_then(|r| r.as_str())
            {
                let python = runtime_python(runtime);
                let admits = VersionSpecifiers::from_str(requires)
                    .map(|s| (0..=30).any(|patch| s.contains(&python.with_patch(patch))));
                if admits.is_ok_and(|ok| !ok) {
                    problems.push((
                        line_containing(text, "requires-python"),
                        format!(
                            "requires-python `{requires}` excludes Python {}, the Python of container runtime `{runtime}`",
                            python.short
                        ),
                    ));
                }
            }
            project
                .and_then(|p| p.get("dependencies"))
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str())
                .map(|d| (line_containing(text, d), d.to_string()))
                .collect()
        } else {
            text.lines()
                .enumerate()
                .map(|(i, l)| {
                    (
                        i as u32 + 1,
                        l.split(" #").next().unwrap_or(l).trim().to_string(),
                    )
                })
                // Options (`-r`, `--index-url`), comments and local wheels are not PEP 508 lines.
                .filter(|(_, l)| {
                    !l.is_empty() && !l.starts_with(['#', '-', '.', '/']) && !l.ends_with(".whl")
                })
                .collect()
        };
        for (line, spec) in requirements {
            match Requirement::<pep508_rs::VerbatimUrl>::from_str(&spec) {
                Ok(req) if req.name.as_ref() == "streamlit" => {
                    if let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &req.version_or_url {
                        if !self.admits_supported_streamlit(specifiers) {
                            problems.push((
                                line,
                                format!(
                                    "`{spec}` excludes Streamlit {} and later, which container runtime `{runtime}` needs",
                                    self.min_streamlit
                                ),
                            ));
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => problems.push((
                    line,
                    format!(
                        "`{spec}` is not a requirement: {}",
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                )),
            }
        }
        problems
    }

    /// Whether some Streamlit version >= the minimum satisfies `specifiers`:
    /// tried on the minimum, every version the specifiers name above it, and
    /// a far-future one (an open upper end).
    fn admits_supported_streamlit(&self, specifiers: &VersionSpecifiers) -> bool {
        let far = Version::from_str("9999").expect("a version");
        std::iter::once(self.min_streamlit.clone())
            .chain(specifiers.iter().map(|s| s.version().clone()))
            .chain([far])
            .filter(|v| *v >= self.min_streamlit)
            .any(|v| specifiers.contains(&v))
    }
}

/// A container runtime's Python ([`container_python`]: `..._PY3_11` → 3.11).
struct PythonVersion {
    short: String,
}

impl PythonVersion {
    fn with_patch(&self, patch: u32) -> Version {
        Version::from_str(&format!("{}.{patch}", self.short)).expect("a version")
    }
}

fn runtime_python(runtime: &str) -> PythonVersion {
    let (major, minor) = container_python(runtime);
    PythonVersion {
        short: format!("{major}.{minor}"),
    }
}

/// The first line containing `needle` (1 when none).
fn line_containing(text: &str, needle: &str) -> u32 {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> RuntimeRule {
        RuntimeRule {
            min_streamlit: Version::from_str("1.50").unwrap(),
        }
    }

    fn problems(file: &str, text: &str) -> Vec<(u32, String)> {
        rule().container_packages(file, text, "SYSTEM$ST_CONTAINER_RUNTIME_PY3_11")
    }

    #[test]
    fn streamlit_pins_are_judged_by_the_versions_they_admit() {
        let text = "pandas\nstreamlit==1.52.1  # pinned\n-r more.txt\n./wheels/x.whl\n";
        assert!(problems("requirements.txt", text).is_empty());
        for bad in [
            "streamlit==1.35.0",
            "streamlit<1.50",
            "streamlit~=1.49.0",
            "streamlit>=1.40,<1.45",
        ] {
            let found = problems("requirements.txt", &format!("pandas\n{bad}\n"));
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert_eq!(found[0].0, 2);
            assert!(
                found[0].1.contains("excludes Streamlit 1.50 and later"),
                "{found:?}"
            );
        }
        for good in [
            "streamlit",
            "streamlit>=1.50",
            "streamlit!=1.50.0",
            "streamlit~=1.51",
        ] {
            assert!(problems("requirements.txt", good).is_empty(), "{good}");
        }
        assert_eq!(problems("requirements.txt", "streamlit>>1\n")[0].0, 1);
    }

    #[test]
    fn pyproject_dependencies_and_python_are_checked() {
        let text = "[project]\nname = \"x\"\nrequires-python = \">=3.12\"\ndependencies = [\n  \"streamlit==1.40\",\n  \"pandas\",\n]\n";
        let found = problems("pyproject.toml", text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, 3);
        assert!(found[0].1.contains("excludes Python 3.11"), "{found:?}");
        assert_eq!(found[1].0, 5);
        let fine =
            "[project]\nrequires-python = \">=3.9,<3.13\"\ndependencies = [\"streamlit>=1.50\"]\n";
        assert!(problems("pyproject.toml", fine).is_empty());
        assert!(problems("pyproject.toml", "[project\n")[0]
            .1
            .starts_with("invalid TOML"));
    }
}
