//! The deployment folder `.sluice/build/<env>/<app>/`: what `snow streamlit
//! deploy -p` uploads.
//!
//! It holds the app's files (without `share.yml`, which is access control,
//! not app code, and without the app's own `snowflake.yml`), the shared
//! `components/` package when the app imports it (Streamlit in Snowflake
//! only sees the uploaded files), and a generated `snowflake.yml` naming the
//! environment's database, schema, warehouse and stage. The folder is
//! rebuilt from scratch on every plan and kept afterwards for inspection.

use std::fs;
use std::path::{Path, PathBuf};

use super::{io_error, PlanError, Target};
use crate::names;
use crate::workspace::{App, Workspace, COMPONENTS_DIR};

/// Where deployment folders are built, relative to the workspace root.
pub const BUILD_DIR: &str = ".sluice/build";
/// The generated project definition.
pub const PROJECT_FILE: &str = "snowflake.yml";
/// App files that are not uploaded (the project definition is generated).
const NOT_UPLOADED: [&str; 2] = [PROJECT_FILE, "share.yml"];

/// A built deployment folder.
#[derive(Debug)]
pub struct Built {
    /// The folder, relative to the workspace root.
    pub relative: PathBuf,
    /// Every file (relative to the folder, `/`-separated) and its contents:
    /// `snowflake.yml` first, then the rest by path.
    pub contents: Vec<(String, Vec<u8>)>,
}

/// (Re)builds the deployment folder of `app` for `target`.
pub fn build(ws: &Workspace, app: &App, target: &Target) -> Result<Built, PlanError> {
    let relative = Path::new(BUILD_DIR).join(&target.env).join(&app.name);
    let dir = ws.root().join(&relative);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
    }

    let mut files = Vec::new();
    collect(&app.dir, "", &mut files)?;
    files.retain(|(rel, _)| !NOT_UPLOADED.contains(&rel.as_str()));
    if imports_components(&files) {
        let components = ws.components_dir();
        let mut shared = Vec::new();
        collect(&components, &format!("{COMPONENTS_DIR}/"), &mut shared)?;
        files.extend(shared);
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let has_pages = app.dir.join("pages").is_dir();
    let mut artifacts: Vec<String> = Vec::new();
    for (rel, _) in &files {
        let top = match rel.split_once('/') {
            Some((dir, _)) => format!("{dir}/"),
            None => rel.clone(),
        };
        if !artifacts.contains(&top) {
            artifacts.push(top);
        }
    }
    if has_pages && !artifacts.iter().any(|a| a == "pages/") {
        artifacts.push("pages/".into());
    }
    let definition = project_definition(app, target, &artifacts, has_pages);

    fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    if has_pages {
        // An app whose pages/ is still empty keeps the folder `pages_dir` names.
        let pages = dir.join("pages");
        fs::create_dir_all(&pages).map_err(io_error(&pages))?;
    }
    let mut contents = vec![(PROJECT_FILE.to_string(), definition.into_bytes())];
    contents.extend(files);
    for (rel, bytes) in &contents {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        fs::write(&path, bytes).map_err(io_error(&path))?;
    }
    Ok(Built { relative, contents })
}

/// Every file under `dir` (recursively, skipping hidden files, `__pycache__`
/// and compiled Python), as (`prefix` + relative path, contents).
fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), PlanError> {
    let entries = fs::read_dir(dir).map_err(io_error(dir))?;
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "__pycache__" || name.ends_with(".pyc") {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(io_error(&path))?;
        let rel = format!("{prefix}{name}");
        if kind.is_dir() {
            collect(&path, &format!("{rel}/"), out)?;
        } else if path.is_file() {
            let bytes = fs::read(&path).map_err(io_error(&path))?;
            out.push((rel, bytes));
        }
    }
    Ok(())
}

/// Whether any Python file imports the shared `components` package.
fn imports_components(files: &[(String, Vec<u8>)]) -> bool {
    files
        .iter()
        .filter(|(rel, _)| rel.ends_with(".py"))
        .any(|(_, bytes)| {
            String::from_utf8_lossy(bytes).lines().any(|line| {
                let line = line.trim_start();
                ["from components", "import components"].iter().any(|p| {
                    line.strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with([' ', '.', ',']) || rest.is_empty())
                })
            })
        })
}

/// The generated `snowflake.yml`. Values are written as JSON strings, which
/// YAML reads verbatim whatever they contain.
fn project_definition(app: &App, target: &Target, artifacts: &[String], has_pages: bool) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let mut out = format!(
        "# Generated by `sluice deploy` for environment `{env}`; edit the app in its folder, not here.\n\
         definition_version: '2'\n\
         entities:\n  \
           {name}:\n    \
             type: streamlit\n    \
             identifier:\n      \
               name: {object}\n      \
               database: {database}\n      \
               schema: {schema}\n    \
             title: {title}\n    \
             main_file: dashboard.py\n",
        env = target.env,
        name = app.name,
        object = q(&app.name.to_uppercase()),
        database = q(&target.database),
        schema = q(&target.schema),
        title = q(&names::title_case(&app.name)),
    );
    if has_pages {
        out.push_str("    pages_dir: pages\n");
    }
    out.push_str(&format!("    query_warehouse: {}\n", q(&target.warehouse)));
    if let Some(stage) = &target.stage {
        out.push_str(&format!("    stage: {}\n", q(stage)));
    }
    out.push_str("    artifacts:\n");
    for artifact in artifacts {
        out.push_str(&format!("      - {}\n", q(artifact)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, text: &str) -> (String, Vec<u8>) {
        (rel.to_string(), text.as_bytes().to_vec())
    }

    #[test]
    fn finds_imports_of_the_components_package() {
        assert!(imports_components(&[file(
            "dashboard.py",
            "import streamlit\nfrom components.base_page import BasePage\n"
        )]));
        assert!(imports_components(&[file("a.py", "import components\n")]));
        assert!(!imports_components(&[file(
            "dashboard.py",
            "from components_extra import x\n# from components import y\n"
        )]));
        assert!(!imports_components(&[file(
            "notes.txt",
            "from components import x\n"
        )]));
    }
}
