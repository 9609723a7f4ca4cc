//! `--changed-since REV`: the apps whose files changed between `REV` and
//! `HEAD` (`git diff --name-only --no-renames --relative REV HEAD`, run in
//! the workspace root so paths are relative to it).
//!
//! A file under `<apps>/<app>/` changes that app. A file under the shared
//! `<apps>/components/`, or `sluice.yml` (environments), changes every app:
//! each deployment folder carries its own copy of the components and its
//! own environment settings. Anything else (templates, CI, README) changes
//! no deployed app.
//!
//! An app folder that had files at `REV` and is gone at `HEAD` (deleted, or
//! renamed: the new name is a changed app) is *removed*: its tombstone in
//! the plan revokes its shares and drops its Streamlit object
//! ([`super::plan_drop`]). The roles it was shared with come from the audit
//! log, else from its `share.yml` at `REV` ([`shared_at`]).

use std::path::Path;
use std::process::Command;

use super::PlanError;
use crate::config::CONFIG_FILE;
use crate::workspace::{Workspace, COMPONENTS_DIR};

/// What changed since a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Existing apps with a changed file, sorted.
    pub apps: Vec<String>,
    /// App folders gone since then, sorted.
    pub removed: Vec<String>,
}

/// The apps changed and removed since `rev`.
pub fn changes(ws: &Workspace, rev: &str) -> Result<Changes, PlanError> {
    let files = changed_files(ws.root(), rev)?;
    Ok(Changes {
        apps: apps_for_files(ws, &files),
        removed: removed_for_files(ws, &files),
    })
}

/// The names of the apps changed since `rev`, sorted.
pub fn changed_apps(ws: &Workspace, rev: &str) -> Result<Vec<String>, PlanError> {
    Ok(changes(ws, rev)?.apps)
}

/// The roles `app`'s `share.yml` listed for `env` at `rev` (none when it
/// had none, or it cannot be read).
pub fn shared_at(ws: &Workspace, rev: &str, app: &str, env: &str) -> Vec<String> {
    let path = format!(
        "{}/{app}/{}",
        apps_prefix(ws).trim_end_matches('/'),
        super::share::SHARE_FILE
    );
    // `REV:./path` is relative to the folder git runs in: the workspace root.
    let Ok(output) = Command::new("git")
        .args(["show", &format!("{rev}:./{path}")])
        .current_dir(ws.root())
        .output()
    else {
        return Vec::new();
    };
    if !output.status.success() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&output.stdout);
    super::share::parse_roles(&text, env, std::path::Path::new(&path)).unwrap_or_default()
}

/// Files changed between `rev` and `HEAD`, relative to `root`.
pub fn changed_files(root: &Path, rev: &str) -> Result<Vec<String>, PlanError> {
    if rev.starts_with('-') {
        return Err(PlanError::Git(format!("`{rev}` is not a git revision")));
    }
    let output = Command::new("git")
        // Without rename detection a moved file names both its old and new
        // folder: a renamed app is removed under its old name, and an app a
        // page moved out of is redeployed.
        .args([
            "diff",
            "--name-only",
            "--no-renames",
            "--relative",
            rev,
            "HEAD",
            "--",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| PlanError::Git(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(super::git_failed(
            &format!("git diff {rev} HEAD"),
            root,
            &output.stderr,
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

fn apps_prefix(ws: &Workspace) -> String {
    let apps_dir = ws.config().apps_dir.to_string_lossy().replace('\\', "/");
    format!("{}/", apps_dir.trim_end_matches('/'))
}

/// App folders named by changed paths that no longer exist (and could be
/// apps: not `components/`, not a skipped folder, a valid app name).
pub fn removed_for_files(ws: &Workspace, files: &[String]) -> Vec<String> {
    let apps: Vec<String> = ws.apps().into_iter().map(|a| a.name).collect();
    let prefix = apps_prefix(ws);
    let mut removed: Vec<String> = files
        .iter()
        .filter_map(|f| f.strip_prefix(&prefix)?.split_once('/').map(|(top, _)| top))
        .filter(|top| {
            crate::names::check_app_name(top).is_ok()
                && !apps.iter().any(|a| a == top)
                && !ws.apps_dir().join(top).exists()
        })
        .map(str::to_string)
        .collect();
    removed.sort();
    removed.dedup();
    removed
}

/// Maps changed paths (relative to the workspace root) to existing apps.
pub fn apps_for_files(ws: &Workspace, files: &[String]) -> Vec<String> {
    let apps: Vec<String> = ws.apps().into_iter().map(|a| a.name).collect();
    let apps_prefix = apps_prefix(ws);
    let mut changed: Vec<String> = Vec::new();
    for file in files {
        if file == CONFIG_FILE {
            return apps;
        }
        let Some(inside) = file.strip_prefix(&apps_prefix) else {
            continue;
        };
        let Some((top, _)) = inside.split_once('/') else {
            continue;
        };
        if top == COMPONENTS_DIR {
            return apps;
        }
        if apps.iter().any(|a| a == top) && !changed.iter().any(|c| c == top) {
            changed.push(top.to_string());
        }
    }
    changed.sort();
    changed
}
