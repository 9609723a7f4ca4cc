//! `sluice proxy`: the PostgreSQL gateway over `sluice_proxy`.

use std::path::PathBuf;

use clap::Args;

use super::CmdResult;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The gateway's TOML configuration (pgbouncer's setting names).
    #[arg(long)]
    pub config: PathBuf,
    /// Validate the configuration, print the resolved settings and exit.
    #[arg(long)]
    pub check: bool,
}

pub fn run(_args: ProxyArgs) -> CmdResult {
    Err(anyhow::anyhow!("`sluice proxy` is not implemented yet").into())
}
