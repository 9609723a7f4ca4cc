//! `sluice upgrade [APP|--all] [--dry-run]`: bring template changes into
//! apps made from an older version of `templates/app/`.
//!
//! For each app, the template version it was made from (its
//! `.sluice-app.yml`, see [`crate::app_template`]) and the current one are
//! both rendered with the app's recorded answers. Each file the template
//! owns is then merged three ways, with the old rendering as the common
//! ancestor, the app's file as "ours" and the new rendering as "theirs"
//! (`diffy`, a line-based diff3 merge like `git merge-file`'s, in Rust so
//! workspaces need not be git repositories):
//!
//! - lines only the template changed take the new text; lines only the
//!   creator changed keep theirs; both in one file merge cleanly;
//! - lines both changed become a conflict with markers (`<<<<<<< your app`,
//!   `||||||| template OLD`, `=======`, `>>>>>>> template NEW`) and are
//!   listed with their line numbers;
//! - a file the template added is added; one it dropped is removed if the
//!   creator never changed it, kept otherwise; a file the creator deleted
//!   stays deleted.
//!
//! The app's record then names the new version (also when there are
//! conflicts: the markers already hold the new template's side, so running
//! upgrade again must not merge it twice), and a snapshot of the new version
//! is stored. Nothing is written before every app has been planned.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use diffy::{ConflictStyle, DiffOptions, MergeOptions};

use crate::app_template::{self, AppRecord, TemplateVersionError, RECORD_FILE};
use crate::scaffold::{self, io_error, ScaffoldError, APP_TEMPLATES};
use crate::workspace::{App, Workspace};

/// What upgrading one app does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    pub app: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The app has no `.sluice-app.yml`: nothing to merge from.
    NotRecorded,
    /// The app is at the current template version.
    UpToDate { version: String },
    /// Changes from `from` to `to` (possibly none for this app's files).
    Planned {
        from: String,
        to: String,
        changes: Vec<FileChange>,
        record: AppRecord,
    },
}

/// One file an upgrade changes (or reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// App-relative, `/`-separated.
    pub path: String,
    pub kind: ChangeKind,
    /// The app's file now (`None`: absent).
    pub current: Option<String>,
    /// The file after the upgrade (`None`: absent).
    pub result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// The creator had not changed it: now the new template's text.
    Updated,
    /// Both changed it, in different lines: merged.
    Merged,
    /// Both changed the same lines: conflict markers at these lines (1-based).
    Conflict { lines: Vec<usize> },
    /// A file the new template adds.
    Added,
    /// A file the new template dropped, unchanged by the creator: removed.
    Removed,
    /// A file the new template dropped that the creator changed: kept.
    KeptChanged,
    /// A file the creator deleted that the template changed: not restored.
    KeptDeleted,
}

impl ChangeKind {
    /// Whether the app's file changes.
    pub fn writes(&self) -> bool {
        !matches!(self, ChangeKind::KeptChanged | ChangeKind::KeptDeleted)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Version(#[from] TemplateVersionError),
    #[error(transparent)]
    Scaffold(#[from] ScaffoldError),
    #[error("{}: not UTF-8 text, so it cannot be merged", .0.display())]
    NotText(PathBuf),
}

/// The labels conflict markers carry, instead of diffy's ours/original/theirs.
fn relabel(conflicted: &str, from: &str, to: &str) -> String {
    conflicted
        .split_inclusive('\n')
        .map(|line| {
            let (text, ending) = match line.strip_suffix('\n') {
                Some(text) => (text, "\n"),
                None => (line, ""),
            };
            match text {
                "<<<<<<< ours" => format!("<<<<<<< your app{ending}"),
                "||||||| original" => format!("||||||| template {from}{ending}"),
                ">>>>>>> theirs" => format!(">>>>>>> template {to}{ending}"),
                _ => line.to_string(),
            }
        })
        .collect()
}

/// The 1-based lines where conflict blocks start.
fn conflict_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("<<<<<<< your app"))
        .map(|(i, _)| i + 1)
        .collect()
}

/// Merges `base` → `theirs` into `ours`; `Err` holds the text with markers.
fn merge(base: &str, ours: &str, theirs: &str, from: &str, to: &str) -> Result<String, String> {
    let mut options = MergeOptions::new();
    options.set_conflict_style(ConflictStyle::Diff3);
    options
        .merge(base, ours, theirs)
        .map_err(|conflicted| relabel(&conflicted, from, to))
}

/// Plans upgrading `app` to the workspace's current `templates/app/`.
pub fn plan(workspace: &Workspace, app: &App) -> Result<Upgrade, UpgradeError> {
    let shown = workspace.relative(&app.dir).join(RECORD_FILE);
    let Some(record) = AppRecord::load(&app.dir, &shown)? else {
        return Ok(Upgrade {
            app: app.name.clone(),
            outcome: Outcome::NotRecorded,
        });
    };
    let templates = workspace.root().join(APP_TEMPLATES);
    let to = app_template::template_version(&templates)?;
    let from = record.template_version.clone();
    if from == to {
        return Ok(Upgrade {
            app: app.name.clone(),
            outcome: Outcome::UpToDate { version: to },
        });
    }
    let snapshot = app_template::verified_snapshot(workspace, &app.name, &from)?;
    let render = |dir: &Path| -> Result<BTreeMap<String, String>, UpgradeError> {
        Ok(
            scaffold::render_app_templates(workspace, dir, &record.answers)?
                .into_iter()
                .map(|(path, text)| (scaffold::slash_path(&path), text))
                .collect(),
        )
    };
    let old = render(&snapshot)?;
    let new = render(&templates)?;

    let mut owned: BTreeSet<String> = record.files.iter().cloned().collect();
    let candidates: BTreeSet<&String> = old
        .keys()
        .filter(|p| owned.contains(*p))
        .chain(new.keys().filter(|p| !old.contains_key(*p)))
        .collect();
    let mut changes = Vec::new();
    for path in candidates {
        let file = app.dir.join(path);
        let ours = match fs::read(&file) {
            Ok(bytes) => {
                Some(String::from_utf8(bytes).map_err(|_| UpgradeError::NotText(file.clone()))?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(ScaffoldError::Io {
                    path: file,
                    error: e,
                }
                .into())
            }
        };
        let base = old.get(path).map(String::as_str);
        let theirs = new.get(path).map(String::as_str);
        let change = |kind, result: Option<&str>| FileChange {
            path: path.clone(),
            kind,
            current: ours.clone(),
            result: result.map(str::to_string),
        };
        let planned = match (base, theirs, ours.as_deref()) {
            (Some(b), Some(t), _) if b == t => None,
            (_, Some(t), Some(o)) if o == t => None,
            (Some(_), Some(_), None) => Some(change(ChangeKind::KeptDeleted, None)),
            (Some(b), Some(t), Some(o)) if o == b => Some(change(ChangeKind::Updated, Some(t))),
            (b, Some(t), Some(o)) => Some(match merge(b.unwrap_or(""), o, t, &from, &to) {
                Ok(merged) => change(ChangeKind::Merged, Some(&merged)),
                Err(conflicted) => change(
                    ChangeKind::Conflict {
                        lines: conflict_lines(&conflicted),
                    },
                    Some(&conflicted),
                ),
            }),
            (None, Some(t), None) => Some(change(ChangeKind::Added, Some(t))),
            (Some(b), None, Some(o)) if o == b => Some(change(ChangeKind::Removed, None)),
            (Some(_), None, Some(_)) => Some(change(ChangeKind::KeptChanged, None)),
            // Neither rendering has it (only listed candidates get here) or the app lacks it too.
            (_, None, None) | (None, None, Some(_)) => None,
        };
        if let Some(change) = planned {
            match change.kind {
                ChangeKind::Added => {
                    owned.insert(path.clone());
                }
                ChangeKind::Removed | ChangeKind::KeptChanged | ChangeKind::KeptDeleted => {
                    owned.remove(path);
                }
                _ => {}
            }
            changes.push(change);
        } else if new.contains_key(path) {
            owned.insert(path.clone());
        } else {
            owned.remove(path);
        }
    }
    let record = AppRecord {
        template_version: to.clone(),
        answers: record.answers,
        files: owned.into_iter().collect(),
    };
    Ok(Upgrade {
        app: app.name.clone(),
        outcome: Outcome::Planned {
            from,
            to,
            changes,
            record,
        },
    })
}

/// Writes a planned upgrade: the files, the app's record, and a snapshot of
/// the new template version. Returns whether a snapshot was written.
pub fn apply(workspace: &Workspace, app: &App, upgrade: &Upgrade) -> Result<bool, UpgradeError> {
    let Outcome::Planned {
        to,
        changes,
        record,
        ..
    } = &upgrade.outcome
    else {
        return Ok(false);
    };
    let templates = workspace.root().join(APP_TEMPLATES);
    let stored = app_template::store_snapshot(workspace, &templates, to)?;
    for change in changes.iter().filter(|c| c.kind.writes()) {
        let path = app.dir.join(&change.path);
        match &change.result {
            Some(text) => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io_error(parent))?;
                }
                fs::write(&path, text).map_err(io_error(&path))?;
            }
            None => fs::remove_file(&path).map_err(io_error(&path))?,
        }
    }
    let path = app.dir.join(RECORD_FILE);
    fs::write(&path, record.to_yaml()).map_err(io_error(&path))?;
    Ok(stored)
}

/// A unified diff of what `change` does to the app's file, with
/// workspace-relative names (`--dry-run`).
pub fn diff(app_dir: &Path, change: &FileChange) -> String {
    let name = app_dir.join(&change.path).display().to_string();
    let mut options = DiffOptions::new();
    options
        .set_original_filename(format!("a/{name}"))
        .set_modified_filename(format!("b/{name}"));
    let before = change.current.as_deref().unwrap_or("");
    let after = change.result.as_deref().unwrap_or("");
    options.create_patch(before, after).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_apart_and_conflicts_together() {
        let base = "a\nb\nc\nd\n";
        let ours = "a\nB by app\nc\nd\n";
        let theirs = "a\nb\nc\nD by template\n";
        assert_eq!(
            merge(base, ours, theirs, "old", "new").unwrap(),
            "a\nB by app\nc\nD by template\n"
        );
        let theirs = "a\nB by template\nc\nd\n";
        let conflicted = merge(base, ours, theirs, "old", "new").unwrap_err();
        assert_eq!(
            conflicted,
            "a\n<<<<<<< your app\nB by app\n||||||| template old\nb\n=======\nB by template\n>>>>>>> template new\nc\nd\n"
        );
        assert_eq!(conflict_lines(&conflicted), [2]);
    }
}
