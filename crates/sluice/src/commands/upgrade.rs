//! `sluice upgrade [APP|--all] [--dry-run]`: template changes merged into
//! apps (`sluice_apps::upgrade`). Every app is planned before any is
//! written; exit 1 when an upgrade left conflicts to resolve.

use std::process::ExitCode;

use clap::Args;
use sluice_apps::app_template::{self, VERSIONS_DIR};
use sluice_apps::scaffold::APP_TEMPLATES;
use sluice_apps::upgrade::{self, ChangeKind, Outcome};

use super::workspace::current_workspace;
use super::CmdResult;

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The application to upgrade.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub app: Option<String>,
    /// Upgrade every application.
    #[arg(long)]
    pub all: bool,
    /// Print what would change (a unified diff per file) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn describe(kind: &ChangeKind) -> String {
    match kind {
        ChangeKind::Updated => "updated ".into(),
        ChangeKind::Merged => "merged  ".into(),
        ChangeKind::Conflict { .. } => "CONFLICT".into(),
        ChangeKind::Added => "added   ".into(),
        ChangeKind::Removed => "removed ".into(),
        ChangeKind::KeptChanged => "kept    ".into(),
        ChangeKind::KeptDeleted => "skipped ".into(),
    }
}

fn explain(kind: &ChangeKind) -> String {
    match kind {
        ChangeKind::Updated => " (you had not changed it)".into(),
        ChangeKind::Merged => " (your changes and the template's, in different lines)".into(),
        ChangeKind::Conflict { lines } => format!(
            " (line{} {}): you and the template changed the same lines; resolve the <<<<<<< markers",
            if lines.len() == 1 { "" } else { "s" },
            lines
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ChangeKind::Added => " (new in the template)".into(),
        ChangeKind::Removed => " (the template dropped it; you had not changed it)".into(),
        ChangeKind::KeptChanged => " (the template dropped it, but you changed it)".into(),
        ChangeKind::KeptDeleted => " (you deleted it; the template changed it; not restored)".into(),
    }
}

pub fn run(args: UpgradeArgs) -> CmdResult {
    let workspace = current_workspace()?;
    let apps = match &args.app {
        Some(name) => vec![workspace.app(name)?],
        None => workspace.apps(),
    };
    let templates = workspace.root().join(APP_TEMPLATES);
    let version = app_template::template_version(&templates)?;
    println!("Template: {APP_TEMPLATES}/ is version {version}");
    // Plan everything first: a broken record or snapshot stops the command
    // before any app is touched.
    let mut plans = Vec::new();
    for app in &apps {
        plans.push((app, upgrade::plan(&workspace, app)?));
    }
    let mut conflicted: Vec<String> = Vec::new();
    let mut upgraded = 0;
    let mut snapshot_written = false;
    for (app, plan) in &plans {
        match &plan.outcome {
            Outcome::NotRecorded => println!(
                "{}: not upgraded: no .sluice-app.yml (made before sluice recorded template versions)",
                app.name
            ),
            Outcome::UpToDate { .. } => println!("{}: up to date", app.name),
            Outcome::Planned {
                from, to, changes, ..
            } => {
                upgraded += 1;
                println!("{}: {from} -> {to}", app.name);
                if changes.is_empty() {
                    println!("  (no file of this app changes)");
                }
                let app_dir = workspace.relative(&app.dir);
                for change in changes {
                    println!(
                        "  {} {}{}",
                        describe(&change.kind),
                        change.path,
                        explain(&change.kind)
                    );
                    if matches!(change.kind, ChangeKind::Conflict { .. }) {
                        conflicted.push(format!("{}/{}", app.name, change.path));
                    }
                }
                if args.dry_run {
                    for change in changes.iter().filter(|c| c.kind.writes()) {
                        print!("{}", upgrade::diff(app_dir, change));
                    }
                } else {
                    snapshot_written |= upgrade::apply(&workspace, app, plan)?;
                }
            }
        }
    }
    if args.dry_run {
        println!("Dry run: nothing was written.");
        return Ok(ExitCode::SUCCESS);
    }
    if snapshot_written {
        println!("Recorded template version {version} in {VERSIONS_DIR}/{version}/ (commit it with the apps)");
    }
    if upgraded == 0 {
        println!("Nothing to upgrade.");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Upgraded {upgraded} app{}; {} file{} with conflicts",
        if upgraded == 1 { "" } else { "s" },
        conflicted.len(),
        if conflicted.len() == 1 { "" } else { "s" }
    );
    if !conflicted.is_empty() {
        return Err(anyhow::anyhow!(
            "resolve the conflict markers in {}, then commit",
            conflicted.join(", ")
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
