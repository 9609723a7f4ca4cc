//! `sluice init / new-app / new-page / config / setup / run / test`:
//! the app framework's commands, over `sluice_apps`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::CmdResult;

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
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only this application (default: every application).
    pub app: Option<String>,
}

fn todo(what: &str) -> CmdResult {
    Err(anyhow::anyhow!("`sluice {what}` is not implemented yet").into())
}

pub fn init(_args: InitArgs) -> CmdResult {
    todo("init")
}
pub fn new_app(_args: NewAppArgs) -> CmdResult {
    todo("new-app")
}
pub fn new_page(_args: NewPageArgs) -> CmdResult {
    todo("new-page")
}
pub fn config(_cmd: ConfigCommand) -> CmdResult {
    todo("config")
}
pub fn setup(_args: SetupArgs) -> CmdResult {
    todo("setup")
}
pub fn run(_args: RunArgs) -> CmdResult {
    todo("run")
}
pub fn test(_args: TestArgs) -> CmdResult {
    todo("test")
}
