//! `sluice deploy / share / rollback / audit / apps`: deploying apps to Snowflake with
//! the `snow` CLI, the audit trail and the app inventory, over
//! `sluice_apps::{deploy, audit, inventory}`. Parsing and printing only.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use sluice_apps::audit::{self, AuditEntry};
use sluice_apps::deploy::{self, rollback, run, Plan, Target};
use sluice_apps::{inventory, Workspace};

use super::workspace::current_workspace;
use super::CmdResult;

/// Environment variable naming the `snow` program (default: `snow` on PATH).
pub const SNOW_VARIABLE: &str = "SLUICE_SNOW";

/// The `snow` program every command runs: `$SLUICE_SNOW`, else `snow` on PATH.
pub fn snow_program() -> OsString {
    std::env::var_os(SNOW_VARIABLE)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| deploy::SNOW.into())
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The application to deploy.
    #[arg(required_unless_present_any = ["all", "changed_since"], conflicts_with_all = ["all", "changed_since"])]
    pub app: Option<String>,
    /// Deploy every application.
    #[arg(long, conflicts_with = "changed_since")]
    pub all: bool,
    /// Deploy the applications whose files changed between REV and HEAD (for CI).
    #[arg(long, value_name = "REV")]
    pub changed_since: Option<String>,
    /// Target environment in sluice.yml (test, prod, ...).
    #[arg(long)]
    pub env: String,
    /// Print the plan (every command, every file of the deployment folder) and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ShareArgs {
    /// The application whose share.yml to apply.
    pub app: String,
    /// Target environment in sluice.yml.
    #[arg(long)]
    pub env: String,
    /// Print the commands and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The application to roll back.
    pub app: String,
    /// Target environment in sluice.yml.
    #[arg(long)]
    pub env: String,
    /// Roll back to this deployed commit (a prefix is enough; see `sluice audit --app APP`).
    #[arg(long, value_name = "COMMIT", conflicts_with = "steps")]
    pub to: Option<String>,
    /// Go back this many deployed commits from the live one.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub steps: usize,
    /// Print the plan (every command, every file of the rebuilt folder) and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this application.
    #[arg(long)]
    pub app: Option<String>,
    /// Only this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Print only the commit of the last successful deploy to --env (nothing if none).
    #[arg(long, requires = "env")]
    pub last_commit: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AppsFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct AppsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: AppsFormat,
    /// Compare the repository with the apps live in --env (`snow streamlit list`).
    #[arg(long, requires = "env")]
    pub live: bool,
    /// The environment to compare with (with --live).
    #[arg(long, requires = "live")]
    pub env: Option<String>,
}

/// The audit log's entries; corrupt lines are reported on stderr and skipped.
fn history(ws: &Workspace) -> Result<Vec<AuditEntry>, super::CliError> {
    let path = ws.audit_log();
    let display = ws.relative(&path).display().to_string();
    let log = audit::read(&path, &display)?;
    for problem in &log.problems {
        eprintln!("sluice: warning: {problem}");
    }
    Ok(log.entries)
}

pub fn deploy(args: DeployArgs) -> CmdResult {
    let ws = current_workspace()?;
    // An unknown environment or a missing key is reported before anything else.
    Target::resolve(&ws, &args.env)?;
    let history = history(&ws)?;
    let mut removed: Vec<String> = Vec::new();
    let apps: Vec<String> = if let Some(app) = &args.app {
        vec![ws.app(app)?.name]
    } else if args.all {
        ws.apps().into_iter().map(|a| a.name).collect()
    } else {
        let rev = args.changed_since.as_deref().unwrap_or_default();
        let changes = deploy::changed::changes(&ws, rev)?;
        if changes.apps.is_empty() && changes.removed.is_empty() {
            println!(
                "No app changed since {rev}; nothing to deploy to {}.",
                args.env
            );
            return Ok(ExitCode::SUCCESS);
        }
        if !changes.apps.is_empty() {
            println!("Changed since {rev}: {}", changes.apps.join(", "));
        }
        if !changes.removed.is_empty() {
            println!("Removed since {rev}: {}", changes.removed.join(", "));
        }
        removed = changes.removed;
        changes.apps
    };
    if apps.is_empty() && removed.is_empty() {
        return Err(anyhow!("the workspace has no apps to deploy").into());
    }
    // Every plan is made (and every app checked) before anything runs; the
    // tombstones of removed apps come last, so a renamed app is live under
    // its new name before the old one goes.
    let mut plans = apps
        .iter()
        .map(|app| deploy::plan_deploy(&ws, app, &args.env, &history))
        .collect::<Result<Vec<Plan>, _>>()?;
    let rev = args.changed_since.as_deref().unwrap_or_default();
    for app in &removed {
        let before = deploy::changed::shared_at(&ws, rev, app, &args.env);
        plans.push(deploy::plan_drop(&ws, app, &args.env, &history, &before)?);
    }
    finish(&ws, &plans, args.dry_run)
}

pub fn share(args: ShareArgs) -> CmdResult {
    let ws = current_workspace()?;
    Target::resolve(&ws, &args.env)?;
    let history = history(&ws)?;
    let plan = deploy::plan_share(&ws, &args.app, &args.env, &history)?;
    finish(&ws, &[plan], args.dry_run)
}

pub fn rollback(args: RollbackArgs) -> CmdResult {
    let ws = current_workspace()?;
    Target::resolve(&ws, &args.env)?;
    let history = history(&ws)?;
    let to = match &args.to {
        Some(commit) => rollback::To::Commit(commit.clone()),
        None => rollback::To::Steps(args.steps),
    };
    let chosen = rollback::choose(&history, &args.app, &args.env, &to)?;
    println!(
        "Rolling back {} in {} to commit {} (deployed {} by {}, digest {})",
        args.app,
        args.env,
        deploy::short_commit(&chosen.commit),
        chosen.time,
        chosen.actor,
        deploy::short_digest(&chosen.digest)
    );
    let plan = rollback::plan_rollback(&ws, &args.app, &args.env, &history, &chosen.commit)?;
    finish(&ws, &[plan], args.dry_run)
}

/// Prints (dry run) or executes the plans, recording each in the audit log
/// (a rollback with the commit its files come from).
fn finish(ws: &Workspace, plans: &[Plan], dry_run: bool) -> CmdResult {
    let mut out = std::io::stdout().lock();
    if dry_run {
        for (i, plan) in plans.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write!(out, "{}", plan.render())?;
        }
        let kept = if plans.iter().any(|p| p.folder.is_some()) {
            " (deployment folders are kept for inspection)"
        } else {
            ""
        };
        writeln!(
            out,
            "\nDry run: nothing was run and nothing recorded{kept}."
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let program = snow_program();
    let actor = audit::actor(ws.root(), |k| std::env::var(k).ok());
    let commit = audit::head_commit(ws.root());
    let log = ws.audit_log();
    let (mut succeeded, mut total) = (0, 0);
    for plan in plans {
        writeln!(
            out,
            "{} {} {} {} ({} commands, digest {})",
            match plan.action {
                deploy::Action::Deploy => "Deploying",
                deploy::Action::Share => "Sharing",
                deploy::Action::Drop => "Dropping",
                deploy::Action::Rollback => "Rolling back",
            },
            plan.app,
            plan.action.preposition(),
            plan.env,
            plan.steps.len(),
            deploy::short_digest(&plan.digest)
        )?;
        let execution = run::execute(plan, ws.root(), &program, &mut out)?;
        let time = audit::utc_timestamp(SystemTime::now());
        let commit = plan.commit.as_deref().unwrap_or(&commit);
        audit::append(&log, &execution.audit_entry(plan, &actor, commit, &time))?;
        succeeded += execution.succeeded();
        total += execution.total();
    }
    writeln!(
        out,
        "{}; recorded in {}",
        run::summary_line(succeeded, total),
        ws.relative(&log).display()
    )?;
    Ok(if succeeded == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn audit(args: AuditArgs) -> CmdResult {
    let ws = current_workspace()?;
    let history = history(&ws)?;
    if args.last_commit {
        let env = args.env.as_deref().unwrap_or_default();
        if let Some(commit) = audit::last_deployed_commit(&history, env) {
            println!("{commit}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let entries = audit::filter(&history, args.app.as_deref(), args.env.as_deref());
    if entries.is_empty() {
        println!(
            "No deploys or shares recorded in {}.",
            ws.relative(&ws.audit_log()).display()
        );
    } else {
        print!("{}", audit::render_table(&entries));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn apps(args: AppsArgs) -> CmdResult {
    let ws = current_workspace()?;
    if let Some(env) = args.env.as_deref().filter(|_| args.live) {
        let target = Target::resolve(&ws, env)?;
        let live = inventory::live(&ws, &target, &snow_program())?;
        match args.format {
            AppsFormat::Json => println!("{}", serde_json::to_string_pretty(&live)?),
            AppsFormat::Text => print!("{}", inventory::render_live(&target, &live)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let history = history(&ws)?;
    let apps = inventory::inventory(&ws, &history);
    match args.format {
        AppsFormat::Json => println!("{}", serde_json::to_string_pretty(&apps)?),
        AppsFormat::Text if apps.is_empty() => {
            println!("No apps yet: create one with `sluice new-app NAME`.")
        }
        AppsFormat::Text => print!("{}", inventory::render_table(&apps)),
    }
    Ok(ExitCode::SUCCESS)
}
