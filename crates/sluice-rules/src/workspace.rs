//! The workspace layout: which folders are applications, which of their
//! files are pages, and every file an application has. This is the one
//! definition of it: `sluice check` reads it here, and `sluice-apps` (which
//! depends on this crate for the deploy gate, so it cannot be the other way
//! round) builds its apps, their pages and their deployment folders from
//! [`Workspace::discover`] too. What the checker reads is what gets run and
//! deployed.
//!
//! An application is every folder directly under the apps dir except
//! `components/` (shared code, not an app), hidden folders and the folders
//! never descended into ([`is_skipped_dir`]: caches, virtualenvs, `.git`).
//! Its files are everything below it except those folders. Its *pages* are
//! `dashboard.py` and `pages/*.py`, except `pages/__init__.py`, which makes
//! `pages` a package and is not a page ([`is_page_path`]). Paths are kept
//! workspace-relative with `/` separators, which is what rule globs and
//! reports use.

use std::path::{Path, PathBuf};

/// Folders never descended into (besides hidden ones).
const SKIPPED_DIRS: &[&str] = &["__pycache__", "node_modules", ".venv", "venv", ".git"];

/// The folder of shared code under the apps dir.
pub const COMPONENTS_DIR: &str = "components";
/// Every app's main page, relative to its folder: what `sluice run` starts,
/// `sluice import` renames an app's main file to, and deploy names as
/// `main_file`.
pub const MAIN_FILE: &str = "dashboard.py";
/// Every app's pages folder (Streamlit's multi-page folder, deploy's `pages_dir`).
pub const PAGES_DIR: &str = "pages";

/// The workspace as the checker sees it.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The folder holding `sluice.yml`.
    pub root: PathBuf,
    /// Apps dir relative to the root (`applications`).
    pub apps_dir: String,
    pub apps: Vec<App>,
    /// Python files under `<apps_dir>/components/`, workspace-relative.
    pub component_files: Vec<String>,
}

/// One application.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    /// Workspace-relative folder (`applications/main_app`).
    pub dir: String,
    /// Workspace-relative files, sorted.
    pub files: Vec<String>,
}

impl App {
    /// The path of `file` relative to the app folder.
    pub fn relative<'a>(&self, file: &'a str) -> &'a str {
        file.strip_prefix(&self.dir)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(file)
    }

    /// Page files: `dashboard.py` and `pages/*.py` (not `pages/__init__.py`).
    pub fn is_page(&self, file: &str) -> bool {
        is_page_path(self.relative(file))
    }

    /// The app's page files (workspace-relative): `dashboard.py` first, then
    /// `pages/*.py` by name, as `sluice test` runs them.
    pub fn pages(&self) -> impl Iterator<Item = &str> {
        // `files` is sorted, and `dashboard.py` sorts before `pages/`.
        self.files
            .iter()
            .map(String::as_str)
            .filter(|f| self.is_page(f))
    }
}

/// Whether a folder is never descended into: hidden folders, caches,
/// virtualenvs and `.git`. Such a folder under the apps dir is not an app.
pub fn is_skipped_dir(name: &str) -> bool {
    name.starts_with('.') || SKIPPED_DIRS.contains(&name)
}

/// Whether an app-relative path is a page file.
pub fn is_page_path(relative: &str) -> bool {
    relative == MAIN_FILE
        || relative
            .strip_prefix(PAGES_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|r| r.ends_with(".py") && !r.contains('/') && r != "__init__.py")
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    // The io error is in the message, not a `#[source]` (see `ConfigError::Read`).
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

impl Workspace {
    /// Lists the apps under `root/apps_dir`.
    pub fn discover(root: &Path, apps_dir: &str) -> Result<Workspace, WorkspaceError> {
        let apps_dir = apps_dir.trim_end_matches('/').to_string();
        let apps_path = root.join(&apps_dir);
        let io = |path: &Path, error| WorkspaceError::Io {
            path: path.display().to_string(),
            error,
        };
        let mut apps = Vec::new();
        let mut component_files = Vec::new();
        let entries = std::fs::read_dir(&apps_path).map_err(|e| io(&apps_path, e))?;
        let mut dirs: Vec<(String, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(&apps_path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_skipped_dir(&name) {
                continue;
            }
            if entry
                .file_type()
                .map_err(|e| io(&entry.path(), e))?
                .is_dir()
            {
                dirs.push((name, entry.path()));
            }
        }
        dirs.sort();
        for (name, path) in dirs {
            let dir = format!("{apps_dir}/{name}");
            let files = files_under(&path, &dir).map_err(|e| io(&path, e))?;
            if name == COMPONENTS_DIR {
                component_files = files.into_iter().filter(|f| f.ends_with(".py")).collect();
            } else {
                apps.push(App { name, dir, files });
            }
        }
        Ok(Workspace {
            root: root.to_path_buf(),
            apps_dir,
            apps,
            component_files,
        })
    }

    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }
}

/// Every file below `dir` (skipping [`is_skipped_dir`] folders), named
/// `rel/...`, sorted. A symbolic link to a file is a file, as it is for
/// Python and for `snow`'s upload.
pub fn files_under(dir: &Path, rel: &str) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    walk(dir, rel, &mut files)?;
    files.sort();
    Ok(files)
}

fn walk(path: &Path, rel: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let rel_child = format!("{rel}/{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !is_skipped_dir(&name) {
                walk(&entry.path(), &rel_child, out)?;
            }
        } else if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
            out.push(rel_child);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths() {
        assert!(is_page_path("dashboard.py"));
        assert!(is_page_path("pages/sales.py"));
        assert!(!is_page_path("pages/__init__.py"));
        assert!(!is_page_path("pages/sub/x.py"));
        assert!(!is_page_path("helpers.py"));
    }

    #[test]
    fn discovers_apps_but_not_components() {
        let dir = tempfile::tempdir().unwrap();
        let apps = dir.path().join("applications");
        for f in [
            "components/base_page.py",
            "sales/dashboard.py",
            "sales/pages/a.py",
            "sales/__pycache__/x.pyc",
            "hr/README.md",
        ] {
            let p = apps.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let ws = Workspace::discover(dir.path(), "applications").unwrap();
        let names: Vec<_> = ws.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["hr", "sales"]);
        assert_eq!(
            ws.app("sales").unwrap().files,
            [
                "applications/sales/dashboard.py",
                "applications/sales/pages/a.py"
            ]
        );
        assert_eq!(ws.component_files, ["applications/components/base_page.py"]);
    }

    #[test]
    fn pages_come_dashboard_first_and_skip_the_package_marker() {
        let dir = tempfile::tempdir().unwrap();
        let apps = dir.path().join("applications");
        for f in [
            "sales/pages/z.py",
            "sales/pages/__init__.py",
            "sales/pages/a.py",
            "sales/pages/notes.txt",
            "sales/pages/sub/deep.py",
            "sales/dashboard.py",
            "sales/helpers.py",
            "venv/lib/x.py",
            "node_modules/x.js",
        ] {
            let p = apps.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        std::os::unix::fs::symlink(
            apps.join("sales/helpers.py"),
            apps.join("sales/pages/linked.py"),
        )
        .unwrap();
        let ws = Workspace::discover(dir.path(), "applications/").unwrap();
        // Virtualenvs and node_modules are never apps.
        let names: Vec<_> = ws.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["sales"]);
        let pages: Vec<&str> = ws.apps[0].pages().collect();
        assert_eq!(
            pages,
            [
                "applications/sales/dashboard.py",
                "applications/sales/pages/a.py",
                "applications/sales/pages/linked.py",
                "applications/sales/pages/z.py",
            ]
        );
        assert!(ws.apps[0]
            .files
            .contains(&"applications/sales/pages/__init__.py".to_string()));
    }
}
