//! `sluice import PATH NAME`: an existing Streamlit app folder becomes the
//! app `NAME`, with its files kept and the framework's missing files added
//! from the workspace's app templates.
//!
//! - Every file of `PATH` is copied into `applications/NAME/` unchanged,
//!   except the folders the workspace never reads (hidden ones, caches,
//!   virtualenvs, `.git`: `sluice_rules::workspace::is_skipped_dir`) but
//!   `.streamlit/` (Streamlit's local settings, which `sluice run` reads),
//!   and except `.streamlit/secrets.toml`: secrets never go into the repository
//!   (Streamlit in Snowflake uses Snowflake secrets). `PATH` itself is never
//!   changed. When `PATH` already is `applications/NAME/`, the app is
//!   completed in place.
//! - Sluice apps start at `dashboard.py`. An app without one has its main
//!   file renamed to it: the `main_file` of its `snowflake.yml`, else
//!   `streamlit_app.py`, `app.py`, `main.py`, else its only top-level `.py`
//!   file; lines of a kept `snowflake.yml` naming the old file (`main_file:`,
//!   artifact list items) are updated to match.
//! - Each file the app templates render that the app lacks is added (an app
//!   with `requirements.txt` or `pyproject.toml`, a container-runtime app,
//!   gets no `environment.yml`), plus an empty `pages/`, and
//!   `.sluice-app.yml` records the template version with only the added
//!   files as the template's, so `sluice upgrade` never merges template
//!   text into the app's own files.
//!
//! Like `new-app`, everything is planned before anything is written, and a
//! failed import leaves no half-made app folder behind.

use std::fs;
use std::path::{Path, PathBuf};

use crate::app_template::{self, AppRecord};
use crate::scaffold::{self, io_error, write_new, ScaffoldError, APP_TEMPLATES};
use crate::workspace::Workspace;
use sluice_rules::project_file::{declared_main_file, CONDA_FILE, PIP_FILES, PROJECT_FILE};
use sluice_rules::workspace::{is_skipped_dir, MAIN_FILE, PAGES_DIR};

/// Streamlit's local settings folder: copied, though hidden.
const STREAMLIT_DIR: &str = ".streamlit";
/// Streamlit's local secrets file: never copied into the repository.
const SECRETS_FILE: &str = ".streamlit/secrets.toml";
/// Main file names Streamlit apps commonly use, in the order tried.
const MAIN_CANDIDATES: &[&str] = &["streamlit_app.py", "app.py", "main.py"];

/// What an import did. Paths are relative to the app's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The app's folder, relative to the workspace root.
    pub app_dir: PathBuf,
    /// True when the folder already was the app's folder.
    pub in_place: bool,
    /// The app's own files, as they are now named.
    pub kept: Vec<PathBuf>,
    /// The main file renamed to `dashboard.py`: (old name, new name).
    pub renamed: Option<(PathBuf, PathBuf)>,
    /// Whether lines of the app's `snowflake.yml` were updated for the rename.
    pub snowflake_yml_updated: bool,
    /// Files added from the app templates.
    pub added: Vec<PathBuf>,
    /// The template record written (`.sluice-app.yml`; none when the app had one).
    pub record: Option<PathBuf>,
    /// Files not copied, and why.
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// Why an import was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot import {}: {reason}", .path.display())]
    NotAnApp { path: PathBuf, reason: String },
    #[error(transparent)]
    Scaffold(#[from] ScaffoldError),
}

/// Imports the app folder `source` as the app `name` (see the module doc).
pub fn import_app(
    workspace: &Workspace,
    source: &Path,
    name: &str,
) -> Result<Imported, ImportError> {
    scaffold::check_new_app_name(name)?;
    let not_an_app = |reason: String| ImportError::NotAnApp {
        path: source.to_path_buf(),
        reason,
    };
    if !source.is_dir() {
        return Err(not_an_app("it is not a folder".into()));
    }
    let source = source.canonicalize().map_err(io_error(source))?;
    let app_dir = workspace.apps_dir().join(name);
    let in_place = app_dir.canonicalize().is_ok_and(|dir| dir == source);
    if app_dir.exists() && !in_place {
        return Err(ScaffoldError::AppExists {
            name: name.into(),
            path: workspace.relative(&app_dir).to_path_buf(),
        }
        .into());
    }
    let root = workspace
        .root()
        .canonicalize()
        .map_err(io_error(workspace.root()))?;
    if root.starts_with(&source) {
        return Err(not_an_app("it holds the workspace itself".into()));
    }

    let mut skipped = Vec::new();
    let mut files = Vec::new();
    collect_files(&source, Path::new(""), &mut files, &mut skipped)
        .map_err(|e| not_an_app(e.to_string()))?;
    files.sort();
    if !files
        .iter()
        .any(|f| f.extension().is_some_and(|x| x == "py"))
    {
        return Err(not_an_app(
            "it has no Python files, so no Streamlit app".into(),
        ));
    }

    // Plan: the names the app's files get, the snowflake.yml update, the additions.
    let renamed = main_file(&source, &files).map(|old| (old, PathBuf::from(MAIN_FILE)));
    let mut kept: Vec<PathBuf> = files
        .iter()
        .map(|f| match &renamed {
            Some((old, new)) if f == old => new.clone(),
            _ => f.clone(),
        })
        .collect();
    kept.sort();
    let snowflake_yml = match &renamed {
        Some((old, _)) if files.iter().any(|f| f == Path::new(PROJECT_FILE)) => {
            let path = source.join(PROJECT_FILE);
            let text = fs::read_to_string(&path).map_err(io_error(&path))?;
            rename_in_definition(&text, &old.to_string_lossy(), MAIN_FILE)
        }
        _ => None,
    };
    // Package files of a container runtime: such an app gets no environment.yml.
    let container = PIP_FILES
        .iter()
        .any(|f| kept.iter().any(|k| k == Path::new(f)));
    let templates = workspace.root().join(APP_TEMPLATES);
    let answers = scaffold::app_answers(&workspace.config().project, name);
    let additions: Vec<(PathBuf, String)> =
        scaffold::render_app_templates(workspace, &templates, &answers)?
            .into_iter()
            .filter(|(path, _)| !kept.contains(path))
            .filter(|(path, _)| !(container && path == Path::new(CONDA_FILE)))
            .collect();
    // The template owns only what it added: `sluice upgrade` leaves the app's own files alone.
    let version = app_template::template_version(&templates)?;
    let record = AppRecord {
        template_version: version.clone(),
        answers,
        files: additions
            .iter()
            .map(|(p, _)| scaffold::slash_path(p))
            .collect(),
    };
    let record_path = PathBuf::from(app_template::RECORD_FILE);
    let recorded = !kept.contains(&record_path);
    let mut written = additions.clone();
    if recorded {
        written.push((record_path.clone(), record.to_yaml()));
        app_template::store_snapshot(workspace, &templates, &version)?;
    }

    // Write.
    if !in_place {
        fs::create_dir_all(workspace.apps_dir()).map_err(io_error(&workspace.apps_dir()))?;
        fs::create_dir(&app_dir).map_err(io_error(&app_dir))?;
    }
    let outcome = write_app(
        &source,
        &app_dir,
        in_place,
        &files,
        &renamed,
        snowflake_yml.as_deref(),
        &written,
    );
    if let Err(error) = outcome {
        if !in_place {
            // The folder is ours (create_dir succeeded): leave no half-made app behind.
            let _ = fs::remove_dir_all(&app_dir);
        }
        return Err(error.into());
    }
    Ok(Imported {
        app_dir: workspace.relative(&app_dir).to_path_buf(),
        in_place,
        kept,
        renamed,
        snowflake_yml_updated: snowflake_yml.is_some(),
        added: additions.into_iter().map(|(path, _)| path).collect(),
        record: recorded.then_some(record_path),
        skipped,
    })
}

fn write_app(
    source: &Path,
    app_dir: &Path,
    in_place: bool,
    files: &[PathBuf],
    renamed: &Option<(PathBuf, PathBuf)>,
    snowflake_yml: Option<&str>,
    additions: &[(PathBuf, String)],
) -> Result<(), ScaffoldError> {
    let target_of = |file: &Path| match renamed {
        Some((old, new)) if file == old => app_dir.join(new),
        _ => app_dir.join(file),
    };
    for file in files {
        let (from, to) = (source.join(file), target_of(file));
        if in_place {
            if from != to {
                fs::rename(&from, &to).map_err(io_error(&from))?;
            }
            continue;
        }
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        fs::copy(&from, &to).map_err(io_error(&from))?;
    }
    if let Some(text) = snowflake_yml {
        let path = app_dir.join(PROJECT_FILE);
        fs::write(&path, text).map_err(io_error(&path))?;
    }
    for (relative, contents) in additions {
        let path = app_dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        write_new(&path, contents).map_err(io_error(&path))?;
    }
    let pages = app_dir.join(PAGES_DIR);
    fs::create_dir_all(&pages).map_err(io_error(&pages))
}

/// Every file under `dir` (relative to the app), skipping the folders the
/// workspace never reads (but `.streamlit/`) and the secrets.
fn collect_files(
    root: &Path,
    relative: &Path,
    files: &mut Vec<PathBuf>,
    skipped: &mut Vec<(PathBuf, &'static str)>,
) -> std::io::Result<()> {
    for entry in fs::read_dir(root.join(relative))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        let name = entry.file_name().to_string_lossy().into_owned();
        let metadata = fs::metadata(entry.path())?;
        if metadata.is_dir() {
            if path == Path::new(STREAMLIT_DIR) || !is_skipped_dir(&name) {
                collect_files(root, &path, files, skipped)?;
            }
        } else if path == Path::new(SECRETS_FILE) {
            skipped.push((path, "secrets never go into the repository"));
        } else if metadata.is_file() && name != ".DS_Store" && !name.ends_with(".pyc") {
            files.push(path);
        }
    }
    Ok(())
}

/// The file to rename to `dashboard.py`, when the app has none (module doc).
fn main_file(source: &Path, files: &[PathBuf]) -> Option<PathBuf> {
    if files.iter().any(|f| f == Path::new(MAIN_FILE)) {
        return None;
    }
    let present = |name: &str| files.iter().find(|f| *f == Path::new(name)).cloned();
    let declared = fs::read_to_string(source.join(PROJECT_FILE))
        .ok()
        .and_then(|text| declared_main_file(&text));
    if let Some(found) = declared.as_deref().and_then(present) {
        return Some(found);
    }
    if let Some(found) = MAIN_CANDIDATES.iter().find_map(|c| present(c)) {
        return Some(found);
    }
    let top_level: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.parent() == Some(Path::new("")) && f.extension().is_some_and(|x| x == "py"))
        .collect();
    match top_level.as_slice() {
        [only] => Some((*only).clone()),
        _ => None,
    }
}

/// `text` with every `main_file: OLD` value and `- OLD` list item replaced
/// by `new`, comments and layout untouched; `None` when no line names `old`.
fn rename_in_definition(text: &str, old: &str, new: &str) -> Option<String> {
    let mut changed = false;
    let lines: Vec<String> = text
        .split_inclusive('\n')
        .map(|line| {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let (prefix, value) = if let Some(rest) = trimmed.strip_prefix("main_file:") {
                ("main_file: ", rest)
            } else if let Some(rest) = trimmed.strip_prefix("- ") {
                ("- ", rest)
            } else {
                return line.to_string();
            };
            let ending = if value.ends_with('\n') { "\n" } else { "" };
            let bare = value.trim().trim_matches(|c| c == '"' || c == '\'');
            if bare == old {
                changed = true;
                format!("{indent}{prefix}{new}{ending}")
            } else {
                line.to_string()
            }
        })
        .collect();
    changed.then(|| lines.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renaming_keeps_comments_and_layout() {
        let text = "entities:\n  old:\n    main_file: \"home.py\"  \n    artifacts:\n      - home.py\n      - pages/\n# home.py is the start\n";
        assert_eq!(
            rename_in_definition(text, "home.py", "dashboard.py").unwrap(),
            "entities:\n  old:\n    main_file: dashboard.py\n    artifacts:\n      - dashboard.py\n      - pages/\n# home.py is the start\n"
        );
        assert_eq!(
            rename_in_definition("a: b\n", "home.py", "dashboard.py"),
            None
        );
    }

    #[test]
    fn folders_the_workspace_never_reads_stay_behind_but_streamlits_settings() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "app.py",
            "pages/a.py",
            ".streamlit/config.toml",
            ".streamlit/secrets.toml",
            ".ipynb_checkpoints/app-checkpoint.py",
            "venv/lib/site.py",
            "__pycache__/app.cpython-311.pyc",
            "pages/.streamlit/config.toml",
        ] {
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        let (mut files, mut skipped) = (Vec::new(), Vec::new());
        collect_files(dir.path(), Path::new(""), &mut files, &mut skipped).unwrap();
        files.sort();
        assert_eq!(
            files,
            [".streamlit/config.toml", "app.py", "pages/a.py"].map(PathBuf::from)
        );
        assert_eq!(
            skipped,
            [(
                PathBuf::from(".streamlit/secrets.toml"),
                "secrets never go into the repository"
            )]
        );
    }

    #[test]
    fn the_main_file_is_found_by_convention() {
        let dir = tempfile::tempdir().unwrap();
        let files = |names: &[&str]| names.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            main_file(
                dir.path(),
                &files(&["app.py", "streamlit_app.py", "util.py"])
            ),
            Some(PathBuf::from("streamlit_app.py"))
        );
        assert_eq!(
            main_file(dir.path(), &files(&["home.py", "pages/a.py"])),
            Some(PathBuf::from("home.py"))
        );
        assert_eq!(main_file(dir.path(), &files(&["a.py", "b.py"])), None);
        assert_eq!(
            main_file(dir.path(), &files(&["dashboard.py", "app.py"])),
            None
        );
    }
}
