//! The one place the compliance rules are loaded and applied to a
//! workspace: `sluice check` (and its baselines), the deploy gate (`sluice
//! deploy`, `sluice share` and `sluice rollback` refuse an app with errors),
//! the report `sluice import` ends with and the CHECK column of `sluice
//! apps` all call [`check`], with the apps from [`Workspace::layout`], so they
//! never disagree on which rules apply or which files an app has.

use std::path::{Path, PathBuf};

use sluice_rules::workspace::WorkspaceError as LayoutError;
use sluice_rules::{
    Baseline, BaselineError, CheckError, CheckOptions, ConfigError, Report, BASELINE_FILE,
    RULES_FILE,
};

use crate::workspace::Workspace;

/// A rules file and the name its errors give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesFile {
    pub path: PathBuf,
    /// How messages name it (`compliance/rules.yml:12:5: ...`).
    pub display: String,
}

impl RulesFile {
    /// The workspace's own `compliance/rules.yml`.
    pub fn of(ws: &Workspace) -> RulesFile {
        RulesFile {
            path: ws.root().join(RULES_FILE),
            display: RULES_FILE.to_string(),
        }
    }
}

/// Why no report could be made.
#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    /// The rules file cannot be read, parsed or compiled.
    #[error(transparent)]
    Rules(#[from] ConfigError),
    /// The apps folder cannot be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The check itself refused (an unknown `--app`).
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The workspace's `compliance/baseline.json` cannot be read.
    #[error(transparent)]
    Baseline(#[from] BaselineError),
}

impl ComplianceError {
    /// Whether the configuration is unusable (as opposed to a bad request):
    /// `sluice check` exits 2 for these.
    pub fn is_configuration(&self) -> bool {
        !matches!(self, ComplianceError::Check(_))
    }
}

/// Checks every app of `ws` (or only `app`) against `rules`.
pub fn check(
    ws: &Workspace,
    rules: &RulesFile,
    app: Option<&str>,
) -> Result<Report, ComplianceError> {
    let rule_set = sluice_rules::load_rules(&rules.path, &rules.display)?;
    let layout = ws.layout()?;
    let options = CheckOptions {
        app: app.map(str::to_string),
    };
    Ok(sluice_rules::check(&layout, &rule_set, &options)?)
}

/// [`check`] with the workspace's own rules, less the violations recorded
/// in its [`BASELINE_FILE`] when there is one: what the deploy gate and
/// `sluice apps` judge an app by, and what the generated CI check reports.
pub fn gate(ws: &Workspace, app: Option<&str>) -> Result<Report, ComplianceError> {
    let mut report = check(ws, &RulesFile::of(ws), app)?;
    // Named relative to the root in errors, as the rules file is.
    let name = Path::new(BASELINE_FILE);
    match std::fs::read_to_string(ws.root().join(name)) {
        Ok(text) => report.apply_baseline(&Baseline::parse(&text, name)?, ws.root()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            let path = name.to_path_buf();
            return Err(BaselineError::Read { path, error }.into());
        }
    }
    Ok(report)
}
