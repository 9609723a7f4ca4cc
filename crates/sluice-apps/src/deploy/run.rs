//! Executing a [`Plan`]: each command in order, in the workspace root, with
//! its output shown indented under the step. The first failure stops the
//! plan (sharing an app whose deploy failed would grant access to the old
//! version); the steps after it are recorded as skipped.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::Path;
use std::process::Command;

use super::Plan;
use crate::audit::{AuditEntry, Outcome};

/// How a plan's execution went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// One per step, in order.
    pub outcomes: Vec<Outcome>,
}

impl Execution {
    pub fn succeeded(&self) -> usize {
        self.outcomes.iter().filter(|o| o.status == "ok").count()
    }

    pub fn total(&self) -> usize {
        self.outcomes.len()
    }

    pub fn all_succeeded(&self) -> bool {
        self.succeeded() == self.total()
    }

    /// The audit log's record of this execution of `plan`.
    pub fn audit_entry(&self, plan: &Plan, actor: &str, commit: &str, time: &str) -> AuditEntry {
        AuditEntry {
            time: time.to_string(),
            actor: actor.to_string(),
            commit: commit.to_string(),
            env: plan.env.clone(),
            app: plan.app.clone(),
            action: plan.action.as_str().to_string(),
            digest: plan.digest.clone(),
            roles: plan.roles.clone(),
            result: if self.all_succeeded() {
                "succeeded"
            } else {
                "failed"
            }
            .to_string(),
            outcomes: self.outcomes.clone(),
        }
    }
}

/// `Execution Summary: N/M commands succeeded`.
pub fn summary_line(succeeded: usize, total: usize) -> String {
    format!("Execution Summary: {succeeded}/{total} commands succeeded")
}

/// Runs `plan`'s steps in `root`, with `program` in place of `snow`, and
/// prints each step and its result to `out`.
pub fn execute(
    plan: &Plan,
    root: &Path,
    program: &OsStr,
    out: &mut dyn Write,
) -> io::Result<Execution> {
    let total = plan.steps.len();
    let mut outcomes = Vec::with_capacity(total);
    let mut failed = false;
    for (i, step) in plan.steps.iter().enumerate() {
        let command = step.command_line();
        writeln!(out, "[{}/{total}] {}", i + 1, step.description)?;
        writeln!(out, "  $ {command}")?;
        if failed {
            writeln!(out, "  skipped: an earlier command failed")?;
            outcomes.push(Outcome {
                command,
                status: "skipped".into(),
                exit_code: None,
            });
            continue;
        }
        let result = Command::new(program)
            .args(&step.argv[1..])
            .current_dir(root)
            .output();
        let (status, exit_code) = match result {
            Ok(output) => {
                for line in String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .chain(String::from_utf8_lossy(&output.stderr).lines())
                {
                    writeln!(out, "  | {line}")?;
                }
                let code = output.status.code();
                if output.status.success() {
                    writeln!(out, "  ok")?;
                    ("ok", code)
                } else {
                    match code {
                        Some(c) => writeln!(out, "  failed: exit code {c}")?,
                        None => writeln!(out, "  failed: {}", output.status)?,
                    }
                    ("failed", code)
                }
            }
            Err(e) => {
                writeln!(
                    out,
                    "  failed: cannot run {}: {e}",
                    Path::new(program).display()
                )?;
                ("failed", None)
            }
        };
        failed |= status == "failed";
        outcomes.push(Outcome {
            command,
            status: status.into(),
            exit_code,
        });
    }
    Ok(Execution { outcomes })
}
