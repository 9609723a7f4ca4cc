//! An app's own `snowflake.yml`: the Snowflake CLI project definition
//! (`definition_version: '2'`) with one `streamlit` entity. This is the one
//! model of the file: the runtime rules read the app's runtime from it
//! (`sluice check`), and `sluice deploy` (in `sluice-apps`, which depends on
//! this crate) merges its entity with the environment's settings.
//!
//! The keys an entity may have are the installed Snowflake CLI's
//! (`snowflake.cli._plugins.streamlit.streamlit_entity_model`, 3.x), so a
//! typo is reported here with its line instead of at the real deploy. The
//! one addition is `additional_source_files`, a `definition_version: 1`
//! key that Sluice accepts and checks but never passes on (every file of
//! the app folder is uploaded anyway).
//!
//! ```yaml
//! definition_version: '2'
//! entities:
//!   sales_dashboard:
//!     type: streamlit
//!     identifier: {name: SALES_DASHBOARD}
//!     runtime_name: SYSTEM$ST_CONTAINER_RUNTIME_PY3_11
//!     compute_pool: STREAMLIT_POOL
//!     external_access_integrations: [PYPI_ACCESS]
//!     secrets: {api_key: ANALYTICS.SECRETS.API_KEY}
//! ```

use serde_norway::{Mapping, Value};

/// The project definition file in every app folder.
pub const PROJECT_FILE: &str = "snowflake.yml";

/// The keys of a `definition_version: 2` streamlit entity (snowflake-cli 3.x).
pub const ENTITY_KEYS: &[&str] = &[
    "type",
    "identifier",
    "meta",
    "title",
    "comment",
    "query_warehouse",
    "main_file",
    "pages_dir",
    "stage",
    "artifacts",
    "deploy_root",
    "runtime_name",
    "compute_pool",
    "tags",
    "external_access_integrations",
    "secrets",
    "imports",
    "grants",
];

/// Accepted in an app's file, checked, and left out of the generated one.
pub const ADDITIONAL_SOURCE_FILES: &str = "additional_source_files";

/// Every container runtime's name starts with this
/// (`SYSTEM$ST_CONTAINER_RUNTIME_PY3_11`).
pub const CONTAINER_RUNTIME_PREFIX: &str = "SYSTEM$ST_CONTAINER_RUNTIME";
/// What the Snowflake CLI names when an entity sets a `compute_pool` without
/// a runtime.
pub const DEFAULT_CONTAINER_RUNTIME: &str = "SYSTEM$ST_CONTAINER_RUNTIME_PY3_11";

/// The conda packages file of the warehouse runtime.
pub const CONDA_FILE: &str = "environment.yml";
/// The pip packages files of a container runtime.
pub const PIP_FILES: [&str; 2] = ["requirements.txt", "pyproject.toml"];
/// The Python of a container runtime whose name says none (every container
/// runtime is Python 3.11 today).
pub const CONTAINER_PYTHON: (u32, u32) = (3, 11);

/// The Python a container runtime runs, from its name
/// (`SYSTEM$ST_CONTAINER_RUNTIME_PY3_11` → (3, 11)); [`CONTAINER_PYTHON`]
/// when the name has no `_PY<major>_<minor>` ending.
pub fn container_python(runtime_name: &str) -> (u32, u32) {
    runtime_name
        .to_ascii_uppercase()
        .rsplit_once("_PY")
        .and_then(|(_, version)| {
            let (major, minor) = version.split_once('_')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        })
        .unwrap_or(CONTAINER_PYTHON)
}

/// The main file a project definition names, whatever its version: the
/// streamlit entity's `main_file` (version 2), or the `main_file` of a
/// version 1 `streamlit:` section, which the existing apps `sluice import`
/// brings in often still have (deploy then asks for version 2, see
/// [`ProjectFile::parse`]). `None` for unreadable YAML or no main file.
pub fn declared_main_file(text: &str) -> Option<String> {
    if let Ok(project) = ProjectFile::parse(text) {
        return project.string("main_file").map(str::to_string);
    }
    let doc: Value = serde_norway::from_str(text).ok()?;
    let main_file = doc.get("streamlit")?.get("main_file")?.as_str()?.trim();
    (!main_file.is_empty()).then(|| main_file.to_string())
}

/// Where an app's code runs in Snowflake, which decides how it gets its packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// The warehouse runtime: conda packages from `environment.yml`.
    Warehouse,
    /// A container runtime (its name): pip packages from `requirements.txt`
    /// or `pyproject.toml`.
    Container(String),
}

/// What is wrong with a `snowflake.yml`, and the 1-based line to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProjectError {
    pub line: u32,
    pub message: String,
}

/// A parsed app `snowflake.yml`.
#[derive(Debug, Clone)]
pub struct ProjectFile {
    /// The entity's key under `entities:`.
    pub entity_id: String,
    /// The streamlit entity as written.
    pub entity: Mapping,
    text: String,
}

impl ProjectFile {
    /// Parses the text of an app's `snowflake.yml`: definition version 2,
    /// exactly one `streamlit` entity, known keys only.
    pub fn parse(text: &str) -> Result<ProjectFile, ProjectError> {
        let doc: Value = serde_norway::from_str(text).map_err(|e| {
            let (line, message) = crate::source::yaml_error(&e);
            ProjectError { line, message }
        })?;
        let error = |key: &str, message: String| ProjectError {
            line: key_line(text, key),
            message,
        };
        let version = match doc.get("definition_version") {
            Some(Value::String(v)) => v.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        if version != "2" && !version.starts_with("2.") {
            // Apps brought in by `sluice import` often still have a version 1 file.
            let convert = if version == "1" || version.starts_with("1.") {
                "; `snow helpers v1-to-v2` in the app's folder converts this version 1 file"
            } else {
                ""
            };
            return Err(error(
                "definition_version",
                format!("sluice deploy reads a `definition_version: '2'` project with one streamlit entity under `entities:`{convert}"),
            ));
        }
        let Some(Value::Mapping(entities)) = doc.get("entities") else {
            return Err(error(
                "entities",
                "`entities` must map an entity id to one streamlit entity".into(),
            ));
        };
        let streamlit: Vec<(&Value, &Value)> = entities
            .iter()
            .filter(|(_, e)| e.get("type").and_then(Value::as_str) == Some("streamlit"))
            .collect();
        let [(id, Value::Mapping(entity))] = streamlit.as_slice() else {
            return Err(error(
                "entities",
                format!(
                    "an app's snowflake.yml defines exactly one entity of `type: streamlit` ({} found)",
                    streamlit.len()
                ),
            ));
        };
        let entity_id = id.as_str().unwrap_or_default().to_string();
        for key in entity.keys() {
            let key = key.as_str().unwrap_or_default();
            if !ENTITY_KEYS.contains(&key) && key != ADDITIONAL_SOURCE_FILES {
                return Err(error(
                    key,
                    format!(
                        "unknown key `{key}` in streamlit entity `{entity_id}` (known: {})",
                        ENTITY_KEYS.join(", ")
                    ),
                ));
            }
        }
        Ok(ProjectFile {
            entity_id,
            entity: (*entity).clone(),
            text: text.to_string(),
        })
    }

    /// The entity's value for `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entity.get(key).filter(|v| !v.is_null())
    }

    /// The entity's string value for `key` (trimmed; empty counts as absent).
    pub fn string(&self, key: &str) -> Option<&str> {
        self.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The runtime, as the Snowflake CLI decides it: a container runtime
    /// when `runtime_name` names one, or when a `compute_pool` is set
    /// without a runtime; otherwise the warehouse runtime.
    pub fn runtime(&self) -> Runtime {
        match self.string("runtime_name") {
            Some(name) if name.to_uppercase().starts_with(CONTAINER_RUNTIME_PREFIX) => {
                Runtime::Container(name.to_uppercase())
            }
            Some(_) => Runtime::Warehouse,
            None if self.string("compute_pool").is_some() => {
                Runtime::Container(DEFAULT_CONTAINER_RUNTIME.to_string())
            }
            None => Runtime::Warehouse,
        }
    }

    /// The names listed under `external_access_integrations`.
    pub fn external_access_integrations(&self) -> Vec<String> {
        self.strings("external_access_integrations")
    }

    /// The strings of the list under `key`; other items are skipped.
    pub fn strings(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The line where `key` is written, for messages.
    pub fn line_of(&self, key: &str) -> u32 {
        key_line(&self.text, key)
    }
}

/// The first line whose text starts (after indentation) with `key:`; 1 if none.
fn key_line(text: &str, key: &str) -> u32 {
    let prefix = format!("{key}:");
    text.lines()
        .position(|l| l.trim_start().starts_with(&prefix))
        .map_or(1, |i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTAINER: &str = "\
definition_version: '2'
entities:
  sales:
    type: streamlit
    identifier: {name: SALES}
    runtime_name: system$st_container_runtime_py3_11
    compute_pool: POOL
    external_access_integrations: [PYPI_ACCESS]
";

    #[test]
    fn reads_the_runtime_like_the_snowflake_cli() {
        let file = ProjectFile::parse(CONTAINER).unwrap();
        assert_eq!(file.entity_id, "sales");
        assert_eq!(
            file.runtime(),
            Runtime::Container("SYSTEM$ST_CONTAINER_RUNTIME_PY3_11".into())
        );
        assert_eq!(file.external_access_integrations(), ["PYPI_ACCESS"]);
        let pool_only =
            CONTAINER.replace("    runtime_name: system$st_container_runtime_py3_11\n", "");
        assert_eq!(
            ProjectFile::parse(&pool_only).unwrap().runtime(),
            Runtime::Container(DEFAULT_CONTAINER_RUNTIME.into())
        );
        let warehouse = "definition_version: 2\nentities:\n  a:\n    type: streamlit\n";
        assert_eq!(
            ProjectFile::parse(warehouse).unwrap().runtime(),
            Runtime::Warehouse
        );
    }

    #[test]
    fn container_runtimes_name_their_python() {
        assert_eq!(
            container_python("SYSTEM$ST_CONTAINER_RUNTIME_PY3_11"),
            (3, 11)
        );
        assert_eq!(
            container_python("system$st_container_runtime_py3_12"),
            (3, 12)
        );
        assert_eq!(
            container_python("SYSTEM$ST_CONTAINER_RUNTIME"),
            CONTAINER_PYTHON
        );
    }

    #[test]
    fn the_main_file_is_read_from_either_version() {
        let v2 = "definition_version: '2'\nentities:\n  fn:\n    type: function\n  old:\n    type: streamlit\n    main_file: home.py\n";
        assert_eq!(declared_main_file(v2).as_deref(), Some("home.py"));
        let v1 = "definition_version: 1\nstreamlit:\n  name: x\n  main_file: start.py\n";
        assert_eq!(declared_main_file(v1).as_deref(), Some("start.py"));
        let none = "definition_version: '2'\nentities:\n  a:\n    type: streamlit\n";
        assert_eq!(declared_main_file(none), None);
        assert_eq!(declared_main_file("not: [yaml"), None);
    }

    #[test]
    fn mistakes_are_located() {
        let typo = CONTAINER.replace("compute_pool", "compute_pol");
        let err = ProjectFile::parse(&typo).unwrap_err();
        assert_eq!(err.line, 7);
        assert!(
            err.message.starts_with(
                "unknown key `compute_pol` in streamlit entity `sales` (known: type, identifier,"
            ),
            "{err}"
        );
        let v1 = "definition_version: 1\nstreamlit:\n  name: x\n";
        let err = ProjectFile::parse(v1).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(
            err.message.ends_with(
                "; `snow helpers v1-to-v2` in the app's folder converts this version 1 file"
            ),
            "{err}"
        );
        let err = ProjectFile::parse("definition_version: 3\nentities: {}\n").unwrap_err();
        assert!(err.message.ends_with("under `entities:`"), "{err}");
        let two = format!("{CONTAINER}  other:\n    type: streamlit\n");
        let err = ProjectFile::parse(&two).unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (
                2,
                "an app's snowflake.yml defines exactly one entity of `type: streamlit` (2 found)"
            )
        );
        let err = ProjectFile::parse("entities: [\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML: "), "{err}");
    }
}
