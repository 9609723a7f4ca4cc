//! `sluice demo`: the README's main job on an embedded default.

use std::path::PathBuf;

use clap::Args;

use super::CmdResult;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo workspace (replaced if it is a previous demo).
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
}

pub fn run(_args: DemoArgs) -> CmdResult {
    Err(anyhow::anyhow!("`sluice demo` is not implemented yet").into())
}
