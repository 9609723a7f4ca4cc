//! `sluice proxy`: the PostgreSQL gateway over `sluice_proxy`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use sluice_proxy::config::{ini, Config};

use super::{CliError, CmdResult};

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The gateway's TOML configuration (pgbouncer's setting names), or a
    /// pgbouncer INI file as it is (`*.ini`, or with a `[pgbouncer]` section).
    #[arg(long, required_unless_present = "print_toml")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print the resolved settings and exit.
    #[arg(long)]
    pub check: bool,
    /// Print the TOML equivalent of a pgbouncer INI file and exit.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["config", "check"])]
    pub print_toml: Option<PathBuf>,
}

pub fn run(args: ProxyArgs) -> CmdResult {
    if let Some(ini) = &args.print_toml {
        print!("{}", ini::toml_of_file(ini).map_err(CliError::config)?);
        return Ok(ExitCode::SUCCESS);
    }
    let path = args
        .config
        .expect("clap requires --config without --print-toml");
    let config = Config::load(&path).map_err(CliError::config)?;
    if args.check {
        print!("{config}");
        return Ok(ExitCode::SUCCESS);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match config.proxy.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Runtime::new()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n as usize)
            .enable_all()
            .build()?,
    };
    runtime.block_on(sluice_proxy::server::run_until_shutdown(Arc::new(config)))?;
    Ok(ExitCode::SUCCESS)
}
