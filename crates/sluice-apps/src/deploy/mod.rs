//! Deploy and share plans: what `sluice deploy` and `sluice share` would do,
//! as a value.
//!
//! A [`Plan`] holds the deployment folder's files and every `snow` command,
//! exactly as a Snowflake user would type them; tests assert on it and
//! `--dry-run` prints it. Executing it is [`run`]'s small job. Building a
//! plan writes only the deployment folder (`.sluice/build/<env>/<app>/`,
//! kept so people can inspect it); it never talks to Snowflake.
//!
//! - [`folder`]: the deployment folder.
//! - [`project`]: its `snowflake.yml`, the app's own merged with the environment.
//! - [`share`]: `share.yml` roles, and the roles to revoke since the last deploy.
//! - [`changed`]: `--changed-since REV`, the apps whose files changed and the
//!   apps removed (whose plans are tombstones: [`plan_drop`]).
//! - [`rollback`]: the app as an earlier deployed commit had it, from `git archive`.
//! - [`run`]: executes a plan with the `snow` CLI and prints each step.
//! - `render`: the plan as `--dry-run` prints it.

pub mod changed;
pub mod folder;
pub mod project;
mod render;
pub mod rollback;
pub mod run;
pub mod share;

pub use render::{shell_quote, short_commit, short_digest};

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use sluice_rules::ShareError;

use crate::audit::{self, AuditEntry};
use crate::compliance::{self, ComplianceError};
use crate::config::{ConfigError, StreamlitPolicy};
use crate::workspace::{App, Workspace, WorkspaceError};

/// The program every step runs (replaceable when executing, see [`run`]).
pub const SNOW: &str = "snow";

/// What a plan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Build the folder, `snow streamlit deploy`, then share and revoke.
    Deploy,
    /// Share and revoke only (`share.yml` applied alone).
    Share,
    /// An app removed from the repository: revoke its shares, then drop it.
    Drop,
    /// A deploy of the app as an earlier deployed commit had it ([`rollback`]).
    Rollback,
}

impl Action {
    /// The word used in output and in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deploy => "deploy",
            Action::Share => "share",
            Action::Drop => "drop",
            Action::Rollback => "rollback",
        }
    }
}

impl Action {
    /// How a plan names its environment: deploy *to*, roll back *in*, drop *from*.
    pub fn preposition(self) -> &'static str {
        match self {
            Action::Drop => "from",
            Action::Rollback => "in",
            Action::Deploy | Action::Share => "to",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// `snow streamlit deploy`.
    Deploy,
    /// `snow streamlit share` to one role.
    Share,
    /// `REVOKE USAGE ... FROM ROLE` for a role no longer in `share.yml`.
    Revoke,
    /// `DROP STREAMLIT IF EXISTS` for an app removed from the repository.
    Drop,
    /// `snow streamlit list` (`sluice apps --live`; never part of a plan).
    List,
}

/// One command of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub kind: StepKind,
    /// What the step is for, in words.
    pub description: String,
    /// The exact command: `argv[0]` is [`SNOW`]; run in the workspace root.
    pub argv: Vec<String>,
}

impl Step {
    /// The command as it would be typed in a shell.
    pub fn command_line(&self) -> String {
        self.argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The last successful deploy or share of this app to this environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub time: String,
    pub actor: String,
    pub commit: String,
    pub digest: String,
}

impl Previous {
    fn of(entry: &AuditEntry) -> Previous {
        Previous {
            time: entry.time.clone(),
            actor: entry.actor.clone(),
            commit: entry.commit.clone(),
            digest: entry.digest.clone(),
        }
    }
}

/// A deploy or share, ready to print or execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub action: Action,
    pub app: String,
    pub env: String,
    /// The Snowflake object: `DATABASE.SCHEMA.APP`.
    pub object: String,
    /// The deployment folder, relative to the workspace root (deploys only).
    pub folder: Option<PathBuf>,
    /// The folder's files, relative to it, `snowflake.yml` first (deploys only).
    pub files: Vec<String>,
    /// The roles `share.yml` lists for this environment.
    pub roles: Vec<String>,
    /// Roles shared before (per the audit log) but no longer listed.
    pub revoked: Vec<String>,
    pub steps: Vec<Step>,
    /// `sha256:` of the steps and the folder's contents: two plans with the
    /// same digest deploy the same thing.
    pub digest: String,
    /// The last successful deploy/share of this app to this environment.
    pub previous: Option<Previous>,
    /// The commit the app's files come from, when not the work tree (a rollback).
    pub commit: Option<String>,
}

/// Why no plan could be made. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("environment `{env}` in sluice.yml has no `{key}`, which deploying needs (set it there or with SLUICE_{})", .key.to_uppercase())]
    MissingKey { env: String, key: &'static str },
    #[error("refusing to {action} `{app}` to `{env}`: `sluice check` reports {errors} error(s) for it; run `sluice check --app {app}` and fix them")]
    CheckFailed {
        action: Action,
        app: String,
        env: String,
        errors: usize,
    },
    #[error("app folder `{0}` is not a valid app name: rename it to a lowercase snake_case identifier to deploy it")]
    InvalidAppName(String),
    #[error("cannot check `{app}`: {error}")]
    CheckUnavailable {
        app: String,
        // Boxed: a rules error is large, and every plan result carries the space.
        error: Box<ComplianceError>,
    },
    #[error("{}:{}: {error}", .path.display(), .error.line)]
    Share { path: PathBuf, error: ShareError },
    #[error("{}: {message}", .path.display())]
    Io { path: PathBuf, message: String },
    /// The app's `snowflake.yml` cannot be used.
    #[error("{}:{line}: {message}", .path.display())]
    Project {
        path: PathBuf,
        line: u32,
        message: String,
    },
    /// The environment's `streamlit:` policy refuses the app.
    #[error("refusing to deploy `{app}` to `{env}`: {message}")]
    Policy {
        app: String,
        env: String,
        message: String,
    },
    #[error("environment `{env}` in sluice.yml: `streamlit.force` and `streamlit.forbid` cannot name `{key}` (sluice deploy sets it, or it is no streamlit entity key)")]
    PolicyKey { env: String, key: String },
    #[error("{0}")]
    Git(String),
    #[error("cannot roll back `{app}` in `{env}`: {reason}")]
    NothingToRollBack {
        app: String,
        env: String,
        reason: String,
    },
}

/// A failed git command as one line: `what in ROOT: <its first stderr line>`.
pub(crate) fn git_failed(what: &str, root: &Path, stderr: &[u8]) -> PlanError {
    let stderr = String::from_utf8_lossy(stderr);
    let reason = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed")
        .trim();
    PlanError::Git(format!("{what} in {}: {reason}", root.display()))
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PlanError + '_ {
    move |e| PlanError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The Snowflake settings of one environment that a deploy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub env: String,
    pub connection: String,
    pub database: String,
    pub schema: String,
    pub warehouse: String,
    /// Stage the files are uploaded to; `snow`'s default when absent.
    pub stage: Option<String>,
    /// Role the commands run as; the connection's default when absent.
    pub role: Option<String>,
    /// What the environment allows and imposes in the apps' `snowflake.yml`.
    pub streamlit: StreamlitPolicy,
}

impl Target {
    /// The environment `env` of `ws` (with `SLUICE_*` overrides); an unknown
    /// environment or a missing key is an error.
    pub fn resolve(ws: &Workspace, env: &str) -> Result<Target, PlanError> {
        let resolved = ws.environment(Some(env))?;
        let values = resolved.values;
        let need = |key: &'static str, value: Option<String>| {
            value.ok_or(PlanError::MissingKey {
                env: env.to_string(),
                key,
            })
        };
        Ok(Target {
            env: env.to_string(),
            connection: need("connection", values.connection)?,
            database: need("database", values.database)?,
            schema: need("schema", values.schema)?,
            warehouse: need("warehouse", values.warehouse)?,
            stage: values.stage,
            role: values.role,
            streamlit: values.streamlit,
        })
    }

    /// `DATABASE.SCHEMA.APP`: the app's Streamlit object.
    pub fn object(&self, app: &str) -> String {
        format!("{}.{}.{}", self.database, self.schema, app.to_uppercase())
    }

    /// `-c CONNECTION [--role ROLE]`, appended to every command.
    pub fn connection_args(&self) -> Vec<String> {
        let mut args = vec!["-c".to_string(), self.connection.clone()];
        if let Some(role) = &self.role {
            args.extend(["--role".to_string(), role.clone()]);
        }
        args
    }

    /// A `snow sql -q SQL` step on this environment's connection.
    fn sql_step(&self, kind: StepKind, description: String, sql: String) -> Step {
        let mut argv = vec![SNOW.to_string(), "sql".into(), "-q".into(), sql];
        argv.extend(self.connection_args());
        Step {
            kind,
            description,
            argv,
        }
    }
}

/// Refuses an app that `sluice check` reports errors for (the workspace's
/// `compliance/rules.yml` less its committed baseline, through
/// [`compliance::gate`], as the generated CI check reads them). No
/// environment is exempt.
pub fn require_compliant(
    ws: &Workspace,
    app: &App,
    action: Action,
    env: &str,
) -> Result<(), PlanError> {
    let report =
        compliance::gate(ws, Some(&app.name)).map_err(|error| PlanError::CheckUnavailable {
            app: app.name.clone(),
            error: Box::new(error),
        })?;
    let errors = report.count(sluice_rules::Severity::Error);
    if errors > 0 {
        return Err(PlanError::CheckFailed {
            action,
            app: app.name.clone(),
            env: env.to_string(),
            errors,
        });
    }
    Ok(())
}

/// Plans deploying `app` to `env`: checks it, (re)builds its deployment
/// folder and lists every command. `history` is the audit log's entries.
pub fn plan_deploy(
    ws: &Workspace,
    app: &str,
    env: &str,
    history: &[AuditEntry],
) -> Result<Plan, PlanError> {
    plan(ws, app, env, history, Action::Deploy)
}

/// Plans applying `share.yml` alone: share with every listed role, revoke
/// the roles removed since the last deploy or share.
pub fn plan_share(
    ws: &Workspace,
    app: &str,
    env: &str,
    history: &[AuditEntry],
) -> Result<Plan, PlanError> {
    plan(ws, app, env, history, Action::Share)
}

fn plan(
    ws: &Workspace,
    app_name: &str,
    env: &str,
    history: &[AuditEntry],
    action: Action,
) -> Result<Plan, PlanError> {
    // Environment first: an unknown environment is the clearer error.
    let target = Target::resolve(ws, env)?;
    let app = ws.app(app_name)?;
    // The name becomes a Snowflake identifier and a folder name.
    if crate::names::check_app_name(&app.name).is_err() {
        return Err(PlanError::InvalidAppName(app.name));
    }
    require_compliant(ws, &app, action, env)?;
    let roles = share::roles_for(&app, env)?;
    let last = audit::last_success(history, &app.name, env);
    let revoked = share::removed_roles(last.map(|e| e.roles.as_slice()).unwrap_or(&[]), &roles);
    let object = target.object(&app.name);

    let mut steps = Vec::new();
    let mut hasher = Sha256::new();
    let (folder, files) = match action {
        Action::Deploy | Action::Rollback => {
            let built = folder::build(ws, &app, &target)?;
            for (path, contents) in &built.contents {
                hasher.update(path.as_bytes());
                hasher.update([0]);
                hasher.update(contents);
                hasher.update([0]);
            }
            let mut argv = vec![
                SNOW.to_string(),
                "streamlit".into(),
                "deploy".into(),
                app.name.clone(),
                "--replace".into(),
                // Files deleted from the app are deleted from the stage too
                // (`--replace` alone only adds and overwrites).
                "--prune".into(),
                "-p".into(),
                built.relative.to_string_lossy().into_owned(),
                "-c".into(),
                target.connection.clone(),
                "--database".into(),
                target.database.clone(),
                "--schema".into(),
                target.schema.clone(),
            ];
            if let Some(role) = &target.role {
                argv.extend(["--role".into(), role.clone()]);
            }
            argv.extend(["--warehouse".into(), target.warehouse.clone()]);
            steps.push(Step {
                kind: StepKind::Deploy,
                description: format!("deploy {} as {object}", app.name),
                argv,
            });
            let files = built.contents.into_iter().map(|(p, _)| p).collect();
            (Some(built.relative), files)
        }
        // Drops are planned by `plan_drop`: there is no app left to check.
        Action::Share | Action::Drop => (None, Vec::new()),
    };
    for role in &roles {
        let mut argv = vec![
            SNOW.to_string(),
            "streamlit".into(),
            "share".into(),
            object.clone(),
            role.clone(),
        ];
        argv.extend(target.connection_args());
        steps.push(Step {
            kind: StepKind::Share,
            description: format!("share with role {role}"),
            argv,
        });
    }
    for role in &revoked {
        steps.push(target.sql_step(
            StepKind::Revoke,
            format!("revoke role {role} (removed from share.yml)"),
            format!("REVOKE USAGE ON STREAMLIT {object} FROM ROLE {role}"),
        ));
    }
    let digest = digest(hasher, &steps);
    Ok(Plan {
        action,
        app: app.name,
        env: env.to_string(),
        object,
        folder,
        files,
        roles,
        revoked,
        steps,
        digest,
        previous: last.map(Previous::of),
        commit: None,
    })
}

/// Plans the tombstone of `app`, removed from the repository: revoke the
/// roles it was last shared with in `env` (per the audit log, else
/// `shared_before`: its `share.yml` at the revision it was removed since),
/// then `DROP STREAMLIT IF EXISTS`. Nothing is checked or built.
pub fn plan_drop(
    ws: &Workspace,
    app: &str,
    env: &str,
    history: &[AuditEntry],
    shared_before: &[String],
) -> Result<Plan, PlanError> {
    let target = Target::resolve(ws, env)?;
    if crate::names::check_app_name(app).is_err() {
        return Err(PlanError::InvalidAppName(app.to_string()));
    }
    let object = target.object(app);
    let last = audit::last_success(history, app, env);
    let revoked: Vec<String> = match last {
        Some(entry) => entry.roles.clone(),
        None => shared_before.to_vec(),
    };
    let mut steps: Vec<Step> = revoked
        .iter()
        .map(|role| {
            target.sql_step(
                StepKind::Revoke,
                format!("revoke role {role} (the app was removed)"),
                format!("REVOKE USAGE ON STREAMLIT {object} FROM ROLE {role}"),
            )
        })
        .collect();
    steps.push(target.sql_step(
        StepKind::Drop,
        format!("drop {object} (the app was removed from the repository)"),
        format!("DROP STREAMLIT IF EXISTS {object}"),
    ));
    Ok(Plan {
        action: Action::Drop,
        app: app.to_string(),
        env: env.to_string(),
        digest: digest(Sha256::new(), &steps),
        object,
        folder: None,
        files: Vec::new(),
        roles: Vec::new(),
        revoked,
        steps,
        previous: last.map(Previous::of),
        commit: None,
    })
}

/// `sha256:` of what `hasher` already holds and every argument of `steps`.
fn digest(mut hasher: Sha256, steps: &[Step]) -> String {
    for step in steps {
        for arg in &step.argv {
            hasher.update(arg.as_bytes());
            hasher.update([0]);
        }
        hasher.update([1]);
    }
    format!("sha256:{}", hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_words_alone() {
        assert_eq!(
            shell_quote("ANALYTICS_TEST.APPS.X"),
            "ANALYTICS_TEST.APPS.X"
        );
        assert_eq!(shell_quote("REVOKE USAGE ON x"), "'REVOKE USAGE ON x'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn short_digest_drops_the_prefix() {
        assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_digest("abc"), "abc");
    }
}
