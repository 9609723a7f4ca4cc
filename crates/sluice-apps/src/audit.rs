//! The audit trail: one JSON line per deploy or share (dry runs excluded)
//! in the log `sluice.yml` names (default `.sluice/audit.jsonl`).
//!
//! The log is append-only: each entry is written with a single `write` on a
//! file opened with `O_APPEND` while holding an exclusive `flock`, so two
//! processes deploying at once never interleave or lose lines. Reading never
//! rewrites it: a corrupt line is reported with its line number and skipped.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// How one command of a plan ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The command line as printed.
    pub command: String,
    /// `ok`, `failed` or `skipped` (not run because an earlier step failed).
    pub status: String,
    /// The exit code, when the command ran and exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// One deploy or share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub time: String,
    /// Who: `GITLAB_USER_LOGIN`, else git's `user.email`, else `$USER`.
    pub actor: String,
    /// The workspace's `HEAD` commit (`unknown` outside git).
    pub commit: String,
    pub env: String,
    pub app: String,
    /// `deploy`, `share`, `drop` (an app removed from the repository) or
    /// `rollback`.
    pub action: String,
    /// The plan's digest.
    pub digest: String,
    /// The roles the app was shared with.
    #[serde(default)]
    pub roles: Vec<String>,
    /// `succeeded` when every command succeeded, else `failed`.
    pub result: String,
    pub outcomes: Vec<Outcome>,
}

impl AuditEntry {
    pub fn succeeded(&self) -> bool {
        self.result == "succeeded"
    }
}

/// The readable entries of a log and the lines that were not.
#[derive(Debug, Default)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
    /// `path:line: corrupt audit entry skipped (reason)`, one per bad line.
    pub problems: Vec<String>,
}

/// Why the log could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("audit log {}: {error}", .path.display())]
pub struct AuditError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Appends `entry` as one line. Creates the log (and its folder) if needed.
pub fn append(path: &Path, entry: &AuditEntry) -> Result<(), AuditError> {
    let fail = |error| AuditError {
        path: path.to_path_buf(),
        error,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut line = serde_json::to_string(entry).expect("an audit entry serialises");
    line.push('\n');
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(fail)?;
    // O_APPEND alone keeps each write at the end; the lock also keeps a
    // partial write (a full disk, a signal) from interleaving with another's.
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is an open descriptor owned by `file` for this whole block.
    if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    let written = file.write_all(line.as_bytes()).and_then(|_| file.flush());
    // SAFETY: as above; closing the file would release the lock too.
    unsafe { libc::flock(fd, libc::LOCK_UN) };
    written.map_err(fail)
}

/// Reads the log; a missing log is empty. `display` names it in problems.
pub fn read(path: &Path, display: &str) -> Result<AuditLog, AuditError> {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AuditLog::default()),
        Err(error) => {
            return Err(AuditError {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    Ok(parse(&text, display))
}

/// Parses a log's text; see [`read`].
pub fn parse(text: &str, display: &str) -> AuditLog {
    let mut log = AuditLog::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<AuditEntry>(line) {
            Ok(entry) => log.entries.push(entry),
            Err(e) => log.problems.push(format!(
                "{display}:{}: corrupt audit entry skipped ({e})",
                i + 1
            )),
        }
    }
    log
}

/// The last successful deploy or share of `app` to `env`.
pub fn last_success<'a>(entries: &'a [AuditEntry], app: &str, env: &str) -> Option<&'a AuditEntry> {
    entries
        .iter()
        .rev()
        .find(|e| e.app == app && e.env == env && e.succeeded())
}

/// The commit of the last successful deploy (or drop of a removed app) to
/// `env`, any app: where CI's `--changed-since` starts.
pub fn last_deployed_commit<'a>(entries: &'a [AuditEntry], env: &str) -> Option<&'a str> {
    entries
        .iter()
        .rev()
        .find(|e| {
            e.env == env
                && matches!(e.action.as_str(), "deploy" | "drop")
                && e.succeeded()
                && e.commit != UNKNOWN
        })
        .map(|e| e.commit.as_str())
}

/// Entries matching the optional app and environment, oldest first.
pub fn filter<'a>(
    entries: &'a [AuditEntry],
    app: Option<&str>,
    env: Option<&str>,
) -> Vec<&'a AuditEntry> {
    entries
        .iter()
        .filter(|e| app.is_none_or(|a| e.app == a) && env.is_none_or(|v| e.env == v))
        .collect()
}

/// `sluice audit`'s table.
pub fn render_table(entries: &[&AuditEntry]) -> String {
    let header = [
        "TIME", "ACTOR", "COMMIT", "ENV", "APP", "ACTION", "RESULT", "COMMANDS", "DIGEST",
    ];
    let rows: Vec<[String; 9]> = entries
        .iter()
        .map(|e| {
            let ok = e.outcomes.iter().filter(|o| o.status == "ok").count();
            [
                e.time.clone(),
                e.actor.clone(),
                crate::deploy::short_commit(&e.commit).to_string(),
                e.env.clone(),
                e.app.clone(),
                e.action.clone(),
                e.result.clone(),
                format!("{ok}/{}", e.outcomes.len()),
                crate::deploy::short_digest(&e.digest).to_string(),
            ]
        })
        .collect();
    crate::table::render(&header, &rows)
}

/// Written as the commit outside a git repository.
pub const UNKNOWN: &str = "unknown";

/// Who is deploying: `GITLAB_USER_LOGIN`, else `git config user.email`
/// (in `root`), else `$USER`, else `unknown`. `var` reads the environment.
pub fn actor(root: &Path, var: impl Fn(&str) -> Option<String>) -> String {
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    nonempty(var("GITLAB_USER_LOGIN"))
        .or_else(|| nonempty(git(root, &["config", "user.email"])))
        .or_else(|| nonempty(var("USER")))
        .unwrap_or_else(|| UNKNOWN.to_string())
}

/// The `HEAD` commit of the repository holding `root`, or `unknown`.
pub fn head_commit(root: &Path) -> String {
    git(root, &["rev-parse", "HEAD"]).unwrap_or_else(|| UNKNOWN.to_string())
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// `time` as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn utc_timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // a leap day
        assert_eq!(utc_timestamp(t), "2024-02-29T12:34:56Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(utc_timestamp(t), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn actor_prefers_gitlab_then_git_then_user() {
        let dir = tempfile::tempdir().unwrap(); // not a git repository
        let vars = |k: &str| match k {
            "GITLAB_USER_LOGIN" => Some("ci-bot".to_string()),
            "USER" => Some("root".to_string()),
            _ => None,
        };
        assert_eq!(actor(dir.path(), vars), "ci-bot");
        let user_only = |k: &str| (k == "USER").then(|| "root".to_string());
        // `git config user.email` may be set globally on this machine.
        let global = git(dir.path(), &["config", "user.email"]).filter(|s| !s.is_empty());
        assert_eq!(
            actor(dir.path(), user_only),
            global.unwrap_or_else(|| "root".into())
        );
    }
}
