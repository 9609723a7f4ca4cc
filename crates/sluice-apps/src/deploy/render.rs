//! A plan as `--dry-run` prints it, and the short forms of digests, commits
//! and shell arguments it uses.

use std::fmt::Write as _;

use super::{Action, Plan};

/// The first 12 hex digits of a `sha256:` digest, for tables and headings.
pub fn short_digest(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// Quotes `arg` for a POSIX shell when it needs it.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

impl Plan {
    /// The plan as `--dry-run` prints it: every file and every command.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let to = self.action.preposition();
        let why = match (self.action, &self.commit) {
            (Action::Drop, _) => ", removed from the repository".to_string(),
            (_, Some(commit)) => format!(", from commit {}", short_commit(commit)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "Plan: {} {} {to} {} as {} (digest {}{why})",
            self.action,
            self.app,
            self.env,
            self.object,
            short_digest(&self.digest)
        );
        match &self.previous {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "Last success: {} by {} at commit {} (digest {}{})",
                    p.time,
                    p.actor,
                    short_commit(&p.commit),
                    short_digest(&p.digest),
                    if p.digest == self.digest {
                        ", unchanged"
                    } else {
                        ", changed since"
                    }
                );
            }
            None if self.action == Action::Drop => {
                let _ = writeln!(out, "Last success: none recorded in {}", self.env);
            }
            None => {
                let _ = writeln!(
                    out,
                    "Last success: none (first {} to {})",
                    self.action, self.env
                );
            }
        }
        if let Some(folder) = &self.folder {
            let _ = writeln!(out, "Deployment folder: {}/", folder.display());
            for file in &self.files {
                let _ = writeln!(out, "  {file}");
            }
        }
        let roles = if self.roles.is_empty() {
            "none".to_string()
        } else {
            self.roles.join(", ")
        };
        let _ = writeln!(out, "Shared with: {roles}");
        if !self.revoked.is_empty() {
            let _ = writeln!(out, "Revoked from: {}", self.revoked.join(", "));
        }
        let _ = writeln!(out, "Commands:");
        if self.steps.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(out, "  {}. {}", i + 1, step.command_line());
        }
        out
    }
}

/// A commit hash shortened for display.
pub fn short_commit(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}
