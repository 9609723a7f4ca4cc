//! `sluice import PATH NAME`: brings an existing Streamlit app folder in as
//! an app (`sluice_apps::import`), then prints what `sluice check` reports
//! for it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sluice_apps::compliance::{self, RulesFile};
use sluice_apps::import;
use sluice_rules::{report::text::violation_line, Severity};

use super::check::compliance_error;
use super::workspace::current_workspace;
use super::CmdResult;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The existing app's folder (its files are copied; it is not changed).
    pub path: PathBuf,
    /// The app's name in this workspace: a lowercase snake_case identifier.
    pub name: String,
}

pub fn run(args: ImportArgs) -> CmdResult {
    let workspace = current_workspace()?;
    let imported = import::import_app(&workspace, &args.path, &args.name)?;
    let shown = |p: &PathBuf| imported.app_dir.join(p).display().to_string();
    if imported.in_place {
        println!(
            "Completed app `{}` in place in {}/:",
            args.name,
            imported.app_dir.display()
        );
    } else {
        println!(
            "Imported {} as app `{}` in {}/:",
            args.path.display(),
            args.name,
            imported.app_dir.display()
        );
    }
    println!("Kept {} file(s) of the app:", imported.kept.len());
    for file in &imported.kept {
        match &imported.renamed {
            Some((old, new)) if new == file => println!(
                "  {} (was {}: Sluice apps start at {})",
                shown(file),
                old.display(),
                sluice_rules::workspace::MAIN_FILE
            ),
            _ => println!("  {}", shown(file)),
        }
    }
    if imported.snowflake_yml_updated {
        if let Some((old, new)) = &imported.renamed {
            println!(
                "Updated snowflake.yml: {} is now {}",
                old.display(),
                new.display()
            );
        }
    }
    for (file, reason) in &imported.skipped {
        println!("Skipped {} ({reason})", args.path.join(file).display());
    }
    println!("Added from templates/app/:");
    for file in &imported.added {
        println!("  {}", shown(file));
    }
    if imported.added.is_empty() {
        println!("  (nothing: the app had every file)");
    }
    if let Some(record) = &imported.record {
        println!(
            "Recorded the template version in {} (for `sluice upgrade`)",
            shown(record)
        );
    }

    let report = compliance::check(&workspace, &RulesFile::of(&workspace), Some(&args.name))
        .map_err(compliance_error)?;
    println!(
        "sluice check --app {}: {} error(s), {} warning(s)",
        args.name,
        report.count(Severity::Error),
        report.count(Severity::Warning)
    );
    for violation in &report.violations {
        println!("  {}", violation_line(violation, false));
    }
    if report.violations.is_empty() {
        println!("Next: sluice test {}", args.name);
    } else {
        println!(
            "Next: fix them, or record them as known debt with `sluice check --write-baseline compliance/baseline.json` (CI then fails only on new ones)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
