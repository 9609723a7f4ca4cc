//! A workspace: the folder holding `sluice.yml`, found by walking upward from
//! wherever a command runs, and the applications inside it.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, ResolvedEnvironment, CONFIG_FILE};

/// The shared-code folder inside the apps folder; never an app.
pub const COMPONENTS_DIR: &str = "components";

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
    /// Its page files: `dashboard.py` first (when present), then `pages/*.py` by name.
    pub pages: Vec<PathBuf>,
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

    /// Every application, by name: each folder under the apps folder except
    /// `components/`, hidden folders and `__pycache__`. A missing apps
    /// folder means no apps.
    pub fn apps(&self) -> Vec<App> {
        let Ok(entries) = std::fs::read_dir(self.apps_dir()) else {
            return Vec::new();
        };
        let mut apps: Vec<App> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let skip = name == COMPONENTS_DIR || name.starts_with('.') || name == "__pycache__";
                (!skip).then(|| App::load(name, e.path()))
            })
            .collect();
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        apps
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
    fn load(name: String, dir: PathBuf) -> App {
        let mut pages = Vec::new();
        let dashboard = dir.join("dashboard.py");
        if dashboard.is_file() {
            pages.push(dashboard);
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("pages")) {
            let mut more: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "py"))
                .collect();
            more.sort();
            pages.extend(more);
        }
        App { name, dir, pages }
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
