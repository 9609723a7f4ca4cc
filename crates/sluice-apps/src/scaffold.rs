//! `sluice init`, `new-app` and `new-page`: files made from templates.
//!
//! The default workspace ships inside the binary (`include_str!` over
//! `crates/sluice-apps/templates/workspace/`). `init` writes it out,
//! including the app and page templates into the workspace's `templates/`;
//! `new-app` and `new-page` then render from the *workspace's* templates, so
//! maintainers change what creators get by editing files in their repository.
//! Templates are rendered with minijinja (Jinja syntax, errors with the
//! template's line). Nothing is ever overwritten: every file is created with
//! `create_new`, and all templates are rendered before the first file is written.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use minijinja::Environment as Jinja;
use serde::Serialize;

use crate::app_template::{self, AppRecord};
use crate::config::CONFIG_FILE;
use crate::names::{self, NameProblem};
use crate::workspace::{Workspace, WorkspaceError};

/// The example app `init` creates, and its example page.
pub const EXAMPLE_APP: &str = "main_app";
pub const EXAMPLE_PAGE: &str = "overview";

/// The workspace templates folder's app and page subfolders.
pub const APP_TEMPLATES: &str = "templates/app";
const PAGE_TEMPLATE: &str = "templates/page/page.py.j2";
const TEMPLATE_SUFFIX: &str = ".j2";

/// How `init` writes one embedded file.
enum Kind {
    /// Rendered with the project's context.
    Render,
    /// Written as is (including the templates themselves).
    Copy,
}

/// The embedded default workspace: (path in the workspace, how, contents).
const WORKSPACE_FILES: &[(&str, Kind, &str)] = &[
    (
        CONFIG_FILE,
        Kind::Render,
        include_str!("../templates/workspace/sluice.yml.j2"),
    ),
    (
        "requirements.txt",
        Kind::Copy,
        include_str!("../templates/workspace/requirements.txt"),
    ),
    (
        ".gitignore",
        Kind::Copy,
        include_str!("../templates/workspace/gitignore"),
    ),
    (
        "CODEOWNERS",
        Kind::Copy,
        include_str!("../templates/workspace/CODEOWNERS"),
    ),
    (
        ".gitlab-ci.yml",
        Kind::Copy,
        include_str!("../templates/workspace/gitlab-ci.yml"),
    ),
    (
        sluice_rules::RULES_FILE,
        Kind::Copy,
        // The checker owns its default policy; the workspace gets a copy to edit.
        sluice_rules::DEFAULT_RULES,
    ),
    (
        "applications/components/__init__.py",
        Kind::Copy,
        include_str!("../../../python/sluice_components/__init__.py"),
    ),
    (
        "applications/components/base_page.py",
        Kind::Copy,
        include_str!("../../../python/sluice_components/base_page.py"),
    ),
    (
        "templates/app/dashboard.py.j2",
        Kind::Copy,
        include_str!("../templates/workspace/templates/app/dashboard.py.j2"),
    ),
    (
        "templates/app/snowflake.yml.j2",
        Kind::Copy,
        include_str!("../templates/workspace/templates/app/snowflake.yml.j2"),
    ),
    (
        "templates/app/environment.yml.j2",
        Kind::Copy,
        include_str!("../templates/workspace/templates/app/environment.yml.j2"),
    ),
    (
        "templates/app/share.yml.j2",
        Kind::Copy,
        include_str!("../templates/workspace/templates/app/share.yml.j2"),
    ),
    (
        "templates/app/README.md.j2",
        Kind::Copy,
        include_str!("../templates/workspace/templates/app/README.md.j2"),
    ),
    (
        PAGE_TEMPLATE,
        Kind::Copy,
        include_str!("../templates/workspace/templates/page/page.py.j2"),
    ),
];

/// What `init` did.
#[derive(Debug)]
pub enum InitOutcome {
    /// A new workspace: its root and every file made (relative to the root).
    Created {
        workspace: Workspace,
        files: Vec<PathBuf>,
    },
    /// The folder already holds a `sluice.yml`: nothing was touched.
    AlreadyAWorkspace { root: PathBuf },
}

/// The files an app or page command made.
#[derive(Debug)]
pub struct Created {
    /// Paths relative to the workspace root, in creation order.
    pub files: Vec<PathBuf>,
}

/// Why scaffolding refused or failed. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "refusing to initialise {}: the folder is not empty and has no sluice.yml",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error("invalid {what} name `{name}`: use a lowercase snake_case identifier (a-z, 0-9 and _, starting with a letter)")]
    InvalidName { what: &'static str, name: String },
    #[error("`{0}` is reserved {why}; choose another app name", why = reserved_for(.0))]
    ReservedName(String),
    #[error("app `{name}` already exists at {}", .path.display())]
    AppExists { name: String, path: PathBuf },
    #[error("page `{page}` already exists at {}", .path.display())]
    PageExists { page: String, path: PathBuf },
    #[error("missing template {}: restore it from another workspace or `sluice init` a new one", .0.display())]
    MissingTemplate(PathBuf),
    #[error("{}", .0)]
    Template(String),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("{}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

fn reserved_for(name: &str) -> &'static str {
    if name == crate::workspace::COMPONENTS_DIR {
        "for the shared components"
    } else {
        "(the workspace never reads such a folder as an app)"
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ScaffoldError + '_ {
    move |source| ScaffoldError::Io {
        path: path.to_path_buf(),
        error: source,
    }
}

/// The values templates see.
#[derive(Debug, Serialize)]
struct Context<'a> {
    project: &'a str,
    app_name: &'a str,
    app_title: String,
    page_name: &'a str,
    page_title: String,
    /// The Python class the rendered page defines (`SalesDashboardPage`).
    class_name: String,
}

/// The values an app's templates are rendered with, by name: what
/// `.sluice-app.yml` records as the app's answers.
pub type Answers = BTreeMap<String, String>;

/// The answers of a new app called `app` in `project`.
pub(crate) fn app_answers(project: &str, app: &str) -> Answers {
    let context = Context::app(project, app);
    [
        ("project", context.project.to_string()),
        ("app_name", context.app_name.to_string()),
        ("app_title", context.app_title),
        ("page_name", context.page_name.to_string()),
        ("page_title", context.page_title),
        ("class_name", context.class_name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl<'a> Context<'a> {
    fn app(project: &'a str, app: &'a str) -> Self {
        Context {
            project,
            app_name: app,
            app_title: names::title_case(app),
            page_name: "dashboard",
            page_title: names::title_case(app),
            class_name: format!("{}Page", names::camel_case(app)),
        }
    }

    fn page(project: &'a str, app: &'a str, page: &'a str) -> Self {
        Context {
            page_name: page,
            page_title: names::title_case(page),
            class_name: format!("{}Page", names::camel_case(page)),
            ..Context::app(project, app)
        }
    }
}

/// Creates a workspace in `dir` (made if missing): the default files, then
/// the example app rendered from the templates just written.
///
/// A folder that already has `sluice.yml` is left alone; any other non-empty
/// folder (a `.git` folder alone is fine) is refused.
pub fn init(dir: &Path) -> Result<InitOutcome, ScaffoldError> {
    if dir.join(CONFIG_FILE).is_file() {
        return Ok(InitOutcome::AlreadyAWorkspace {
            root: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
        });
    }
    if dir.exists() {
        let mut entries = fs::read_dir(dir).map_err(io_error(dir))?;
        if entries.any(|e| e.map_or(true, |e| e.file_name() != ".git")) {
            let shown = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
            return Err(ScaffoldError::NotEmpty(shown));
        }
    }
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let root = dir.canonicalize().map_err(io_error(dir))?;

    let project = names::project_name_from(
        root.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("analytics"),
    );
    let context = minijinja::context! { project => project };
    let mut planned = Vec::new();
    for (path, kind, text) in WORKSPACE_FILES {
        let contents = match kind {
            Kind::Copy => text.to_string(),
            Kind::Render => render(path, text, &context)?,
        };
        planned.push((PathBuf::from(path), contents));
    }
    let mut files = write_all(&root, &planned)?;

    let workspace = Workspace::open(&root)?;
    files.extend(new_app(&workspace, EXAMPLE_APP)?.files);
    let workspace = Workspace::open(&root)?;
    files.extend(new_page(&workspace, EXAMPLE_APP, EXAMPLE_PAGE)?.files);
    Ok(InitOutcome::Created { workspace, files })
}

/// Creates `applications/<name>/` from the workspace's `templates/app/`:
/// every file there, rendered when it ends in `.j2` (suffix dropped), plus
/// an empty `pages/` folder.
pub fn new_app(workspace: &Workspace, name: &str) -> Result<Created, ScaffoldError> {
    check_new_app_name(name)?;
    let app_dir = workspace.apps_dir().join(name);
    if app_dir.exists() {
        return Err(ScaffoldError::AppExists {
            name: name.into(),
            path: workspace.relative(&app_dir).to_path_buf(),
        });
    }

    let templates = workspace.root().join(APP_TEMPLATES);
    let answers = app_answers(&workspace.config().project, name);
    let mut planned = render_app_templates(workspace, &templates, &answers)?;
    // The template version this app is made from, for `sluice upgrade`.
    let version = app_template::template_version(&templates)?;
    let record = AppRecord {
        template_version: version.clone(),
        answers,
        files: planned.iter().map(|(path, _)| slash_path(path)).collect(),
    };
    planned.push((PathBuf::from(app_template::RECORD_FILE), record.to_yaml()));
    let snapshot_written = app_template::store_snapshot(workspace, &templates, &version)?;

    // create_dir (not _all) fails if another process made the app meanwhile.
    fs::create_dir_all(workspace.apps_dir()).map_err(io_error(&workspace.apps_dir()))?;
    fs::create_dir(&app_dir).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => ScaffoldError::AppExists {
            name: name.into(),
            path: workspace.relative(&app_dir).to_path_buf(),
        },
        _ => ScaffoldError::Io {
            path: app_dir.clone(),
            error: source,
        },
    })?;
    let result = write_all(&app_dir, &planned).and_then(|written| {
        let pages = app_dir.join("pages");
        fs::create_dir_all(&pages).map_err(io_error(&pages))?;
        Ok(written)
    });
    match result {
        Ok(written) => {
            let prefix = workspace.relative(&app_dir).to_path_buf();
            let mut files: Vec<PathBuf> = written.into_iter().map(|f| prefix.join(f)).collect();
            files.push(prefix.join("pages/"));
            if snapshot_written {
                let snapshot = app_template::snapshot_dir(workspace, &version);
                files.push(workspace.relative(&snapshot).join(""));
            }
            Ok(Created { files })
        }
        Err(error) => {
            // The folder is ours (create_dir succeeded): leave no half-made app behind.
            let _ = fs::remove_dir_all(&app_dir);
            Err(error)
        }
    }
}

/// Refuses a name a new app cannot have (not snake_case, or `components`).
pub(crate) fn check_new_app_name(name: &str) -> Result<(), ScaffoldError> {
    match names::check_app_name(name) {
        Ok(()) => Ok(()),
        Err(NameProblem::NotSnakeCase) => Err(ScaffoldError::InvalidName {
            what: "app",
            name: name.into(),
        }),
        Err(NameProblem::Reserved) => Err(ScaffoldError::ReservedName(name.into())),
    }
}

/// The files an app gets from the app templates in `templates` (the
/// workspace's `templates/app/`, or a snapshot of an older version) with
/// `answers`: (path in the app, contents), rendered when the template ends
/// in `.j2`.
pub(crate) fn render_app_templates(
    workspace: &Workspace,
    templates: &Path,
    answers: &Answers,
) -> Result<Vec<(PathBuf, String)>, ScaffoldError> {
    if !templates.is_dir() {
        return Err(ScaffoldError::MissingTemplate(
            workspace.relative(templates).to_path_buf(),
        ));
    }
    let mut planned = Vec::new();
    for (relative, source) in template_files(templates)? {
        let text = fs::read_to_string(&source).map_err(io_error(&source))?;
        let shown = workspace.relative(&source).to_string_lossy().into_owned();
        let (target, contents) = match relative
            .to_str()
            .and_then(|p| p.strip_suffix(TEMPLATE_SUFFIX))
        {
            Some(stripped) => (PathBuf::from(stripped), render(&shown, &text, answers)?),
            None => (relative, text),
        };
        planned.push((target, contents));
    }
    Ok(planned)
}

/// Creates `applications/<app>/pages/<page>.py` from `templates/page/page.py.j2`.
pub fn new_page(workspace: &Workspace, app: &str, page: &str) -> Result<Created, ScaffoldError> {
    if names::check_identifier(page).is_err() {
        return Err(ScaffoldError::InvalidName {
            what: "page",
            name: page.into(),
        });
    }
    if names::check_app_name(app).is_err() {
        // Also keeps `../x` and `components` from being looked up as apps.
        return Err(WorkspaceError::UnknownApp {
            name: app.into(),
            known: workspace.apps().into_iter().map(|a| a.name).collect(),
        }
        .into());
    }
    let app = workspace.app(app)?;
    let path = app.page_path(page);
    if path.exists() {
        return Err(ScaffoldError::PageExists {
            page: page.into(),
            path: workspace.relative(&path).to_path_buf(),
        });
    }
    let template = workspace.root().join(PAGE_TEMPLATE);
    if !template.is_file() {
        return Err(ScaffoldError::MissingTemplate(
            workspace.relative(&template).to_path_buf(),
        ));
    }
    let text = fs::read_to_string(&template).map_err(io_error(&template))?;
    let context = Context::page(&workspace.config().project, &app.name, page);
    let shown = workspace.relative(&template).to_string_lossy().into_owned();
    let contents = render(&shown, &text, &context)?;
    let pages = app.dir.join("pages");
    fs::create_dir_all(&pages).map_err(io_error(&pages))?;
    write_new(&path, &contents).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => ScaffoldError::PageExists {
            page: page.into(),
            path: workspace.relative(&path).to_path_buf(),
        },
        _ => ScaffoldError::Io {
            path: path.clone(),
            error: source,
        },
    })?;
    Ok(Created {
        files: vec![workspace.relative(&path).to_path_buf()],
    })
}

/// Renders one template; errors name the template and its line.
fn render(name: &str, text: &str, context: impl Serialize) -> Result<String, ScaffoldError> {
    let mut jinja = Jinja::new();
    // Generated files end with a newline like their templates.
    jinja.set_keep_trailing_newline(true);
    jinja.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let located = |e: minijinja::Error| {
        let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
        let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
        ScaffoldError::Template(format!("{name}{line}: {}{detail}", e.kind()))
    };
    jinja.add_template(name, text).map_err(located)?;
    jinja
        .get_template(name)
        .and_then(|t| t.render(context))
        .map_err(located)
}

/// Every file under `dir` (recursively, sorted), as (relative path, full path).
/// Hidden files and `__pycache__` are skipped.
pub(crate) fn template_files(dir: &Path) -> Result<BTreeMap<PathBuf, PathBuf>, ScaffoldError> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).map_err(io_error(&current))? {
            let entry = entry.map_err(io_error(&current))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                found.insert(relative, path);
            }
        }
    }
    Ok(found)
}

/// Writes each (relative path, contents) under `root`, never overwriting.
/// `a/b.py` with `/` whatever the platform: how records name files.
pub(crate) fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn write_all(root: &Path, files: &[(PathBuf, String)]) -> Result<Vec<PathBuf>, ScaffoldError> {
    let mut written = Vec::new();
    for (relative, contents) in files {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        write_new(&path, contents).map_err(io_error(&path))?;
        written.push(relative.clone());
    }
    Ok(written)
}

pub(crate) fn write_new(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_reports_template_line() {
        let err = render(
            "templates/app/x.j2",
            "a\n{{ nope }}\n",
            Context::app("p", "a"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("templates/app/x.j2:2: "), "{err}");
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn page_context_names_the_class() {
        let c = Context::page("p", "sales_dashboard", "q2_report");
        assert_eq!(c.class_name, "Q2ReportPage");
        assert_eq!(c.app_title, "Sales Dashboard");
        assert_eq!(c.page_title, "Q2 Report");
    }

    #[test]
    fn init_then_new_app_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        let InitOutcome::Created { workspace, files } = init(&root).unwrap() else {
            panic!("expected a new workspace");
        };
        assert!(files.contains(&PathBuf::from("applications/main_app/dashboard.py")));
        assert!(files.contains(&PathBuf::from("applications/main_app/pages/overview.py")));
        let dashboard =
            fs::read_to_string(workspace.apps_dir().join("main_app/dashboard.py")).unwrap();
        assert!(
            dashboard.contains("class MainAppPage(BasePage):"),
            "{dashboard}"
        );
        let yml = fs::read_to_string(root.join("sluice.yml")).unwrap();
        assert!(yml.contains("project: ws\n"), "{yml}");
        assert!(yml.contains("database: WS_TEST\n"), "{yml}");

        let again = init(&root).unwrap();
        assert!(matches!(again, InitOutcome::AlreadyAWorkspace { .. }));

        let created = new_app(&workspace, "sales").unwrap();
        assert!(created
            .files
            .contains(&PathBuf::from("applications/sales/snowflake.yml")));
        let err = new_app(&workspace, "sales").unwrap_err().to_string();
        assert_eq!(err, "app `sales` already exists at applications/sales");
    }

    #[test]
    fn init_refuses_a_non_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "keep me").unwrap();
        let err = init(dir.path()).unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty(_)));
        assert_eq!(
            fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
            "keep me"
        );
        assert!(!dir.path().join("sluice.yml").exists());
    }

    #[test]
    fn a_broken_template_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let InitOutcome::Created { workspace, .. } = init(dir.path()).unwrap() else {
            panic!()
        };
        fs::write(dir.path().join("templates/app/broken.txt.j2"), "{% if %}\n").unwrap();
        let err = new_app(&workspace, "other").unwrap_err().to_string();
        assert!(err.starts_with("templates/app/broken.txt.j2:1: "), "{err}");
        assert!(!workspace.apps_dir().join("other").exists());
    }
}
