//! `--changed-since REV`: the apps whose files changed between `REV` and
//! `HEAD` (`git diff --name-only --relative REV HEAD`, run in the workspace
//! root so paths are relative to it).
//!
//! A file under `<apps>/<app>/` changes that app. A file under the shared
//! `<apps>/components/`, or `sluice.yml` (environments), changes every app:
//! each deployment folder carries its own copy of the components and its
//! own environment settings. Anything else (templates, CI, README) changes
//! no deployed app. Apps deleted since `REV` are not returned.

use std::path::Path;
use std::process::Command;

use super::PlanError;
use crate::config::CONFIG_FILE;
use crate::workspace::{Workspace, COMPONENTS_DIR};

/// The names of the apps changed since `rev`, sorted.
pub fn changed_apps(ws: &Workspace, rev: &str) -> Result<Vec<String>, PlanError> {
    let files = changed_files(ws.root(), rev)?;
    Ok(apps_for_files(ws, &files))
}

/// Files changed between `rev` and `HEAD`, relative to `root`.
pub fn changed_files(root: &Path, rev: &str) -> Result<Vec<String>, PlanError> {
    if rev.starts_with('-') {
        return Err(PlanError::Git(format!("`{rev}` is not a git revision")));
    }
    let output = Command::new("git")
        .args(["diff", "--name-only", "--relative", rev, "HEAD", "--"])
        .current_dir(root)
        .output()
        .map_err(|e| PlanError::Git(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed")
            .trim();
        return Err(PlanError::Git(format!(
            "git diff {rev} HEAD in {}: {reason}",
            root.display()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Maps changed paths (relative to the workspace root) to existing apps.
pub fn apps_for_files(ws: &Workspace, files: &[String]) -> Vec<String> {
    let apps: Vec<String> = ws.apps().into_iter().map(|a| a.name).collect();
    let apps_dir = ws.config().apps_dir.to_string_lossy().replace('\\', "/");
    let apps_prefix = format!("{}/", apps_dir.trim_end_matches('/'));
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
