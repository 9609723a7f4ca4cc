//! The deployment folder `.sluice/build/<env>/<app>/`: what `snow streamlit
//! deploy -p` uploads.
//!
//! It holds the app's files (without `share.yml`, which is access control,
//! not app code, without the app's own `snowflake.yml`, and without its
//! `tests/` folder: local fixtures for `sluice test`, never read in
//! Snowflake, and often large CSV files), the shared
//! `components/` package when the app imports it (Streamlit in Snowflake
//! only sees the uploaded files), and a generated `snowflake.yml`: the
//! app's own merged with the environment's database, schema, warehouse and
//! stage ([`super::project`]). The folder is
//! rebuilt from scratch on every plan and kept afterwards for inspection.

use std::fs;
use std::path::{Path, PathBuf};

use sluice_rules::workspace::{self as layout, PAGES_DIR};

use super::{io_error, PlanError, Target};
use crate::workspace::{App, Workspace, COMPONENTS_DIR};

/// Where deployment folders are built, relative to the workspace root.
pub const BUILD_DIR: &str = ".sluice/build";
/// The generated project definition.
pub const PROJECT_FILE: &str = "snowflake.yml";
/// App files that are not uploaded (the project definition is generated).
const NOT_UPLOADED: [&str; 2] = [PROJECT_FILE, "share.yml"];
/// App folders that are not uploaded: the local fixtures of `sluice test`.
const NOT_UPLOADED_DIRS: [&str; 1] = [crate::local_data::TESTS_DIR];

/// Whether the app file `rel` (relative to the app folder) goes to the stage.
fn is_uploaded(rel: &str) -> bool {
    !NOT_UPLOADED.contains(&rel)
        && !NOT_UPLOADED_DIRS.iter().any(|dir| {
            rel.strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        })
}

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

    let mut files = read_uploaded(
        &app.dir,
        app.files
            .iter()
            .map(String::as_str)
            .filter(|rel| is_uploaded(rel)),
        "",
    )?;
    if imports_components(&files) {
        let components = ws.components_dir();
        let shared =
            layout::files_under(&components, COMPONENTS_DIR).map_err(io_error(&components))?;
        let shared = shared.iter().map(|f| &f[COMPONENTS_DIR.len() + 1..]);
        files.extend(read_uploaded(
            &components,
            shared,
            &format!("{COMPONENTS_DIR}/"),
        )?);
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let has_pages = app.dir.join(PAGES_DIR).is_dir();
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
    let definition = super::project::definition(app, target, &artifacts, has_pages)?;

    fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    if has_pages {
        // An app whose pages/ is still empty keeps the folder `pages_dir` names.
        let pages = dir.join(PAGES_DIR);
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

/// The contents of `files` (relative to `dir`, from the workspace layout,
/// which already leaves out hidden folders, caches and virtualenvs), except
/// hidden files and compiled Python, named `prefix` + relative path.
fn read_uploaded<'a>(
    dir: &Path,
    files: impl Iterator<Item = &'a str>,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, PlanError> {
    let mut out = Vec::new();
    for rel in files {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if name.starts_with('.') || name.ends_with(".pyc") {
            continue;
        }
        let path = dir.join(rel);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        out.push((format!("{prefix}{rel}"), bytes));
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, text: &str) -> (String, Vec<u8>) {
        (rel.to_string(), text.as_bytes().to_vec())
    }

    #[test]
    fn the_apps_tests_folder_and_own_definition_stay_behind() {
        assert!(!is_uploaded("tests/data/ORDERS.csv"));
        assert!(!is_uploaded("tests/test_orders.py"));
        assert!(!is_uploaded("snowflake.yml"));
        assert!(!is_uploaded("share.yml"));
        assert!(is_uploaded("tests.py"));
        assert!(is_uploaded("tests_data/x.csv"));
        assert!(is_uploaded("pages/tests/x.py"));
        assert!(is_uploaded("dashboard.py"));
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
