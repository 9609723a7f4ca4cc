//! `sluice doctor`: one line per check (see `sluice_apps::doctor`), exit 1
//! when any check failed. `sluice setup` prints the same findings at its end.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sluice_apps::doctor::{self, Doctor, Finding};
use sluice_apps::python::Python;
use sluice_apps::Workspace;

use super::deploy::{snow_program, SNOW_VARIABLE};
use super::workspace::current_workspace;
use super::CmdResult;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also run `snow connection test -c NAME` for each environment's connection.
    #[arg(long)]
    pub online: bool,
}

/// The doctor for this process: its Python, `snow` and environment variables.
fn doctor(workspace: &Workspace, online: bool) -> Doctor {
    let snow = PathBuf::from(snow_program());
    let snow_origin = if std::env::var_os(SNOW_VARIABLE).is_some_and(|v| !v.is_empty()) {
        SNOW_VARIABLE.to_string()
    } else {
        "snow on PATH".to_string()
    };
    Doctor {
        python: Python::resolve(workspace),
        snow,
        snow_origin,
        online,
        vars: std::env::vars().collect(),
    }
}

/// Runs every check and prints each finding as it is one line.
pub fn print_findings(workspace: &Workspace, online: bool) -> Vec<Finding> {
    let findings = doctor::diagnose(workspace, &doctor(workspace, online));
    for finding in &findings {
        println!("{finding}");
    }
    findings
}

pub fn run(args: DoctorArgs) -> CmdResult {
    let workspace = current_workspace()?;
    println!("Checking {}", workspace.root().display());
    let findings = print_findings(&workspace, args.online);
    let (warnings, failures) = doctor::summary(&findings);
    let skipped = if args.online {
        ""
    } else {
        " (connections not tested: add --online to run `snow connection test`)"
    };
    println!(
        "{} checks: {} ok, {warnings} warning{}, {failures} failed{skipped}",
        findings.len(),
        findings.len() - warnings - failures,
        if warnings == 1 { "" } else { "s" },
    );
    if failures > 0 {
        return Err(anyhow::anyhow!(
            "{failures} of {} checks failed; each FAIL line says how to fix it",
            findings.len()
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
