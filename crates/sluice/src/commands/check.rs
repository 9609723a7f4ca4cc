//! `sluice check`: compliance report over `sluice_rules`.
//!
//! Thin: find the workspace, check it (`sluice_apps::compliance`, as deploy,
//! `sluice apps` and `sluice import` do), apply or write a baseline
//! (`sluice_rules::baseline`), render, and map the outcome to an exit code
//! (0 clean, 1 error-severity violations, 2 unusable configuration).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Args;

use sluice_apps::compliance::{self, ComplianceError, RulesFile};
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
    /// Report only violations not recorded in this baseline file.
    #[arg(long, value_name = "FILE", conflicts_with = "write_baseline")]
    pub baseline: Option<PathBuf>,
    /// Record every current violation in FILE (for `--baseline`) and exit 0.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["app", "output"])]
    pub write_baseline: Option<PathBuf>,
}

/// A failed check as the binary reports it: unusable configuration (a
/// broken rules file, an unreadable apps folder) exits 2, an unknown `--app` 1.
pub fn compliance_error(error: ComplianceError) -> CliError {
    if error.is_configuration() {
        CliError::config(error)
    } else {
        error.into()
    }
}

pub fn run(args: CheckArgs) -> CmdResult {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    // For the checker, a missing or broken workspace is unusable configuration (exit 2).
    let ws = super::workspace::current_workspace().map_err(|e| CliError::config(e.error))?;
    let rules_path = args
        .rules
        .clone()
        .unwrap_or_else(|| RulesFile::of(&ws).path);
    let display = rules_path
        .strip_prefix(&cwd)
        .unwrap_or(&rules_path)
        .display()
        .to_string();
    let rules = RulesFile {
        path: rules_path,
        display,
    };
    let mut report =
        compliance::check(&ws, &rules, args.app.as_deref()).map_err(compliance_error)?;
    let root = ws.root();
    if let Some(path) = &args.write_baseline {
        let baseline = sluice_rules::Baseline::from_violations(root, &report.violations);
        std::fs::write(path, baseline.to_json())
            .with_context(|| format!("cannot write the baseline {}", path.display()))?;
        println!(
            "sluice check: recorded {} violation(s) in {} file(s) in {}; `sluice check --baseline {}` reports only new ones",
            baseline.len(),
            baseline.files(),
            path.display(),
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.baseline {
        let baseline = sluice_rules::Baseline::load(path).map_err(CliError::config)?;
        report.apply_baseline(&baseline, root);
    }

    let format: Format = args.format.parse()?;
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
