//! `sluice check`: compliance report over `sluice_rules`.
//!
//! Thin: find the workspace, load the rules, run the check, render, and map
//! the outcome to an exit code (0 clean, 1 error-severity violations,
//! 2 unusable configuration).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Args;

use sluice_rules::{Format, RenderOptions};

use super::{CliError, CmdResult};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Report format.
    #[arg(long, default_value = "text", value_parser = clap::builder::PossibleValuesParser::new(Format::NAMES))]
    pub format: String,
    /// Write the report to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Check only this application.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// Also list violations silenced by `# sluice: ignore[rule-id]`.
    #[arg(long)]
    pub show_suppressed: bool,
    /// Rules file [default: compliance/rules.yml of the workspace].
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

pub fn run(args: CheckArgs) -> CmdResult {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let (root, apps_dir) = find_workspace(&cwd)?;
    let rules_path = args
        .rules
        .clone()
        .unwrap_or_else(|| root.join("compliance").join("rules.yml"));
    let display = rules_path
        .strip_prefix(&cwd)
        .unwrap_or(&rules_path)
        .display()
        .to_string();
    let rules = sluice_rules::load_rules(&rules_path, &display).map_err(CliError::config)?;
    let workspace =
        sluice_rules::Workspace::discover(&root, &apps_dir).map_err(CliError::config)?;
    let options = sluice_rules::CheckOptions {
        app: args.app.clone(),
    };
    let report = sluice_rules::check(&workspace, &rules, &options)?;

    let format: Format = args.format.parse().map_err(|e: String| anyhow!(e))?;
    let color = format == Format::Text
        && args.output.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let rendered = sluice_rules::render(
        &report,
        format,
        RenderOptions {
            color,
            show_suppressed: args.show_suppressed,
        },
    );
    match &args.output {
        Some(path) => {
            std::fs::write(path, rendered)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "sluice check: {} error(s), {} warning(s) in {} app(s); report written to {}",
                report.count(sluice_rules::Severity::Error),
                report.count(sluice_rules::Severity::Warning),
                report.apps.len(),
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`sluice check | head`) is not an error.
            if let Err(e) = out.write_all(rendered.as_bytes()).and_then(|_| out.flush()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(anyhow!("cannot write the report: {e}").into());
                }
            }
        }
    }
    Ok(if report.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Walks up from `start` to the folder holding `sluice.yml`; returns it and
/// its `apps_dir` (default `applications`).
// TODO(lead): use sluice_apps::Workspace
fn find_workspace(start: &Path) -> Result<(PathBuf, String), CliError> {
    let root = start
        .ancestors()
        .find(|dir| dir.join("sluice.yml").is_file())
        .ok_or_else(|| {
            CliError::config(anyhow!(
                "no sluice.yml in {} or any parent folder (run `sluice init` first)",
                start.display()
            ))
        })?;
    let path = root.join("sluice.yml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(CliError::config)?;
    let value: serde_norway::Value = serde_norway::from_str(&text).map_err(|e| {
        let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        CliError::config(anyhow!("sluice.yml:{line}:{col}: {msg}"))
    })?;
    let apps_dir = match value.get("apps_dir") {
        None | Some(serde_norway::Value::Null) => "applications".to_string(),
        Some(serde_norway::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(_) => {
            return Err(CliError::config(anyhow!(
                "sluice.yml: `apps_dir` must be a folder name"
            )))
        }
    };
    Ok((root.to_path_buf(), apps_dir))
}
