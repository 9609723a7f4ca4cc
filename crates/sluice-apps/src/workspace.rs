//! A workspace: the folder holding `sluice.yml`, found by walking upward from
//! wherever a command runs, and the applications inside it.
//!
//! Which folders are apps, which files they have and which of those are
//! pages is defined once, in `sluice_rules::workspace` (the checker's view;
//! this crate depends on `sluice-rules` for the deploy gate, so the shared
//! definition lives there): [`Workspace::apps`] is that layout with absolute
//! paths, so `sluice test`, `deploy` and `check` always see the same apps.

use std::path::{Path, PathBuf};

use sluice_rules::workspace as layout;

use crate::config::{Config, ConfigError, ResolvedEnvironment, CONFIG_FILE};

/// The shared-code folder inside the apps folder; never an app.
pub use sluice_rules::workspace::COMPONENTS_DIR;

/// A discovered workspace and its parsed configuration.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    config: Config,
}

/// One application: a folder under the apps folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The folder's name.
    pub name: String,
    /// The app's folder.
    pub dir: PathBuf,
    /// Its page files: `dashboard.py` first (when present), then `pages/*.py`
    /// by name (`pages/__init__.py` is not a page).
    pub pages: Vec<PathBuf>,
    /// Every file of the app, relative to `dir` (`/`-separated, sorted):
    /// what `sluice check` reads and a deploy uploads.
    pub files: Vec<String>,
}

/// Why a workspace could not be opened or an app found.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// No `sluice.yml` in the folder or any parent.
    #[error(
        "no {CONFIG_FILE} in {} or any parent folder; run `sluice init` to create a workspace",
        .start.display()
    )]
    NotFound { start: PathBuf },
    /// `sluice.yml` exists but cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The apps folder could not be listed.
    #[error("{}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// No app with that name.
    #[error("unknown app `{name}` ({})", known_apps(.known))]
    UnknownApp { name: String, known: Vec<String> },
}

fn known_apps(known: &[String]) -> String {
    if known.is_empty() {
        "the workspace has no apps yet".to_string()
    } else {
        format!("apps: {}", known.join(", "))
    }
}

impl Workspace {
    /// Finds `sluice.yml` in `start` or the nearest parent, and parses it.
    pub fn discover(start: &Path) -> Result<Workspace, WorkspaceError> {
        let absolute = if start.is_absolute() {
            start.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|source| WorkspaceError::Io {
                    path: start.to_path_buf(),
                    error: source,
                })?
                .join(start)
        };
        let root = absolute
            .ancestors()
            .find(|dir| dir.join(CONFIG_FILE).is_file())
            .ok_or_else(|| WorkspaceError::NotFound {
                start: absolute.clone(),
            })?
            .to_path_buf();
        Workspace::open(&root)
    }

    /// Opens the workspace whose `sluice.yml` is directly in `root`.
    pub fn open(root: &Path) -> Result<Workspace, WorkspaceError> {
        let config = Config::load(&root.join(CONFIG_FILE))?;
        Ok(Workspace {
            root: root.to_path_buf(),
            config,
        })
    }

    /// The folder holding `sluice.yml`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `sluice.yml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// The parsed `sluice.yml`.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The applications folder (absolute).
    pub fn apps_dir(&self) -> PathBuf {
        self.root.join(&self.config.apps_dir)
    }

    /// The shared components folder, put on `sys.path`'s parent when pages run.
    pub fn components_dir(&self) -> PathBuf {
        self.apps_dir().join(COMPONENTS_DIR)
    }

    /// The maintainers' templates folder.
    pub fn templates_dir(&self) -> PathBuf {
        self.root.join("templates")
    }

    /// The audit log's path (absolute).
    pub fn audit_log(&self) -> PathBuf {
        self.root.join(&self.config.audit_log)
    }

    /// `path` relative to the workspace root when it is inside it (for messages).
    pub fn relative<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }

    /// The workspace's layout as `sluice check` reads it: every app and its
    /// files, workspace-relative.
    pub fn layout(&self) -> Result<layout::Workspace, layout::WorkspaceError> {
        layout::Workspace::discover(&self.root, &self.config.apps_dir.to_string_lossy())
    }

    /// Every application, by name: each folder under the apps folder except
    /// `components/`, hidden folders, caches and virtualenvs (see
    /// `sluice_rules::workspace`). A missing apps folder means no apps.
    pub fn apps(&self) -> Vec<App> {
        match self.layout() {
            Ok(found) => found
                .apps
                .iter()
                .map(|app| App::from_layout(&self.root, app))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The app called `name`, or an error listing the apps there are.
    pub fn app(&self, name: &str) -> Result<App, WorkspaceError> {
        let apps = self.apps();
        match apps.iter().position(|a| a.name == name) {
            Some(i) => Ok(apps[i].clone()),
            None => Err(WorkspaceError::UnknownApp {
                name: name.to_string(),
                known: apps.into_iter().map(|a| a.name).collect(),
            }),
        }
    }

    /// The environment `name` (default `$SLUICE_ENV`, else `local`), with
    /// `SLUICE_<KEY>` overrides from the process environment.
    pub fn environment(&self, name: Option<&str>) -> Result<ResolvedEnvironment, ConfigError> {
        self.config
            .resolve(name, Path::new(CONFIG_FILE), |k| std::env::var(k).ok())
    }
}

impl App {
    fn from_layout(root: &Path, app: &layout::App) -> App {
        App {
            name: app.name.clone(),
            dir: root.join(&app.dir),
            pages: app.pages().map(|page| root.join(page)).collect(),
            files: app
                .files
                .iter()
                .map(|file| app.relative(file).to_string())
                .collect(),
        }
    }

    /// The page `pages/<page>.py` of this app.
    pub fn page_path(&self, page: &str) -> PathBuf {
        self.dir.join("pages").join(format!("{page}.py"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(CONFIG_FILE),
            "project: t\nenvironments:\n  local: {}\n",
        )
        .unwrap();
        let apps = dir.path().join("applications");
        for d in [
            "components",
            "b_app/pages",
            "a_app",
            ".hidden",
            "__pycache__",
        ] {
            fs::create_dir_all(apps.join(d)).unwrap();
        }
        fs::write(apps.join("b_app/dashboard.py"), "").unwrap();
        fs::write(apps.join("b_app/pages/z.py"), "").unwrap();
        fs::write(apps.join("b_app/pages/a.py"), "").unwrap();
        fs::write(apps.join("b_app/pages/notes.txt"), "").unwrap();
        fs::write(apps.join("b_app/pages/__init__.py"), "").unwrap();
        dir
    }

    #[test]
    fn discovers_from_a_subfolder() {
        let dir = workspace();
        let sub = dir.path().join("applications/b_app/pages");
        let ws = Workspace::discover(&sub).unwrap();
        assert_eq!(ws.root(), dir.path());
        assert_eq!(ws.apps_dir(), dir.path().join("applications"));
    }

    #[test]
    fn lists_apps_and_pages_in_order() {
        let dir = workspace();
        let ws = Workspace::discover(dir.path()).unwrap();
        let apps = ws.apps();
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a_app", "b_app"]);
        let pages: Vec<&Path> = apps[1]
            .pages
            .iter()
            .map(|p| p.strip_prefix(&apps[1].dir).unwrap())
            .collect();
        assert_eq!(
            pages,
            [
                Path::new("dashboard.py"),
                Path::new("pages/a.py"),
                Path::new("pages/z.py")
            ]
        );
        assert!(apps[0].pages.is_empty());
        // `pages/__init__.py` is a file of the app, not a page.
        assert_eq!(
            apps[1].files,
            [
                "dashboard.py",
                "pages/__init__.py",
                "pages/a.py",
                "pages/notes.txt",
                "pages/z.py"
            ]
        );
    }

    #[test]
    fn unknown_app_lists_apps() {
        let dir = workspace();
        let ws = Workspace::discover(dir.path()).unwrap();
        let err = ws.app("nope").unwrap_err().to_string();
        assert_eq!(err, "unknown app `nope` (apps: a_app, b_app)");
    }

    #[test]
    fn missing_workspace_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = Workspace::discover(dir.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "no sluice.yml in {} or any parent folder; run `sluice init` to create a workspace",
                dir.path().display()
            )
        );
    }
}
