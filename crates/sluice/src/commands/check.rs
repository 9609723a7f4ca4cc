//! `sluice check`: compliance report over `sluice_rules`.

use clap::Args;

use super::CmdResult;

#[derive(Debug, Args)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs) -> CmdResult {
    Err(anyhow::anyhow!("`sluice check` is not implemented yet").into())
}
