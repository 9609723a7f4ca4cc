//! `sluice demo`: the README's main job on an embedded default.
//!
//! It strings the real commands together on a throwaway workspace, so what the demo shows is
//! exactly what a user gets from `sluice init`, `new-app`, `check`, `test`, `deploy --dry-run`
//! and `proxy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::Args;

use super::{check, deploy, workspace, CliError, CmdResult};

mod gateway;

/// A file `sluice demo` leaves in its workspace, so that a later run may replace the folder
/// without ever deleting something the user made.
const DEMO_MARKER: &str = ".sluice-demo";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo workspace (replaced if it is a previous demo).
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
}

pub fn run(args: DemoArgs) -> CmdResult {
    let dir = prepare_folder(&args.dir)?;
    use_project_python();

    step(
        "1/7",
        "create a workspace with an example app, a new app and a new page",
    );
    workspace::init(workspace::InitArgs {
        dir: Some(dir.clone()),
    })?;
    std::fs::write(
        dir.join(DEMO_MARKER),
        "created by `sluice demo`; safe to delete\n",
    )?;
    std::env::set_current_dir(&dir).with_context(|| format!("cannot enter {}", dir.display()))?;
    workspace::new_app(workspace::NewAppArgs {
        name: "sales_dashboard".into(),
    })?;
    workspace::new_page(workspace::NewPageArgs {
        app: "sales_dashboard".into(),
        page: "analytics".into(),
    })?;

    step("2/7", "check every app against compliance/rules.yml");
    let checked = check::run(check::CheckArgs {
        format: "text".into(),
        output: None,
        app: None,
        show_suppressed: false,
        rules: None,
        baseline: None,
        write_baseline: None,
    })?;
    if checked != ExitCode::SUCCESS {
        return Err(anyhow!("the demo workspace failed its compliance check").into());
    }

    step(
        "3/7",
        "run every page of every app headlessly with Streamlit's AppTest",
    );
    test_pages(None, false, "a demo page failed its AppTest run")?;

    step(
        "4/7",
        "plan the deployment to Snowflake's test environment (`sluice deploy --all --env test --dry-run`)",
    );
    // Snowflake is not reachable from the demo: the plan (the deployment folders and the exact
    // `snow` commands CI would run) is what it shows; nothing is run or recorded.
    let planned = deploy::deploy(deploy::DeployArgs {
        app: None,
        all: true,
        changed_since: None,
        env: "test".into(),
        dry_run: true,
    })?;
    if planned != ExitCode::SUCCESS {
        return Err(anyhow!("the demo's deployment plan failed").into());
    }

    step(
        "5/7",
        "start a local PostgreSQL primary with two hot standbys (pg_basebackup -R)",
    );
    gateway::flush();
    let cluster = gateway::start_cluster()?;

    step(
        "6/7",
        "serve it through the gateway: `sluice proxy --config demo/gateway/sluice-proxy.toml`",
    );
    let proxy = gateway::start_gateway(&cluster, &dir.join("gateway"))?;
    println!(
        "  gateway listening on 127.0.0.1:{} (log: {})",
        proxy.port,
        proxy.log.display()
    );
    // The apps' `local` environment reads through the gateway.
    std::env::set_var("SLUICE_POSTGRES_URL", gateway::gateway_url(&proxy));
    // `--require-data`: a page that cannot read through the gateway fails instead of
    // falling back to its "no live data" message.
    test_pages(
        Some("main_app"),
        true,
        "main_app failed reading through the gateway",
    )?;

    step(
        "7/7",
        "a short workload: pooling, read routing and sticky reads",
    );
    gateway::run_workload(&cluster, &proxy)?;

    println!();
    println!("Demo workspace ready in {}", dir.display());
    println!("The cluster and the gateway stop now; `sluice proxy --config {}` serves the same settings.", proxy.config.display());
    Ok(ExitCode::SUCCESS)
}

/// `sluice test` on the demo workspace; `failure` names what a failing page means here.
fn test_pages(app: Option<&str>, require_data: bool, failure: &str) -> Result<(), CliError> {
    let tested = workspace::test(workspace::TestArgs {
        app: app.map(str::to_string),
        timeout: 60,
        require_data,
    })?;
    if tested != ExitCode::SUCCESS {
        return Err(anyhow!("{failure}").into());
    }
    Ok(())
}

fn step(number: &str, what: &str) {
    println!();
    println!("==> [{number}] {what}");
}

/// Removes a previous demo (never anything else) and returns the folder's absolute path.
fn prepare_folder(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = std::path::absolute(dir).with_context(|| format!("bad folder {}", dir.display()))?;
    if dir.exists() {
        if !dir.join(DEMO_MARKER).is_file() {
            bail!(
                "{} exists and was not made by `sluice demo`; pass --dir to use another folder",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove the previous demo in {}", dir.display()))?;
    }
    Ok(dir)
}

/// Lets the demo's pages run with the project's own virtualenv (`<repo>/.venv`, made by
/// `scripts/setup.sh`) when the binary runs from the repository's `target/` folder and the user
/// chose no other Python.
fn use_project_python() {
    if std::env::var_os("SLUICE_PYTHON").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // <repo>/target/<profile>/sluice
    if let Some(repo) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
        let python = repo.join(".venv/bin/python");
        if python.is_file() {
            // Single-threaded at this point: nothing else reads the environment concurrently.
            std::env::set_var("SLUICE_PYTHON", python);
        }
    }
}
