//! The `sluice.yml` model: project name, apps folder, audit log and the
//! environments a deployment targets, with `SLUICE_*` overrides.
//!
//! The file is parsed with `serde_norway` (the maintained fork of
//! `serde_yaml`) because it reports where a value went wrong; every error is
//! turned into one line `sluice.yml:LINE:COL: message`. Unknown keys are
//! errors, so a typo such as `warehose:` is caught rather than ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_rules::source::without_location;

/// The name of the workspace file, found by walking upward from a folder.
pub const CONFIG_FILE: &str = "sluice.yml";

/// The environment `sluice run`, `sluice test` and `config show` use when
/// neither `--env` nor `SLUICE_ENV` names one.
pub const DEFAULT_ENVIRONMENT: &str = "local";

/// `sluice.yml` as written by maintainers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The project's name (used in generated files and deploy titles).
    pub project: String,
    /// Folder holding the applications, relative to the workspace root.
    #[serde(default = "default_apps_dir")]
    pub apps_dir: PathBuf,
    /// Append-only JSON-lines audit log of deploys and shares, relative to the root.
    #[serde(default = "default_audit_log")]
    pub audit_log: PathBuf,
    /// Named environments (`local`, `test`, `prod`, ...).
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
}

fn default_apps_dir() -> PathBuf {
    PathBuf::from("applications")
}

fn default_audit_log() -> PathBuf {
    PathBuf::from(".sluice/audit.jsonl")
}

/// One environment: what a Snowflake deployment needs, or a local PostgreSQL URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Snowflake CLI (`snow`) connection name.
    pub connection: Option<String>,
    /// Snowflake database the apps are created in.
    pub database: Option<String>,
    /// Snowflake schema the apps are created in.
    pub schema: Option<String>,
    /// Snowflake stage the app files are uploaded to.
    pub stage: Option<String>,
    /// Warehouse the apps' queries run on.
    pub warehouse: Option<String>,
    /// Role that deploys the apps.
    pub role: Option<String>,
    /// PostgreSQL URL pages read from when run locally (`BasePage.query`).
    pub postgres_url: Option<String>,
    /// What this environment allows and imposes in the apps' `snowflake.yml`.
    #[serde(default)]
    pub streamlit: StreamlitPolicy,
}

/// An environment's say over the apps' own streamlit entities
/// (`environments.<env>.streamlit` in `sluice.yml`; see `deploy::project`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamlitPolicy {
    /// The external access integrations apps may use here; absent: any.
    pub allowed_external_access_integrations: Option<Vec<String>>,
    /// Entity keys an app's `snowflake.yml` may not set here (`secrets`, ...).
    #[serde(default)]
    pub forbid: Vec<String>,
    /// Entity values every app gets here, whatever its own file says.
    #[serde(default)]
    pub force: BTreeMap<String, serde_norway::Value>,
}

/// The string keys of an [`Environment`], in display order. Each can be overridden
/// by `SLUICE_<KEY>` (upper-case), for example `SLUICE_POSTGRES_URL`.
pub const ENVIRONMENT_KEYS: [&str; 7] = [
    "connection",
    "database",
    "schema",
    "stage",
    "warehouse",
    "role",
    "postgres_url",
];

impl Environment {
    /// The value of one of [`ENVIRONMENT_KEYS`].
    pub fn get(&self, key: &str) -> Option<&str> {
        self.slot(key).and_then(|v| v.as_deref())
    }

    fn slot(&self, key: &str) -> Option<&Option<String>> {
        Some(match key {
            "connection" => &self.connection,
            "database" => &self.database,
            "schema" => &self.schema,
            "stage" => &self.stage,
            "warehouse" => &self.warehouse,
            "role" => &self.role,
            "postgres_url" => &self.postgres_url,
            _ => return None,
        })
    }

    fn set(&mut self, key: &str, value: String) {
        let slot = match key {
            "connection" => &mut self.connection,
            "database" => &mut self.database,
            "schema" => &mut self.schema,
            "stage" => &mut self.stage,
            "warehouse" => &mut self.warehouse,
            "role" => &mut self.role,
            "postgres_url" => &mut self.postgres_url,
            _ => return,
        };
        *slot = Some(value);
    }
}

/// Where a resolved value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The environment's entry in `sluice.yml`.
    File,
    /// An environment variable (its name).
    Variable(String),
}

/// Why this environment was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Named by the caller (`--env`, or a command that always uses `local`).
    Explicit,
    /// Named by `SLUICE_ENV`.
    Variable,
    /// Nothing named one: [`DEFAULT_ENVIRONMENT`].
    Default,
}

/// An environment after `SLUICE_<KEY>` overrides, remembering each value's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEnvironment {
    /// The environment's name in `sluice.yml`.
    pub name: String,
    /// How the name was chosen.
    pub selection: Selection,
    /// The values after overrides.
    pub values: Environment,
    /// For each key that has a value, where it came from.
    pub sources: BTreeMap<&'static str, Source>,
}

/// A `sluice.yml` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    /// The YAML is broken or does not match the model: `file:line:col: message`.
    #[error("{}", fmt_located(.path, *.line, *.column, .message))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// `--env` or `SLUICE_ENV` named an environment the file does not define.
    #[error("unknown environment `{name}` in {path} (environments: {known})")]
    UnknownEnvironment {
        name: String,
        path: PathBuf,
        known: String,
    },
}

fn fmt_located(path: &Path, line: Option<usize>, column: Option<usize>, message: &str) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}: {message}", path.display()),
        (Some(l), None) => format!("{}:{l}: {message}", path.display()),
        _ => format!("{}: {message}", path.display()),
    }
}

impl Config {
    /// Reads and validates `path` (shown in errors as given).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Config::parse(&text, path)
    }

    /// Parses `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = serde_norway::from_str(text).map_err(|e| {
            let location = e.location();
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line: location.as_ref().map(|l| l.line()),
                column: location.as_ref().map(|l| l.column()),
                message: without_location(&e.to_string()),
            }
        })?;
        config.validate(text, path)?;
        Ok(config)
    }

    /// Checks what serde cannot: a non-empty project and relative paths.
    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of_key(text, key),
            column: line_of_key(text, key).map(|_| 1),
            message,
        };
        if self.project.trim().is_empty() {
            return Err(invalid("project", "project: must not be empty".into()));
        }
        if self.apps_dir.is_absolute() || self.apps_dir.as_os_str().is_empty() {
            return Err(invalid(
                "apps_dir",
                "apps_dir: must be a folder relative to the workspace".into(),
            ));
        }
        Ok(())
    }

    /// The environment `name` (or, when `None`, `$SLUICE_ENV`, else `local`)
    /// with `SLUICE_<KEY>` overrides read through `var`.
    ///
    /// `var` is a parameter so tests need not touch the process environment.
    pub fn resolve(
        &self,
        name: Option<&str>,
        path: &Path,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedEnvironment, ConfigError> {
        let nonempty = |key: &str| var(key).filter(|v| !v.is_empty());
        let (name, selection) = match name {
            Some(n) => (n.to_string(), Selection::Explicit),
            None => match nonempty("SLUICE_ENV") {
                Some(n) => (n, Selection::Variable),
                None => (DEFAULT_ENVIRONMENT.to_string(), Selection::Default),
            },
        };
        let Some(base) = self.environments.get(&name) else {
            let known: Vec<&str> = self.environments.keys().map(String::as_str).collect();
            return Err(ConfigError::UnknownEnvironment {
                name,
                path: path.to_path_buf(),
                known: if known.is_empty() {
                    "none defined".into()
                } else {
                    known.join(", ")
                },
            });
        };
        let mut values = base.clone();
        let mut sources = BTreeMap::new();
        for key in ENVIRONMENT_KEYS {
            let variable = format!("SLUICE_{}", key.to_uppercase());
            if let Some(value) = nonempty(&variable) {
                values.set(key, value);
                sources.insert(key, Source::Variable(variable));
            } else if values.get(key).is_some() {
                sources.insert(key, Source::File);
            }
        }
        Ok(ResolvedEnvironment {
            name,
            selection,
            values,
            sources,
        })
    }
}

/// The 1-based line where a top-level `key:` is written, for errors found
/// after parsing.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let prefix = format!("{key}:");
    text.lines()
        .position(|l| l.starts_with(&prefix))
        .map(|i| i + 1)
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File => f.write_str(CONFIG_FILE),
            Source::Variable(name) => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
project: analytics
environments:
  local:
    postgres_url: postgresql://app:app@127.0.0.1:6432/app
  test:
    connection: test
    database: ANALYTICS_TEST
";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("sluice.yml"))
    }

    fn no_vars(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_apply() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.apps_dir, PathBuf::from("applications"));
        assert_eq!(config.audit_log, PathBuf::from(".sluice/audit.jsonl"));
        assert_eq!(config.environments.len(), 2);
    }

    #[test]
    fn unknown_environment_key_is_located() {
        let text = "project: a\nenvironments:\n  test:\n    warehose: X\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(
            err.starts_with("sluice.yml:4:5: environments.test: unknown field `warehose`"),
            "{err}"
        );
        assert!(!err.contains(" at line "), "{err}");
    }

    #[test]
    fn broken_yaml_is_located() {
        let err = parse("project: a\nenvironments:\n  local: {\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sluice.yml:4:1: "), "{err}");
    }

    #[test]
    fn missing_project_is_an_error() {
        let err = parse("environments: {}\n").unwrap_err().to_string();
        assert!(err.contains("missing field `project`"), "{err}");
    }

    #[test]
    fn absolute_apps_dir_is_refused() {
        let err = parse("project: a\napps_dir: /etc\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "sluice.yml:2:1: apps_dir: must be a folder relative to the workspace"
        );
    }

    #[test]
    fn an_environment_may_govern_the_apps_streamlit_settings() {
        let text = "project: a\nenvironments:\n  prod:\n    connection: prod\n    streamlit:\n      allowed_external_access_integrations: [PYPI_ACCESS]\n      forbid: [secrets]\n      force: {comment: Managed}\n";
        let config = parse(text).unwrap();
        let policy = &config.environments["prod"].streamlit;
        assert_eq!(
            policy.allowed_external_access_integrations.as_deref(),
            Some(&["PYPI_ACCESS".to_string()][..])
        );
        assert_eq!(policy.forbid, ["secrets"]);
        assert_eq!(
            policy.force["comment"],
            serde_norway::Value::from("Managed")
        );
        let typo = text.replace("forbid:", "forbidden:");
        let err = parse(&typo).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "sluice.yml:7:7: environments.prod.streamlit: unknown field `forbidden`"
            ),
            "{err}"
        );
    }

    #[test]
    fn default_environment_is_local() {
        let config = parse(GOOD).unwrap();
        let env = config
            .resolve(None, Path::new("sluice.yml"), no_vars)
            .unwrap();
        assert_eq!(env.name, "local");
        assert_eq!(env.selection, Selection::Default);
        assert_eq!(env.sources.get("postgres_url"), Some(&Source::File));
        assert_eq!(env.sources.get("database"), None);
    }

    #[test]
    fn variables_select_and_override() {
        let config = parse(GOOD).unwrap();
        let vars = |k: &str| match k {
            "SLUICE_ENV" => Some("test".to_string()),
            "SLUICE_DATABASE" => Some("OTHER".to_string()),
            "SLUICE_ROLE" => Some(String::new()), // empty: ignored
            _ => None,
        };
        let env = config.resolve(None, Path::new("sluice.yml"), vars).unwrap();
        assert_eq!(env.name, "test");
        assert_eq!(env.selection, Selection::Variable);
        assert_eq!(env.values.database.as_deref(), Some("OTHER"));
        assert_eq!(
            env.sources.get("database"),
            Some(&Source::Variable("SLUICE_DATABASE".into()))
        );
        assert_eq!(env.values.connection.as_deref(), Some("test"));
        assert_eq!(env.values.role, None);
    }

    #[test]
    fn explicit_name_beats_sluice_env() {
        let config = parse(GOOD).unwrap();
        let vars = |k: &str| (k == "SLUICE_ENV").then(|| "test".to_string());
        let env = config
            .resolve(Some("local"), Path::new("sluice.yml"), vars)
            .unwrap();
        assert_eq!(env.name, "local");
    }

    #[test]
    fn unknown_environment_lists_known_ones() {
        let config = parse(GOOD).unwrap();
        let err = config
            .resolve(Some("staging"), Path::new("sluice.yml"), no_vars)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown environment `staging` in sluice.yml (environments: local, test)"
        );
    }
}
