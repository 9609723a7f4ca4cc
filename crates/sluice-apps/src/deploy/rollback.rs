//! `sluice rollback APP --env E [--to COMMIT | --steps N]`: deploy the app
//! as an earlier deployed commit had it.
//!
//! The commit comes from the audit log (successful deploys and rollbacks of
//! the app to the environment): `--steps N` goes back N distinct deployed
//! commits from the live one (default 1), `--to` names one by a prefix.
//! That commit's workspace is extracted with `git archive` into a temporary
//! folder (the user's work tree and index are never touched), with today's
//! `sluice.yml` (the environment's targets) and `compliance/rules.yml` (the
//! policy in force) laid over it; the app is then checked, built and planned
//! there exactly as a deploy is, and its deployment folder is moved to
//! `.sluice/build/<env>/<app>/` of the workspace, so the plan runs from the
//! workspace like any other. Its shares are that version's `share.yml`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use sluice_rules::RULES_FILE;

use super::{folder, io_error, plan, Action, Plan, PlanError};
use crate::audit::{AuditEntry, UNKNOWN};
use crate::config::CONFIG_FILE;
use crate::workspace::Workspace;

/// Which earlier deploy to go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// This many distinct deployed commits back from the live one.
    Steps(usize),
    /// The deployed commit starting with this.
    Commit(String),
}

/// The deployed commits of `app` in `env`, newest first, each once (with
/// the entry that last deployed it).
pub fn deployed_commits<'a>(
    history: &'a [AuditEntry],
    app: &str,
    env: &str,
) -> Vec<&'a AuditEntry> {
    let mut out: Vec<&AuditEntry> = Vec::new();
    for entry in history.iter().rev().filter(|e| {
        e.app == app
            && e.env == env
            && e.succeeded()
            && matches!(e.action.as_str(), "deploy" | "rollback")
            && e.commit != UNKNOWN
    }) {
        if !out.iter().any(|seen| seen.commit == entry.commit) {
            out.push(entry);
        }
    }
    out
}

/// The audit entry of the deploy to go back to.
pub fn choose<'a>(
    history: &'a [AuditEntry],
    app: &str,
    env: &str,
    to: &To,
) -> Result<&'a AuditEntry, PlanError> {
    let deployed = deployed_commits(history, app, env);
    let none = || PlanError::NothingToRollBack {
        app: app.to_string(),
        env: env.to_string(),
        reason: "the audit log records no successful deploy of it there".into(),
    };
    match to {
        To::Steps(steps) => deployed.get(*steps).copied().ok_or_else(|| {
            if deployed.is_empty() {
                none()
            } else {
                PlanError::NothingToRollBack {
                    app: app.to_string(),
                    env: env.to_string(),
                    reason: format!(
                        "the audit log records {} deployed commit(s), so --steps {steps} goes back too far",
                        deployed.len()
                    ),
                }
            }
        }),
        To::Commit(prefix) => {
            let matching: Vec<&&AuditEntry> = deployed
                .iter()
                .filter(|e| !prefix.is_empty() && e.commit.starts_with(prefix.as_str()))
                .collect();
            match matching.as_slice() {
                [one] => Ok(**one),
                [] if deployed.is_empty() => Err(none()),
                [] => Err(PlanError::NothingToRollBack {
                    app: app.to_string(),
                    env: env.to_string(),
                    reason: format!(
                        "commit `{prefix}` was never deployed there (deployed: {})",
                        deployed
                            .iter()
                            .map(|e| super::short_commit(&e.commit))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
                _ => Err(PlanError::NothingToRollBack {
                    app: app.to_string(),
                    env: env.to_string(),
                    reason: format!("commit `{prefix}` names more than one deployed commit"),
                }),
            }
        }
    }
}

/// Plans the rollback of `app` in `env` to `commit`: see the module doc.
pub fn plan_rollback(
    ws: &Workspace,
    app: &str,
    env: &str,
    history: &[AuditEntry],
    commit: &str,
) -> Result<Plan, PlanError> {
    let source = tempfile::Builder::new()
        .prefix("sluice-rollback-")
        .tempdir()
        .map_err(io_error(&std::env::temp_dir()))?;
    extract(ws.root(), commit, source.path())?;
    for file in [CONFIG_FILE, RULES_FILE] {
        let from = ws.root().join(file);
        let to = source.path().join(file);
        if from.is_file() {
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            fs::copy(&from, &to).map_err(io_error(&to))?;
        }
    }
    let then = Workspace::open(source.path())?;
    let mut plan = plan(&then, app, env, history, Action::Rollback)?;
    // The folder was built in the extracted workspace; the plan runs from this one.
    let relative = plan
        .folder
        .clone()
        .unwrap_or_else(|| Path::new(folder::BUILD_DIR).join(env).join(app));
    let built = source.path().join(&relative);
    let dest = ws.root().join(&relative);
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(io_error(&dest))?;
    }
    copy_tree(&built, &dest)?;
    plan.commit = Some(commit.to_string());
    Ok(plan)
}

/// `git archive COMMIT:./ | tar -x -C into`, in `root` (so `./` is the
/// workspace, wherever it sits in its repository).
fn extract(root: &Path, commit: &str, into: &Path) -> Result<(), PlanError> {
    if commit.starts_with('-') {
        return Err(PlanError::Git(format!("`{commit}` is not a git revision")));
    }
    let failed = |what: &str, e: std::io::Error| PlanError::Git(format!("cannot run {what}: {e}"));
    let mut archive = Command::new("git")
        .args(["archive", "--format=tar", &format!("{commit}:./")])
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed("git", e))?;
    let stdout = archive.stdout.take().expect("piped");
    let untar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(into)
        .stdin(stdout)
        .output()
        .map_err(|e| failed("tar", e))?;
    let archived = archive.wait_with_output().map_err(|e| failed("git", e))?;
    if !archived.status.success() {
        return Err(super::git_failed(
            &format!("git archive {commit}"),
            root,
            &archived.stderr,
        ));
    }
    if !untar.status.success() {
        return Err(PlanError::Git(format!(
            "tar could not unpack commit {commit}: {}",
            String::from_utf8_lossy(&untar.stderr).trim()
        )));
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), PlanError> {
    fs::create_dir_all(to).map_err(io_error(to))?;
    for entry in fs::read_dir(from).map_err(io_error(from))? {
        let entry = entry.map_err(io_error(from))?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io_error(&source))?.is_dir() {
            copy_tree(&source, &dest)?;
        } else {
            fs::copy(&source, &dest).map_err(io_error(&dest))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(commit: &str, result: &str) -> AuditEntry {
        AuditEntry {
            time: "2026-12-01T10:00:00Z".into(),
            actor: "jane".into(),
            commit: commit.into(),
            env: "test".into(),
            app: "sales".into(),
            action: "deploy".into(),
            digest: "sha256:00".into(),
            roles: vec![],
            result: result.into(),
            outcomes: vec![],
        }
    }

    #[test]
    fn steps_count_distinct_successful_commits() {
        let history = [
            deploy("aaaa1111", "succeeded"),
            deploy("bbbb2222", "failed"),
            deploy("cccc3333", "succeeded"),
            deploy("cccc3333", "succeeded"),
            deploy("dddd4444", "succeeded"),
        ];
        let pick = |t: To| choose(&history, "sales", "test", &t).map(|e| e.commit.clone());
        assert_eq!(pick(To::Steps(0)).unwrap(), "dddd4444");
        assert_eq!(pick(To::Steps(1)).unwrap(), "cccc3333");
        assert_eq!(pick(To::Steps(2)).unwrap(), "aaaa1111");
        assert_eq!(
            pick(To::Steps(3)).unwrap_err().to_string(),
            "cannot roll back `sales` in `test`: the audit log records 3 deployed commit(s), so --steps 3 goes back too far"
        );
        assert_eq!(pick(To::Commit("aaaa".into())).unwrap(), "aaaa1111");
        assert_eq!(
            pick(To::Commit("bbbb".into())).unwrap_err().to_string(),
            "cannot roll back `sales` in `test`: commit `bbbb` was never deployed there (deployed: dddd4444, cccc3333, aaaa1111)"
        );
        assert!(choose(&history, "other", "test", &To::Steps(1))
            .unwrap_err()
            .to_string()
            .ends_with("the audit log records no successful deploy of it there"));
    }
}
