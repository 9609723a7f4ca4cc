//! Which version of the app template each app was made from, so that
//! `sluice upgrade` can re-render it (copier's answers file, for a template
//! that lives in the workspace itself).
//!
//! - **The template version** is a content digest of `templates/app/`:
//!   SHA-256 over every template file's path and bytes (hidden files and
//!   `__pycache__` skipped, as rendering skips them), 16 hex digits.
//! - **The record**, `applications/<app>/.sluice-app.yml`, written by
//!   `new-app` (and `import`): the version, the answers the templates were
//!   rendered with (`project`, `app_name`, `app_title`, ...: re-rendering
//!   with the recorded answers reproduces the app's files even after the
//!   project is renamed), and the app files the template owns (all of them
//!   for `new-app`; for `import` only the files it added).
//! - **The snapshot**, `templates/.versions/<version>/`: a copy of
//!   `templates/app/` as it was at that version, written once when an app is
//!   first made from (or upgraded to) it.
//!
//! Why snapshots in `templates/.versions/` and not in `.sluice/` or git
//! history: `.sluice/` is each machine's ignored local state (build folders,
//! the runner), so a snapshot there would exist only where the app was made,
//! and `sluice upgrade` on another clone or in CI would have no base to
//! merge from. Git history would need the workspace to be a repository, the
//! templates to have been committed at exactly the version rendered, and a
//! search through history. A content-addressed folder committed next to the
//! templates (maintainer-owned like them) needs neither, travels with every
//! clone and branch, and is verified against its name before use, so an
//! edited snapshot is refused instead of silently producing a wrong merge.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::scaffold::{io_error, template_files, ScaffoldError};
use crate::workspace::Workspace;
use crate::write_once::write_folder_once;
use sluice_rules::source::without_location;

/// The record file in every app's folder.
pub const RECORD_FILE: &str = ".sluice-app.yml";
/// Where template snapshots are kept, relative to the workspace root.
pub const VERSIONS_DIR: &str = "templates/.versions";
/// Hex digits of the digest kept as the version.
const VERSION_LEN: usize = 16;

const RECORD_HEADER: &str =
    "# Written by sluice: the app template version this app was rendered from\n\
# (templates/.versions/<template_version>/), the answers it was rendered with, and\n\
# the files the template owns. `sluice upgrade` reads it; keep it in version control.\n";

/// What `.sluice-app.yml` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRecord {
    pub template_version: String,
    pub answers: BTreeMap<String, String>,
    /// App-relative paths (`/`-separated) of the files the template owns.
    pub files: Vec<String>,
}

/// A record or snapshot that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateVersionError {
    #[error("{}: {message}", .path.display())]
    InvalidRecord { path: PathBuf, message: String },
    #[error(
        "{} is missing: the template version {version} that `{app}` was made from is gone; restore the folder from version control",
        .path.display()
    )]
    MissingSnapshot {
        app: String,
        version: String,
        path: PathBuf,
    },
    #[error(
        "{} was edited (its contents are version {found}); restore it from version control",
        .path.display()
    )]
    EditedSnapshot { path: PathBuf, found: String },
    #[error(transparent)]
    Scaffold(#[from] ScaffoldError),
}

impl AppRecord {
    /// The record of the app in `app_dir`; `None` when it has none (made
    /// before Sluice recorded template versions). `shown` names it in errors.
    pub fn load(app_dir: &Path, shown: &Path) -> Result<Option<AppRecord>, TemplateVersionError> {
        let path = app_dir.join(RECORD_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ScaffoldError::Io { path, error: e }.into()),
        };
        serde_norway::from_str(&text)
            .map(Some)
            .map_err(|e| TemplateVersionError::InvalidRecord {
                path: match e.location() {
                    Some(l) => {
                        PathBuf::from(format!("{}:{}:{}", shown.display(), l.line(), l.column()))
                    }
                    None => shown.to_path_buf(),
                },
                message: without_location(&e.to_string()),
            })
    }

    /// The file's text: a comment saying what it is, then the YAML.
    pub fn to_yaml(&self) -> String {
        let body = serde_norway::to_string(self).unwrap_or_default();
        format!("{RECORD_HEADER}{body}")
    }
}

/// The version (content digest) of the templates in `dir`.
pub fn template_version(dir: &Path) -> Result<String, ScaffoldError> {
    let mut digest = Sha256::new();
    for (relative, path) in template_files(dir)? {
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        digest.update(relative.to_string_lossy().replace('\\', "/").as_bytes());
        digest.update([0]);
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(&bytes);
    }
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(hex[..VERSION_LEN].to_string())
}

/// `templates/.versions/<version>/`.
pub fn snapshot_dir(workspace: &Workspace, version: &str) -> PathBuf {
    workspace.root().join(VERSIONS_DIR).join(version)
}

/// Stores a snapshot of `templates` (at `version`) unless one exists;
/// returns whether it wrote one (see [`crate::write_once`]).
pub fn store_snapshot(
    workspace: &Workspace,
    templates: &Path,
    version: &str,
) -> Result<bool, ScaffoldError> {
    let dir = snapshot_dir(workspace, version);
    if dir.is_dir() {
        return Ok(false);
    }
    let mut files = Vec::new();
    for (relative, source) in template_files(templates)? {
        files.push((relative, fs::read(&source).map_err(io_error(&source))?));
    }
    write_folder_once(&dir, &files).map_err(|(path, error)| ScaffoldError::Io { path, error })
}

/// The snapshot of `version`, checked against its name.
pub fn verified_snapshot(
    workspace: &Workspace,
    app: &str,
    version: &str,
) -> Result<PathBuf, TemplateVersionError> {
    let dir = snapshot_dir(workspace, version);
    if !dir.is_dir() {
        return Err(TemplateVersionError::MissingSnapshot {
            app: app.to_string(),
            version: version.to_string(),
            path: workspace.relative(&dir).to_path_buf(),
        });
    }
    let found = template_version(&dir)?;
    if found != version {
        return Err(TemplateVersionError::EditedSnapshot {
            path: workspace.relative(&dir).to_path_buf(),
            found,
        });
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_follows_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.j2"), "one").unwrap();
        let first = template_version(dir.path()).unwrap();
        assert_eq!(first.len(), 16);
        fs::write(dir.path().join(".hidden"), "ignored").unwrap();
        assert_eq!(template_version(dir.path()).unwrap(), first);
        fs::write(dir.path().join("a.j2"), "two").unwrap();
        let second = template_version(dir.path()).unwrap();
        assert_ne!(second, first);
        fs::rename(dir.path().join("a.j2"), dir.path().join("b.j2")).unwrap();
        assert_ne!(template_version(dir.path()).unwrap(), second);
    }

    #[test]
    fn records_round_trip_and_bad_ones_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let record = AppRecord {
            template_version: "0123456789abcdef".into(),
            answers: BTreeMap::from([("app_name".into(), "sales".into())]),
            files: vec!["dashboard.py".into()],
        };
        fs::write(dir.path().join(RECORD_FILE), record.to_yaml()).unwrap();
        let shown = Path::new("applications/sales/.sluice-app.yml");
        assert_eq!(AppRecord::load(dir.path(), shown).unwrap(), Some(record));
        fs::write(
            dir.path().join(RECORD_FILE),
            "template_version: x\nanswer: {}\n",
        )
        .unwrap();
        let err = AppRecord::load(dir.path(), shown).unwrap_err().to_string();
        assert!(
            err.starts_with("applications/sales/.sluice-app.yml:2:1: unknown field `answer`"),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(AppRecord::load(empty.path(), shown).unwrap(), None);
    }
}
