//! The `sluice` binary: argument parsing and wiring only.
//!
//! Every command lives in its own module under `commands/` and returns
//! `Result<ExitCode, CliError>`; this file is the one place that turns an
//! error into `sluice: <message>` on stderr and an exit code (ripgrep's rule:
//! one place maps results to exit codes).

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc (Microsoft's allocator; the `mimalloc` crate builds it from C
/// with `cc`, quickly, unlike jemalloc) instead of glibc's malloc: the
/// gateway allocates and frees small buffers and futures around every
/// transaction, which glibc served from its slow path once its per-thread
/// cache for a size ran dry. mimalloc cut the gateway's instructions per
/// transaction by 6% at `pgbench -c 64` (bench/README.md), for about 200
/// more bytes per idle client; the per-transaction exchange future is
/// recycled by the gateway itself (`sluice_proxy::recycle`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Governed Streamlit-in-Snowflake apps, and a PostgreSQL gateway, in one binary.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a framework repository (sluice.yml, applications/, templates/, compliance/, CI).
    Init(commands::workspace::InitArgs),
    /// Create an application from the app template.
    NewApp(commands::workspace::NewAppArgs),
    /// Bring an existing Streamlit app folder in as an application.
    Import(commands::import::ImportArgs),
    /// Merge changes of templates/app/ into apps made from an older version.
    Upgrade(commands::upgrade::UpgradeArgs),
    /// Add a page to an application from the page template.
    NewPage(commands::workspace::NewPageArgs),
    /// Show the workspace configuration.
    #[command(subcommand)]
    Config(commands::workspace::ConfigCommand),
    /// Prepare the workspace's Python virtualenv (idempotent).
    Setup(commands::workspace::SetupArgs),
    /// Check Python, Streamlit, `snow` and the Snowflake connections; one line per finding.
    Doctor(commands::doctor::DoctorArgs),
    /// Run an application locally with `streamlit run`.
    Run(commands::workspace::RunArgs),
    /// Run every page of every (or one) app headlessly with Streamlit's AppTest.
    Test(commands::workspace::TestArgs),
    /// Check apps against the compliance rules and print a report.
    Check(commands::check::CheckArgs),
    /// Deploy apps to a Snowflake environment with the `snow` CLI, then share them.
    Deploy(commands::deploy::DeployArgs),
    /// Apply an app's share.yml alone (share with its roles, revoke removed ones).
    Share(commands::deploy::ShareArgs),
    /// Deploy an app as an earlier deployed commit had it (from the audit log).
    Rollback(commands::deploy::RollbackArgs),
    /// Show the audit trail of deploys and shares.
    Audit(commands::deploy::AuditArgs),
    /// List every app: pages, owners, roles, compliance, last deploy (or, with --live, what is live).
    Apps(commands::deploy::AppsArgs),
    /// Serve the PostgreSQL gateway (pooling, load balancing, sticky reads).
    Proxy(commands::proxy::ProxyArgs),
    /// Run the embedded demo: a workspace checked and tested, a local cluster behind the gateway.
    Demo(commands::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.prints_to_a_pipe() {
        die_quietly_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Init(args) => commands::workspace::init(args),
        Command::NewApp(args) => commands::workspace::new_app(args),
        Command::Import(args) => commands::import::run(args),
        Command::Upgrade(args) => commands::upgrade::run(args),
        Command::NewPage(args) => commands::workspace::new_page(args),
        Command::Config(cmd) => commands::workspace::config(cmd),
        Command::Setup(args) => commands::workspace::setup(args),
        Command::Doctor(args) => commands::doctor::run(args),
        Command::Run(args) => commands::workspace::run(args),
        Command::Test(args) => commands::workspace::test(args),
        Command::Check(args) => commands::check::run(args),
        Command::Deploy(args) => commands::deploy::deploy(args),
        Command::Share(args) => commands::deploy::share(args),
        Command::Rollback(args) => commands::deploy::rollback(args),
        Command::Audit(args) => commands::deploy::audit(args),
        Command::Apps(args) => commands::deploy::apps(args),
        Command::Proxy(args) => commands::proxy::run(args),
        Command::Demo(args) => commands::demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}

impl Command {
    /// Commands that only print and run short-lived tools: they may die with
    /// their reader (`sluice apps | head`). The gateway and the commands that
    /// feed a child's stdin (`run`, `test`, the demo) must see a closed pipe
    /// as an error on that one write instead.
    fn prints_to_a_pipe(&self) -> bool {
        !matches!(
            self,
            Command::Proxy(_) | Command::Demo(_) | Command::Run(_) | Command::Test(_)
        )
    }
}

/// Rust starts programs with SIGPIPE ignored, so `println!` into a closed
/// pipe panics ("failed printing to stdout"); Unix tools die silently
/// instead, and so does sluice.
fn die_quietly_on_closed_stdout() {
    // SAFETY: restoring a signal's default disposition at startup, before
    // any thread exists, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
