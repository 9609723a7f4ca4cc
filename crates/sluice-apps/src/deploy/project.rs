//! The deployment folder's `snowflake.yml`: the app's own streamlit entity
//! (read with the one model of the file, `sluice_rules::project_file`)
//! merged with the target environment. Who owns which key:
//!
//! - **the environment** (`sluice.yml`): `identifier.database`,
//!   `identifier.schema`, `query_warehouse`, and `stage` when it names one;
//!   its `streamlit:` section may also `force` values on every app, `forbid`
//!   keys, and list the `allowed_external_access_integrations`;
//! - **the framework**: `identifier.name` (the object the plan shares,
//!   revokes and drops), `main_file: dashboard.py`, `pages_dir: pages` (the
//!   pages `sluice test` runs) and `artifacts` (every file of the folder). An
//!   app that sets the first three to something else is refused with the
//!   line; `artifacts` is always generated, since the folder holds exactly
//!   what is uploaded;
//! - **the app**: everything else, kept as written (`title`, `comment`,
//!   `runtime_name`, `compute_pool`, `external_access_integrations`,
//!   `secrets`, `imports`, `grants`, `tags`, `meta`, ...).
//!
//! An app without `snowflake.yml` gets the framework's and environment's
//! keys and a title. The file is written with `serde_norway`, so every
//! value is quoted exactly as YAML needs.

use std::path::Path;

use serde_norway::{Mapping, Value};
use sluice_rules::project_file::{ProjectFile, ADDITIONAL_SOURCE_FILES, ENTITY_KEYS, PROJECT_FILE};
use sluice_rules::workspace::{MAIN_FILE, PAGES_DIR};

use super::{PlanError, Target};
use crate::names;
use crate::workspace::App;

/// Keys the environment or the framework sets: an environment may neither
/// force nor forbid them.
const MANAGED_KEYS: [&str; 7] = [
    "type",
    "identifier",
    "main_file",
    "pages_dir",
    "query_warehouse",
    "stage",
    "artifacts",
];

/// The generated `snowflake.yml` of `app` for `target`. `artifacts` are the
/// folder's top-level entries.
pub fn definition(
    app: &App,
    target: &Target,
    artifacts: &[String],
    has_pages: bool,
) -> Result<String, PlanError> {
    let path = app.dir.join(PROJECT_FILE);
    let own = read(&path)?;
    let policy = &target.streamlit;
    let refuse = |message: String| PlanError::Policy {
        app: app.name.clone(),
        env: target.env.clone(),
        message,
    };
    for key in policy.forbid.iter().chain(policy.force.keys()) {
        if MANAGED_KEYS.contains(&key.as_str()) || !ENTITY_KEYS.contains(&key.as_str()) {
            return Err(PlanError::PolicyKey {
                env: target.env.clone(),
                key: key.clone(),
            });
        }
    }

    let name = app.name.to_uppercase();
    let mut kept = Mapping::new();
    let mut title = None;
    if let Some(own) = &own {
        let wrong = |key: &str, found: &str, wanted: &str| {
            PlanError::Project {
            path: path.clone(),
            line: own.line_of(key),
            message: format!(
                "`{key}` is `{found}`, but sluice deploys this app's {wanted}; remove the key or set it so"
            ),
        }
        };
        let own_name = match own.get("identifier") {
            Some(Value::String(id)) => Some(id.rsplit('.').next().unwrap_or(id).to_string()),
            Some(Value::Mapping(id)) => id.get("name").and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        if let Some(found) = own_name.filter(|n| !n.trim_matches('"').eq_ignore_ascii_case(&name)) {
            return Err(wrong("name", &found, &format!("object as {name}")));
        }
        if let Some(found) = own.string("main_file").filter(|f| *f != MAIN_FILE) {
            return Err(wrong(
                "main_file",
                found,
                &format!("main page from {MAIN_FILE}"),
            ));
        }
        if let Some(found) = own
            .string("pages_dir")
            .filter(|d| d.trim_end_matches('/') != PAGES_DIR)
        {
            return Err(wrong(
                "pages_dir",
                found,
                &format!("pages from {PAGES_DIR}/"),
            ));
        }
        for file in own.strings(ADDITIONAL_SOURCE_FILES) {
            if !app
                .files
                .iter()
                .any(|f| *f == file.trim_start_matches("./"))
            {
                return Err(PlanError::Project {
                    path: path.clone(),
                    line: own.line_of(ADDITIONAL_SOURCE_FILES),
                    message: format!(
                        "`{ADDITIONAL_SOURCE_FILES}` lists `{file}`, which is not a file of the app folder (every file there is uploaded, so the list can go)"
                    ),
                });
            }
        }
        for (key, value) in &own.entity {
            let key = key.as_str().unwrap_or_default();
            if value.is_null() || MANAGED_KEYS.contains(&key) || key == ADDITIONAL_SOURCE_FILES {
                continue;
            }
            if policy.forbid.iter().any(|k| k == key) {
                return Err(refuse(format!(
                    "{}:{}: `{key}` is forbidden in `{}` (sluice.yml: environments.{}.streamlit.forbid)",
                    path.display(),
                    own.line_of(key),
                    target.env,
                    target.env
                )));
            }
            if key == "title" {
                title = Some(value.clone());
            } else {
                kept.insert(key.into(), value.clone());
            }
        }
    }
    for (key, value) in &policy.force {
        if key == "title" {
            title = Some(value.clone());
        } else {
            kept.insert(key.as_str().into(), value.clone());
        }
    }
    if let Some(allowed) = &policy.allowed_external_access_integrations {
        let used = match kept.get("external_access_integrations") {
            Some(Value::Sequence(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if let Some(bad) = used
            .iter()
            .find(|u| !allowed.iter().any(|a| a.eq_ignore_ascii_case(u)))
        {
            return Err(refuse(format!(
                "external access integration `{bad}` is not allowed in `{}` (sluice.yml: environments.{}.streamlit.allowed_external_access_integrations: {})",
                target.env,
                target.env,
                if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
            )));
        }
    }

    let mut identifier = Mapping::new();
    identifier.insert("name".into(), name.into());
    identifier.insert("database".into(), target.database.clone().into());
    identifier.insert("schema".into(), target.schema.clone().into());
    let mut entity = Mapping::new();
    entity.insert("type".into(), "streamlit".into());
    entity.insert("identifier".into(), Value::Mapping(identifier));
    entity.insert(
        "title".into(),
        title.unwrap_or_else(|| names::title_case(&app.name).into()),
    );
    entity.insert("main_file".into(), MAIN_FILE.into());
    if has_pages {
        entity.insert("pages_dir".into(), PAGES_DIR.into());
    }
    entity.insert("query_warehouse".into(), target.warehouse.clone().into());
    let own_stage = own
        .as_ref()
        .and_then(|o| o.string("stage"))
        .map(str::to_string);
    if let Some(stage) = target.stage.clone().or(own_stage) {
        entity.insert("stage".into(), stage.into());
    }
    entity.extend(kept);
    entity.insert(
        "artifacts".into(),
        Value::Sequence(artifacts.iter().map(|a| a.as_str().into()).collect()),
    );
    let mut entities = Mapping::new();
    entities.insert(app.name.as_str().into(), Value::Mapping(entity));
    let mut doc = Mapping::new();
    doc.insert("definition_version".into(), "2".into());
    doc.insert("entities".into(), Value::Mapping(entities));
    let yaml = serde_norway::to_string(&doc).expect("a YAML mapping serialises");
    Ok(format!(
        "# Generated by `sluice deploy` for environment `{}` from the app's snowflake.yml and sluice.yml; edit those, not this.\n{yaml}",
        target.env
    ))
}

/// The app's own `snowflake.yml`, if it has one.
fn read(path: &Path) -> Result<Option<ProjectFile>, PlanError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(super::io_error(path))?;
    ProjectFile::parse(&text)
        .map(Some)
        .map_err(|e| PlanError::Project {
            path: path.to_path_buf(),
            line: e.line,
            message: e.message,
        })
}
