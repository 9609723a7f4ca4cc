//! `sluice init / new-app / new-page / config / setup / run / test`:
//! the app framework's commands, over `sluice_apps`. Parsing and printing
//! only; the work is in the library.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use sluice_apps::config::{Selection, CONFIG_FILE, ENVIRONMENT_KEYS};
use sluice_apps::local_data::{local_data, LocalData};
use sluice_apps::python::{self, Python};
use sluice_apps::runner::{self, DEFAULT_PAGE_TIMEOUT};
use sluice_apps::scaffold::{self, Created, InitOutcome};
use sluice_apps::{ConfigError, Workspace, WorkspaceError};
use sluice_rules::workspace::MAIN_FILE;

use super::{CliError, CmdResult};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to create the framework repository in (default: the current folder).
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NewAppArgs {
    /// Application name: a lowercase snake_case identifier.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct NewPageArgs {
    /// The application to add the page to.
    pub app: String,
    /// Page name: a lowercase snake_case identifier.
    pub page: String,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the resolved environment.
    Show {
        /// Environment name (default: $SLUICE_ENV, else `local`).
        #[arg(long)]
        env: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct SetupArgs {}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The application to run.
    pub app: String,
    /// Arguments passed on to `streamlit run` (after `--`), e.g. `-- --server.port 8502`.
    #[arg(last = true)]
    pub streamlit_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only this application (default: every application).
    pub app: Option<String>,
    /// Seconds each page may run before it counts as failed.
    #[arg(long, default_value_t = DEFAULT_PAGE_TIMEOUT)]
    pub timeout: u32,
    /// Fail pages that cannot reach their data (`SLUICE_REQUIRE_DATA=1`) instead of letting
    /// them show their fallback: for CI and local runs that have a database.
    #[arg(long)]
    pub require_data: bool,
}

/// The workspace around the current folder. A `sluice.yml` that cannot be
/// used is a configuration error (exit 2).
pub(crate) fn current_workspace() -> Result<Workspace, CliError> {
    let here = std::env::current_dir()?;
    Workspace::discover(&here).map_err(|e| match e {
        WorkspaceError::Config(ConfigError::Invalid { .. } | ConfigError::Read { .. }) => {
            CliError::config(e)
        }
        other => other.into(),
    })
}

/// `Environment: local` and `Apps dir: applications/`, printed before what a
/// command made. Resolved before anything is written, so a bad `SLUICE_ENV`
/// stops the command with nothing changed.
fn context_lines(workspace: &Workspace) -> Result<String, CliError> {
    let env = workspace.environment(None)?;
    Ok(format!(
        "Environment: {}\nApps dir:    {}/",
        env.name,
        workspace.relative(&workspace.apps_dir()).display()
    ))
}

fn print_files(files: &[PathBuf]) {
    for file in files {
        println!("  {}", file.display());
    }
}

pub fn init(args: InitArgs) -> CmdResult {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    match scaffold::init(&dir)? {
        InitOutcome::AlreadyAWorkspace { root } => {
            println!(
                "{} is already a Sluice workspace (sluice.yml exists); nothing changed",
                root.display()
            );
        }
        InitOutcome::Created { workspace, files } => {
            println!(
                "Created Sluice workspace `{}` in {}",
                workspace.config().project,
                workspace.root().display()
            );
            let environments: Vec<&str> = workspace
                .config()
                .environments
                .keys()
                .map(String::as_str)
                .collect();
            println!(
                "Config:      sluice.yml (environments: {})",
                environments.join(", ")
            );
            // The files exist now: a bad SLUICE_ENV must not turn this into a failure.
            match context_lines(&workspace) {
                Ok(context) => println!("{context}"),
                Err(error) => println!("Environment: ({})", error.error),
            }
            println!("Created {} files:", files.len());
            print_files(&files);
            match &args.dir {
                Some(dir) => println!("Next: cd {} && sluice setup && sluice test", dir.display()),
                None => println!("Next: sluice setup && sluice test"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn new_app(args: NewAppArgs) -> CmdResult {
    let workspace = current_workspace()?;
    let context = context_lines(&workspace)?;
    let Created { files } = scaffold::new_app(&workspace, &args.name)?;
    println!("{context}");
    println!("Created app `{}`:", args.name);
    print_files(&files);
    println!(
        "Next: sluice new-page {0} PAGE, sluice run {0}, sluice test {0}",
        args.name
    );
    Ok(ExitCode::SUCCESS)
}

pub fn new_page(args: NewPageArgs) -> CmdResult {
    let workspace = current_workspace()?;
    let context = context_lines(&workspace)?;
    let Created { files } = scaffold::new_page(&workspace, &args.app, &args.page)?;
    println!("{context}");
    println!("Created page `{}` in app `{}`:", args.page, args.app);
    print_files(&files);
    Ok(ExitCode::SUCCESS)
}

pub fn config(cmd: ConfigCommand) -> CmdResult {
    let ConfigCommand::Show { env } = cmd;
    let workspace = current_workspace()?;
    let resolved = workspace.environment(env.as_deref())?;
    let config = workspace.config();
    println!("workspace:   {}", workspace.root().display());
    println!("config:      {}", workspace.config_path().display());
    println!("project:     {}", config.project);
    println!("apps_dir:    {}", config.apps_dir.display());
    println!("audit_log:   {}", config.audit_log.display());
    let chosen_by = match resolved.selection {
        Selection::Explicit => "--env",
        Selection::Variable => "SLUICE_ENV",
        Selection::Default => "default",
    };
    println!("environment: {} ({chosen_by})", resolved.name);
    for key in ENVIRONMENT_KEYS {
        match (resolved.values.get(key), resolved.sources.get(key)) {
            (Some(value), Some(source)) => println!("  {key:<13} {value}  ({source})"),
            _ => println!("  {key:<13} -"),
        }
    }
    let policy = &resolved.values.streamlit;
    let mut said = Vec::new();
    if let Some(allowed) = &policy.allowed_external_access_integrations {
        said.push(format!(
            "allowed_external_access_integrations: {}",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        ));
    }
    if !policy.forbid.is_empty() {
        said.push(format!("forbid: {}", policy.forbid.join(", ")));
    }
    if !policy.force.is_empty() {
        let keys: Vec<&str> = policy.force.keys().map(String::as_str).collect();
        said.push(format!("force: {}", keys.join(", ")));
    }
    if !said.is_empty() {
        println!("  {:<13} {}  ({CONFIG_FILE})", "streamlit", said.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn setup(_args: SetupArgs) -> CmdResult {
    let workspace = current_workspace()?;
    let report = python::setup(&workspace, Path::new("python3"))?;
    for step in &report.steps {
        println!("setup: {step}");
    }
    println!(
        "setup: ready: {}",
        workspace
            .relative(&python::venv_python(workspace.root()))
            .display()
    );
    // Setup's own work succeeded; what the doctor finds is advice (CI's test
    // job runs setup without Snowflake connections).
    println!("setup: checking the workspace (sluice doctor)");
    let findings = super::doctor::print_findings(&workspace, false);
    let (warnings, failures) = sluice_apps::doctor::summary(&findings);
    if warnings + failures > 0 {
        println!(
            "setup: the doctor found {failures} failure{} and {warnings} warning{} above; `sluice doctor` checks again",
            plural(failures),
            plural(warnings)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: RunArgs) -> CmdResult {
    let workspace = current_workspace()?;
    let app = workspace.app(&args.app)?;
    let main_file = app.dir.join(MAIN_FILE);
    if !main_file.is_file() {
        return Err(anyhow::anyhow!("app `{}` has no {MAIN_FILE}", app.name).into());
    }
    let python = Python::resolve(&workspace);
    python.require_streamlit()?;
    println!(
        "Running {} with {} (environment local)",
        workspace.relative(&main_file).display(),
        python.program.display()
    );
    // Become `streamlit run` (exec): signals and the exit status are
    // Streamlit's own, and no orphan survives if this process is killed.
    let error = runner::streamlit_command(&workspace, &app, &python, &args.streamlit_args)?.exec();
    Err(anyhow::anyhow!(
        "cannot start streamlit with {}: {error}",
        python.program.display()
    )
    .into())
}

pub fn test(args: TestArgs) -> CmdResult {
    let workspace = current_workspace()?;
    let apps = match &args.app {
        Some(name) => vec![workspace.app(name)?],
        None => workspace.apps(),
    };
    let (apps, pageless): (Vec<_>, Vec<_>) = apps.into_iter().partition(|a| !a.pages.is_empty());
    let page_count: usize = apps.iter().map(|a| a.pages.len()).sum();
    if page_count == 0 && pageless.is_empty() {
        return Err(
            anyhow::anyhow!("no apps to test; create one with `sluice new-app NAME`").into(),
        );
    }
    let python = Python::resolve(&workspace);
    println!(
        "Testing {page_count} page{} in {} app{} with {} (environment local)",
        plural(page_count),
        apps.len() + pageless.len(),
        plural(apps.len() + pageless.len()),
        python.program.display()
    );
    for app in &apps {
        if let LocalData::Snowpark { fixtures } = local_data(&workspace, app)? {
            println!(
                "{}: Snowpark local testing, tables from {}/",
                app.name,
                workspace.relative(&fixtures).display()
            );
        }
    }
    for app in &pageless {
        println!("FAIL {}: no dashboard.py and no pages", app.name);
    }
    let outcomes = if page_count > 0 {
        runner::test_pages(
            &workspace,
            &apps,
            &python,
            args.timeout,
            args.require_data,
            |outcome| {
                let page = Path::new(&outcome.app).join(&outcome.page);
                match &outcome.error {
                    None => println!("PASS {}", page.display()),
                    Some(error) => {
                        println!("FAIL {}", page.display());
                        println!("     {}", error.message);
                        for line in error.traceback.lines() {
                            println!("     {line}");
                        }
                    }
                }
            },
        )?
    } else {
        Vec::new()
    };
    let failed = outcomes.iter().filter(|o| !o.passed()).count() + pageless.len();
    let total = outcomes.len() + pageless.len();
    println!(
        "{total} page{}: {} passed, {failed} failed",
        plural(total),
        total - failed
    );
    if failed > 0 {
        return Err(anyhow::anyhow!("{failed} of {total} page{} failed", plural(total)).into());
    }
    Ok(ExitCode::SUCCESS)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
